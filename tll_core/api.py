"""A small Python API for notebooks: your own model's scores or embeddings beside the built-in methods.

::

    import tll_core as tll

    data = tll.open_data("path/to/tll")                  # the folder, checked (Kaggle or release layout)
    tasks = data.tasks()                                  # the validation tasks `evaluate` scores, and their fit pairs
    scores = my_model(tasks.left_paths, tasks.candidate_paths)   # your [n, 20] scores, higher = more alike
    rows = data.evaluate(scores={"mine": scores}, backbones=["combined"], methods=[tll.Method.zero_shot()])
    data.submit("submission.csv", scores=my_model(*data.tasks("test").paths()))
    data.studio(scores={"mine": scores})                  # the studio on them (runs Streamlit; blocks)

Scores given as arrays follow ``tasks`` row by row and column by column (``cK`` = ``tasks.candidates[i][K]``);
embeddings are ``(names, vectors)`` with names as image paths relative to the folder (``tasks.left_ids``…).
Both are written under the cache folder (``imports/``, named by content) and entered exactly as the CLI's
``--scores`` / ``--embeddings`` files are, so the rows are the CLI's rows (``ResultRow``).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cache import default_cache_dir
from .dataset import Pair
from .engine import Engine, Method
from .errors import TLLError
from .evaluation.results import ResultRow
from .evaluation.tasks import DEFAULT_SEED, DEFAULT_VAL_FRACTION, TaskSet
from .imported import add_embeddings, add_scores, check_images, checked_name, read_scores
from .selection import record_evaluation
from .submission import check_output_path, write_atomically, write_submission

ScoresInput = np.ndarray | str | os.PathLike
EmbeddingsInput = tuple[Sequence[str], np.ndarray] | str | os.PathLike


@dataclass(frozen=True)
class Tasks:
    """A task set as your model sees it: each left, its 20 candidates (columns c0..c19) and the fit pairs."""

    task_set: TaskSet
    fit: tuple[Pair, ...]  # the pairs to train on for these tasks (all train pairs for the test split)
    root: Path

    @property
    def lefts(self) -> list[str]:
        return list(self.task_set.left_names)

    @property
    def candidates(self) -> list[list[str]]:
        return [self.task_set.candidate_names(i) for i in range(len(self.task_set))]

    @property
    def left_ids(self) -> list[str]:
        """Each left's image path relative to the folder (the names imported embeddings use)."""
        return list(self.task_set.left_ids)

    @property
    def candidate_ids(self) -> list[list[str]]:
        return [[self.task_set.right_ids[j] for j in row] for row in self.task_set.candidates]

    def paths(self) -> tuple[list[Path], list[list[Path]]]:
        """(each left's image file, each left's 20 candidates' image files)."""
        return [self.root / i for i in self.left_ids], [[self.root / i for i in row] for row in self.candidate_ids]

    @property
    def left_paths(self) -> list[Path]:
        return self.paths()[0]

    @property
    def candidate_paths(self) -> list[list[Path]]:
        return self.paths()[1]

    def __len__(self) -> int:
        return len(self.task_set)


class Data:
    """A TLL folder opened for your own model (see the module's example)."""

    def __init__(self, folder: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> None:
        self.engine = Engine.open(folder, cache_dir=cache_dir)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()

    @property
    def root(self) -> Path:
        return self.engine.dataset.root

    def tasks(self, split: str = "validation", *, val_fraction: float = DEFAULT_VAL_FRACTION,
              seed: int = DEFAULT_SEED, foils: str = "random") -> Tasks:
        """The tasks ``evaluate`` (``split="validation"``) or ``submit`` (``"test"``) scores, with their fit pairs:
        the same as ``python -m tll_core tasks`` with the same arguments."""
        if split == "test":
            task_set, fit = self.engine.tasks_for("test", val_fraction, seed)
        elif split == "validation":
            chosen = self.engine.validation(val_fraction, seed, foils)
            task_set, fit = chosen.tasks, chosen.fit
        else:
            raise TLLError(f"unknown split {split!r}; choose validation or test")
        return Tasks(task_set, fit, self.root)

    def evaluate(self, *, scores: Mapping[str, ScoresInput] | None = None,
                 embeddings: Mapping[str, EmbeddingsInput] | None = None, backbones: Sequence[str] = (),
                 methods: Sequence[Method] = (), val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = DEFAULT_SEED,
                 foils: str = "random") -> list[ResultRow]:
        """Rows on the validation tasks, as ``evaluate`` prints them: every backbone (yours included) x method
        (zero-shot cosine when none is given), then each of your scores; McNemar p against the first row."""
        tasks = self.tasks(val_fraction=val_fraction, seed=seed, foils=foils)
        own = [self._scores(name, value, tasks.task_set) for name, value in (scores or {}).items()]
        embedded = [self._embeddings(name, value) for name, value in (embeddings or {}).items()]
        check_images(self.engine.dataset)
        every = [*backbones, *embedded]
        chosen = [*(list(methods) or ([Method.zero_shot()] if every else [])), *(Method(name) for name in own)]
        rows = self.engine.evaluate_tasks(tasks.task_set, every, chosen, fit_pairs=tasks.fit, seed=seed)
        if foils == "random":  # kept as runs of the folder, as the CLI's evaluate keeps them (tll_core/runs.py)
            record_evaluation(self.engine, every, chosen, rows, val_fraction, seed, self.cache_dir)
        return rows

    def submit(self, out: str | os.PathLike, *, scores: ScoresInput | None = None,
               embeddings: EmbeddingsInput | None = None, backbone: str = "combined",
               method: Method | None = None) -> Path:
        """Write the Kaggle CSV: your test scores (``[2000, 20]`` following ``tasks("test")``), or ``method``
        (default zero-shot cosine) on your embeddings or a backbone; a learned method is fitted on all pairs."""
        check_output_path(out, self.engine.dataset)  # before any work: never over the data's own files
        tasks = self.tasks("test")
        if scores is not None:
            values = read_scores(self._scores_file("test", scores, tasks.task_set), tasks.task_set)
            return write_submission(out, tasks.task_set, values)
        if embeddings is not None:
            backbone = self._embeddings("own", embeddings)
        return self.engine.submit(backbone, out, method=method or Method.zero_shot())

    def studio(self, *, scores: Mapping[str, ScoresInput] | None = None,
               embeddings: Mapping[str, EmbeddingsInput] | None = None, port: int = 8501) -> int:
        """Open the studio on this folder with your scores (for the default validation tasks) and embeddings
        (runs ``streamlit run app.py``; returns when it stops)."""
        tasks = self.tasks()
        imports = [["scores", name, str(self._scores_file(name, value, tasks.task_set))] for name, value in (scores or {}).items()]
        imports += [["embeddings", name, str(self._embeddings_file(name, value))] for name, value in (embeddings or {}).items()]
        return run_studio(self.root, imports, port=port)

    # ------------------------------------------------------------ your values as files, entered like the CLI's

    def _scores(self, name: str, value: ScoresInput, task_set: TaskSet) -> str:
        return add_scores((name, self._scores_file(name, value, task_set)))

    def _embeddings(self, name: str, value: EmbeddingsInput) -> str:
        return add_embeddings((name, self._embeddings_file(name, value)))

    def _scores_file(self, name: str, value: ScoresInput, task_set: TaskSet) -> Path:
        checked_name(name)  # before anything is written under its name
        if not isinstance(value, np.ndarray):
            return Path(value)
        values = np.asarray(value, dtype=np.float64)
        if values.shape != task_set.candidates.shape:
            raise TLLError(f"scores {name}: shape {values.shape}, expected {task_set.candidates.shape} (one row per "
                           "task, one column per candidate)")
        if not np.isfinite(values.astype(np.float32)).all():
            raise TLLError(f"scores {name}: not finite (NaN, infinity or beyond float32) in task "
                           f"{int(np.flatnonzero(~np.isfinite(values.astype(np.float32)).all(axis=1))[0])}")
        path = self._import_path(name, values.tobytes(), ".csv")
        return write_submission(path, task_set, values, digits=9)

    def _embeddings_file(self, name: str, value: EmbeddingsInput) -> Path:
        checked_name(name)  # before anything is written under its name
        if not isinstance(value, tuple):
            return Path(value)
        names, vectors = value
        names = np.asarray([str(n) for n in names])
        vectors = np.asarray(vectors)
        if vectors.dtype.kind not in "fiu" or not np.isfinite(vectors.astype(np.float32)).all():
            raise TLLError(f"embeddings {name}: must be finite numbers (NaN, infinity or beyond float32 found)")
        buffer = io.BytesIO()
        np.savez(buffer, names=names, embeddings=vectors)
        path = self._import_path(name, buffer.getvalue(), ".npz")
        write_atomically(path, buffer.getvalue())
        return path

    def _import_path(self, name: str, content: bytes, suffix: str) -> Path:
        return self.cache_dir / "imports" / f"{name}-{hashlib.sha1(content).hexdigest()[:12]}{suffix}"


def open_data(folder: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Data:
    """A TLL folder, checked (one line naming each problem), ready for your own model."""
    return Data(folder, cache_dir)


IMPORTS_ENV = "TLL_IMPORTS"  # JSON [["scores"|"embeddings", NAME, "/abs/path"], …]: what the studio enters at start
APP = Path(__file__).resolve().parent.parent / "app.py"


def run_studio(data: str | os.PathLike, imports: Sequence[Sequence[str]] = (), *, port: int = 8501) -> int:
    """``streamlit run app.py`` on ``data`` with ``imports`` (kind, name, file) entered; its exit code."""
    env = dict(os.environ, TLL_DATA=str(Path(data).resolve()),
               **{IMPORTS_ENV: json.dumps([[kind, name, str(Path(file).resolve())] for kind, name, file in imports])})
    command = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port)]
    return subprocess.run(command, env=env, cwd=APP.parent, check=False).returncode
