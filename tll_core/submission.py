"""The Kaggle submission: ``left,c0..c19`` with one finite score per candidate (higher = more likely)."""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np

from .dataset import CANDIDATE_COLUMNS, TEST_CSV, read_csv_rows
from .errors import DataError, SubmissionError
from .tasks import TaskSet

HEADER = ("left", *CANDIDATE_COLUMNS)


def write_submission(path: str | os.PathLike[str], tasks: TaskSet, scores: np.ndarray) -> Path:
    """Rows in the order of test_candidates.csv; written to a temporary file, then moved into place."""
    if scores.shape != tasks.candidates.shape:
        raise ValueError(f"scores {scores.shape} do not match the tasks {tasks.candidates.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinity")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(HEADER)
        for left, row in zip(tasks.left_names, scores):
            writer.writerow([left, *(format(float(s), ".7g") for s in row)])
    os.replace(tmp, path)
    return path


def submission_problems(submission: str | os.PathLike[str], data: str | os.PathLike[str]) -> list[str]:
    """Every way a submission CSV fails to match ``data/test_candidates.csv`` (empty: valid)."""
    submission, data = Path(submission), Path(data)
    expected_rows, problems = read_csv_rows(data / TEST_CSV, HEADER)
    if problems or not (data / TEST_CSV).exists():
        raise DataError(problems or [f"{data / TEST_CSV}: not found"])
    if not submission.is_file():
        return [f"{submission}: not found"]
    rows, problems = read_csv_rows(submission, HEADER)
    if not rows and problems:  # unreadable, empty or a bad header: nothing more to check
        return problems
    expected = [cells[0] for _, cells in expected_rows]
    got_lefts = [cells[0] for _, cells in rows]
    for (line, cells), want in zip(rows, expected):
        if cells[0] != want:
            problems.append(f"{submission.name} line {line}: left {cells[0]!r}, expected {want!r} (rows must follow {TEST_CSV})")
        for col, value in zip(CANDIDATE_COLUMNS, cells[1:]):
            bad = _score_problem(value)
            if bad:
                problems.append(f"{submission.name} line {line} ({col}): {bad}")
    if len(got_lefts) != len(expected):
        problems.insert(0, f"{submission.name}: {len(got_lefts)} rows, expected {len(expected)} (one per row of {TEST_CSV})")
    return problems


def _score_problem(value: str) -> str | None:
    try:
        number = float(value)
    except ValueError:
        return f"{value!r} is not a number"
    if not math.isfinite(number):
        return f"{value} is not finite"
    return None


def validate_submission(submission: str | os.PathLike[str], data: str | os.PathLike[str]) -> None:
    problems = submission_problems(submission, data)
    if problems:
        raise SubmissionError(problems)
