"""Why a left and a candidate match: *where* in the two images their similarity comes from.

Two kinds of map, both in the explained backbone's own terms; the backbone's family says which it gives
(``Family.map_kind``) and the backbone computes it (``tll_core/backbones/base.py``), so a new family needs no
edit here:

- ``deep`` (timm, open_clip, the packaged EfficientNet-Lites): ``Backbone.feature_cells``, the last feature map
  before pooling, one vector per cell (CNN stage, or ViT patch tokens on their grid); each cell's cosine with
  the *other* image's pooled embedding. Where the pooled embedding is the average of the cells (average-pooled
  CNNs), ``SimilarityMap.weight`` (each cell's share of its pooled vector) makes it exact:
  ``(weight * grid).sum()`` is the pair's cosine.
- ``descriptor`` (HOG, the tiny image, and ``combined`` which holds both): ``Backbone.cell_shares``, the cosine
  split exactly over the image's cells (what has no place, e.g. a colour histogram, is ``WhyPair.unmapped``).

``centre`` (optional) is the vector the zero-shot matcher subtracts first (the mean embedding of the scored
images, :func:`centre_of`): with it the maps explain the centred cosine that zero-shot ranks by.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .backbones.base import WHOLE, MapKind, NoSpatialMap, Region
from .backbones.registry import Ensemble, map_kind, no_map_reason
from .engine import Engine
from .errors import TLLError
from .images import decode_rgb
from .matchers.zero_shot import scored_mean

if TYPE_CHECKING:
    from .evaluation.tasks import TaskSet

Kind = MapKind

READING: dict[Kind, str] = {
    "deep": ("Each cell of an image's last feature map against the other image's whole embedding (cosine): "
             "bright = this region looks like the other picture as a whole; the greyed border is cropped "
             "away before the model sees the image."),
    "descriptor": ("Each cell's share of the score: the descriptor's dimensions there (edge orientations, "
                   "thumbnail pixels), left x candidate; bright cells add to it, the middle colour adds nothing, "
                   "dark cells subtract. The cells sum to the score, and the same cells are shown on both images: they are compared place by place."),
}


@dataclass(frozen=True)
class SimilarityMap:
    """One image's map: ``grid[h, w]`` over ``region`` of the image (what the backbone saw of it)."""

    grid: np.ndarray  # [h, w] float32
    image_id: str
    against: str  # the other image's id
    region: Region = WHOLE
    weight: np.ndarray | None = None  # [h, w]: (weight * grid).sum() == the score, where that holds


@dataclass(frozen=True)
class WhyPair:
    left_map: SimilarityMap
    candidate_map: SimilarityMap
    score: float  # the explained member's cosine (centred when a centre was given)
    kind: Kind
    member: str  # the backbone explained (a part of an ensemble, or the backbone itself)
    note: str = ""  # one line: what was explained, and anything approximate about it
    unmapped: float = 0.0  # descriptor kind: the part of the score with no place (the colour histogram)

    @property
    def reading(self) -> str:
        """One line on how to read the maps."""
        return READING[self.kind]


# ------------------------------------------------------------ which part of a backbone can be explained


def explainable_members(backbone: str | Ensemble) -> list[str]:
    """The parts of a backbone (an ensemble ``a+b`` or a single one) that give a map: deep ones first."""
    parts = list(dict.fromkeys(Ensemble.parse(backbone).parts))
    kinds = {p: map_kind(p) for p in parts}
    return [p for p in parts if kinds[p] == "deep"] + [p for p in parts if kinds[p] == "descriptor"]


def no_map_message(backbone: str | Ensemble) -> str:
    """One line for a backbone none of whose parts gives a map: each part's family says why."""
    reasons = "; ".join(no_map_reason(part) for part in dict.fromkeys(Ensemble.parse(backbone).parts))
    return (f"No spatial map for backbone {backbone}: {reasons} (pick a deep backbone, hog, tiny-image or "
            "combined to see where images match)")


def no_features_message(method: str) -> str:
    """One line for a method that scores no image features (imported scores, read by the lefts' names)."""
    return (f"No spatial map for {method}: its scores were read from a file, not computed from the images' "
            "features, so there are no features to map (the sidebar's backbone plays no part in them)")


def why(engine: Engine, backbone: str | Ensemble, left_id: str, candidate_id: str, *, member: str | None = None,
        centre: np.ndarray | None = None) -> WhyPair:
    """Where ``left_id`` and ``candidate_id`` match under ``backbone`` (for an ensemble: ``member``, by default
    its first deep part, else its first descriptor part). Raises :class:`NoSpatialMap` when no part can say."""
    backbone = str(Ensemble.parse(backbone))
    members = explainable_members(backbone)
    if member is None:
        if not members:
            raise NoSpatialMap(no_map_message(backbone))
        member = members[0]
    elif member not in members:
        raise NoSpatialMap(f"no spatial map for {member} (explainable parts of {backbone}: {', '.join(members) or 'none'})")
    explain = _deep_pair if map_kind(member) == "deep" else _descriptor_pair
    pair = explain(engine, member, left_id, candidate_id, centre)
    if member != backbone:
        pair = _with_note(pair, f"explains {member}, one part of {backbone}. " + pair.note)
    return _checked(pair)


def centre_of(engine: Engine, tasks: TaskSet, member: str) -> np.ndarray:
    """What the zero-shot matcher subtracts before its cosine: the mean ``member`` embedding of the task
    set's lefts and rights (the engine's cached vectors)."""
    return scored_mean(*engine.task_embeddings(tasks, member))


def _with_note(pair: WhyPair, note: str) -> WhyPair:
    return replace(pair, note=note.strip())


def _checked(pair: WhyPair) -> WhyPair:
    """Nothing non-finite leaves this module (it would become a figure)."""
    values = [pair.left_map.grid, pair.candidate_map.grid, np.asarray([pair.score, pair.unmapped])]
    if not all(np.isfinite(v).all() for v in values):
        raise TLLError(f"{pair.member}: the similarity map is not finite for {pair.left_map.image_id} "
                       f"and {pair.candidate_map.image_id}")
    return pair


def read_rgb(engine: Engine, image_id: str) -> Image.Image:
    """An image decoded from bytes read through the dataset's confined reader."""
    return decode_rgb(engine.dataset.read_image(image_id))


def _unit(v: np.ndarray, axis: int = -1) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=axis, keepdims=True), 1e-12)


# ------------------------------------------------------------ descriptors: exact per-cell contributions


def _descriptor_pair(engine: Engine, member: str, left_id: str, candidate_id: str,
                     centre: np.ndarray | None) -> WhyPair:
    """The member's own (cached) vectors, decomposed by the backbone: the map is the score, cell by cell."""
    left, candidate = engine.embed([left_id, candidate_id], member)
    shares = engine.backbone(member).cell_shares(left, candidate, centre)
    maps = (SimilarityMap(shares.grid, left_id, candidate_id), SimilarityMap(shares.grid, candidate_id, left_id))
    return WhyPair(*maps, score=shares.score, kind="descriptor", member=member, note=shares.note,
                   unmapped=shares.unmapped)


# ------------------------------------------------------------ deep backbones: cells against the pooled embedding


def _deep_pair(engine: Engine, member: str, left_id: str, candidate_id: str,
               centre: np.ndarray | None) -> WhyPair:
    backbone = engine.backbone(member)
    images = [read_rgb(engine, i) for i in (left_id, candidate_id)]
    features = backbone.feature_cells(images)
    cells, pooled, notes = features.cells.astype(np.float64), features.pooled.astype(np.float64), [features.note]
    if centre is not None and centre.shape[-1] == pooled.shape[-1]:
        cells, pooled = cells - centre, pooled - centre
    elif centre is not None:
        notes.append("not centred: the map's space is not the embedding's")
    is_mean = np.allclose(features.cells.mean(axis=(1, 2)), features.pooled, rtol=1e-3, atol=1e-4)
    maps = []
    for side, other in ((0, 1), (1, 0)):
        grid = (_unit(cells[side]) * _unit(pooled[other])).sum(-1)
        weight = None
        if is_mean:  # pooled = mean of the cells: the cells' norms share out the pooled vector's
            n = grid.size
            weight = (np.linalg.norm(cells[side], axis=-1) / (n * np.linalg.norm(pooled[side]))).astype(np.float32)
        ids = (left_id, candidate_id)
        maps.append(SimilarityMap(grid.astype(np.float32), ids[side], ids[other], backbone.input_region(images[side].size),
                                  weight))
    score = float((_unit(pooled[0]) * _unit(pooled[1])).sum())
    return WhyPair(maps[0], maps[1], score=score, kind="deep", member=member, note="; ".join(n for n in notes if n))


# ------------------------------------------------------------ overlays

# viridis (perceptually uniform, colour-blind safe), 11 stops, interpolated linearly
VIRIDIS = np.array([(68, 1, 84), (72, 36, 117), (65, 68, 135), (53, 95, 141), (42, 120, 142), (33, 145, 140),
                    (34, 168, 132), (68, 190, 112), (122, 209, 81), (189, 223, 38), (253, 231, 37)], dtype=np.float64)


def colormap(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (clipped) to viridis RGB, uint8 ``[..., 3]``."""
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0), 0.0, 1.0) * (len(VIRIDIS) - 1)
    low = np.minimum(np.floor(v).astype(int), len(VIRIDIS) - 2)
    frac = (v - low)[..., None]
    return np.round(VIRIDIS[low] * (1 - frac) + VIRIDIS[low + 1] * frac).astype(np.uint8)


def colour_bar(width: int = 256, height: int = 14) -> np.ndarray:
    """The colormap from low (left) to high (right), as an RGB uint8 image."""
    return np.repeat(colormap(np.linspace(0.0, 1.0, width))[None], height, axis=0)


def overlay(image: Image.Image, smap: SimilarityMap, low: float, high: float, *, alpha: float = 0.55,
            smooth: bool = True) -> np.ndarray:
    """``image`` with ``smap`` blended over the region the backbone saw (outside it greyed), RGB uint8.
    ``low``/``high``: the values at the colormap's ends. ``smooth``: bilinear, else each cell a flat block."""
    if not (np.isfinite(smap.grid).all() and np.isfinite([low, high]).all()):
        raise TLLError(f"{smap.image_id}: the similarity map is not finite")
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = smap.region
    left, top = int(round(x0 * width)), int(round(y0 * height))
    right, bottom = max(left + 1, int(round(x1 * width))), max(top + 1, int(round(y1 * height)))
    scaled = (smap.grid - low) / (high - low) if high > low else np.full(smap.grid.shape, 0.5)
    resample = Image.BILINEAR if smooth else Image.NEAREST
    up = np.asarray(Image.fromarray(scaled.astype(np.float32)).resize((right - left, bottom - top), resample))
    out = rgb * 0.35 + 128 * 0.25  # outside the region: greyed (the model never saw it)
    inside = rgb[top:bottom, left:right]
    out[top:bottom, left:right] = inside * (1 - alpha) + colormap(up) * alpha
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Rendered:
    """A pair's two overlays on one colour scale."""

    left: np.ndarray  # RGB uint8
    candidate: np.ndarray
    low: float
    high: float


def render(engine: Engine, pair: WhyPair) -> Rendered:
    """Both overlays of a pair on one scale: cosines from the lowest to the highest of either map; contributions
    symmetric about 0 (the colormap's middle adds nothing, its bright end adds, its dark end subtracts)."""
    grids = np.concatenate([pair.left_map.grid.ravel(), pair.candidate_map.grid.ravel()])
    low, high = float(grids.min()), float(grids.max())
    if pair.kind == "descriptor":
        high = max(abs(low), abs(high))
        low = -high
    smooth = pair.kind == "deep"
    left, candidate = (overlay(read_rgb(engine, m.image_id), m, low, high, smooth=smooth)
                       for m in (pair.left_map, pair.candidate_map))
    return Rendered(left, candidate, low, high)
