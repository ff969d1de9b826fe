"""Deep models' last feature maps as cells, for the Why view: by model type (timm CNN or ViT, open_clip ResNet
or ViT), and the part of an image a model's resize and centre crop keep.

Model internals (timm's ``forward_features``/``forward_head``, open_clip's ``attnpool`` and ``_pool``) are
read here and nowhere else: a family's ``feature_cells`` calls one of these.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .base import FeatureCells, NoSpatialMap, Preprocess, Region


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.float().cpu().numpy()


def timm_cells(model: Any, x: torch.Tensor) -> FeatureCells:
    """timm CNN: the last stage's cells and the pooled pre-logits; ViT: the patch tokens and the pooled token."""
    features = model.forward_features(x)
    pooled = model.forward_head(features, pre_logits=True)
    if features.ndim == 4:  # CNN: [batch, channels, h, w]
        cells = features.permute(0, 2, 3, 1)
        if pooled.shape[-1] != cells.shape[-1]:  # layers after the last conv stage (VGG's fc6/fc7)
            return FeatureCells(_numpy(cells), _numpy(cells.mean((1, 2))),
                                "last conv stage against its average: the embedding adds layers after it")
        return FeatureCells(_numpy(cells), _numpy(pooled))
    tokens = features[:, getattr(model, "num_prefix_tokens", 1):]  # ViT: patch tokens after the class token(s)
    h, w = token_grid(model, tokens.shape[1])
    return FeatureCells(_numpy(tokens.reshape(len(x), h, w, -1)), _numpy(pooled), "patch tokens against the pooled token")


def token_grid(model: Any, n: int) -> tuple[int, int]:
    """The (rows, columns) of ``n`` patch tokens: the model's patch grid, else a square."""
    grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
    h, w = (int(g) for g in grid) if grid else (int(round(n**0.5)),) * 2
    if h * w != n:
        raise NoSpatialMap(f"no spatial map: {n} patch tokens do not fill a {h}x{w} grid")
    return h, w


def clip_cells(visual: Any, x: torch.Tensor) -> FeatureCells:
    """open_clip's image tower: ResNet (attention pool) or ViT."""
    if hasattr(visual, "attnpool") and hasattr(visual, "layer4"):
        return _clip_resnet_cells(visual, x)
    if all(hasattr(visual, a) for a in ("_embeds", "_pool", "transformer", "proj")):
        return _clip_vit_cells(visual, x)
    raise NoSpatialMap("no spatial map: this open_clip image tower gives no feature map")


def _clip_resnet_cells(visual: Any, x: torch.Tensor) -> FeatureCells:
    """open_clip ResNet: layer4's cells through the attention pool's value and output projections (MaskCLIP),
    so that they live in the pooled embedding's space."""
    x = visual.stem(x)
    for layer in (visual.layer1, visual.layer2, visual.layer3, visual.layer4):
        x = layer(x)
    pool = visual.attnpool
    cells = pool.c_proj(pool.v_proj(x.permute(0, 2, 3, 1)))
    return FeatureCells(_numpy(cells), _numpy(pool(x)), "value-projected cells against the attention-pooled embedding")


def _clip_vit_cells(visual: Any, x: torch.Tensor) -> FeatureCells:
    """open_clip ViT: patch tokens after the final norm, through the same projection as the pooled token."""
    pooled, tokens = visual._pool(visual.transformer(visual._embeds(x)))
    if visual.proj is not None:
        pooled, tokens = pooled @ visual.proj, tokens @ visual.proj
    h, w = token_grid(visual, tokens.shape[1])
    return FeatureCells(_numpy(tokens.reshape(len(x), h, w, -1)), _numpy(pooled), "patch tokens against the pooled token")


# ------------------------------------------------------------ the part of an image the model sees


def preprocess_steps(pp: Preprocess) -> list[tuple[str, Any]]:
    """The resize / centre-crop steps of a measured preprocessing."""
    if pp.resize == "crop":
        return [("resize", int(pp.size / pp.crop_pct)), ("crop", pp.size)]
    return [("resize", (pp.size, pp.size))]


def transform_steps(transform: Any) -> list[tuple[str, Any]]:
    """Resize / CenterCrop steps of a torchvision (v1 or v2) Compose, by class name."""
    steps = []
    for t in getattr(transform, "transforms", []):
        name = type(t).__name__
        if name == "Resize":
            steps.append(("resize", t.size))
        elif name == "CenterCrop":
            steps.append(("crop", t.size))
    return steps


def crop_region(steps: list[tuple[str, Any]], size: tuple[int, int]) -> Region:
    """Follow resizes and centre crops (torchvision's rounding) and map the kept box back to fractions."""
    w0, h0 = size
    w, h = float(w0), float(h0)
    box = [0.0, 0.0, float(w0), float(h0)]  # in original pixels
    for kind, value in steps:
        value = list(value) if isinstance(value, (list, tuple)) else [value]
        if kind == "resize":
            if len(value) == 1:
                short, long = (w, h) if w <= h else (h, w)
                new_long = int(value[0] * long / short)
                w, h = (value[0], new_long) if w <= h else (new_long, value[0])
            else:
                h, w = value
        else:
            ch, cw = (value * 2)[:2]
            top, left = round((h - ch) / 2.0), round((w - cw) / 2.0)
            sx, sy = (box[2] - box[0]) / w, (box[3] - box[1]) / h  # original px per current px
            box = [box[0] + left * sx, box[1] + top * sy, box[0] + (left + cw) * sx, box[1] + (top + ch) * sy]
            w, h = float(cw), float(ch)
    x0, y0, x1, y1 = box
    return (max(0.0, x0 / w0), max(0.0, y0 / h0), min(1.0, x1 / w0), min(1.0, y1 / h0))
