"""Why a left and a candidate match: *where* in the two images their similarity comes from.

Two kinds of map, both in the explained backbone's own terms:

- ``deep`` (timm, open_clip, the packaged EfficientNet-Lites): the last feature map before pooling, one
  vector per cell (CNN stage, or ViT patch tokens on their grid), each cell's cosine with the *other*
  image's pooled embedding. Where the pooled embedding is the average of the cells (average-pooled CNNs),
  ``SimilarityMap.weight`` (each cell's share of its pooled vector) makes it exact:
  ``(weight * grid).sum()`` is the pair's cosine.
- ``descriptor`` (HOG, the tiny image, and ``combined`` which holds both): the cosine is a sum over the
  descriptor's dimensions of (normalised left dim x normalised candidate dim); each dimension belongs to a
  HOG cell (through its block) or a thumbnail pixel, so the per-cell sums add up exactly to the score
  (the colour histogram, which has no layout, is the one term left over: ``WhyPair.unmapped``).

``centre`` (optional) is the vector the zero-shot matcher subtracts first (the mean embedding of the scored
images, :func:`centre_of`): with it the maps explain the centred cosine that zero-shot ranks by.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from .backbones.registry import get_cfg
from .backbones.weight_free import (COMBINED_WEIGHTS, HIST_BINS, HOG_BINS, HOG_BLOCK, HOG_CELL, HOG_SCALES,
                                    TINY_SIZE)
from .engine import ENSEMBLE_SEP, Engine
from .errors import TLLError
from .images import decode_rgb
from .matchers.zero_shot import scored_mean

if TYPE_CHECKING:
    import torch

    from .backbones.deep import TorchBackbone
    from .tasks import TaskSet

Kind = Literal["deep", "descriptor"]
Region = tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the image's width and height
WHOLE: Region = (0.0, 0.0, 1.0, 1.0)

READING: dict[Kind, str] = {
    "deep": ("Each cell of an image's last feature map against the other image's whole embedding (cosine): "
             "bright = this region looks like the other picture as a whole; the greyed border is cropped "
             "away before the model sees the image."),
    "descriptor": ("Each cell's share of the score: the descriptor's dimensions there (edge orientations, "
                   "thumbnail pixels), left x candidate; bright cells add to it, the middle colour adds nothing, "
                   "dark cells subtract. The cells sum to the score, and the same cells are shown on both images: they are compared place by place."),
}


class NoSpatialMap(TLLError):
    """The backbone cannot say where (a colour histogram has no layout; a model gives no feature map)."""


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


def map_kind(name: str) -> Kind | None:
    """The kind of map a single (non-ensemble) backbone gives, or None."""
    cfg = get_cfg(name)
    if cfg.needs_weights:
        return "deep"
    return "descriptor" if cfg.model_id in _SEGMENTS else None


def explainable_members(backbone: str) -> list[str]:
    """The parts of a backbone (an ensemble ``a+b`` or a single one) that give a map: deep ones first."""
    parts = list(dict.fromkeys(backbone.split(ENSEMBLE_SEP)))
    kinds = {p: map_kind(p) for p in parts}
    return [p for p in parts if kinds[p] == "deep"] + [p for p in parts if kinds[p] == "descriptor"]


def no_map_message(backbone: str) -> str:
    """One line for a backbone none of whose parts gives a map."""
    return (f"No spatial map for backbone {backbone}: a colour histogram has no layout (pick a deep backbone, "
            "hog, tiny-image or combined to see where images match)")


def why(engine: Engine, backbone: str, left_id: str, candidate_id: str, *, member: str | None = None,
        centre: np.ndarray | None = None) -> WhyPair:
    """Where ``left_id`` and ``candidate_id`` match under ``backbone`` (for an ensemble: ``member``, by default
    its first deep part, else its first descriptor part). Raises :class:`NoSpatialMap` when no part can say."""
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
    from dataclasses import replace

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

CELL_GRID = (HOG_SCALES[0][1] // HOG_CELL, HOG_SCALES[0][0] // HOG_CELL)  # (rows, cols) of the finer HOG scale


def _resample(cells: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
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
        grid += _resample(cells, CELL_GRID)
        offset += dims
    return grid


def tiny_cells(products: np.ndarray) -> np.ndarray:
    """Per-dimension products of the tiny image (rows x columns x RGB) onto the cell grid."""
    width, height = TINY_SIZE
    return _resample(products.reshape(height, width, 3).sum(-1), CELL_GRID)


@dataclass(frozen=True)
class Segment:
    """A run of descriptor dimensions and where they lie (None: nowhere, e.g. a colour histogram)."""

    dims: int
    cells: Callable[[np.ndarray], np.ndarray] | None


_PARTS = {"hog": Segment(sum(d for _, _, d in hog_dims()), hog_cells),
          "colour": Segment(int(np.prod(HIST_BINS)), None),
          "tiny": Segment(TINY_SIZE[0] * TINY_SIZE[1] * 3, tiny_cells)}
_SEGMENTS: dict[str, list[Segment]] = {  # descriptor (model_id) -> its parts in order; colour-hist: no layout
    "hog": [_PARTS["hog"]],
    "tiny-image": [_PARTS["tiny"]],
    "combined": [_PARTS[k] for k in COMBINED_WEIGHTS],
}


def contributions(left: np.ndarray, candidate: np.ndarray, model_id: str,
                  centre: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
    """(cell grid, unmapped, score): the cosine of two descriptor vectors split by place. ``grid.sum() +
    unmapped == score`` exactly (to float rounding)."""
    segments = _SEGMENTS[model_id]
    a, b = (np.asarray(v, dtype=np.float64) for v in (left, candidate))
    if sum(s.dims for s in segments) != a.shape[0]:
        raise TLLError(f"{model_id}: a descriptor of {a.shape[0]} dims does not have the expected layout")
    if centre is not None:
        a, b = a - centre, b - centre
    products = _unit(a) * _unit(b)
    grid, unmapped, offset = np.zeros(CELL_GRID), 0.0, 0
    for segment in segments:
        part = products[offset : offset + segment.dims]
        if segment.cells is None:
            unmapped += float(part.sum())
        else:
            grid += segment.cells(part)
        offset += segment.dims
    return grid.astype(np.float32), unmapped, float(products.sum())


def _descriptor_pair(engine: Engine, member: str, left_id: str, candidate_id: str,
                     centre: np.ndarray | None) -> WhyPair:
    """The member's own (cached) vectors, decomposed: the map is the score, cell by cell."""
    cfg = get_cfg(member)
    left, candidate = engine.embed([left_id, candidate_id], member)
    grid, unmapped, score = contributions(left, candidate, cfg.model_id, centre)
    note = "HOG cells and thumbnail pixels per cell; the colour histogram adds the rest" if cfg.model_id == "combined" else ""
    maps = (SimilarityMap(grid, left_id, candidate_id), SimilarityMap(grid, candidate_id, left_id))
    return WhyPair(*maps, score=score, kind="descriptor", member=member, note=note, unmapped=unmapped)


# ------------------------------------------------------------ deep backbones: cells against the pooled embedding


@dataclass(frozen=True)
class FeatureCells:
    """A batch's last feature map as cell vectors, and the pooled embedding in the same space."""

    cells: np.ndarray  # [batch, h, w, dim] float32
    pooled: np.ndarray  # [batch, dim] float32
    note: str = ""


def _deep_pair(engine: Engine, member: str, left_id: str, candidate_id: str,
               centre: np.ndarray | None) -> WhyPair:
    from .backbones.deep import TorchBackbone

    backbone = engine.backbone(member)
    if not isinstance(backbone, TorchBackbone):
        raise NoSpatialMap(f"no spatial map for backbone {member}: not a torch model")
    images = [read_rgb(engine, i) for i in (left_id, candidate_id)]
    features = feature_cells(backbone, images)
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
        maps.append(SimilarityMap(grid.astype(np.float32), ids[side], ids[other], input_region(backbone, images[side].size),
                                  weight))
    score = float((_unit(pooled[0]) * _unit(pooled[1])).sum())
    return WhyPair(maps[0], maps[1], score=score, kind="deep", member=member, note="; ".join(n for n in notes if n))


def feature_cells(backbone: TorchBackbone, images: list[Image.Image]) -> FeatureCells:
    """The last feature map before pooling of a few images, by model type (timm CNN or ViT, open_clip
    ResNet or ViT), computed in float32 on the backbone's device."""
    import torch

    model = backbone.model
    for test, extract in _EXTRACTORS:
        if test(model):
            try:
                with torch.inference_mode():
                    batch = backbone.batch([backbone.prepare(im) for im in images]).float()
                    return extract(model, batch)
            except (AttributeError, RuntimeError, TypeError, ValueError) as exc:  # model internals differ: one line
                raise NoSpatialMap(f"no spatial map for backbone {backbone.cfg.name}: "
                                   f"{type(exc).__name__}: {exc}".splitlines()[0]) from None
    raise NoSpatialMap(f"no spatial map for backbone {backbone.cfg.name}: its model gives no feature map")


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.float().cpu().numpy()


def _timm_cells(model: Any, x: torch.Tensor) -> FeatureCells:
    features = model.forward_features(x)
    pooled = model.forward_head(features, pre_logits=True)
    if features.ndim == 4:  # CNN: [batch, channels, h, w]
        cells = features.permute(0, 2, 3, 1)
        if pooled.shape[-1] != cells.shape[-1]:  # layers after the last conv stage (VGG's fc6/fc7)
            return FeatureCells(_numpy(cells), _numpy(cells.mean((1, 2))),
                                "last conv stage against its average: the embedding adds layers after it")
        return FeatureCells(_numpy(cells), _numpy(pooled))
    tokens = features[:, getattr(model, "num_prefix_tokens", 1):]  # ViT: patch tokens after the class token(s)
    h, w = _token_grid(model, tokens.shape[1])
    return FeatureCells(_numpy(tokens.reshape(len(x), h, w, -1)), _numpy(pooled), "patch tokens against the pooled token")


def _token_grid(model: Any, n: int) -> tuple[int, int]:
    grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
    h, w = (int(g) for g in grid) if grid else (int(round(n**0.5)),) * 2
    if h * w != n:
        raise NoSpatialMap(f"no spatial map: {n} patch tokens do not fill a {h}x{w} grid")
    return h, w


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
    h, w = _token_grid(visual, tokens.shape[1]) if hasattr(visual, "patch_embed") else _square(tokens.shape[1])
    return FeatureCells(_numpy(tokens.reshape(len(x), h, w, -1)), _numpy(pooled), "patch tokens against the pooled token")


def _square(n: int) -> tuple[int, int]:
    side = int(round(n**0.5))
    if side * side != n:
        raise NoSpatialMap(f"no spatial map: {n} patch tokens do not fill a square grid")
    return side, side


_EXTRACTORS: list[tuple[Callable[[Any], bool], Callable[[Any, Any], FeatureCells]]] = [
    (lambda m: hasattr(m, "forward_features") and hasattr(m, "forward_head"), _timm_cells),
    (lambda m: hasattr(m, "attnpool") and hasattr(m, "layer4"), _clip_resnet_cells),
    (lambda m: all(hasattr(m, a) for a in ("_embeds", "_pool", "transformer", "proj")), _clip_vit_cells),
]


def input_region(backbone: TorchBackbone, size: tuple[int, int]) -> Region:
    """The part of an image (``size`` = width, height) that the backbone's resize and centre crop keep."""
    pp = backbone.cfg.preprocess
    if pp is not None:
        steps: list[tuple[str, Any]] = [("resize", int(pp.size / pp.crop_pct)), ("crop", pp.size)] if pp.resize == "crop" \
            else [("resize", (pp.size, pp.size))]
    else:
        steps = _transform_steps(backbone.transform)
    return _crop_region(steps, size)


def _transform_steps(transform: Any) -> list[tuple[str, Any]]:
    """Resize / CenterCrop steps of a torchvision (v1 or v2) Compose, by class name."""
    steps = []
    for t in getattr(transform, "transforms", []):
        name = type(t).__name__
        if name == "Resize":
            steps.append(("resize", t.size))
        elif name == "CenterCrop":
            steps.append(("crop", t.size))
    return steps


def _crop_region(steps: list[tuple[str, Any]], size: tuple[int, int]) -> Region:
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
