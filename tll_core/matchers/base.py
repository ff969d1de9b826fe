"""The matcher protocol: a config dataclass, ``fit`` on the fit part's pair embeddings, ``score`` a task set.

Like a FiftyOne Brain method, a matcher is a config + a method + its results. The engine knows nothing of a
matcher's internals: it asks the matcher which image views it fits and scores on (``fit_views``,
``score_views``) and, for one that learns, what identifies its fitted state (``key_material``: name,
register version, config) so that it can store ``state()`` as named arrays under a key (config + fit-data
fingerprint + backbone) as safetensors — never pickle — and hand it back through ``load_state``.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..errors import TLLError

if TYPE_CHECKING:
    from ..evaluation.tasks import TaskSet


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




class NoGallery(TLLError):
    """The matcher cannot score a whole gallery (imported scores cover their 20 candidates only)."""


GalleryScorer = Callable[[int, int], np.ndarray]  # (start, stop) -> [stop - start, m] scores of those lefts


@dataclass(frozen=True)
class GallerySearch:
    """How a matcher scores every left against a whole gallery (the full-gallery protocol, ``tll_core/evaluation/gallery.py``):
    a blockwise scorer, the floats it holds per (left, gallery item) at once, and — where its score is the inner
    product of two sets of unit vectors (zero-shot cosine) — those vectors, which an index (faiss) may search."""

    scorer: GalleryScorer
    width: int
    units: tuple[np.ndarray, np.ndarray] | None = None


def every_item_scorer(score: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray], left: np.ndarray,
                      gallery: np.ndarray) -> GalleryScorer:
    """A scorer from a matcher's ``score``: each block of lefts with every gallery item as its candidates."""
    every = np.arange(len(gallery), dtype=np.int64)
    return lambda start, stop: score(left[start:stop], gallery, np.tile(every, (stop - start, 1)))


Embedded = Callable[[str], tuple[np.ndarray, np.ndarray]]  # view -> (lefts, right pool) embeddings of a task set


def mean_over_views(matcher: Any, candidates: np.ndarray, embedded: Embedded, flip_tta: bool) -> np.ndarray:
    """A matcher's scores of a task set from its embeddings: ``score`` on each view it scores, averaged."""
    return np.mean([matcher.score(*embedded(view), candidates) for view in matcher.score_views(flip_tta)], axis=0)


def views_of(grayscale: bool, flip: bool) -> tuple[str, ...]:
    """The plain view (grayscale or not), then its mirror when ``flip``."""
    base = "gray" if grayscale else ""
    return (base, "gray-flip" if grayscale else "flip") if flip else (base,)


class Fixed:
    """A base for matchers that learn nothing: ``fit`` does nothing, and they score the plain view (and its
    mirror under flip test-time augmentation)."""

    learns = False
    uses_embeddings = True

    def fit_views(self) -> tuple[str, ...]:
        return ("",)

    def score_views(self, flip_tta: bool) -> tuple[str, ...]:
        return views_of(False, flip_tta)

    def fit(self, left: np.ndarray, right: np.ndarray, callback: TrainingCallback | None = None) -> None:
        return None

    def project(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The vectors it scores with: the embeddings themselves (a fixed matcher learns no map)."""
        return left, right

    def score_tasks(self, tasks: TaskSet, embedded: Embedded, flip_tta: bool) -> np.ndarray:
        return mean_over_views(self, tasks.candidates, embedded, flip_tta)

    def gallery(self, left: np.ndarray, gallery: np.ndarray) -> GallerySearch:
        """Every gallery item as a candidate of every left, through ``score`` (a fixed matcher's default)."""
        return GallerySearch(every_item_scorer(self.score, left, gallery), width=gallery.shape[1])


class Matcher(Protocol):
    name: str
    learns: bool  # False: nothing to fit, store or load (fit is a no-op)
    uses_embeddings: bool  # False: it scores by the images' names (imported scores), whatever the backbone

    def fit_views(self) -> tuple[str, ...]:
        """The image views whose pair embeddings are fitted on (several: concatenated as extra pairs)."""

    def score_views(self, flip_tta: bool) -> tuple[str, ...]:
        """The image views scored (several: their scores are averaged)."""

    def fit(self, left: np.ndarray, right: np.ndarray, callback: TrainingCallback | None = None) -> None:
        """Learn from true pairs: row i of ``left`` goes with row i of ``right`` (fit part only)."""

    def score(self, left: np.ndarray, right: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """``[n, 20]`` similarities for lefts ``[n, d]`` and their candidates (indices into ``right``)."""

    def project(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The lefts and rights as the vectors it scores with (what the embedding map shows in the matcher's
        space): its learned map of each side, zero-shot's centring, or the embeddings themselves."""

    def score_tasks(self, tasks: TaskSet, embedded: Embedded, flip_tta: bool) -> np.ndarray:
        """``[n, 20]`` scores of a task set (what the engine asks): from the embeddings ``embedded(view)``
        gives, for each view it scores (:func:`mean_over_views`), or from anything else it knows of the tasks."""

    def gallery(self, left: np.ndarray, gallery: np.ndarray) -> GallerySearch:
        """How it scores every left against every gallery item (the same scores ``score`` gives them)."""


class LearnedProtocol(Matcher, Protocol):
    """What the engine asks of a matcher that learns (``learns`` is True)."""

    curve: TrainingCurve

    @property
    def max_epochs(self) -> int:
        """The most epochs a fit runs (early stopping may end it sooner)."""

    def to(self, device: Any) -> LearnedProtocol:
        """Train and score on ``device``; returns self."""

    def key_material(self) -> dict[str, Any]:
        """What makes a fitted state differ (name, register version, config): part of its store key."""

    def state(self) -> dict[str, np.ndarray]:
        """The fitted state as named float32 arrays."""

    def load_state(self, state: dict[str, np.ndarray], dim: int | None = None) -> None:
        """Restore a state, strictly; a state that does not fit raises ``StateMismatch``."""
