"""The pipeline, one way: dataset → tasks → embeddings → scores → evaluation → export.

:class:`Engine` holds a loaded dataset, the embedding cache and the built backbones, so that every
front end (CLI, studio, benchmarks) runs the same code.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .backbones.registry import Backbone, create_backbone
from .cache import EmbeddingCache
from .dataset import Dataset, load_dataset
from .embeddings import DEFAULT_BATCH_SIZE, DEFAULT_WORKERS, EmbeddingStats, Progress, embed_paths
from .matchers import Matcher, ZeroShot
from .metrics import evaluate_scores
from .tasks import DEFAULT_SEED, DEFAULT_VAL_FRACTION, Split, TaskSet, candidate_tasks, validation_split


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

    @classmethod
    def open(cls, data: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None, **kw) -> Engine:
        return cls(load_dataset(data), EmbeddingCache(cache_dir), **kw)

    def backbone(self, name: str) -> Backbone:
        if name not in self._backbones:
            self._backbones[name] = create_backbone(name, weights=self.weights.get(name), pretrained=self.pretrained)
        return self._backbones[name]

    def embed(self, image_ids: tuple[str, ...] | list[str], backbone: str, progress: Progress | None = None) -> np.ndarray:
        paths = [self.dataset.path(i) for i in image_ids]
        return embed_paths(paths, self.backbone(backbone), self.cache, batch_size=self.batch_size,
                           workers=self.workers, progress=progress, stats=self.stats)

    def task_embeddings(self, tasks: TaskSet, backbone: str, progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Left and right-pool embeddings of a task set, in one extraction pass."""
        vectors = self.embed(list(tasks.left_ids) + list(tasks.right_ids), backbone, progress)
        return vectors[: len(tasks.left_ids)], vectors[len(tasks.left_ids) :]

    def validation(self, val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = DEFAULT_SEED) -> Split:
        return validation_split(self.dataset, val_fraction, seed)

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
        progress: Progress | None = None,
    ) -> list[ResultRow]:
        """Every backbone × metric (zero-shot) on the validation tasks."""
        tasks = self.validation(val_fraction, seed).tasks
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
