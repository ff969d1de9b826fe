"""The base types of backbones: a leaf module (the registry and the builders import it; it imports neither)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..register import REGISTER

import numpy as np
from PIL import Image

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

    @property
    def needs_weights(self) -> bool:
        return bool(REGISTER.get("family", self.family).build.needs_weights)

    @property
    def pretrained(self) -> bool:
        """Computes with trained weights (deep backbones never fall back to random ones silently)."""
        return self.needs_weights


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


class Backbone:
    """A built feature extractor. ``prepare`` runs per image in worker threads; ``embed`` per batch."""

    cfg: BackboneCfg
    identity: str  # backbone + weights + preprocessing version: part of every cache key

    def prepare(self, image: Image.Image) -> Any:
        raise NotImplementedError

    def embed(self, prepared: list[Any]) -> np.ndarray:
        raise NotImplementedError
