"""The matchers, entered in the register (``tll_core.register``) by their modules; one front door: :func:`create_matcher`.

Adding a matcher: a module here whose class carries ``@register("matcher", name, cfg=…, metric=…)``, and its
import below (the register entry). The CLI, the studio and option checks follow from the register.
"""
from __future__ import annotations

from typing import Any

from ..register import REGISTER, Part
from . import zero_shot  # noqa: F401, I001  (each module enters its matchers in the register, in listing order)
from . import learned  # noqa: F401
from .base import EpochReport, LearnedProtocol, Matcher, TrainingCallback, TrainingCurve
from .learned import (Adaptation, AdaptationCfg, LearnedMatcher, PairClassifier, PairClassifierCfg, Siamese,
                      SiameseCfg, StateMismatch, TrainingDiverged)
from .zero_shot import ZeroShot


def matcher_part(name: str) -> Part:
    """The register entry of matcher ``name`` (one line naming the choices when there is none)."""
    return REGISTER.get("matcher", name)


def learned_matchers() -> tuple[str, ...]:
    """The registered matchers that learn (have something to fit), in register order."""
    return tuple(part.name for part in REGISTER.parts("matcher") if part.create().learns)


def create_matcher(name: str, **options: Any) -> Matcher:
    """The matcher ``name`` with its options checked against its config (one line on a bad one)."""
    return matcher_part(name).create(**options)


__all__ = ["Adaptation", "AdaptationCfg", "EpochReport", "LearnedMatcher", "LearnedProtocol", "Matcher",
           "PairClassifier", "PairClassifierCfg", "Siamese", "SiameseCfg", "StateMismatch", "TrainingCallback",
           "TrainingCurve", "TrainingDiverged", "ZeroShot", "create_matcher", "learned_matchers", "matcher_part"]
