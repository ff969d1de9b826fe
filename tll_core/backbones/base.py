"""The base types of backbones: a leaf module (the registry and the builders import it; it imports neither)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image

from ..errors import TLLError
from ..register import REGISTER
from .packaged import PackagedWeights

WEIGHTS_DIR_ENV = "TLL_WEIGHTS_DIR"


@dataclass(frozen=True)
class BackboneCfg:
    name: str
    family: str  # a registered backbone family (weight-free, timm, open_clip): how it is built and where its weights are
    model_id: str  # descriptor name, timm model name, or open_clip architecture
    weights_tag: str | None  # timm pretrained tag / open_clip pretrained name; None: weight-free
    dim: int
    description: str = ""
    packaged: PackagedWeights | None = None  # weights shipped in an installed pip package (first source)
    hub_model: str | None = None  # the hub's own "model.tag" where it differs from model_id.weights_tag
    preprocess: Preprocess | None = None  # None: the model's own pretrained config (timm / open_clip)
    stages: tuple[int, ...] = ()  # also pool these intermediate stages (timm EfficientNet block groups)
    gem_p: float = 1.0  # pooling exponent: 1 = average pooling, 3 = GeM
    stage_dims: tuple[int, ...] = ()  # the pooled stages' sizes (in ``stages`` order; the head's is the rest of dim)
    views: tuple[str, ...] = ()  # test-time views averaged with the plain one (TEST_VIEWS); needs ``preprocess``

    @property
    def parts(self) -> tuple[int, ...]:
        """The sizes of the blocks its vector is made of, each L2-normalised on its own: each pooled stage and the
        head, or the whole vector. A matcher with ``centre_parts`` centres and rescales each block apart."""
        if not self.stage_dims:
            return (self.dim,)
        return (*self.stage_dims, self.dim - sum(self.stage_dims))

    @property
    def needs_weights(self) -> bool:
        return bool(REGISTER.get("family", self.family).build.needs_weights)

    @property
    def pretrained(self) -> bool:
        """Computes with trained weights (deep backbones never fall back to random ones silently)."""
        return self.needs_weights


TEST_VIEWS = {  # a test-time view: how the image is resized, and whether its colour is dropped
    "squash": ("squash", False),  # the whole image squashed to the square input (the plain view crops its centre)
    "grey": ("crop", True),  # the plain crop in grey (luminance in R, G and B): shape and shading, not colour
    "squash-grey": ("squash", True),
}


@dataclass(frozen=True)
class Preprocess:
    """Input preparation, where it is fixed by measurement rather than taken from the hub's config."""

    size: int  # square input side, pixels
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: Literal["crop", "squash"] = "crop"  # crop: shorter side to size/crop_pct, centre crop; squash: whole image
    crop_pct: float = 0.875

    @property
    def identity(self) -> str:
        return f"{self.resize}{self.size}-c{self.crop_pct}-m{self.mean}-s{self.std}"


# ------------------------------------------------------------ where features lie in the image (the Why view)

MapKind = Literal["deep", "descriptor"]
Region = tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the image's width and height
WHOLE: Region = (0.0, 0.0, 1.0, 1.0)


class NoSpatialMap(TLLError):
    """The backbone cannot say where (a colour histogram has no layout; a model gives no feature map)."""


@dataclass(frozen=True)
class FeatureCells:
    """``deep`` maps: a batch's last feature map as cell vectors, and the pooled embedding in the same space."""

    cells: np.ndarray  # [batch, h, w, dim] float32
    pooled: np.ndarray  # [batch, dim] float32
    note: str = ""


@dataclass(frozen=True)
class CellShares:
    """``descriptor`` maps: the cosine of two descriptors split by place; ``grid.sum() + unmapped == score``."""

    grid: np.ndarray  # [h, w] float32
    unmapped: float  # the part of the score with no place (a colour histogram)
    score: float
    note: str = ""


class Backbone:
    """A built feature extractor. ``prepare`` runs per image in worker threads; ``embed`` per batch.

    What the Why view asks of it (its family's ``map_kind`` says which it can answer): ``feature_cells`` and
    ``input_region`` (``deep``), or ``cell_shares`` (``descriptor``)."""

    cfg: BackboneCfg
    identity: str  # backbone + weights + preprocessing version: part of every cache key

    def prepare(self, image: Image.Image) -> Any:
        raise NotImplementedError

    def embed(self, prepared: list[Any]) -> np.ndarray:
        raise NotImplementedError

    def vectors_of(self, image_ids: tuple[str, ...], view: str = "") -> np.ndarray | None:
        """The vectors of these images when they are given rather than computed from pixels (embeddings
        imported from a file), else None: the engine then decodes the images and calls ``prepare``/``embed``."""
        return None

    def feature_cells(self, images: list[Image.Image]) -> FeatureCells:
        """The last feature map before pooling of a few images, and their pooled embeddings."""
        raise NoSpatialMap(f"no spatial map for backbone {self.cfg.name}: its model gives no feature map")

    def input_region(self, size: tuple[int, int]) -> Region:
        """The part of an image (``size`` = width, height) the backbone sees."""
        return WHOLE

    def cell_shares(self, left: np.ndarray, candidate: np.ndarray, centre: np.ndarray | None = None) -> CellShares:
        """The cosine of two of its vectors (minus ``centre`` first, when given) split by place."""
        raise NoSpatialMap(f"no spatial map for backbone {self.cfg.name}: its descriptor has no layout")


class Family:
    """A backbone family's defaults (a family is a register part: ``@register("family", name, help=…)``):
    no weights, nothing in a hub cache, no spatial map."""

    needs_weights = False

    def build(self, cfg: BackboneCfg, weights_file: Any = None, pretrained: bool = True, device: str = "cpu") -> Backbone:
        raise NotImplementedError

    def in_hub_cache(self, cfg: BackboneCfg) -> bool:
        return False

    def map_kind(self, cfg: BackboneCfg) -> MapKind | None:
        """Which Why map its backbone ``cfg`` gives (without building it), or None."""
        return None

    def no_map_reason(self, cfg: BackboneCfg) -> str:
        """One line on why ``cfg`` gives no map (where ``map_kind`` is None)."""
        return f"{cfg.name} gives no spatial map"
