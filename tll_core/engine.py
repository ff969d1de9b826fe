"""The pipeline, one way: dataset → tasks → embeddings → scores → evaluation → export.

:class:`Engine` holds a loaded dataset, the embedding cache and the built backbones, so that every
front end (CLI, studio, benchmarks) runs the same code.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .backbones.registry import DEFAULT_BACKBONE, Backbone, create_backbone
from .cache import EmbeddingCache
from .dataset import Dataset, load_dataset
from .errors import TLLError
from .embeddings import DEFAULT_BATCH_SIZE, DEFAULT_WORKERS, EmbeddingStats, Progress, embed_paths
from .matchers import Matcher, ZeroShot
from .metrics import evaluate_scores
from .tasks import (DEFAULT_SEED, DEFAULT_VAL_FRACTION, Split, TaskSet, candidate_tasks, hard_foil_tasks,
                    validation_split)


MEMO_ENTRIES = 8  # embedding arrays kept in memory (task sets x backbones)


def _signature(paths: list[Path]) -> tuple:
    stats = [os.stat(p) for p in paths]
    return tuple((st.st_size, st.st_mtime_ns, st.st_ino) for st in stats)


@dataclass(frozen=True)
class ResultRow:
    """One method's validation figures (the CLI's ``evaluate --json`` rows)."""

    backbone: str
    metric: str
    method: str
    top1: float
    top2: float
    top5: float
    mrr: float
    mean_rank: float
    n: int
    top2_ci: tuple[float, float]


@dataclass
class Engine:
    dataset: Dataset
    cache: EmbeddingCache | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    workers: int = DEFAULT_WORKERS
    weights: dict[str, str] = field(default_factory=dict)  # backbone name → local weights file
    pretrained: bool = True  # False: deep backbones with seeded random weights (tests, benchmarks)
    stats: EmbeddingStats = field(default_factory=EmbeddingStats)
    _backbones: dict[str, Backbone] = field(default_factory=dict, repr=False)
    _memo: OrderedDict[tuple[str, tuple[str, ...]], tuple[tuple, np.ndarray]] = field(
        default_factory=OrderedDict, repr=False
    )

    @classmethod
    def open(cls, data: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None, **kw) -> Engine:
        return cls(load_dataset(data), EmbeddingCache(cache_dir), **kw)

    def backbone(self, name: str) -> Backbone:
        if name not in self._backbones:
            self._backbones[name] = create_backbone(name, weights=self.weights.get(name), pretrained=self.pretrained)
        return self._backbones[name]

    def embed(self, image_ids: tuple[str, ...] | list[str], backbone: str, progress: Progress | None = None) -> np.ndarray:
        """Embeddings of images, from memory when no file changed (size, mtime, inode), else via the disk cache."""
        model = self.backbone(backbone)
        paths = [self.dataset.path(i) for i in image_ids]
        key = (model.identity, tuple(image_ids))
        signature = _signature(paths)
        hit = self._memo.get(key)
        if hit is not None and hit[0] == signature:
            self._memo.move_to_end(key)
            self.stats.images += len(paths)
            self.stats.cached += len(paths)
            if progress:
                progress(len(paths), len(paths))
            return hit[1]
        vectors = embed_paths(paths, model, self.cache, batch_size=self.batch_size, workers=self.workers,
                              progress=progress, stats=self.stats)
        vectors.flags.writeable = False  # shared between callers
        self._memo[key] = (signature, vectors)
        while len(self._memo) > MEMO_ENTRIES:
            self._memo.popitem(last=False)
        return vectors

    def task_embeddings(self, tasks: TaskSet, backbone: str, progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Left and right-pool embeddings of a task set, in one extraction pass."""
        vectors = self.embed(list(tasks.left_ids) + list(tasks.right_ids), backbone, progress)
        return vectors[: len(tasks.left_ids)], vectors[len(tasks.left_ids) :]

    def validation(self, val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = DEFAULT_SEED,
                   foils: str = "random", foil_backbone: str = DEFAULT_BACKBONE,
                   progress: Progress | None = None) -> Split:
        """Validation tasks; ``foils="hard"``: the 19 foils are the validation rights nearest to each left
        under ``foil_backbone`` (centred cosine) instead of random ones."""
        split = validation_split(self.dataset, val_fraction, seed)
        if foils == "random":
            return split
        if foils != "hard":
            raise TLLError(f"unknown foil mode {foils!r}; choose random or hard")
        left, right = self.task_embeddings(split.tasks, foil_backbone, progress)
        n = len(split.tasks)
        similarity = ZeroShot("cosine").score(left, right, np.tile(np.arange(n), (n, 1)))
        return replace(split, tasks=hard_foil_tasks(split.validation, similarity, seed))

    def test(self) -> TaskSet:
        return candidate_tasks(self.dataset)

    def score(self, tasks: TaskSet, backbone: str, matcher: Matcher, progress: Progress | None = None) -> np.ndarray:
        left, right = self.task_embeddings(tasks, backbone, progress)
        return matcher.score(left, right, tasks.candidates)

    def evaluate(
        self,
        backbones: list[str],
        metrics: list[str],
        *,
        val_fraction: float = DEFAULT_VAL_FRACTION,
        seed: int = DEFAULT_SEED,
        centre: bool = True,
        foils: str = "random",
        foil_backbone: str = DEFAULT_BACKBONE,
        progress: Progress | None = None,
    ) -> list[ResultRow]:
        """Every backbone × metric (zero-shot) on the validation tasks."""
        tasks = self.validation(val_fraction, seed, foils, foil_backbone, progress).tasks
        return self.evaluate_tasks(tasks, backbones, metrics, centre=centre, seed=seed, progress=progress)

    def evaluate_tasks(self, tasks: TaskSet, backbones: list[str], metrics: list[str], *, centre: bool = True,
                       seed: int = DEFAULT_SEED, progress: Progress | None = None) -> list[ResultRow]:
        """Every backbone × metric (zero-shot) on a task set with known truth; each backbone embeds once."""
        rows = []
        for backbone in backbones:
            left, right = self.task_embeddings(tasks, backbone, progress)
            for metric in metrics:
                matcher = ZeroShot(metric, centre=centre)
                result = evaluate_scores(matcher.score(left, right, tasks.candidates), tasks.truth, seed=seed)
                rows.append(ResultRow(backbone, metric, matcher.name, result.top1, result.top2, result.top5,
                                      result.mrr, result.mean_rank, result.n, result.top2_ci))
        return rows

    def submit(self, backbone: str, metric: str, out: str | os.PathLike[str], *, centre: bool = True,
               progress: Progress | None = None) -> Path:
        """Score the test tasks and write the Kaggle CSV."""
        from .submission import write_submission

        tasks = self.test()
        scores = self.score(tasks, backbone, ZeroShot(metric, centre=centre), progress)
        return write_submission(out, tasks, scores)
