"""Similarity metrics and the evaluation of ranked candidates.

Scores are *similarities*: higher = more alike (euclidean and manhattan are negated distances).

Rank of the truth: 1 + the number of other candidates whose score is >= the truth's — ties count
against the truth, so a constant scorer gets rank 20, never a lucky 1.
top-k accuracy: the share of lefts whose truth has rank <= k (top-2 is the competition metric).
MRR: the mean of 1/rank. Mean rank: the mean of rank (1 best, 20 worst).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import TLLError, quoted

METRICS = ("cosine", "euclidean", "manhattan")
_CHUNK_ELEMENTS = 1 << 21  # a [chunk, 20, dim] block of ~8 MB


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise TLLError(f"unknown metric {quoted(metric)}; choose from: {', '.join(METRICS)}")
    return metric


def score_candidates(left: np.ndarray, right: np.ndarray, candidates: np.ndarray, metric: str) -> np.ndarray:
    """``[n, 20]`` similarities of each left ``[n, d]`` to its candidates (rows of ``right`` ``[m, d]``).

    Vectorised over all tasks: the candidates are gathered into ``[chunk, 20, d]`` blocks small enough
    to stay in cache (bench/README.md: 4x faster than one big block), then one batched kernel per block.
    """
    check_metric(metric)
    left_t, right_t = as_tensor(left), as_tensor(right)
    if metric == "cosine":
        left_t, right_t = unit_rows(left_t), unit_rows(right_t)
    index = torch.from_numpy(np.asarray(candidates, dtype=np.int64))
    n, k = index.shape
    out = torch.empty((n, k), dtype=torch.float32)
    step = max(1, _CHUNK_ELEMENTS // max(1, k * left_t.shape[1]))
    with torch.inference_mode():
        for s in range(0, n, step):
            l = left_t[s : s + step, None, :]
            r = right_t[index[s : s + step]]
            if metric == "cosine":
                out[s : s + step] = torch.bmm(r, l.transpose(1, 2))[..., 0]
            else:
                p = 2.0 if metric == "euclidean" else 1.0
                out[s : s + step] = -torch.cdist(l, r, p=p, compute_mode="donot_use_mm_for_euclid_dist")[:, 0]
    return out.numpy()


def as_tensor(x: np.ndarray) -> torch.Tensor:
    """A float32 tensor sharing memory with ``x`` (read-only inputs are fine: nothing here writes to them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch warns on read-only arrays
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Each row L2-normalised (a zero row stays zero)."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


class NonFiniteScores(TLLError):
    """Scores holding NaN or infinity: no rank, figure or submission may be made from them."""


def check_finite(scores: np.ndarray, what: str = "scores") -> np.ndarray:
    """``scores`` unchanged when every value is finite; else a NonFiniteScores naming how many and the first row.

    A NaN compares false with everything, so a NaN truth would otherwise rank *first*: a diverged matcher
    would look perfect. Every path from scores to a figure, a rank or a CSV goes through here.
    """
    bad = ~np.isfinite(scores)
    if bad.any():
        rows = np.flatnonzero(bad.reshape(len(scores), -1).any(axis=1)) if np.ndim(scores) > 1 else np.flatnonzero(bad)
        raise NonFiniteScores(f"{what}: {int(bad.sum())} non-finite value(s) (NaN or infinity) in {len(rows)} task(s), "
                              f"first in task {int(rows[0])}; the matcher diverged or its input is broken — "
                              "no figure is computed from them")
    return scores


def truth_ranks(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """1-based rank of the truth in each row (ties count against the truth): in 1..20 by construction,
    since non-finite scores are refused."""
    check_finite(scores)
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
