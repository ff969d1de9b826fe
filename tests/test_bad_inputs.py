"""The bad-input suite: each malformed input gives a one-line message naming the file or row, a non-zero
exit in the CLI (or is handled and accepted where it is valid), and nothing outside the data root is read."""
from __future__ import annotations

import io
import os
import struct
import sys
import re
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import files_opened, image, make_kaggle, write_csv
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
    ("csv extra column", lambda d: write_csv(d / "train.csv", [["left", "right", "note"], ["l000", "r000", "x"]]), 2, "train.csv: bad header (unexpected column at position 3; found 3 columns; expected left,right)"),
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


SECRET = "sk_live_" + "7f3a9c" * 30  # a header of secret text, long enough to be cut short if it were quoted
SECRET_FILES = {
    "secret header": f"{SECRET},{SECRET[::-1]}\nq000,1\n",
    "21 secret columns": ",".join([SECRET] * 21) + "\n",  # the right count, the wrong names
    "passwd-like": f"root:x:0:0:{SECRET}:/root:/bin/bash\ndaemon:x:1:1:,,,:/usr/sbin:/usr/sbin/nologin\n",
    "environ-like": "".join(f"KEY{i}={SECRET},{i}\0" for i in range(30)),  # NUL-separated, no line end
}


@pytest.mark.parametrize("how", ["a file", "a link to a file outside the data folder"])
@pytest.mark.parametrize("content", list(SECRET_FILES.values()), ids=list(SECRET_FILES))
def test_the_validator_never_quotes_the_file_it_refuses(content: str, how: str, tmp_path: Path, capsys) -> None:
    """A bad header is told by the expected names and column positions, never by its cells: a submission
    that is really ``/etc/passwd`` or ``/proc/self/environ`` (read whole: its size says 0) prints none of it."""
    data = make_kaggle(tmp_path / "data")
    secret = tmp_path / "elsewhere" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text(content)
    sub = secret
    if how != "a file":
        sub = data / "sub.csv"
        sub.symlink_to(secret)
    assert main(["validate-submission", "--data", str(data), str(sub)]) == 1
    err = capsys.readouterr().err
    assert "bad header" in err and "expected left,c0,c1" in err, err
    assert "sk_live" not in err and "7f3a9c" not in err and "c9a3f7" not in err and "root:" not in err, err
    assert "KEY" not in err and "\\x00" not in err, err


def test_a_data_csv_header_of_secret_text_is_never_quoted(tmp_path: Path, capsys) -> None:
    data = make_kaggle(tmp_path / "data")
    (data / "train.csv").write_text(f"left,{SECRET}\nl000,r000\n")
    got, text = _evaluate(data, tmp_path, capsys)
    assert got == 2 and "train.csv: bad header (missing column right; unexpected column at position 2;" in text, text
    assert "sk_live" not in text and "7f3a9c" not in text, text


def test_nothing_outside_the_data_root_is_opened(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An audit hook records every file opened while a folder full of escape attempts is loaded and embedded."""
    data = make_kaggle(tmp_path / "data")
    secret = image(tmp_path / "secret.jpg", seed=9)
    (tmp_path / "secret.csv").write_text("left,right\n")
    write_csv(data / "train.csv", [["left", "right"], *[[f"l{i:03d}", f"r{i:03d}"] for i in range(24)],
                                   ["../secret", "r000"], ["l000x", "../../secret.jpg"]])
    (data / "train/left/l003.jpg").unlink()
    (data / "train/left/l003.jpg").symlink_to(secret)
    with files_opened() as opened:
        assert main(["evaluate", "--data", str(data), "--backbone", "tiny-image", "--quiet", "--cache-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "secret" in err
    touched = [p for p in opened if "secret" in p]
    assert touched == [], touched


def test_a_row_is_reported_at_the_line_it_starts_on(tmp_path: Path, capsys) -> None:
    """A quoted cell may run over several lines: its row is told by the line it starts on (csv's line_num is
    the line it ends on), and so is every row after it."""
    data = make_kaggle(tmp_path / "data")
    (data / "train.csv").write_text('left,right\nl000,r000\n"l0\n01",r001\nl002,r002,x\n"l003","r0\n\n03",x\nl004\n')
    rows, problems = read_csv_rows(data / "train.csv", ("left", "right"))
    assert rows == [(2, ["l000", "r000"]), (3, ["l0\n01", "r001"])]
    assert problems == ["train.csv line 5: expected 2 columns, found 3",
                        "train.csv line 6 (through line 8): expected 2 columns, found 3",
                        "train.csv line 9: expected 2 columns, found 1"]
    write_csv(data / "train.csv", [["left", "right"], ["l000", "r000"], ["l0\n01", "r001"], ["l002", "r002"]])
    got, text = _evaluate(data, tmp_path, capsys)
    assert got == 2 and "train.csv line 3: missing image train/left/l0 01.jpg" in text, text


def test_a_submission_row_of_the_wrong_width_is_one_problem(kaggle_dir: Path, tmp_path: Path) -> None:
    """One row with an extra (or a missing) column is reported once, for itself; the rows after it are still
    matched with their own rows of test_candidates.csv, and the row count counts it."""
    good = [[f"q{i:03d}", *[str(0.5 + k) for k in range(20)]] for i in range(3)]
    for bad, found in ((good[0] + ["1"], 22), (good[0][:-1], 20)):
        sub = write_csv(tmp_path / "sub.csv", [list(HEADER), bad, *good[1:]])
        assert submission_problems(sub, kaggle_dir) == [f"sub.csv line 2: expected 21 columns, found {found}"]
    sub = write_csv(tmp_path / "sub.csv", [list(HEADER), good[0], good[1] + ["1"], ["q00\n2", *good[2][1:]]])
    assert submission_problems(sub, kaggle_dir) == [
        "sub.csv line 3: expected 21 columns, found 22",
        "sub.csv line 4: left 'q00 2', expected 'q002' (rows must follow test_candidates.csv)"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_csv_reader_never_crashes_on_bytes(tmp_path_factory, blob: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "train.csv"
    path.write_bytes(blob)
    rows, problems = read_csv_rows(path, ("left", "right"))
    assert all(len(cells) == 2 for _, cells in rows)
    assert all(isinstance(p, str) and "\n" not in p for p in problems)


@pytest.mark.slow
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


# ---------------------------------------------------------------- issue 9: confinement, caps, names


def _evaluate(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the CLI on a weight-free backbone; returns (exit code, stderr) and checks the one-line rule."""
    got = main(["evaluate", "--data", str(data), "--backbone", "colour-hist", "--method", "zero-shot", "--quiet",
                "--cache-dir", str(tmp_path / "c")])
    out, err = capsys.readouterr()
    if got:
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return got, out + err


def _relink(path: Path, target: Path | str) -> None:
    path.unlink()
    path.symlink_to(target)


@pytest.mark.parametrize("target", ["/etc/passwd", "/dev/zero"])
def test_csv_linked_to_a_system_file_is_refused_unread(target: str, tmp_path: Path, capsys) -> None:
    if not os.path.exists(target):
        pytest.skip(f"{target} not on this system")
    data = make_kaggle(tmp_path / "data")
    _relink(data / "train.csv", target)
    got, text = _evaluate(data, tmp_path, capsys)
    assert got == 2 and "train.csv: resolves outside the data folder" in text
    assert "root:" not in text


def test_csv_linked_to_an_outside_csv_is_refused(tmp_path: Path, capsys) -> None:
    data = make_kaggle(tmp_path / "data")
    (data / "train.csv").rename(tmp_path / "elsewhere.csv")  # a perfectly valid CSV, but not in the folder
    (data / "train.csv").symlink_to(tmp_path / "elsewhere.csv")
    got, text = _evaluate(data, tmp_path, capsys)
    assert got == 2 and "train.csv: resolves outside the data folder" in text


def test_csv_linked_inside_the_folder_is_used(tmp_path: Path, capsys) -> None:
    data = make_kaggle(tmp_path / "data")
    (data / "train.csv").rename(data / "pairs.csv")
    (data / "train.csv").symlink_to("pairs.csv")
    assert _evaluate(data, tmp_path, capsys)[0] == 0


def _no_hang(seconds: int = 20) -> None:
    """Fail (SIGALRM) rather than hang forever if a read blocks."""
    import signal

    def boom(*_: object) -> None:
        raise TimeoutError("blocked")

    signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_named_like_a_csv_or_an_image_does_not_block(tmp_path: Path, capsys) -> None:
    import signal

    data = make_kaggle(tmp_path / "data")
    (data / "train.csv").unlink()
    os.mkfifo(data / "train.csv")
    _no_hang()
    try:
        got, text = _evaluate(data, tmp_path, capsys)
        assert got == 2 and "train.csv: not a regular file" in text
        assert read_csv_rows(data / "train.csv", ("left", "right"), confined=False) == ([], ["train.csv: not a regular file"])
        data = make_kaggle(tmp_path / "data2")
        (data / "train/left/l004.jpg").unlink()
        os.mkfifo(data / "train/left/l004.jpg")
        got, text = _evaluate(data, tmp_path, capsys)
        assert got == 2 and "train/left/l004.jpg: not a regular file" in text
    finally:
        signal.alarm(0)


def test_oversized_csv_is_refused_unread(tmp_path: Path, capsys) -> None:
    from tll_core.dataset import MAX_CSV_BYTES

    data = make_kaggle(tmp_path / "data")
    with (data / "train.csv").open("r+b") as fh:
        fh.truncate(MAX_CSV_BYTES + 1)  # sparse: costs no disk
    got, text = _evaluate(data, tmp_path, capsys)
    assert got == 2 and f"train.csv: {MAX_CSV_BYTES + 1:,} bytes exceeds the {MAX_CSV_BYTES:,}-byte limit" in text


def test_a_submission_may_live_anywhere_but_must_be_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "here").mkdir()
    real = write_csv(tmp_path / "elsewhere" / "sub.csv", [["left", "right"], ["a", "b"]])
    (tmp_path / "here" / "sub.csv").symlink_to(real)
    rows, problems = read_csv_rows(tmp_path / "here" / "sub.csv", ("left", "right"), confined=False)
    assert rows == [(2, ["a", "b"])] and problems == []
    rows, problems = read_csv_rows(tmp_path / "here" / "sub.csv", ("left", "right"))  # a data folder's CSV
    assert rows == [] and "sub.csv: resolves outside" in problems[0]
    os.mkfifo(tmp_path / "fifo.csv")
    _no_hang()
    try:
        assert read_csv_rows(tmp_path / "fifo.csv", ("left", "right"), confined=False)[1] == ["fifo.csv: not a regular file"]
    finally:
        __import__("signal").alarm(0)


def test_symlink_swapped_in_after_loading_is_not_followed(tmp_path: Path) -> None:
    """Confinement is checked when a file is opened, not once at load time."""
    from tll_core.engine import Engine
    from tll_core.errors import DataError

    data = make_kaggle(tmp_path / "data")
    secret = image(tmp_path / "secret.jpg", seed=9)
    engine = Engine.open(data, cache_dir=tmp_path / "c")
    ids = [p.left_id for p in engine.dataset.train_pairs[:4]]
    assert engine.dataset.read_image(ids[1]).data == (data / ids[1]).read_bytes()
    _relink(data / ids[1], secret)
    with files_opened() as opened:
        with pytest.raises(DataError, match=f"{ids[1]}: resolves outside the data folder"):
            engine.dataset.read_image(ids[1])
        with pytest.raises(DataError, match="resolves outside the data folder"):
            engine.embed(ids, "colour-hist")
    assert [p for p in opened if "secret" in p] == []


def test_image_symlink_loop_is_one_line(tmp_path: Path, capsys) -> None:
    data = make_kaggle(tmp_path / "data")
    _relink(data / "train/left/l003.jpg", "l003.jpg")
    got, text = _evaluate(data, tmp_path, capsys)
    assert got == 2 and "train/left/l003.jpg: cannot read" in text


def _png_chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def _png_with_chunk(kind: bytes, after_idat: bool) -> bytes:
    """A small PNG carrying a text/ICC chunk that inflates to 20 MB (Pillow refuses over its limit)."""
    buf = io.BytesIO()
    Image.new("RGB", (40, 48), (9, 99, 9)).save(buf, "PNG")
    png = buf.getvalue()
    body = b"k\0\0" + zlib.compress(bytes(20_000_000))
    at = len(png) - 12 if after_idat else 8 + 25  # before IEND, or right after IHDR
    return png[:at] + _png_chunk(kind, body) + png[at:]


@pytest.mark.parametrize("kind", [b"zTXt", b"iCCP"])
@pytest.mark.parametrize("after_idat", [False, True], ids=["in-header", "after-pixels"])
def test_png_with_a_huge_compressed_chunk_is_one_line(kind: bytes, after_idat: bool, tmp_path: Path, capsys) -> None:
    data = make_kaggle(tmp_path / "data")
    (data / "train/left/l005.jpg").write_bytes(_png_with_chunk(kind, after_idat))
    got, text = _evaluate(data, tmp_path, capsys)
    assert got == 2 and "l005.jpg: corrupt image" in text


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="chmod 000 does not stop root")
@pytest.mark.parametrize("what", ["train/left", "train/left/l002.jpg", "."])
def test_unreadable_folder_or_image_is_one_line(what: str, tmp_path: Path, capsys) -> None:
    data = make_kaggle(tmp_path / "data")
    target = data / what
    target.chmod(0)
    try:
        got, text = _evaluate(data, tmp_path, capsys)
    finally:
        target.chmod(0o755)
    assert got == 2 and "cannot read (Permission denied)" in text and (what == "." or what in text)


def test_huge_sparse_file_named_jpg_is_refused_unread(tmp_path: Path, capsys) -> None:
    import time
    import tracemalloc

    from tll_core.images import MAX_IMAGE_BYTES

    data = make_kaggle(tmp_path / "data")
    with (data / "train/left/l007.jpg").open("r+b") as fh:
        fh.truncate(2**30)  # 1 GiB, sparse
    tracemalloc.start()
    start = time.perf_counter()
    try:
        got, text = _evaluate(data, tmp_path, capsys)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == 2 and f"train/left/l007.jpg: {2**30:,} bytes exceeds the {MAX_IMAGE_BYTES:,}-byte limit" in text
    assert peak < 64 * 2**20, peak  # reading it would have cost a gigabyte
    assert time.perf_counter() - start < 60


def _png_header(width: int, height: int, bit_depth: int, colour_type: int) -> bytes:
    """A PNG whose IHDR announces a big image (the pixel data is a stub: only the header is read)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _png_chunk(b"IEND", b""))


def test_high_bit_depth_png_over_the_decode_budget_is_refused(tmp_path: Path, capsys) -> None:
    data = make_kaggle(tmp_path / "data")
    (data / "train/right/r004.jpg").write_bytes(_png_header(7000, 5700, 16, 0))  # 39.9 Mpx, 16-bit grey
    got, text = _evaluate(data, tmp_path, capsys)
    assert got == 2 and "train/right/r004.jpg: a 7000x5700 I;16 image needs about" in text and "MiB limit" in text


def test_duplicate_stems_are_named_in_both_layouts(tmp_path: Path, capsys) -> None:
    data = make_kaggle(tmp_path / "data")
    image(data / "train/right/r003.png", seed=3)
    got, text = _evaluate(data, tmp_path, capsys)
    assert got == 2 and "train.csv line 5: 'r003' could be train/right/r003.jpg and train/right/r003.png" in text
    write_csv(data / "train.csv", [["left", "right"], *[[f"l{i:03d}", f"r{i:03d}"] for i in range(24) if i != 3],
                                   ["l003", "r003.png"]])
    assert _evaluate(data, tmp_path, capsys)[0] == 0  # the full name is not ambiguous
    release = tmp_path / "release"
    for i in range(3):
        image(release / "left" / f"{i}.jpg", seed=i)
        image(release / "right" / f"{i}.jpg", seed=10 + i)
    image(release / "left" / "1.png", seed=20)
    got, text = _evaluate(release, tmp_path, capsys)
    assert got == 2 and "left/1.jpg and left/1.png: two images named '1'" in text


def test_names_keep_their_spaces(tmp_path: Path, capsys) -> None:
    from tll_core.dataset import load_dataset

    data = make_kaggle(tmp_path / "data")
    (data / "train/left/l000.jpg").rename(data / "train/left/ l000 .jpg")
    rows = [[" left ", " right\t"], [" l000 ", "r000"], *[[f"l{i:03d}", f"r{i:03d}"] for i in range(1, 24)]]
    write_csv(data / "train.csv", rows)  # spaces in the header are tolerated, in names they are meant
    ds = load_dataset(data)
    assert ds.train_pairs[0].left_id == "train/left/ l000 .jpg"
    write_csv(data / "train.csv", [["left", "right"], ["l001 ", "r001"]])
    got, text = _evaluate(data, tmp_path, capsys)
    assert got == 2 and "missing image train/left/l001 .jpg (the name has leading or trailing spaces)" in text


def test_a_right_shared_by_two_lefts_is_a_warning(tmp_path: Path) -> None:
    from tll_core.dataset import load_dataset

    data = make_kaggle(tmp_path / "data")
    write_csv(data / "train.csv", [["left", "right"], ["l000", "r000"], ["l001", "r001"], ["l002", "r000"]])
    ds = load_dataset(data)
    assert len(ds.train_pairs) == 3
    assert ds.warnings == ("train.csv line 4: right 'r000' is also the right of line 2",)
    assert make_kaggle(tmp_path / "clean") and load_dataset(tmp_path / "clean").warnings == ()


def _corrupt_exif_jpeg() -> bytes:
    # Orientation 6, then an ASCII tag pointing past the end of the EXIF block
    exif = (b"Exif\0\0MM\0*\0\0\0\x08\0\x02\x01\x12\0\x03\0\0\0\x01\0\x06\0\0"
            b"\x01\x0e\0\x02\0\0\xff\xff\0\0\0\x1a")
    buf = io.BytesIO()
    Image.new("RGB", (40, 48), (9, 9, 99)).save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def test_corrupt_exif_warns_nothing(tmp_path: Path) -> None:
    import warnings

    from tll_core.images import ImageBytes, check_header, decode_rgb

    (tmp_path / "x.jpg").write_bytes(_corrupt_exif_jpeg())
    filters = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = decode_rgb(ImageBytes(tmp_path / "x.jpg", _corrupt_exif_jpeg()))
        assert check_header(tmp_path / "x.jpg") is None
    assert caught == [] and out.size == (48, 40)  # still rotated by its orientation tag
    assert warnings.filters == filters  # nothing left behind


def test_data_roots_confine_the_cli_too(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    data = make_kaggle(tmp_path / "data")
    (tmp_path / "allowed").mkdir()
    monkeypatch.setenv("TLL_DATA_ROOTS", str(tmp_path / "allowed"))
    got, text = _evaluate(data, tmp_path, capsys)
    assert got == 2 and "outside the allowed data folders ($TLL_DATA_ROOTS)" in text
    monkeypatch.setenv("TLL_DATA_ROOTS", os.pathsep.join([str(tmp_path / "allowed"), str(tmp_path)]))
    assert _evaluate(data, tmp_path, capsys)[0] == 0
