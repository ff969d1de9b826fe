"""Two figures that compare across methods, beside a raw score on its method's own scale: a candidate's
**rank** in its task (1 = the highest of its 20 scores) and its **share**, a softmax over its task's 20 scores
after standardising them (:func:`task_shares`). What a raw score means is its parts' to say
(:mod:`tll_core.scores`)."""
from __future__ import annotations

import numpy as np

from .metrics import check_finite

SHARE_HELP = ("Share: the candidate's softmax share of its task's 20 scores, each standardised (minus the task's "
              "mean, over its standard deviation), so it reads the same on any method's scale: 5% each when all 20 "
              "are equal, above 5% standing out. Rank: 1 = the highest of the 20.")


def task_shares(scores: np.ndarray) -> np.ndarray:
    """``[n, k]`` shares, each row summing to 1: ``softmax((s - mean) / std)`` over each task's ``k`` scores.

    The temperature is the task's own standard deviation. A fixed temperature would read differently on every
    method's scale (a cosine spread of 0.05 against distances in the hundreds); standardising makes the share
    depend only on how far a candidate stands out among its own 20: it is unchanged by adding a constant to a
    row or multiplying it by a positive factor, equal scores get equal shares, and a constant row gives
    ``1/k`` each. With 20 candidates the largest share possible is about 0.8 (one candidate sqrt(19) standard
    deviations above the rest). It is not a calibrated probability of being the truth.

    Non-finite scores are an error (:class:`~tll_core.evaluation.metrics.NonFiniteScores`), never a share.
    """
    values = np.asarray(check_finite(np.asarray(scores)), dtype=np.float64)
    centred = values - values.mean(axis=1, keepdims=True)
    spread = centred.std(axis=1, keepdims=True)
    flat = spread <= 1e-12 * np.maximum(np.abs(values).max(axis=1, keepdims=True), 1.0)  # a constant row
    z = np.where(flat, 0.0, centred / np.where(flat, 1.0, spread))
    weights = np.exp(z - z.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True)


def task_ranks(scores: np.ndarray) -> np.ndarray:
    """``[n, k]`` ranks of each candidate in its task: 1 = the highest score; equal scores are ranked by column
    (c0 first), as the Ranked page lists them. (The truth's rank in the figures counts ties against it instead:
    :func:`tll_core.evaluation.metrics.truth_ranks`.)"""
    values = check_finite(np.asarray(scores))
    order = np.argsort(-values, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, values.shape[1] + 1)[None, :].repeat(len(values), 0), axis=1)
    return ranks
