"""What the tool writes (the demo folder, the submission CSV) and the submission it reads back (issue 9).

Fault-injection tests patch the OS layer (os.fsync, os.replace, tempfile.mkstemp, PIL's save), never
the code under test.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import write_csv
from tll_core.cli import main
from tll_core.dataset import load_dataset
from tll_core.demo import MARKER, VERSION, is_complete_demo, write_demo
from tll_core.errors import TLLError
from tll_core.submission import (MAX_SUBMISSION_BYTES, check_output_path, submission_problems,
                                 write_submission)
from tll_core.evaluation.tasks import candidate_tasks

# The demo's CSVs as version 2 wrote them: other tests and cached embeddings rely on the demo not changing.
PINNED_CSVS = {
    "train.csv": "137a824a737bef68e90cc2c3d597a066a8692e7b67cd4c4c936588d0b78224f1",
    "test_candidates.csv": "4c7835ce9cfaf2232eff22e558f97debea812bc1b360ac4fdd6e5b21f6cea2e6",
    "sample-submission.csv": "62451b1816c9e8b5c01624b18792a796c9cafccacddb75c5aae88205169ded48",
    "test_truth.csv": "77e86d5769462b0f36e9b7e988da457add629f048537c5bf8416d2c67ccac4b1",
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _manifest(folder: Path) -> dict:
    return json.loads((folder / MARKER).read_text())


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _leftovers(folder: Path) -> list[str]:
    """Temporary files or folders (dot-named ``.tmp``) left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))


@pytest.fixture
def demo_copy(demo_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(demo_dir, tmp_path / "copy", symlinks=True))


# --- the demo folder -----------------------------------------------------------------------------

def test_demo_content_is_pinned_and_its_marker_lists_every_file(demo_dir: Path) -> None:
    for name, digest in PINNED_CSVS.items():
        assert hashlib.sha256((demo_dir / name).read_bytes()).hexdigest() == digest, name
    manifest = _manifest(demo_dir)
    on_disk = {p.relative_to(demo_dir).as_posix() for p in demo_dir.rglob("*") if p.is_file()} - {MARKER}
    assert manifest["version"] == VERSION and set(manifest["files"]) == on_disk and len(on_disk) == 404
    assert is_complete_demo(demo_dir)


def test_complete_demo_is_returned_untouched(demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = {p: p.stat().st_mtime_ns for p in demo_dir.rglob("*")}
    assert run(capsys, "demo", "--out", str(demo_dir))[0] == 0
    assert {p: p.stat().st_mtime_ns for p in demo_dir.rglob("*")} == before


def test_stale_marker_never_deletes_user_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine"
    (out / "photos").mkdir(parents=True)
    (out / MARKER).write_text("1")
    (out / "thesis.tex").write_text("years of work")
    (out / "photos" / "a.jpg").write_bytes(b"jpeg")
    before = _tree(out)
    code, _, err = run(capsys, "demo", "--out", str(out))
    assert code == 2 and err.count("\n") == 1
    assert str(out) in err and "choose an empty or new folder" in err
    assert _tree(out) == before


def test_non_empty_folder_without_marker_is_refused_even_with_overwrite(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "train.csv").write_text("left,right\nmy,own\n")
    code, _, err = run(capsys, "demo", "--out", str(out), "--overwrite")
    assert code == 2 and str(out) in err and (out / "train.csv").read_text() == "left,right\nmy,own\n"
    assert sorted(os.listdir(out)) == ["train.csv"]


def test_demo_out_naming_a_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "file"
    out.write_text("x")
    code, _, err = run(capsys, "demo", "--out", str(out))
    assert code == 2 and "is a file" in err and out.read_text() == "x"


@pytest.mark.parametrize("damage", ["missing image", "changed image", "other version", "garbage marker"])
def test_incomplete_or_stale_demo_is_refused(demo_copy: Path, damage: str) -> None:
    image = next(iter(sorted((demo_copy / "test" / "right").iterdir())))
    if damage == "missing image":
        image.unlink()
    elif damage == "changed image":
        data = bytearray(image.read_bytes())
        data[-3] ^= 0xFF  # same size, different bytes
        image.write_bytes(bytes(data))
    elif damage == "other version":
        (demo_copy / MARKER).write_text(json.dumps({**_manifest(demo_copy), "version": "1"}))
    else:
        (demo_copy / MARKER).write_text("{not json")
    assert not is_complete_demo(demo_copy)
    before = _tree(demo_copy)
    with pytest.raises(TLLError, match="choose an empty or new folder") as info:
        write_demo(demo_copy)
    assert str(demo_copy) in str(info.value) and "\n" not in str(info.value)
    assert _tree(demo_copy) == before


def test_old_format_marker_is_accepted_only_when_every_file_is_there(demo_copy: Path) -> None:
    """Version-2 demos written before the manifest hold just "2": accepted (the old writer wrote it last)."""
    (demo_copy / MARKER).write_text(VERSION)
    assert is_complete_demo(demo_copy) and write_demo(demo_copy) == demo_copy
    assert (demo_copy / MARKER).read_text() == VERSION  # read only: nothing rewritten
    next(iter((demo_copy / "train" / "left").iterdir())).unlink()
    assert not is_complete_demo(demo_copy)
    with pytest.raises(TLLError, match="choose an empty or new folder"):
        write_demo(demo_copy)


def test_overwrite_rewrites_the_demo_files_and_nothing_else(demo_dir: Path, demo_copy: Path) -> None:
    (demo_copy / "notes.txt").write_text("mine")
    (demo_copy / "train" / "left" / "extra.png").write_bytes(b"mine too")
    victim = next(iter(sorted((demo_copy / "train" / "right").iterdir())))
    victim.write_bytes(b"broken")
    assert not is_complete_demo(demo_copy)
    assert write_demo(demo_copy, overwrite=True) == demo_copy
    assert is_complete_demo(demo_copy) and _manifest(demo_copy) == _manifest(demo_dir)
    assert (demo_copy / "notes.txt").read_text() == "mine"
    assert (demo_copy / "train" / "left" / "extra.png").read_bytes() == b"mine too"
    assert _leftovers(demo_copy.parent) == []


@pytest.mark.slow
def test_concurrent_writers_into_an_empty_folder_both_succeed(demo_dir: Path, tmp_path: Path) -> None:
    """The studio writes the demo on every start, maybe from several sessions at once."""
    out = tmp_path / "demo"
    out.mkdir()  # an empty folder is as good as none
    start = threading.Barrier(2)
    results: list[object] = []

    def writer() -> None:
        start.wait()
        try:
            results.append(write_demo(out))
        except BaseException as exc:  # reported below
            results.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == [out, out]
    assert is_complete_demo(out) and _manifest(out) == _manifest(demo_dir)  # bit-identical to any other write
    assert _leftovers(tmp_path) == []
    assert oct(out.stat().st_mode & 0o777) == oct(0o755)


def test_failure_while_generating_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_save, calls = Image.Image.save, []

    def full_disk(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 20:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", full_disk)
    out = tmp_path / "demo"
    with pytest.raises(TLLError, match="No space left") as info:
        write_demo(out)
    assert str(out) in str(info.value)
    assert not out.exists() and os.listdir(tmp_path) == []


# --- writing the submission ----------------------------------------------------------------------

def _submit(data: Path, out: Path, *extra: str) -> list[str]:
    return ["submit", "--data", str(data), "--backbone", "colour-hist", "--method", "zero-shot",
            "--out", str(out), "--quiet", *extra]


def test_planted_tmp_symlink_is_not_followed(demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out.csv"
    (tmp_path / "out.csv.tmp").symlink_to(victim)
    code, stdout, err = run(capsys, *_submit(demo_dir, out))
    assert code == 0, err
    assert victim.read_text() == "precious" and (tmp_path / "out.csv.tmp").is_symlink()
    assert submission_problems(out, demo_dir) == [] and not out.is_symlink()
    assert oct(out.stat().st_mode & 0o777) == oct(0o644)
    assert _leftovers(tmp_path) == []


def test_out_symlink_is_replaced_not_followed(kaggle_dir: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "sub.csv"
    out.symlink_to(victim)
    tasks = candidate_tasks(load_dataset(kaggle_dir))
    write_submission(out, tasks, np.zeros(tasks.candidates.shape))
    assert victim.read_text() == "precious" and not out.is_symlink()
    assert submission_problems(out, kaggle_dir) == []


def test_submit_to_a_folder_is_one_line_exit_2(demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, *_submit(demo_dir, tmp_path))
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert f"{tmp_path}: is a folder" in err


def test_submit_under_a_file_is_one_line_exit_2(demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "plain").write_text("x")
    code, _, err = run(capsys, *_submit(demo_dir, tmp_path / "plain" / "deeper" / "sub.csv"))
    assert code == 2 and "is not a folder" in err and str(tmp_path / "plain") in err
    assert (tmp_path / "plain").read_text() == "x"


def test_missing_output_folders_are_created(kaggle_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "sub.csv"
    assert check_output_path(out) == out and not (tmp_path / "new").exists()  # checking writes nothing
    tasks = candidate_tasks(load_dataset(kaggle_dir))
    write_submission(out, tasks, np.ones(tasks.candidates.shape))
    assert submission_problems(out, kaggle_dir) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_folder_is_refused_up_front(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(TLLError, match="not writable"):
            check_output_path(folder / "sub.csv")
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES])
@pytest.mark.parametrize("where", ["os.fsync", "os.replace", "tempfile.mkstemp"])
def test_write_failure_is_one_line_and_keeps_the_old_file(kaggle_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch, where: str, code: int) -> None:
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "sub.csv"
    out.write_text("the previous submission\n")
    tasks = candidate_tasks(load_dataset(kaggle_dir))
    module, name = where.split(".")

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(f"{module}.{name}", fail)
    with pytest.raises(TLLError) as info:
        write_submission(out, tasks, np.zeros(tasks.candidates.shape))
    message = str(info.value)
    assert message == f"{out}: cannot write ({os.strerror(code)})"
    assert out.read_text() == "the previous submission\n" and os.listdir(out.parent) == ["sub.csv"]


def test_full_disk_during_submit_exits_2(demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    out = tmp_path / "sub.csv"
    code, _, err = run(capsys, *_submit(demo_dir, out, "--no-cache"))
    assert code == 2 and err == f"error: {out}: cannot write (No space left on device)\n"
    assert os.listdir(tmp_path) == []


# --- reading a submission back -------------------------------------------------------------------

def _sample_with(demo_dir: Path, tmp_path: Path, value: str) -> Path:
    rows = [line.split(",") for line in (demo_dir / "sample-submission.csv").read_text().splitlines()]
    rows[2][5] = value
    return write_csv(tmp_path / "sub.csv", rows)


@pytest.mark.parametrize("value", ["0", "-1", "+2.5", "3.", ".5", "1e-3", "-2.5E+07", "0.000001", "1234567"])
def test_plain_decimals_are_valid(demo_dir: Path, tmp_path: Path, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    sub = _sample_with(demo_dir, tmp_path, value)
    assert run(capsys, "validate-submission", "--data", str(demo_dir), str(sub))[0] == 0


@pytest.mark.parametrize("value,expected", [
    ("1_000", "'1_000' is not a number"),
    ("\u0661\u0662", "is not a number"),  # Arabic-Indic digits: float() takes them, Kaggle does not
    ("\uff11\uff12", "is not a number"),  # full-width digits
    ("0x10", "'0x10' is not a number"),
    ("1e", "'1e' is not a number"),
    (".", "'.' is not a number"),
    ("nan", "nan is not finite"),
    ("-Infinity", "-Infinity is not finite"),
    ("1e999", "1e999 is not finite"),
])
def test_numbers_kaggle_rejects_are_problems(demo_dir: Path, tmp_path: Path, value: str, expected: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    sub = _sample_with(demo_dir, tmp_path, value)
    code, _, err = run(capsys, "validate-submission", "--data", str(demo_dir), str(sub))
    assert code == 1 and "line 3 (c4)" in err and expected in err, err


def _validate_within(seconds: float, demo_dir: Path, path: Path) -> list[str]:
    """submission_problems in a thread: a hang fails the test instead of stalling the suite. A file that cannot
    be read at all is a bad input (TLLError: one line, exit 2), returned here as its one message."""
    result: list[list[str]] = []

    def validate() -> None:
        try:
            result.append(submission_problems(path, demo_dir))
        except TLLError as exc:
            result.append(["refused: " + str(exc)])

    worker = threading.Thread(target=validate, daemon=True)
    worker.start()
    worker.join(seconds)
    assert result, f"validating {path} did not return within {seconds}s"
    return result[0]


def test_fifo_does_not_hang(demo_dir: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "sub.csv"
    os.mkfifo(fifo)
    try:
        assert _validate_within(10, demo_dir, fifo) == [f"refused: {fifo}: not a regular file"]
    finally:
        try:  # unblock a reader stuck on the FIFO, should the check ever regress
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_dev_zero_and_links_to_it_are_refused(demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    link = tmp_path / "sub.csv"
    link.symlink_to("/dev/zero")
    assert _validate_within(10, demo_dir, Path("/dev/zero")) == ["refused: /dev/zero: not a regular file"]
    code, _, err = run(capsys, "validate-submission", "--data", str(demo_dir), str(link))
    assert code == 2 and err == f"error: {link}: not a regular file\n"  # a bad input, not a verdict (exit 1)


def test_oversized_file_is_refused_unread(demo_dir: Path, tmp_path: Path) -> None:
    big = tmp_path / "sub.csv"
    with big.open("wb") as fh:
        fh.truncate(MAX_SUBMISSION_BYTES + 1)  # sparse: no disk used
    problems = _validate_within(10, demo_dir, big)
    assert len(problems) == 1 and problems[0].startswith(f"refused: {big}: ") and "more than a submission can be" in problems[0]


def test_folder_as_submission_is_a_problem(demo_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(TLLError, match="is a folder, not a CSV file"):
        submission_problems(tmp_path, demo_dir)
