"""What the studio is looking at: data-independent choices, round-tripped through URL query params."""
from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from typing import Any

from .backbones.registry import REGISTRY
from .engine import ENSEMBLE_SEP, Method
from .errors import TLLError
from .matchers import matcher_part
from .metrics import METRICS
from .recipes import default_recipe
from .register import REGISTER
from .tasks import DEFAULT_SEED, DEFAULT_VAL_FRACTION

SPLITS = ("validation", "test")
_DEFAULT = default_recipe()  # the best recipe installed here (pretrained weights), else the weight-free one


def default_options(method: str) -> tuple[tuple[str, Any], ...]:
    """A method's options in the default recipe (e.g. the adaptation's hidden size); () for any other method."""
    return _DEFAULT.method.options if method == _DEFAULT.method.name else ()


@dataclass(frozen=True)
class Selection:
    backbone: str = _DEFAULT.backbone
    method: str = _DEFAULT.method.name
    metric: str = "cosine"
    rerank: str = _DEFAULT.method.rerank
    options: tuple[tuple[str, Any], ...] = _DEFAULT.method.options
    split: str = "validation"
    val_fraction: float = DEFAULT_VAL_FRACTION
    seed: int = DEFAULT_SEED

    def to_method(self) -> Method:
        return Method(self.method, self.metric, self.options, self.rerank)

    @property
    def uses_metric(self) -> bool:
        """Whether the method scores with the selection's metric (zero-shot) rather than its own (learned)."""
        return matcher_part(self.method).metric is None

    @property
    def label(self) -> str:
        return f"{self.backbone} · {self.to_method().label}" + (f" · {self.metric}" if self.uses_metric else "")

    def to_query(self) -> dict[str, str]:
        """Only what differs from the defaults, as strings (a short, shareable URL)."""
        default = Selection()
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value != getattr(default, f.name):
                out[f.name] = json.dumps([list(o) for o in value]) if f.name == "options" else str(value)
        return out

    @classmethod
    def from_query(cls, params: dict[str, str]) -> Selection:
        """Parse query params; anything unknown or malformed falls back to its default (never raises)."""
        sel = cls()
        get = lambda k: params.get(k)  # noqa: E731
        if _valid_backbone(get("backbone")):
            sel = replace(sel, backbone=get("backbone"))
        if ("matcher", get("method")) in REGISTER:
            sel = replace(sel, method=get("method"))
        if get("metric") in METRICS:
            sel = replace(sel, metric=get("metric"))
        if ("rerank", get("rerank")) in REGISTER:
            sel = replace(sel, rerank=get("rerank"))
        if get("split") in SPLITS:
            sel = replace(sel, split=get("split"))
        try:
            fraction = float(get("val_fraction") or "x")
            if 0 < fraction <= 1:
                sel = replace(sel, val_fraction=fraction)
        except ValueError:
            pass
        if (get("seed") or "").isdigit():
            sel = replace(sel, seed=int(get("seed")))
        options = _options(get("options"), sel.method) if get("options") is not None else default_options(sel.method)
        return replace(sel, options=options)


def _valid_backbone(name: str | None) -> bool:
    return bool(name) and all(part in REGISTRY for part in name.split(ENSEMBLE_SEP))


def _options(text: str | None, method: str) -> tuple[tuple[str, Any], ...]:
    part = matcher_part(method)
    allowed = {spec.name for spec in part.options} - {"metric", "centre"}  # those two are the selection's own fields
    if not text or not allowed:
        return ()
    try:
        pairs = json.loads(text)
        options = {str(k): v for k, v in pairs if k in allowed and isinstance(v, (int, float, str, bool))}
        return tuple(sorted(part.checked_options(options).items()))
    except (ValueError, TypeError, TLLError):  # malformed, or a value of the wrong type or out of range
        return default_options(method)
