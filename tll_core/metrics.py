"""Similarity metrics and the evaluation of ranked candidates.

Scores are *similarities*: higher = more alike (euclidean and manhattan are negated distances).

Rank of the truth: 1 + the number of other candidates whose score is >= the truth's — ties count
against the truth, so a constant scorer gets rank 20, never a lucky 1.
top-k accuracy: the share of lefts whose truth has rank <= k (top-2 is the competition metric).
MRR: the mean of 1/rank. Mean rank: the mean of rank (1 best, 20 worst).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

METRICS = ("cosine", "euclidean", "manhattan")
_CHUNK_ELEMENTS = 1 << 24  # bound the [chunk, 20, dim] gather to ~64 MB


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        from .errors import TLLError

        raise TLLError(f"unknown metric {metric!r}; choose from: {', '.join(METRICS)}")
    return metric


def score_candidates(left: np.ndarray, right: np.ndarray, candidates: np.ndarray, metric: str) -> np.ndarray:
    """``[n, 20]`` similarities of each left ``[n, d]`` to its candidates (rows of ``right`` ``[m, d]``).

    Vectorised over all tasks (chunked only to bound memory).
    """
    check_metric(metric)
    left = np.asarray(left, dtype=np.float32)
    right = np.asarray(right, dtype=np.float32)
    if metric == "cosine":
        left = _unit(left)
        right = _unit(right)
    n, k = candidates.shape
    out = np.empty((n, k), dtype=np.float32)
    step = max(1, _CHUNK_ELEMENTS // max(1, k * left.shape[1]))
    for s in range(0, n, step):
        l = left[s : s + step, None, :]
        r = right[candidates[s : s + step]]
        if metric == "cosine":
            out[s : s + step] = np.einsum("nkd,nkd->nk", np.broadcast_to(l, r.shape), r)
        elif metric == "euclidean":
            out[s : s + step] = -np.sqrt(np.square(r - l).sum(-1))
        else:
            out[s : s + step] = -np.abs(r - l).sum(-1)
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def truth_ranks(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """1-based rank of the truth in each row (ties count against the truth)."""
    truth_score = scores[np.arange(len(scores)), truth]
    return (scores >= truth_score[:, None]).sum(axis=1).astype(np.int64)


@dataclass(frozen=True)
class Evaluation:
    n: int
    top1: float
    top2: float
    top5: float
    mrr: float
    mean_rank: float
    top2_ci: tuple[float, float]  # seeded bootstrap 95 % interval
    ranks: np.ndarray  # per left

    def as_row(self) -> dict[str, object]:
        row = asdict(self)
        row.pop("ranks")
        row["top2_ci"] = list(self.top2_ci)
        return row


def evaluate_scores(scores: np.ndarray, truth: np.ndarray, *, n_boot: int = 1000, seed: int = 0) -> Evaluation:
    if len(scores) == 0:
        raise ValueError("no tasks to evaluate")
    ranks = truth_ranks(scores, truth)
    return Evaluation(
        n=len(ranks),
        top1=float((ranks <= 1).mean()),
        top2=float((ranks <= 2).mean()),
        top5=float((ranks <= 5).mean()),
        mrr=float((1.0 / ranks).mean()),
        mean_rank=float(ranks.mean()),
        top2_ci=bootstrap_ci(ranks <= 2, n_boot=n_boot, seed=seed),
        ranks=ranks,
    )


def bootstrap_ci(hits: np.ndarray, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean (resampling lefts), seeded."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(hits), size=(n_boot, len(hits)))
    means = hits.astype(np.float64)[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
