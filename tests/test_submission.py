from pathlib import Path

import numpy as np
import pytest

from conftest import write_csv
from tll_core.dataset import load_dataset
from tll_core.errors import SubmissionError, TLLError
from tll_core.submission import HEADER, submission_problems, validate_submission, write_submission
from tll_core.evaluation.tasks import candidate_tasks


@pytest.fixture
def written(kaggle_dir: Path, tmp_path: Path) -> Path:
    tasks = candidate_tasks(load_dataset(kaggle_dir))
    scores = np.random.default_rng(0).normal(size=tasks.candidates.shape).astype(np.float32)
    return write_submission(tmp_path / "sub.csv", tasks, scores)


def test_round_trip(written: Path, kaggle_dir: Path) -> None:
    assert submission_problems(written, kaggle_dir) == []
    validate_submission(written, kaggle_dir)
    lines = written.read_text().splitlines()
    assert lines[0] == ",".join(HEADER) and [l.split(",")[0] for l in lines[1:]] == ["q000", "q001", "q002"]


def _rows(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    "mutate,expected",
    [
        (lambda r: r.__setitem__(0, ["left", *[f"c{i}" for i in range(19)]]), "bad header"),
        (lambda r: r.pop(), "2 rows, expected 3"),
        (lambda r: r.append(list(r[1])), "4 rows, expected 3"),
        (lambda r: r.__setitem__(1, r[2]), "line 2: left 'q001', expected 'q000'"),
        (lambda r: r[1].__setitem__(3, "abc"), "line 2 (c2): 'abc' is not a number"),
        (lambda r: r[2].__setitem__(1, "nan"), "line 3 (c0): nan is not finite"),
        (lambda r: r[3].__setitem__(20, "inf"), "line 4 (c19): inf is not finite"),
        (lambda r: r[1].pop(), "line 2: expected 21 columns, found 20"),
        (lambda r: r[1].append("0.5"), "line 2: expected 21 columns, found 22"),
    ],
)
def test_validator_catches_each_kind_of_bad_csv(written: Path, kaggle_dir: Path, mutate, expected: str) -> None:
    rows = _rows(written)
    mutate(rows)
    write_csv(written, rows)
    problems = submission_problems(written, kaggle_dir)
    assert any(expected in p for p in problems), problems
    with pytest.raises(SubmissionError):
        validate_submission(written, kaggle_dir)


def test_empty_and_missing_files(written: Path, kaggle_dir: Path, tmp_path: Path) -> None:
    written.write_text("")
    assert "empty file" in submission_problems(written, kaggle_dir)[0]
    with pytest.raises(TLLError, match="not found"):  # not a submission to judge: a bad input (exit 2)
        submission_problems(tmp_path / "none.csv", kaggle_dir)


def test_writer_refuses_non_finite_scores(kaggle_dir: Path, tmp_path: Path) -> None:
    tasks = candidate_tasks(load_dataset(kaggle_dir))
    scores = np.zeros(tasks.candidates.shape)
    scores[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_submission(tmp_path / "s.csv", tasks, scores)
