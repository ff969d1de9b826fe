"""Test-time refinements that use the structure of a task set, each a switch (``none`` leaves scores as they are).

In the competition's test set each right appears in about 20 candidate lists and is the truth for about
one left; validation tasks are built so that the same holds (their rights are exactly their lefts'
truths). The score matrix over lefts x rights is sparse: only a left's 20 candidates have a score.

- ``csls``: hubness correction. A right that scores high with many lefts is a hub; subtract the mean of
  the ``k`` highest scores it receives from the lefts whose lists contain it.
- ``sinkhorn``: turn scores into a soft assignment whose rows and columns each sum to 1
  (log-domain Sinkhorn, temperature ``tau``), so a right already claimed by another left counts less.
- ``dual-softmax``: a left's softmax over its candidates times each right's softmax over the lefts that list
  it (temperature ``tau``), in log space: one step of the assignment Sinkhorn iterates, no iteration.
- ``hungarian``: the best one-to-one assignment of lefts to rights; the assigned candidate is moved to
  the top of each list, the others keep their order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .register import REGISTER, Score, option, register

@register("rerank", "none", help="leave the scores as they are", score=Score("the matcher's score, unchanged"))
@dataclass(frozen=True)
class NoRerank:
    def __call__(self, scores: np.ndarray, candidates: np.ndarray, n_rights: int) -> np.ndarray:
        return scores


@register("rerank", "csls", help="hubness correction: minus the mean of the k highest scores each right receives",
          score=Score("the matcher's score minus the mean of the k highest scores this candidate receives from any "
                      "left: above 0, it suits this left better than it usually suits its best lefts"))
@dataclass(frozen=True)
class Csls:
    k: int = option(10, lo=1, hi=1_000_000, help="highest received scores averaged per right")

    def __call__(self, scores: np.ndarray, candidates: np.ndarray, n_rights: int) -> np.ndarray:
        return csls(scores, candidates, n_rights, self.k)


@register("rerank", "sinkhorn", help="soft one-to-one assignment: rows and columns each sum to 1",
          score=Score("the log of this pair's weight in a soft one-to-one assignment of lefts to rights: 0 all of "
                      "it (certain), -0.69 half, more negative less", None, 0))
@dataclass(frozen=True)
class Sinkhorn:
    tau: float = option(0.05, lo=1e-4, hi=100, help="temperature of the assignment")
    iters: int = option(50, lo=1, hi=10_000, help="Sinkhorn iterations")

    def __call__(self, scores: np.ndarray, candidates: np.ndarray, n_rights: int) -> np.ndarray:
        return sinkhorn(scores, candidates, n_rights, self.tau, self.iters)


@register("rerank", "dual-softmax", help="a left's softmax over its candidates times each right's over its lefts",
          score=Score("the log of (the left's softmax share on this candidate x the candidate's softmax share on "
                      "this left): 0 both certain, more negative less", None, 0))
@dataclass(frozen=True)
class DualSoftmax:
    tau: float = option(0.05, lo=1e-4, hi=100, help="temperature of both softmaxes")

    def __call__(self, scores: np.ndarray, candidates: np.ndarray, n_rights: int) -> np.ndarray:
        return dual_softmax(scores, candidates, n_rights, self.tau)


@register("rerank", "hungarian", help="the best one-to-one assignment's candidate moved to the top of each list",
          score=Score("the matcher's score, plus the spread of all scores + 1 for the candidate the best one-to-one "
                      "assignment gives this left (so it ranks first)"))
@dataclass(frozen=True)
class Hungarian:
    def __call__(self, scores: np.ndarray, candidates: np.ndarray, n_rights: int) -> np.ndarray:
        return hungarian(scores, candidates, n_rights)


def rerank(scores: np.ndarray, candidates: np.ndarray, n_rights: int, name: str = "none",
           options: dict[str, Any] | None = None) -> np.ndarray:
    """``scores`` refined by the registered re-ranker ``name`` with its ``options`` (checked; one line on a bad one)."""
    return REGISTER.get("rerank", name).create(**(options or {}))(scores, candidates, n_rights)


def _dense(scores: np.ndarray, candidates: np.ndarray, n_rights: int, fill: float) -> np.ndarray:
    matrix = np.full((len(scores), n_rights), fill, dtype=np.float64)
    np.put_along_axis(matrix, candidates, scores.astype(np.float64), axis=1)
    return matrix


def csls(scores: np.ndarray, candidates: np.ndarray, n_rights: int, k: int = 10) -> np.ndarray:
    matrix = _dense(scores, candidates, n_rights, -np.inf)
    top = -np.sort(-matrix, axis=0)[:k]  # each right's k highest received scores
    finite = np.isfinite(top)
    hub = np.where(finite.any(0), np.where(finite, top, 0).sum(0) / np.maximum(finite.sum(0), 1), 0.0)
    return (scores - hub[candidates]).astype(np.float32)


def sinkhorn(scores: np.ndarray, candidates: np.ndarray, n_rights: int, tau: float = 0.05, iters: int = 50) -> np.ndarray:
    """Log-domain Sinkhorn on the sparse [n, 20] entries (O(n * 20) per iteration, no dense matrix)."""
    log_p = scores.astype(np.float64) / tau
    cols = candidates.ravel()
    for _ in range(iters):
        log_p -= _logsumexp_rows(log_p)
        log_p -= _logsumexp_columns(log_p, cols, n_rights)[candidates]
    return log_p.astype(np.float32)


def dual_softmax(scores: np.ndarray, candidates: np.ndarray, n_rights: int, tau: float = 0.05) -> np.ndarray:
    """log softmax over each left's candidates + log softmax over each right's lefts (sparse, O(n * 20))."""
    logits = scores.astype(np.float64) / tau
    rows = logits - _logsumexp_rows(logits)
    columns = logits - _logsumexp_columns(logits, candidates.ravel(), n_rights)[candidates]
    return (rows + columns).astype(np.float32)


def _logsumexp_rows(x: np.ndarray) -> np.ndarray:
    top = x.max(axis=1, keepdims=True)
    return top + np.log(np.exp(x - top).sum(axis=1, keepdims=True))


def _logsumexp_columns(x: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray:
    top = np.full(n, -np.inf)
    np.maximum.at(top, cols, x.ravel())
    top = np.where(np.isfinite(top), top, 0.0)
    total = np.bincount(cols, weights=np.exp(x.ravel() - top[cols]), minlength=n)
    return top + np.log(np.maximum(total, 1e-300))


def hungarian(scores: np.ndarray, candidates: np.ndarray, n_rights: int) -> np.ndarray:
    from scipy.optimize import linear_sum_assignment

    matrix = _dense(scores, candidates, n_rights, np.nan)
    low = np.nanmin(matrix) - 1e3  # non-candidates: never preferred
    rows, cols = linear_sum_assignment(np.nan_to_num(matrix, nan=low), maximize=True)
    assigned = np.zeros_like(matrix, dtype=bool)
    assigned[rows, cols] = True
    bonus = np.take_along_axis(assigned, candidates, axis=1)
    spread = float(scores.max() - scores.min()) + 1.0
    return (scores + bonus * spread).astype(np.float32)
