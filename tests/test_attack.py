"""Hostile inputs beyond the bad-input suite (issue 9's guarantees, attacked): each test here failed before
its fix. One line ``error: …`` with exit 2, no hang, nothing read outside the data roots, no file lost."""
from __future__ import annotations

import io
import os
import signal
import struct
import tracemalloc
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_kaggle, write_csv
from tll_core.cli import main
from tll_core.dataset import MAX_CSV_ROWS, MAX_PROBLEMS, load_dataset, read_csv_rows
from tll_core.demo import MARKER, write_demo
from tll_core.errors import DataError, TLLError
from tll_core.images import check_header, decode_rgb, read_image_bytes
from tll_core.submission import submission_problems

CANDS = [f"c{i}" for i in range(20)]
FAST = ["--backbone", "colour-hist", "--method", "zero-shot", "--rerank", "none", "--quiet"]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code: int, err: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.endswith("\n") and len(err.splitlines()) == 1, repr(err)
    assert "\x1b" not in err and "\x00" not in err and "unexpected" not in err, repr(err)


@contextmanager
def _no_hang(seconds: int = 20):
    def boom(*_: object) -> None:
        raise TimeoutError("blocked")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ---------------------------------------------------------------- one line, exit 2


def test_control_characters_in_a_csv_name_stay_on_one_line(tmp_path: Path, capsys) -> None:
    data = make_kaggle(tmp_path / "data")
    write_csv(data / "train.csv", [["left", "right"], ["evil\rERROR all fine\x1b[2K\u2028x\x85y\x00", "r000"],
                                   *[[f"l{i:03d}", f"r{i:03d}"] for i in range(1, 24)]])
    code, _, err = _run(capsys, "evaluate", "--data", str(data), *FAST, "--cache-dir", str(tmp_path / "c"))
    _one_line_error(code, err)
    assert "\r" not in err and "\u2028" not in err and "\x85" not in err


def test_option_name_with_a_newline_is_one_line(kaggle_dir: Path, capsys) -> None:
    code, _, err = _run(capsys, "evaluate", "--data", str(kaggle_dir), "--method", "adaptation",
                        "--option", "epo\nchs\x1b=1")
    _one_line_error(code, err)


@pytest.mark.parametrize("argv", [["evaluate", "--data", "x", "--batch-size", "abc"], ["bogus"], ["evaluate"], []])
def test_bad_command_line_is_one_line(argv: list[str], capsys) -> None:
    code, _, err = _run(capsys, *argv)
    _one_line_error(code, err)


@pytest.mark.parametrize("option", ["epochs=1" + "0" * 5000, "epochs=" + "[" * 100_000, "margin=1" + "0" * 400])
def test_option_values_past_json_and_float_limits(option: str, kaggle_dir: Path, capsys) -> None:
    code, _, err = _run(capsys, "evaluate", "--data", str(kaggle_dir), "--method", "siamese", "--option", option)
    _one_line_error(code, err)
    assert "option epochs=" in err or "option margin=" in err


def test_cache_size_limit_past_sqlite_or_not_ascii_is_one_line(tmp_path: Path, capsys,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _one_line_error(*_run(capsys, "cache", "--cache-dir", str(tmp_path / "c"), "--size-limit", str(2**63))[::2])
    monkeypatch.setenv("TLL_CACHE_SIZE_LIMIT", "²")
    _one_line_error(*_run(capsys, "cache", "--cache-dir", str(tmp_path / "c"))[::2])


# ---------------------------------------------------------------- confinement


def test_validator_is_confined_to_the_data_roots(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "allowed").mkdir()
    evil = make_kaggle(tmp_path / "allowed-evil")
    sub = tmp_path / "sub.csv"
    write_csv(sub, [["left", *CANDS], *[[f"q{i:03d}", *["0.5"] * 20] for i in range(3)]])
    monkeypatch.setenv("TLL_DATA_ROOTS", str(tmp_path / "allowed"))
    code, _, err = _run(capsys, "validate-submission", "--data", str(evil), str(sub))
    _one_line_error(code, err)
    assert "outside the allowed data folders" in err


def test_validator_refuses_a_no_break_space(kaggle_dir: Path, tmp_path: Path) -> None:
    sub = tmp_path / "sub.csv"
    write_csv(sub, [["left", *CANDS], *[[f"q{i:03d}", "\u00a00.5", *["0.5"] * 18, "0.5\u2003"] for i in range(3)]])
    problems = submission_problems(sub, kaggle_dir)
    assert len(problems) == 6 and all("is not a number" in p for p in problems), problems


# ---------------------------------------------------------------- bounded


def test_csv_of_too_many_rows_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("left,right\n" + "a,b\n" * (MAX_CSV_ROWS + 1))
    rows, problems = read_csv_rows(path, ("left", "right"))
    assert rows == [] and problems == [f"train.csv: more than {MAX_CSV_ROWS:,} rows (a TLL CSV has a few thousand)"]


def test_problems_are_collected_up_to_a_cap(tmp_path: Path) -> None:
    data = make_kaggle(tmp_path / "data")
    write_csv(data / "train.csv", [["left", "right"], *[[f"x{i}", f"y{i}"] for i in range(3 * MAX_PROBLEMS)]])
    with pytest.raises(DataError) as info:
        load_dataset(data)
    assert len(info.value.problems) <= MAX_PROBLEMS + 2 and "not checked past line" in info.value.problems[-1]


def test_float_image_with_nan_and_infinity_decodes_quietly(tmp_path: Path) -> None:
    arr = np.linspace(0, 1, 40 * 48, dtype=np.float32).reshape(48, 40)
    arr[0, :5], arr[1, :5], arr[2, :5] = np.nan, np.inf, -np.inf
    path = tmp_path / "f.tif"
    Image.fromarray(arr, "F").save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rgb = np.asarray(decode_rgb(read_image_bytes(path)))
    assert rgb[1, 0, 0] == 255 and rgb[2, 0, 0] == 0 and rgb[0, 0, 0] == 0


def _tiff_with_long_strip_arrays(n: int) -> bytes:
    """A 1x1 TIFF whose StripOffsets and StripByteCounts tags list ``n`` entries each."""
    arr_off = 8 + 2 + 12 * 8 + 4
    pix_off = arr_off + 8 * n
    ent = lambda tag, typ, count, val: struct.pack("<HHII", tag, typ, count, val)  # noqa: E731
    ifd = [ent(256, 4, 1, 1), ent(257, 4, 1, 1), ent(258, 3, 1, 8), ent(259, 3, 1, 1), ent(262, 3, 1, 1),
           ent(273, 4, n, arr_off), ent(278, 4, 1, 1), ent(279, 4, n, arr_off + 4 * n)]
    head = b"II*\x00" + struct.pack("<IH", 8, len(ifd)) + b"".join(ifd) + struct.pack("<I", 0)
    return head + struct.pack("<I", pix_off) * n + struct.pack("<I", 1) * n + b"\x80"


def test_tiff_header_with_huge_tag_arrays_stays_within_a_few_times_its_size(tmp_path: Path) -> None:
    path = tmp_path / "tags.tif"
    path.write_bytes(_tiff_with_long_strip_arrays(1_000_000))
    tracemalloc.start()
    try:
        problem = check_header(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert problem is not None and "TIFF tag 273 lists 1,000,000 values" in problem, problem
    assert peak < 3 * path.stat().st_size, peak  # refused from the directory, before Pillow parses the tags
    decoded = None
    try:
        decode_rgb(read_image_bytes(path))
    except DataError as exc:
        decoded = str(exc)
    assert decoded is not None and "lists 1,000,000 values" in decoded


# ---------------------------------------------------------------- only the raster formats meant: no Ghostscript

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"  # two lines: Pillow's EPS plugin takes it


@pytest.fixture
def fake_gs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``gs`` first on PATH that leaves a marker file when run (and fails, as a broken Ghostscript would);
    Pillow's memo of where Ghostscript is is cleared, so Pillow would look for it again. Returns the marker."""
    from PIL import EpsImagePlugin

    marker = tmp_path / "gs-was-run"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gs").write_text(f"#!/bin/sh\ntouch '{marker}'\nexit 1\n")
    (bin_dir / "gs").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)
    return marker


def test_an_eps_named_jpg_is_one_line_and_never_runs_ghostscript(tmp_path: Path, fake_gs: Path, capsys) -> None:
    data = make_kaggle(tmp_path / "data")
    (data / "train/left/l003.jpg").write_bytes(EPS)
    code, _, err = _run(capsys, "evaluate", "--data", str(data), *FAST, "--val-fraction", "1.0",
                        "--cache-dir", str(tmp_path / "c"))
    _one_line_error(code, err)
    assert "train/left/l003.jpg: not a readable image" in err and "JPEG" in err, err
    assert not fake_gs.exists()


def test_decoding_eps_bytes_is_refused_without_ghostscript(tmp_path: Path, fake_gs: Path) -> None:
    """Past the load-time check (bytes changed since, or read by another path): the decoder refuses too."""
    from tll_core.images import ImageBytes

    path = tmp_path / "ace.jpg"
    path.write_bytes(EPS)
    with pytest.raises(DataError, match="ace.jpg: not a readable image"):
        decode_rgb(ImageBytes(path, EPS))
    assert "not a readable image" in (check_header(path) or "")
    assert not fake_gs.exists()


def test_the_studio_never_hands_an_eps_to_streamlit(tmp_path: Path, fake_gs: Path) -> None:
    """An image replaced by EPS bytes after the folder was loaded: ``show_image`` checks the bytes it read,
    so Streamlit's own ``Image.open`` (every plugin, EPS included) never sees them."""
    import streamlit as st

    from studio.widgets import show_image
    from tll_core.engine import Engine

    data = make_kaggle(tmp_path / "data")
    engine = Engine.open(data, cache_dir=tmp_path / "c")
    left = engine.dataset.train_pairs[0].left_id
    (data / left).write_bytes(EPS)

    class Where:  # records what is shown, and shows images with the real st.image
        def __init__(self) -> None:
            self.errors: list[str] = []
            self.images: list[bytes] = []

        def error(self, text: str) -> None:
            self.errors.append(text)

        def image(self, data: bytes, **kwargs) -> None:
            self.images.append(data)
            st.image(data, **kwargs)

    where = Where()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # streamlit's "no script run context" outside a running app
        try:
            show_image(where, engine, left)
        except Exception:  # noqa: BLE001 - what Streamlit raised on the EPS: the failure is asserted below
            pass
    assert where.images == [] and len(where.errors) == 1 and "not a readable image" in where.errors[0]
    assert not fake_gs.exists()


# ---------------------------------------------------------------- no data lost, no hang


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("case", ["fifo marker", "endless marker", "legacy marker, fifo csv"])
def test_demo_marker_that_is_a_fifo_or_endless_neither_hangs_nor_eats_memory(case: str, overwrite: bool,
                                                                             tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    if case == "fifo marker":
        os.mkfifo(out / MARKER)
    elif case == "endless marker":
        if not os.path.exists("/dev/zero"):
            pytest.skip("no /dev/zero")
        (out / MARKER).symlink_to("/dev/zero")
    else:
        (out / MARKER).write_text("2")
        os.mkfifo(out / "train.csv")
    with _no_hang():
        if case.startswith("legacy") and overwrite:  # an old demo's own file name: rewritten, as asked
            assert write_demo(out, overwrite=True) == out and (out / "train.csv").is_file()
            return
        with pytest.raises(TLLError, match="choose an empty or new folder"):
            write_demo(out, overwrite=overwrite)


def test_overwrite_with_a_garbage_marker_keeps_the_users_files(tmp_path: Path, capsys) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "train.csv").write_text("left,right\nmy,own\n")
    (out / MARKER).write_text("not a marker the demo wrote")
    code, _, err = _run(capsys, "demo", "--out", str(out), "--overwrite")
    _one_line_error(code, err)
    assert (out / "train.csv").read_text() == "left,right\nmy,own\n"
    assert sorted(os.listdir(out)) == sorted([MARKER, "train.csv"])
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_submit_never_replaces_a_fifo_a_read_only_file_or_the_data(kaggle_dir: Path, tmp_path: Path, capsys) -> None:
    fifo, readonly = tmp_path / "fifo.csv", tmp_path / "ro.csv"
    os.mkfifo(fifo)
    readonly.write_text("keep")
    readonly.chmod(0o444)
    train = (kaggle_dir / "train.csv").read_bytes()
    image = next(iter(sorted((kaggle_dir / "test" / "right").iterdir())))
    for out in (fifo, readonly, kaggle_dir / "train.csv", kaggle_dir / "test" / "left" / ".." / "right" / image.name):
        code, _, err = _run(capsys, "submit", "--data", str(kaggle_dir), *FAST, "--cache-dir", str(tmp_path / "c"),
                            "--out", str(out))
        _one_line_error(code, err)
    assert fifo.is_fifo() and readonly.read_text() == "keep" and (kaggle_dir / "train.csv").read_bytes() == train
    assert Image.open(image).size == (40, 48)
    code, _, err = _run(capsys, "submit", "--data", str(kaggle_dir), *FAST, "--cache-dir", str(tmp_path / "c"),
                        "--out", str(kaggle_dir / "submission.csv"))
    assert code == 0, err
