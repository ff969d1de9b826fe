"""Weight-free descriptors: run offline on every machine, no model download.

Each maps one RGB PIL image to a float32 vector. They are computed per image in worker threads
(Pillow and scikit-image release the GIL for most of their work).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image
from skimage.feature import hog

from ..register import register
from .base import Backbone, BackboneCfg, CellShares, Family, MapKind, NoSpatialMap

HOG_SCALES = ((96, 120), (48, 60))  # (width, height): TLL images are 200x245
HOG_CELL = 12
HOG_BINS = 9
HOG_BLOCK = 3  # cells per block side
HIST_BINS = (8, 4, 4)  # H, S, V
TINY_SIZE = (16, 20)


def gray(im: Image.Image, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(im.convert("L").resize(size, Image.BILINEAR), dtype=np.float32) / 255.0


def hog_descriptor(im: Image.Image) -> np.ndarray:
    """HOG of the grayscale image at two scales (9 bins, 12 px cells, 3x3 blocks, L2-Hys, gamma-compressed)."""
    parts = [
        hog(gray(im, size), orientations=HOG_BINS, pixels_per_cell=(HOG_CELL, HOG_CELL), cells_per_block=(HOG_BLOCK, HOG_BLOCK),
            block_norm="L2-Hys", transform_sqrt=True, feature_vector=True)
        for size in HOG_SCALES
    ]
    return np.concatenate(parts).astype(np.float32)


def colour_histogram(im: Image.Image) -> np.ndarray:
    """HSV joint histogram (8x4x4), square-rooted so that large flat regions do not dominate."""
    hsv = np.asarray(im.convert("HSV").resize((100, 122), Image.BILINEAR), dtype=np.int32)
    idx = [(hsv[..., c] * b) >> 8 for c, b in enumerate(HIST_BINS)]
    flat = (idx[0] * HIST_BINS[1] + idx[1]) * HIST_BINS[2] + idx[2]
    counts = np.bincount(flat.ravel(), minlength=int(np.prod(HIST_BINS))).astype(np.float32)
    return np.sqrt(counts / counts.sum())


def tiny_image(im: Image.Image) -> np.ndarray:
    """A 16x20 RGB thumbnail with its mean removed (brightness-invariant layout and colour)."""
    arr = np.asarray(im.resize(TINY_SIZE, Image.BOX), dtype=np.float32) / 255.0
    return (arr - arr.mean()).ravel()


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


COMBINED_WEIGHTS = {"hog": 1.0, "colour": 0.35, "tiny": 0.2}  # chosen on ../shared/tll-dev (bench/README.md)


def combined_descriptor(im: Image.Image) -> np.ndarray:
    """HOG, colour histogram and tiny image, each L2-normalised, weighted and concatenated."""
    parts = {"hog": hog_descriptor(im), "colour": colour_histogram(im), "tiny": tiny_image(im)}
    return np.concatenate([COMBINED_WEIGHTS[k] * _unit(v) for k, v in parts.items()]).astype(np.float32)


DESCRIPTORS = {
    "hog": hog_descriptor,
    "colour-hist": colour_histogram,
    "tiny-image": tiny_image,
    "combined": combined_descriptor,
}


PREPROCESS_VERSION = 1  # bump when a descriptor changes: it is part of every cache key


class WeightFreeBackbone(Backbone):
    def __init__(self, cfg: BackboneCfg) -> None:
        self.cfg = cfg
        self.describe = DESCRIPTORS[cfg.model_id]
        self.identity = f"{cfg.name}|weight-free|pp{PREPROCESS_VERSION}"

    def prepare(self, image: Image.Image) -> np.ndarray:
        return self.describe(image)

    def embed(self, prepared: list[np.ndarray]) -> np.ndarray:
        return np.stack(prepared).astype(np.float32, copy=False)

    def cell_shares(self, left: np.ndarray, candidate: np.ndarray, centre: np.ndarray | None = None) -> CellShares:
        return contributions(left, candidate, self.cfg.model_id, centre)


@register("family", "weight-free", help="classical descriptors (scikit-image): no weights, they run anywhere")
class WeightFreeFamily(Family):
    def build(self, cfg: BackboneCfg, weights_file: object = None, pretrained: bool = True,
              device: str = "cpu") -> WeightFreeBackbone:
        return WeightFreeBackbone(cfg)

    def map_kind(self, cfg: BackboneCfg) -> MapKind | None:
        return "descriptor" if cfg.model_id in LAYOUTS else None

    def no_map_reason(self, cfg: BackboneCfg) -> str:
        return f"{cfg.name}: a colour histogram has no layout"


# ------------------------------------------------------------ where a descriptor's dimensions lie (the Why view)
# The cosine of two descriptors is a sum over their dimensions of (normalised left dim x normalised candidate
# dim); each dimension belongs to a HOG cell (through its block) or a thumbnail pixel, so the per-cell sums
# add up exactly to the score. A colour histogram has no layout: its dimensions are the one term left over
# (``CellShares.unmapped``).

CELL_GRID = (HOG_SCALES[0][1] // HOG_CELL, HOG_SCALES[0][0] // HOG_CELL)  # (rows, cols) of the finer HOG scale


def resample(cells: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A grid of contributions onto ``shape``, its total kept: finer grids are summed in blocks, coarser ones
    spread evenly (the factors divide exactly: 96x120 and 48x60 px at 12 px, and the 16x20 thumbnail)."""
    (h, w), (rows, cols) = cells.shape, shape
    if h >= rows:
        return cells.reshape(rows, h // rows, cols, w // cols).sum(axis=(1, 3))
    fr, fc = rows // h, cols // w
    return np.kron(cells, np.ones((fr, fc))) / (fr * fc)


def hog_dims() -> list[tuple[int, int, int]]:
    """Per HOG scale: (block rows, block columns, dims) of its part of the descriptor."""
    out = []
    for width, height in HOG_SCALES:
        rows, cols = height // HOG_CELL - HOG_BLOCK + 1, width // HOG_CELL - HOG_BLOCK + 1
        out.append((rows, cols, rows * cols * HOG_BLOCK * HOG_BLOCK * HOG_BINS))
    return out


def hog_cells(products: np.ndarray) -> np.ndarray:
    """Per-dimension products of a HOG descriptor onto the cell grid: each dimension belongs to one cell of one
    block (skimage's layout: block row, block column, cell row in block, cell column, orientation)."""
    grid, offset = np.zeros(CELL_GRID), 0
    for rows, cols, dims in hog_dims():
        blocks = products[offset : offset + dims].reshape(rows, cols, HOG_BLOCK, HOG_BLOCK, HOG_BINS).sum(-1)
        cells = np.zeros((rows + HOG_BLOCK - 1, cols + HOG_BLOCK - 1))
        for i in range(HOG_BLOCK):
            for j in range(HOG_BLOCK):
                cells[i : i + rows, j : j + cols] += blocks[:, :, i, j]
        grid += resample(cells, CELL_GRID)
        offset += dims
    return grid


def tiny_cells(products: np.ndarray) -> np.ndarray:
    """Per-dimension products of the tiny image (rows x columns x RGB) onto the cell grid."""
    width, height = TINY_SIZE
    return resample(products.reshape(height, width, 3).sum(-1), CELL_GRID)


def unit_rows(v: np.ndarray, axis: int = -1) -> np.ndarray:
    """``v`` L2-normalised along ``axis`` (float64 in, as the Why view computes)."""
    return v / np.maximum(np.linalg.norm(v, axis=axis, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Segment:
    """A run of descriptor dimensions and where they lie (None: nowhere, e.g. a colour histogram)."""

    dims: int
    cells: Callable[[np.ndarray], np.ndarray] | None


_PARTS = {"hog": Segment(sum(d for _, _, d in hog_dims()), hog_cells),
          "colour": Segment(int(np.prod(HIST_BINS)), None),
          "tiny": Segment(TINY_SIZE[0] * TINY_SIZE[1] * 3, tiny_cells)}
LAYOUTS: dict[str, list[Segment]] = {  # descriptor (model_id) -> its parts in order; colour-hist: no layout
    "hog": [_PARTS["hog"]],
    "tiny-image": [_PARTS["tiny"]],
    "combined": [_PARTS[k] for k in COMBINED_WEIGHTS],
}
NOTES = {"combined": "HOG cells and thumbnail pixels per cell; the colour histogram adds the rest"}


def contributions(left: np.ndarray, candidate: np.ndarray, model_id: str,
                  centre: np.ndarray | None = None) -> CellShares:
    """The cosine of two descriptor vectors split by place: ``grid.sum() + unmapped == score`` exactly (to float
    rounding)."""
    segments = LAYOUTS.get(model_id)
    if segments is None:
        raise NoSpatialMap(f"no spatial map for descriptor {model_id}: it has no layout")
    a, b = (np.asarray(v, dtype=np.float64) for v in (left, candidate))
    if sum(s.dims for s in segments) != a.shape[0]:
        raise NoSpatialMap(f"{model_id}: a descriptor of {a.shape[0]} dims does not have the expected layout")
    if centre is not None:
        a, b = a - centre, b - centre
    products = unit_rows(a) * unit_rows(b)
    grid, unmapped, offset = np.zeros(CELL_GRID), 0.0, 0
    for segment in segments:
        part = products[offset : offset + segment.dims]
        if segment.cells is None:
            unmapped += float(part.sum())
        else:
            grid += segment.cells(part)
        offset += segment.dims
    return CellShares(grid.astype(np.float32), unmapped, float(products.sum()), NOTES.get(model_id, ""))
