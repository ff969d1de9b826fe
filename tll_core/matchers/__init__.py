"""One registry of matchers, one front door: :func:`create_matcher`."""
from __future__ import annotations

import dataclasses
from typing import Any, get_type_hints

from ..errors import TLLError
from .base import EpochReport, Matcher, TrainingCallback, TrainingCurve
from .learned import (Adaptation, AdaptationCfg, LearnedMatcher, PairClassifier, PairClassifierCfg, Siamese,
                      SiameseCfg, StateMismatch, TrainingDiverged, coerced)
from .zero_shot import ZeroShot

# name → (matcher class, config dataclass or None when the matcher is its own config)
MATCHERS: dict[str, tuple[type, type | None]] = {
    "zero-shot": (ZeroShot, None),
    "adaptation": (Adaptation, AdaptationCfg),
    "siamese": (Siamese, SiameseCfg),
    "pair-classifier": (PairClassifier, PairClassifierCfg),
}


def matcher_options(name: str) -> dict[str, Any]:
    """The settable options of a matcher and their defaults."""
    cls, cfg = _lookup(name)
    fields = dataclasses.fields(cfg or cls)
    return {f.name: f.default for f in fields if f.name != "name"}


def checked_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` for matcher ``name``, whole floats made ints, each checked against its config field's type
    and range (``epochs=2.5``, ``temperature=0``, ``holdout=2`` are errors, one line naming the option)."""
    cls, cfg = _lookup(name)
    allowed = matcher_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TLLError(f"{name}: unknown option(s) {', '.join(unknown)}; settable: {', '.join(allowed)}")
    if cfg is None:
        return dict(options)
    hints = get_type_hints(cfg)
    out = {k: coerced(hints[k], v) for k, v in options.items()}
    cfg(**out)  # raises on a wrong type or range
    return out


def create_matcher(name: str, **options: Any) -> Matcher:
    cls, cfg = _lookup(name)
    options = checked_options(name, options)
    return cls(**options) if cfg is None else cls(cfg(**options))


def _lookup(name: str) -> tuple[type, type | None]:
    try:
        return MATCHERS[name]
    except KeyError:
        raise TLLError(f"unknown method {name!r}; choose from: {', '.join(MATCHERS)}") from None


__all__ = ["MATCHERS", "Adaptation", "AdaptationCfg", "EpochReport", "LearnedMatcher", "Matcher", "PairClassifier",
           "PairClassifierCfg", "Siamese", "SiameseCfg", "StateMismatch", "TrainingCallback", "TrainingDiverged", "TrainingCurve", "ZeroShot",
           "checked_options", "create_matcher", "matcher_options"]
