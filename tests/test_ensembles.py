"""Ensemble backbone names ``a+b`` on the command line: accepted, each part checked against the registry."""
from pathlib import Path

import json
import pytest

from tll_core.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_evaluate_accepts_an_ensemble(demo_dir: Path, capsys: pytest.CaptureFixture[str], warm_demo_cache: Path) -> None:
    code, out, err = run(capsys, "evaluate", "--data", str(demo_dir), "--backbone", "hog+colour-hist", "--json", "--quiet")
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["backbone"] == "hog+colour-hist" and 0 < row["top2"] <= 1


@pytest.mark.parametrize("argv", [
    ("evaluate", "--backbone", "hog+nope"),
    ("evaluate", "--foil-backbone", "hog+nope", "--foils", "hard"),
    ("submit", "--backbone", "hog+nope", "--out", "unused.csv"),
])
def test_a_bad_part_is_one_line_naming_it(demo_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          argv: tuple[str, ...]) -> None:
    command, *rest = argv
    code, out, err = run(capsys, command, "--data", str(demo_dir), *rest, "--quiet")
    assert code == 2 and out == "" and not (tmp_path / "unused.csv").exists()
    assert err.startswith("error: unknown backbone 'nope'") and err.strip().count("\n") == 0


def test_weights_without_a_name_go_to_the_one_deep_part(demo_dir: Path, capsys: pytest.CaptureFixture[str],
                                                         tmp_path: Path) -> None:
    missing = tmp_path / "w.safetensors"
    # the file is attributed to mobilenetv3_large_100 (the only deep part), so the error names it as missing
    code, _, err = run(capsys, "evaluate", "--data", str(demo_dir), "--backbone", "hog+mobilenetv3_large_100",
                       "--weights", str(missing), "--quiet")
    assert code == 2 and "weights file not found (for backbone mobilenetv3_large_100)" in err
    code, _, err = run(capsys, "evaluate", "--data", str(demo_dir), "--backbone", "mobilenetv3_large_100+clip-rn50",
                       "--weights", str(missing), "--quiet")
    assert code == 2 and "say which backbone" in err
