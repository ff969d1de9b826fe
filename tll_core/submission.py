"""The Kaggle submission: ``left,c0..c19`` with one finite score per candidate (higher = more likely)."""
from __future__ import annotations

import csv
import io
import math
import os
import stat
import tempfile
from pathlib import Path

import numpy as np

from .dataset import CANDIDATE_COLUMNS, MAX_CSV_BYTES, TEST_CSV, allowed_data_folder, read_csv_rows
from .errors import DataError, SubmissionError, TLLError, shown, shown_path
from .numbers import DECIMAL, NON_FINITE
from .evaluation.tasks import TaskSet

HEADER = ("left", *CANDIDATE_COLUMNS)
MAX_SUBMISSION_BYTES = MAX_CSV_BYTES  # the real one is ~200 KB; the CSV reader's own cap (it reads it next)


def check_output_path(path: str | os.PathLike[str], dataset=None, *, what: str = "the submission",
                      example: str = "submission.csv") -> Path:  # dataset: Dataset
    """Refuse, in one line, an output path that cannot take ``what`` (the CSV, a report): call it before the
    expensive work.
    An existing target must be a regular file that is writable (a FIFO or a device is never replaced, a
    read-only file is kept) and, given the ``dataset``, none of the files it reads."""
    path = Path(path)
    if path.is_dir():
        raise TLLError(f"{shown_path(path)}: is a folder; give a file name for {what}, e.g. {shown_path(path / example)}")
    try:
        st = os.lstat(path)
    except OSError:
        st = None
    if st is not None and not stat.S_ISLNK(st.st_mode):  # a symlink is replaced by the file, never followed
        if not stat.S_ISREG(st.st_mode):
            raise TLLError(f"{shown_path(path)}: not a regular file; give a new or a regular file name for {what}")
        if not st.st_mode & 0o222 or not os.access(path, os.W_OK):
            raise TLLError(f"{shown_path(path)}: is read-only; make it writable or choose another file name")
    if dataset is not None and os.path.realpath(path).startswith(os.path.realpath(dataset.root / "methods") + os.sep):
        raise TLLError(f"{shown_path(path)}: is in the data folder's methods/ (its files are imported methods); "
                       "choose another folder")
    if dataset is not None and _reads(dataset, path):
        raise TLLError(f"{shown_path(path)}: is a file of the data folder {dataset.root}; choose another file name")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:  # missing folders are created when writing
        parent = parent.parent
    if not parent.is_dir():
        raise TLLError(f"{shown_path(path)}: cannot write there, {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise TLLError(f"{shown_path(path)}: cannot write there, the folder {parent} is not writable")
    return path


def _reads(dataset, path: Path) -> bool:
    """Whether ``path`` (resolved) is one of the CSVs or images the dataset reads."""
    from .dataset import SAMPLE_CSV, TRAIN_CSV

    target = os.path.realpath(path)
    csvs = (os.path.realpath(dataset.root / name) for name in (TRAIN_CSV, TEST_CSV, SAMPLE_CSV))
    return target in csvs or any(target == os.path.realpath(dataset.root / i) for i in dataset.image_ids())


def write_submission(path: str | os.PathLike[str], tasks: TaskSet, scores: np.ndarray, digits: int = 9) -> Path:
    """Rows in the order of the tasks (test_candidates.csv's for the test tasks), each score to ``digits``
    significant digits (9 keep a float32 exactly); written to a private temporary file, then moved into place."""
    if scores.shape != tasks.candidates.shape:
        raise ValueError(f"scores {scores.shape} do not match the tasks {tasks.candidates.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinity")
    path = check_output_path(path)
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(HEADER)
    for left, row in zip(tasks.left_names, scores):
        writer.writerow([left, *(format(float(s), f".{digits}g") for s in row)])
    write_atomically(path, text.getvalue().encode("utf-8"))
    return path


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` all at once or not at all; a failure is one line naming it and leaves it as it was.

    The temporary file is created exclusively (O_EXCL, a random name) in the target's folder, so a
    planted ``path.tmp`` symlink is never followed; it is fsynced before the rename and removed on failure.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise TLLError(f"{shown_path(path)}: cannot write ({exc.strerror or exc})") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o644)  # mkstemp makes it 0600; a submission is not secret
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise TLLError(f"{shown_path(path)}: cannot write ({exc.strerror or exc})") from exc
        raise


def submission_problems(submission: str | os.PathLike[str], data: str | os.PathLike[str]) -> list[str]:
    """Every way a submission CSV fails to match ``data/test_candidates.csv`` (empty: valid)."""
    submission, data = Path(submission), Path(data)
    allowed_data_folder(data)  # $TLL_DATA_ROOTS confines the validator's data folder too
    expected_rows, problems = read_csv_rows(data / TEST_CSV, HEADER)
    if problems or not (data / TEST_CSV).exists():
        raise DataError(problems or [f"{data / TEST_CSV}: not found"])
    unreadable = _file_problem(submission)
    if unreadable:  # not a verdict on a submission (exit 1) but a bad input: one line, exit 2
        raise TLLError(unreadable)
    # a user's file: anywhere, but regular and capped; every row, so that row k is matched with row k of
    # test_candidates.csv even after a row of the wrong width (reported there, once)
    rows, problems = read_csv_rows(submission, HEADER, confined=False, every_row=True)
    if not rows and problems:  # unreadable, empty or a bad header (told by position, never quoted): nothing more
        return problems  # to check; the cells below are quoted only from a file headed left,c0..c19
    expected = [cells[0] for _, cells in expected_rows]
    got_lefts = [cells[0] for _, cells in rows]
    for (line, cells), want in zip(rows, expected):
        if len(cells) != len(HEADER):
            continue  # its width is its problem
        if cells[0] != want:
            problems.append(f"{submission.name} line {line}: left '{shown(cells[0])}', expected '{shown(want)}' (rows must follow {TEST_CSV})")
        for col, value in zip(CANDIDATE_COLUMNS, cells[1:]):
            bad = score_problem(value)
            if bad:
                problems.append(f"{submission.name} line {line} ({col}): {bad}")
    if len(got_lefts) != len(expected):
        problems.insert(0, f"{submission.name}: {len(got_lefts)} rows, expected {len(expected)} (one per row of {TEST_CSV})")
    return problems


def _file_problem(path: Path) -> str | None:
    """Why ``path`` is not a file to read whole (a FIFO would hang, /dev/zero never ends), else None."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"{shown_path(path)}: not found"
    except OSError as exc:
        return f"{shown_path(path)}: cannot read ({exc.strerror or exc})"
    if stat.S_ISDIR(st.st_mode):
        return f"{shown_path(path)}: is a folder, not a CSV file"
    if not stat.S_ISREG(st.st_mode):
        return f"{shown_path(path)}: not a regular file"
    if st.st_size > MAX_SUBMISSION_BYTES:
        return f"{shown_path(path)}: {st.st_size / 2**20:.0f} MiB, more than a submission can be ({MAX_SUBMISSION_BYTES // 2**20} MiB)"
    return None


def score_problem(value: str) -> str | None:
    """Why a CSV cell is not a score Kaggle takes (a plain ASCII decimal, finite), or None."""
    value = value.strip(" \t")  # " 0.5" is read as 0.5 by Kaggle's CSV parser; a no-break space is not
    if NON_FINITE.fullmatch(value):
        return f"{value} is not finite"
    if not DECIMAL.fullmatch(value):
        return f"'{shown(value)}' is not a number (Kaggle takes plain ASCII decimals such as 0.25 or -1.5e-3)"
    if not math.isfinite(float(value)):
        return f"{shown(value)} is not finite (too large)"
    return None


def validate_submission(submission: str | os.PathLike[str], data: str | os.PathLike[str]) -> None:
    problems = submission_problems(submission, data)
    if problems:
        raise SubmissionError(problems)
