"""The matcher protocol: a config dataclass, ``fit`` on the fit part's pair embeddings, ``score`` a task set.

Like a FiftyOne Brain method, a matcher is a config + a method + its results: learned matchers expose
their fitted state as named arrays (``state``/``load_state``) so the engine can store them under a key
(config + fit-data fingerprint + backbone) as safetensors — never pickle.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class EpochReport:
    """One epoch of training, for progress bars and curves."""

    epoch: int
    epochs: int
    train_loss: float
    holdout_top2: float  # top-2 on 20-candidate tasks from the slice of the *fit* part held back for early stopping


TrainingCallback = Callable[[EpochReport], None]


@dataclass
class TrainingCurve:
    train_loss: list[float] = field(default_factory=list)
    holdout_top2: list[float] = field(default_factory=list)
    best_epoch: int = 0


class Matcher(Protocol):
    name: str

    def fit(self, left: np.ndarray, right: np.ndarray, callback: TrainingCallback | None = None) -> None:
        """Learn from true pairs: row i of ``left`` goes with row i of ``right`` (fit part only)."""

    def score(self, left: np.ndarray, right: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """``[n, 20]`` similarities for lefts ``[n, d]`` and their candidates (indices into ``right``)."""
