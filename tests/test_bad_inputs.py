"""The bad-input suite: each malformed input gives a one-line message naming the file or row, a non-zero
exit in the CLI (or is handled and accepted where it is valid), and nothing outside the data root is read."""
from __future__ import annotations

import io
import os
import sys
import re
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import image, make_kaggle, write_csv
from tll_core.cli import main
from tll_core.dataset import read_csv_rows
from tll_core.submission import HEADER, submission_problems

CANDS = [f"c{i}" for i in range(20)]
RIGHTS = [f"t{i:03d}" for i in range(22)]


def _save(path: Path, im: Image.Image, fmt: str, **kw) -> None:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    path.write_bytes(buf.getvalue())


def _bomb(path: Path) -> None:
    # a real 20000x20000 PNG (compresses to ~1 MB); only its header is ever read
    _save(path, Image.new("1", (20000, 20000)), "PNG")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3])


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[200:600] = os.urandom(400)
    path.write_bytes(bytes(data[:700]))


def _train_rows(*rows: list[str]) -> Callable[[Path], None]:
    return lambda d: write_csv(d / "train.csv", [["left", "right"], *map(list, rows)])


def _test_rows(*rows: list[str]) -> Callable[[Path], None]:
    return lambda d: write_csv(d / "test_candidates.csv", [["left", *CANDS], *map(list, rows)])


def _image_as(rel: str, writer: Callable[[Path], None]) -> Callable[[Path], None]:
    return lambda d: writer(d / rel)


# (case, mutate the valid folder, expected exit, a fragment of the one-line message)
DATA_CASES = [
    ("zero-byte jpeg", _image_as("train/left/l001.jpg", lambda p: p.write_bytes(b"")), 2, "train/left/l001.jpg: empty file"),
    ("truncated jpeg", _image_as("train/left/l002.jpg", _truncate), 2, "l002.jpg"),
    ("corrupt jpeg", _image_as("train/right/r003.jpg", _corrupt), 2, "r003.jpg"),
    ("non-image named .jpg", _image_as("train/left/l004.jpg", lambda p: p.write_text("hello")), 2, "l004.jpg: not a readable image"),
    ("missing image", _image_as("train/right/r005.jpg", Path.unlink), 2, "train.csv line 7: missing image train/right/r005.jpg"),
    ("decompression bomb 20000x20000", _image_as("train/left/l006.jpg", _bomb), 2, "l006.jpg: 400,000,000 pixels exceeds"),
    ("directory named like an image", lambda d: ((d / "train/left/l007.jpg").unlink(), (d / "train/left/l007.jpg").mkdir()), 2, "missing image train/left/l007.jpg"),
    ("unreadable file (dangling link)", lambda d: ((d / "train/left/l008.jpg").unlink(), (d / "train/left/l008.jpg").symlink_to(d / "train/left/gone.jpg")), 2, "l008.jpg: cannot read"),
    ("image linked from outside the folder", lambda d: ((d / "train/left/l009.jpg").unlink(), (d / "train/left/l009.jpg").symlink_to(d.parent / "secret.jpg")), 2, "resolves outside the data folder"),
    ("csv missing a column", lambda d: write_csv(d / "train.csv", [["left"], ["l000"]]), 2, "train.csv: bad header (missing column right"),
    ("csv extra column", lambda d: write_csv(d / "train.csv", [["left", "right", "note"], ["l000", "r000", "x"]]), 2, "unexpected column note"),
    ("csv duplicate lefts", _train_rows(["l000", "r000"], ["l001", "r001"], ["l000", "r002"]), 2, "train.csv line 4: duplicate left 'l000'"),
    ("csv empty", lambda d: (d / "train.csv").write_bytes(b""), 2, "train.csv: empty file"),
    ("csv header only, no test part", lambda d: ((d / "train.csv").write_text("left,right\n"), (d / "test_candidates.csv").unlink()), 2, "hold no rows"),
    ("csv not UTF-8", lambda d: (d / "train.csv").write_bytes("left,right\nl000,r\xe9\n".encode("latin-1")), 2, "train.csv: not UTF-8"),
    ("csv row with too few columns", _train_rows(["l000", "r000"], ["l001"]), 2, "train.csv line 3: expected 2 columns, found 1"),
    ("19 candidates", _test_rows(["q000", *RIGHTS[:19]]), 2, "test_candidates.csv line 2: expected 21 columns, found 20"),
    ("21 candidates", _test_rows(["q000", *RIGHTS[:21]]), 2, "test_candidates.csv line 2: expected 21 columns, found 22"),
    ("unknown candidate name", _test_rows(["q000", *RIGHTS[:19], "zzz"]), 2, "test_candidates.csv line 2 (c19): missing image test/right/zzz.jpg"),
    ("candidate listed twice", _test_rows(["q000", *RIGHTS[:19], "t000"]), 2, "a candidate is listed twice"),
    ("name with ../", _train_rows(["l000", "../../secret"]), 2, "train.csv line 2: name '../../secret' contains a path separator"),
    ("absolute path", _train_rows(["/etc/passwd", "r000"]), 2, "train.csv line 2: name '/etc/passwd' contains a path separator"),
    ("backslash separator", _train_rows(["l000", "..\\secret"]), 2, "contains a path separator"),
    ("dot-dot name", _train_rows(["..", "r000"]), 2, "would escape the data folder"),
    ("NUL in a name", _train_rows(["l0\x0000", "r000"]), 2, "train.csv line 2: name contains a NUL byte"),
    ("image folder missing", lambda d: __import__("shutil").rmtree(d / "test/left"), 2, "test/left/: folder missing"),
    # handled and accepted
    ("csv with BOM", lambda d: (d / "train.csv").write_bytes(b"\xef\xbb\xbf" + (d / "train.csv").read_bytes()), 0, ""),
    ("csv with CRLF", lambda d: (d / "train.csv").write_bytes((d / "train.csv").read_bytes().replace(b"\n", b"\r\n")), 0, ""),
    ("PNG with alpha", _image_as("train/left/l010.jpg", lambda p: _save(p, Image.new("RGBA", (40, 48), (9, 9, 9, 100)), "PNG")), 0, ""),
    ("CMYK jpeg", _image_as("train/left/l011.jpg", lambda p: _save(p, Image.new("CMYK", (40, 48), (9, 90, 9, 0)), "JPEG")), 0, ""),
    ("16-bit PNG", _image_as("train/left/l012.jpg", lambda p: _save(p, Image.fromarray(np.arange(40 * 48, dtype=np.uint16).reshape(48, 40) * 20), "PNG")), 0, ""),
    ("palette PNG", _image_as("train/left/l013.jpg", lambda p: _save(p, Image.new("RGB", (40, 48), (200, 9, 9)).convert("P"), "PNG")), 0, ""),
    ("1-pixel image", _image_as("train/left/l014.jpg", lambda p: _save(p, Image.new("RGB", (1, 1), (1, 2, 3)), "PNG")), 0, ""),
]


@pytest.mark.parametrize("case,mutate,code,fragment", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_data_folder(case, mutate, code, fragment, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_kaggle(tmp_path / "data")
    image(tmp_path / "secret.jpg", seed=5)
    mutate(data)
    got = main(["evaluate", "--data", str(data), "--backbone", "tiny-image", "--quiet", "--cache-dir", str(tmp_path / "c")])
    out, err = capsys.readouterr()
    assert got == code, (case, err)
    if code:
        assert err.startswith("error: ") and err.count("\n") == 1 and fragment in err, (case, err)
        assert "Traceback" not in err
    else:
        assert "tiny-image" in out


def test_data_folder_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("x")
    assert main(["evaluate", "--data", str(tmp_path / "f"), "--quiet"]) == 2
    assert "is a file, not a data folder" in capsys.readouterr().err


SUBMISSION_CASES = [
    ("non-numeric score", lambda r: r[1].__setitem__(5, "high"), "line 2 (c4): 'high' is not a number"),
    ("NaN score", lambda r: r[2].__setitem__(1, "NaN"), "line 3 (c0): NaN is not finite"),
    ("infinite score", lambda r: r[3].__setitem__(2, "-inf"), "line 4 (c1): -inf is not finite"),
    ("19 scores", lambda r: r[1].pop(), "line 2: expected 21 columns, found 20"),
    ("21 scores", lambda r: r[2].append("1"), "line 3: expected 21 columns, found 22"),
    ("unknown left", lambda r: r[1].__setitem__(0, "nobody"), "line 2: left 'nobody', expected 'q000'"),
    ("empty", lambda r: r.clear(), "empty file"),
    ("header only", lambda r: r.__delitem__(slice(1, None)), "0 rows, expected 3"),
]


@pytest.mark.parametrize("case,mutate,fragment", SUBMISSION_CASES, ids=[c[0] for c in SUBMISSION_CASES])
def test_bad_submission(case, mutate, fragment, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_kaggle(tmp_path / "data")
    sub = tmp_path / "sub.csv"
    assert main(["submit", "--data", str(data), "--backbone", "tiny-image", "--out", str(sub), "--quiet",
                 "--cache-dir", str(tmp_path / "c")]) == 0
    rows = [line.split(",") for line in sub.read_text().splitlines()]
    mutate(rows)
    sub.write_text("".join(",".join(r) + "\n" for r in rows))
    capsys.readouterr()
    assert main(["validate-submission", "--data", str(data), str(sub)]) == 1
    assert fragment in capsys.readouterr().err


def test_nothing_outside_the_data_root_is_opened(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An audit hook records every file opened while a folder full of escape attempts is loaded and embedded."""
    data = make_kaggle(tmp_path / "data")
    secret = image(tmp_path / "secret.jpg", seed=9)
    (tmp_path / "secret.csv").write_text("left,right\n")
    write_csv(data / "train.csv", [["left", "right"], *[[f"l{i:03d}", f"r{i:03d}"] for i in range(24)],
                                   ["../secret", "r000"], ["l000x", "../../secret.jpg"]])
    (data / "train/left/l003.jpg").unlink()
    (data / "train/left/l003.jpg").symlink_to(secret)
    opened: list[str] = []
    watching = True

    def hook(event: str, args: tuple) -> None:
        if watching and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            opened.append(os.fsdecode(args[0]))

    sys.addaudithook(hook)
    try:
        assert main(["evaluate", "--data", str(data), "--backbone", "tiny-image", "--quiet", "--cache-dir", str(tmp_path / "c")]) == 2
    finally:
        watching = False
    err = capsys.readouterr().err
    assert "secret" in err
    touched = [p for p in opened if "secret" in p]
    assert touched == [], touched


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_csv_reader_never_crashes_on_bytes(tmp_path_factory, blob: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "train.csv"
    path.write_bytes(blob)
    rows, problems = read_csv_rows(path, ("left", "right"))
    assert all(len(cells) == 2 for _, cells in rows)
    assert all(isinstance(p, str) and "\n" not in p for p in problems)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=8), min_size=0, max_size=4), max_size=6))
def test_csv_reader_reports_every_bad_row(tmp_path_factory, rows: list[list[str]]) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "train.csv"
    write_csv(path, [["left", "right"], *rows])
    good, problems = read_csv_rows(path, ("left", "right"))
    assert all(len(cells) == 2 for _, cells in good)
    assert len(good) + len(problems) <= len(rows)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5)), min_size=20, max_size=20))
def test_submission_validator_on_fuzzed_scores(kaggle_dir: Path, tmp_path_factory, scores: list) -> None:
    sub = tmp_path_factory.mktemp("fuzz") / "sub.csv"
    rows = [HEADER] + [[f"q{i:03d}", *map(str, scores)] for i in range(3)]
    write_csv(sub, rows)
    problems = submission_problems(sub, kaggle_dir)
    finite = all(_is_finite(s) for s in scores)
    assert (problems == []) == finite


def _is_finite(value) -> bool:
    """What Kaggle reads as a finite score: plain ASCII decimals with an optional exponent (not ``1_000``,
    Arabic-Indic or full-width digits, which Python's float() would take)."""
    text = str(value).strip()
    return bool(re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text, re.ASCII)) and bool(np.isfinite(float(text)))
