"""Make ``import timm`` / ``import open_clip`` work when torchvision's C++ ops cannot load.

The registry's ``torchvision==0.28.0`` (the only release that accepts ``torch==2.13.0``) is a CUDA
build. On a CPU-only torch its ``_C`` extension fails to load, and ``import torchvision`` then dies in
``_meta_registrations`` with ``RuntimeError: operator torchvision::nms does not exist`` because it
registers fake kernels for ops whose schemas were never defined. timm and open_clip import
torchvision, so they die with it.

:func:`ensure_torchvision_ops` defines the missing schemas (``nms``, ``qnms``) with plain-torch
kernels *before* torchvision is imported. Where the real extension loads, it does nothing.
Nothing in this project calls these ops; they only have to exist.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

_LIB: torch.library.Library | None = None  # kept alive: a Library deregisters its ops when collected


def _op_exists(qualname: str) -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw(qualname, "")
        return True
    except RuntimeError:
        return False


def _load_real_extension() -> bool:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    for candidate in Path(spec.submodule_search_locations[0]).glob("_C*.so"):
        try:
            torch.ops.load_library(str(candidate))
            return True
        except (OSError, RuntimeError):
            return False
    return False


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression in plain torch; the same contract as ``torchvision.ops.nms``."""
    order = scores.argsort(descending=True)
    keep: list[int] = []
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        w = (torch.minimum(x2[i], x2) - torch.maximum(x1[i], x1)).clamp(min=0)
        h = (torch.minimum(y2[i], y2) - torch.maximum(y1[i], y1)).clamp(min=0)
        inter = w * h
        iou = inter / (areas[i] + areas - inter).clamp(min=1e-12)
        suppressed |= iou > iou_threshold
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def _qnms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    return nms(boxes.dequantize(), scores.dequantize(), iou_threshold)


def ensure_torchvision_ops() -> bool:
    """Register fallback schemas when torchvision's own ops are missing. Returns True if it did."""
    global _LIB
    if _LIB is not None or _op_exists("torchvision::nms") or _load_real_extension():
        return False
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor qdets, Tensor qscores, float iou_threshold) -> Tensor")
    lib.impl("nms", nms, "CompositeExplicitAutograd")
    lib.impl("qnms", _qnms, "CompositeExplicitAutograd")
    _LIB = lib
    return True
