"""The zero-shot matcher: a metric on the backbone's embeddings, nothing learned."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from ..evaluation.metrics import as_tensor, score_candidates, unit_rows
from ..register import Score, checked, option, register
from .base import Fixed, GalleryScorer, GallerySearch, every_item_scorer


def scored_mean(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The mean embedding of the scored images, lefts and rights together (no labels used): what centring
    subtracts, here and wherever zero-shot's scores are reproduced (the full gallery, the Why view)."""
    return np.concatenate([left, right]).mean(axis=0, dtype=np.float64).astype(np.float32)


def centred(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sets minus their :func:`scored_mean`."""
    mean = scored_mean(left, right)
    return left - mean, right - mean


def unit_vectors(left: np.ndarray, gallery: np.ndarray, centre: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """What ``ZeroShot("cosine", centre=...)`` compares: minus the mean of all lefts and gallery items, L2-normalised."""
    left, gallery = centred(left, gallery) if centre else (left, gallery)
    return unit_rows(as_tensor(left)).numpy(), unit_rows(as_tensor(gallery)).numpy()


def cosine_scorer(left_unit: np.ndarray, gallery_unit: np.ndarray) -> GalleryScorer:
    """Inner products of unit vectors (:func:`unit_vectors`), one matmul per block of lefts."""
    left_t, gallery_t = as_tensor(left_unit), as_tensor(gallery_unit)

    def scores(start: int, stop: int) -> np.ndarray:
        with torch.inference_mode():
            return (left_t[start:stop] @ gallery_t.T).numpy()

    return scores


@register("matcher", "zero-shot", help="a metric on the backbone's embeddings, nothing learned (the MobileNet + cosine baseline)",
          score=Score("the backbone's embeddings (centred first when centre is on) compared by the metric"))
@dataclass(frozen=True)
class ZeroShot(Fixed):
    """A metric on the backbone's embeddings, nothing learned.

    ``centre``: subtract the mean embedding of the scored images (all lefts and candidate rights of the
    task set; no labels used) first. Descriptors such as HOG share a large common component that
    swamps cosine similarity; removing it lifts HOG's top-2 from 0.35 to 0.47 on tll-dev.
    """

    metric: str = option("cosine", choices="metric", help="the similarity (euclidean, manhattan: negated distances)")
    centre: bool = option(True, help="subtract the mean embedding of the scored images first")
    name: ClassVar[str] = "zero-shot"

    def __post_init__(self) -> None:
        checked(self)

    def score(self, left: np.ndarray, right: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        return score_candidates(*self.project(left, right), candidates, self.metric)

    def project(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What ``score`` puts its metric on: both sets minus their mean when ``centre``, else as they are."""
        return centred(left, right) if self.centre else (left, right)

    def gallery(self, left: np.ndarray, gallery: np.ndarray) -> GallerySearch:
        """Centred once on all lefts and gallery items (as ``score`` centres on all it scores, not per block);
        cosine: inner products of unit vectors, which an index may search."""
        if self.metric == "cosine":
            units = unit_vectors(left, gallery, self.centre)
            return GallerySearch(cosine_scorer(*units), width=1, units=units)
        if self.centre:
            left, gallery = centred(left, gallery)
        plain = ZeroShot(self.metric, centre=False)
        return GallerySearch(every_item_scorer(plain.score, left, gallery), width=gallery.shape[1])
