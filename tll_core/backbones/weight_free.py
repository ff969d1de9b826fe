"""Weight-free descriptors: run offline on every machine, no model download.

Each maps one RGB PIL image to a float32 vector. They are computed per image in worker threads
(Pillow and scikit-image release the GIL for most of their work).
"""
from __future__ import annotations

import numpy as np
from PIL import Image
from skimage.feature import hog

from ..register import register
from .base import Backbone, BackboneCfg

HOG_SCALES = ((96, 120), (48, 60))  # (width, height): TLL images are 200x245
HOG_CELL = 12
HOG_BINS = 9
HOG_BLOCK = 3  # cells per block side
HIST_BINS = (8, 4, 4)  # H, S, V
TINY_SIZE = (16, 20)


def _gray(im: Image.Image, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(im.convert("L").resize(size, Image.BILINEAR), dtype=np.float32) / 255.0


def hog_descriptor(im: Image.Image) -> np.ndarray:
    """HOG of the grayscale image at two scales (9 bins, 12 px cells, 3x3 blocks, L2-Hys, gamma-compressed)."""
    parts = [
        hog(_gray(im, size), orientations=HOG_BINS, pixels_per_cell=(HOG_CELL, HOG_CELL), cells_per_block=(HOG_BLOCK, HOG_BLOCK),
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


@register("family", "weight-free", help="classical descriptors (scikit-image): no weights, they run anywhere")
class WeightFreeFamily:
    needs_weights = False

    def build(self, cfg: BackboneCfg, weights_file: object = None, pretrained: bool = True,
              device: str = "cpu") -> WeightFreeBackbone:
        return WeightFreeBackbone(cfg)

    def in_hub_cache(self, cfg: BackboneCfg) -> bool:
        return False
