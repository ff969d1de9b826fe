"""One rule for numbers and one for quoted names, everywhere a user writes one (issue 18, defect 10)."""
from pathlib import Path

import pytest

from conftest import make_kaggle
from tll_core.cli import main
from tll_core.errors import MAX_NAME_CHARS, MAX_PATH_CHARS, TLLError
from tll_core.matchers import matcher_part
from tll_core.selection import Selection

def run(*argv: str) -> int:
    try:
        return main(list(argv))
    except SystemExit as exc:  # argparse's own refusals (the CLI's __main__ exits with it the same way)
        return int(exc.code)


# what Python's int()/float() take and Kaggle (and this tool) do not
NOT_NUMBERS = ["５", "1_000", "٣٢", "０.５", "²", "5\u00a0", "1e5_0", "0x10", "", "+", "1e", ".", "5."[:0]]


@pytest.mark.parametrize("text", NOT_NUMBERS)
def test_only_plain_ascii_decimals_are_numbers(text: str) -> None:
    from tll_core.numbers import parse_decimal, parse_whole

    with pytest.raises(ValueError):
        parse_decimal(text)
    with pytest.raises(ValueError):
        parse_whole(text)


@pytest.mark.parametrize("text,value", [("5", 5), (" 5 ", 5), ("-3", -3), ("+7", 7)])
def test_plain_whole_numbers_parse(text: str, value: int) -> None:
    from tll_core.numbers import parse_decimal, parse_whole

    assert parse_whole(text) == value and parse_decimal(text) == value


@pytest.mark.parametrize("text,value", [("0.25", 0.25), ("-1.5e-3", -1.5e-3), (".5", 0.5), ("5.", 5.0), ("1E2", 100.0)])
def test_plain_decimals_parse(text: str, value: float) -> None:
    from tll_core.numbers import parse_decimal

    assert parse_decimal(text) == value


@pytest.mark.parametrize("name,text", [("epochs", "５"), ("epochs", "1_000"), ("lr", "０.００1"), ("epochs", "٣")])
def test_an_option_is_refused_in_digits_the_validator_refuses(name: str, text: str) -> None:
    """On old main ``epochs=５`` was 5: int() reads full-width digits."""
    with pytest.raises(TLLError, match=f"option {name}="):
        matcher_part("adaptation").option(name).parse(text)


@pytest.mark.parametrize("argv", [
    ["--option", "epochs=５"], ["--option", "epochs=1_000"], ["--seed", "５"], ["--seed", "1_0"],
    ["--val-fraction", "０.5"], ["--batch-size", "٣٢"], ["--workers", "２"],
])
def test_the_cli_refuses_numbers_the_validator_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         argv: list[str]) -> None:
    data = make_kaggle(tmp_path / "data")
    code = run("evaluate", "--data", str(data), "--backbone", "tiny-image", "--method", "adaptation", *argv)
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: "), (out, err)
    assert "ASCII" in err and argv[0] in err or argv[1].split("=")[0] in err


@pytest.mark.parametrize("query,field", [({"seed": "５"}, "seed"), ({"seed": "-1"}, "seed"),
                                         ({"val_fraction": "０.５"}, "val_fraction"), ({"val_fraction": "1_0"}, "val_fraction")])
def test_a_link_with_such_digits_keeps_the_default(query: dict, field: str) -> None:
    assert getattr(Selection.from_query(query), field) == getattr(Selection(), field)


def test_a_link_with_plain_digits_is_read() -> None:
    sel = Selection.from_query({"seed": "7", "val_fraction": "0.5"})
    assert (sel.seed, sel.val_fraction) == (7, 0.5)


LONG = "n" * 100_000


@pytest.mark.parametrize("argv", [
    ["--option", f"{LONG}=1"], ["--option", f"epochs={LONG}"], ["--option", LONG], ["--backbone", LONG],
    ["--method", LONG], ["--rerank", LONG], ["--device", LONG], ["--weights", LONG], ["--metric", LONG],
    ["--foils", LONG],
])
def test_a_100000_character_value_is_quoted_short(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  argv: list[str]) -> None:
    """On old main such names were echoed whole (100,000 characters on one line)."""
    data = make_kaggle(tmp_path / "data")
    code = run("evaluate", "--data", str(data), "--backbone", "tiny-image", *argv)
    out, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1, err[:300]
    limit = MAX_PATH_CHARS if argv[0] == "--weights" else MAX_NAME_CHARS  # a weights FILE is a path
    assert "n" * (limit + 1) not in err and "100,000 characters" in err, err[:600]


def test_a_long_data_path_is_quoted_short(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / ("d" * 250) / ("e" * 250)
    code = run("evaluate", "--data", str(missing))
    _, err = capsys.readouterr()
    assert code == 2 and "no such data folder" in err and len(err) < MAX_PATH_CHARS + 100, err


@pytest.mark.parametrize("name", [LONG, "a/" + LONG, "../" + LONG])
def test_a_100000_character_name_in_a_csv_is_quoted_short(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          name: str) -> None:
    data = make_kaggle(tmp_path / "data")
    lines = (data / "train.csv").read_text().splitlines()
    lines[1] = f"{name},{lines[1].split(',')[1]}"
    (data / "train.csv").write_text("\n".join(lines) + "\n")
    code = run("evaluate", "--data", str(data), "--backbone", "tiny-image")
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "train.csv line 2" in err, err[:300]
    assert "n" * (MAX_NAME_CHARS + 1) not in err and "characters)" in err, err[:600]
