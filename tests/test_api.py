"""The Python API (tll_core/api.py): the README's notebook example runs, and its rows are the CLI's."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import tll_core as tll
from tll_core.cli import main
from tll_core.evaluation.metrics import evaluate_scores
from tll_core.imported import forget_imports
from tll_core.submission import submission_problems

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    forget_imports()
    yield
    forget_imports()


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### In a notebook"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs_and_prints_its_rows(demo_dir: Path) -> None:
    source = readme_example().replace('"path/to/tll"', repr(str(demo_dir)))
    assert source != readme_example()  # the placeholder is there to replace
    printed, namespace = io.StringIO(), {}
    with contextlib.redirect_stdout(printed):
        exec(compile(source, "README example", "exec"), namespace)  # noqa: S102 - the project's own README
    builtin, mine = namespace["rows"]
    assert (builtin.backbone, mine.backbone, mine.method) == ("combined", "-", "mean-colour")
    tasks = namespace["tasks"]
    assert mine.top2 == pytest.approx(evaluate_scores(namespace["scores"].astype(np.float32), tasks.task_set.truth).top2)
    assert printed.getvalue().count("top-2") == 2


def test_api_rows_are_the_cli_rows_for_embeddings(demo_dir: Path, tmp_path: Path, capsys) -> None:
    data = tll.open_data(demo_dir, cache_dir=tmp_path / "cache")
    ids = sorted(data.engine.dataset.image_ids())
    vectors = data.engine.embed(ids, "combined")
    rows = data.evaluate(embeddings={"mine": (ids, vectors)}, methods=[tll.Method.zero_shot()])
    np.savez(tmp_path / "mine.npz", names=np.array(ids), embeddings=vectors)
    assert main(["evaluate", "--data", str(demo_dir), "--embeddings", f"mine={tmp_path / 'mine.npz'}", "--method",
                 "zero-shot", "--rerank", "none", "--quiet", "--json"]) == 0
    (cli,) = json.loads(capsys.readouterr().out)
    assert rows[0].as_dict() == cli


def test_api_tasks_are_the_exported_tasks_and_submit_writes_a_valid_csv(demo_dir: Path, tmp_path: Path, capsys) -> None:
    data = tll.open_data(demo_dir, cache_dir=tmp_path / "cache")
    tasks = data.tasks(val_fraction=0.5, seed=2)
    assert main(["tasks", "--data", str(demo_dir), "--out", str(tmp_path / "t.csv"), "--val-fraction", "0.5",
                 "--seed", "2", "--quiet"]) == 0
    with open(tmp_path / "t.csv", newline="") as fh:
        exported = list(csv.reader(fh))[1:]
    assert [[left, *row] for left, row in zip(tasks.lefts, tasks.candidates)] == exported
    assert all(p.is_file() for p in tasks.left_paths) and len(tasks.candidate_paths[0]) == 20
    test = data.tasks("test")
    scores = np.random.default_rng(0).random((len(test), 20))
    out = data.submit(tmp_path / "sub.csv", scores=scores)
    assert submission_problems(out, demo_dir) == []
    with pytest.raises(tll.errors.TLLError, match=r"shape \(3, 20\), expected"):
        data.submit(tmp_path / "bad.csv", scores=scores[:3])


@pytest.mark.parametrize("name", ["../../escaped", "a+b", "", "combined"])
def test_api_names_are_checked_before_anything_is_written(demo_dir: Path, tmp_path: Path, name: str) -> None:
    data = tll.open_data(demo_dir, cache_dir=tmp_path / "cache")
    scores = np.zeros((len(data.tasks()), 20))
    with pytest.raises(tll.errors.TLLError):
        data.evaluate(scores={name: scores})
    assert not list(tmp_path.rglob("*.csv"))  # nothing written, inside the cache or out of it


def test_api_non_finite_arrays_are_one_line_errors(demo_dir: Path, tmp_path: Path) -> None:
    data = tll.open_data(demo_dir, cache_dir=tmp_path / "cache")
    scores = np.zeros((len(data.tasks()), 20))
    scores[3, 4] = np.nan
    with pytest.raises(tll.errors.TLLError, match="not finite .* in task 3"):
        data.evaluate(scores={"mine": scores})


def test_api_submit_never_writes_over_the_data_folders_files(demo_dir: Path, tmp_path: Path) -> None:
    data = tll.open_data(demo_dir, cache_dir=tmp_path / "cache")
    before = (demo_dir / "train.csv").read_bytes()
    with pytest.raises(tll.errors.TLLError, match="is a file of the data folder"):
        data.submit(demo_dir / "train.csv", scores=np.zeros((len(data.tasks("test")), 20)))
    assert (demo_dir / "train.csv").read_bytes() == before
