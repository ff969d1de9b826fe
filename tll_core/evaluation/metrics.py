"""Similarity metrics (registered parts, kind ``metric``) and the evaluation of ranked candidates.

Scores are *similarities*: higher = more alike (euclidean and manhattan are negated distances). A metric is a
function of a block of lefts ``[chunk, 1, d]`` and their candidates ``[chunk, 20, d]`` giving ``[chunk, 20]``,
entered with :func:`metric` (``unit``: rows L2-normalised first); zero-shot's ``metric`` option, the CLI's
``--metric`` and the studio offer every registered one.

Rank of the truth: 1 + the number of other candidates whose score is >= the truth's — ties count
against the truth, so a constant scorer gets rank 20, never a lucky 1.
top-k accuracy: the share of lefts whose truth has rank <= k (top-2 is the competition metric).
MRR: the mean of 1/rank. Mean rank: the mean of rank (1 best, 20 worst).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import TLLError
from ..register import REGISTER, Part, Score
from .figures import Evaluation, evaluate_ranks

_CHUNK_ELEMENTS = 1 << 21  # a [chunk, 20, dim] block of ~8 MB
Block = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # ([chunk, 1, d], [chunk, k, d]) -> [chunk, k]


@dataclass(frozen=True)
class Metric:
    """A registered similarity; ``Part.create()`` gives it back (it is its own builder)."""

    name: str
    block: Block
    unit: bool = False  # L2-normalise the rows first
    help: str = ""

    def __call__(self) -> Metric:
        return self


def metric(name: str, *, help: str, unit: bool = False,  # noqa: A002
           score: Score | None = None) -> Callable[[Block], Block]:
    """Decorator: enter ``block(left, candidates)`` as the metric ``name``; ``score``: what its values mean."""

    def enter(block: Block) -> Block:
        REGISTER.add(Part("metric", name, Metric(name, block, unit, help), help=help, score=score))
        return block

    return enter


@metric("cosine", help="cosine similarity", unit=True,
        score=Score("the cosine of the two embeddings: 1 same direction, 0 unrelated", -1, 1))
def cosine(left: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    return torch.bmm(candidates, left.transpose(1, 2))[..., 0]


@metric("euclidean", help="minus the Euclidean distance",
        score=Score("minus the Euclidean distance between the two embeddings: 0 identical", None, 0))
def euclidean(left: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    return -torch.cdist(left, candidates, p=2.0, compute_mode="donot_use_mm_for_euclid_dist")[:, 0]


@metric("manhattan", help="minus the Manhattan (L1) distance",
        score=Score("minus the Manhattan (L1) distance between the two embeddings: 0 identical", None, 0))
def manhattan(left: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    return -torch.cdist(left, candidates, p=1.0, compute_mode="donot_use_mm_for_euclid_dist")[:, 0]


def metric_names() -> tuple[str, ...]:
    """The registered metrics, in register order."""
    return REGISTER.names("metric")


def check_metric(name: str) -> Metric:
    """The registered metric ``name`` (one line naming the choices when there is none)."""
    return REGISTER.get("metric", name).create()


def score_candidates(left: np.ndarray, right: np.ndarray, candidates: np.ndarray, metric: str) -> np.ndarray:
    """``[n, 20]`` similarities of each left ``[n, d]`` to its candidates (rows of ``right`` ``[m, d]``).

    Vectorised over all tasks: the candidates are gathered into ``[chunk, 20, d]`` blocks small enough
    to stay in cache (bench/README.md: 4x faster than one big block), then one batched kernel per block.
    """
    chosen = check_metric(metric)
    left_t, right_t = as_tensor(left), as_tensor(right)
    if chosen.unit:
        left_t, right_t = unit_rows(left_t), unit_rows(right_t)
    index = torch.from_numpy(np.asarray(candidates, dtype=np.int64))
    n, k = index.shape
    out = torch.empty((n, k), dtype=torch.float32)
    step = max(1, _CHUNK_ELEMENTS // max(1, k * left_t.shape[1]))
    with torch.inference_mode():
        for s in range(0, n, step):
            out[s : s + step] = chosen.block(left_t[s : s + step, None, :], right_t[index[s : s + step]])
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


def evaluate_scores(scores: np.ndarray, truth: np.ndarray, *, n_boot: int = 1000, seed: int = 0) -> Evaluation:
    """Every registered figure of the ``tasks`` protocol from ``[n, 20]`` scores and the truth's columns."""
    if len(scores) == 0:
        raise ValueError("no tasks to evaluate")
    return evaluate_ranks(truth_ranks(scores, truth), "tasks", scores.shape[1], n_boot=n_boot, seed=seed)
