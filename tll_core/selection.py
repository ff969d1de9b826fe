"""What the studio is looking at: data-independent choices, round-tripped through URL query params, and the
selections and figures its pages lay out (the leaderboard's, the comparison's choices)."""
from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from .backbones.registry import BACKBONES, ENSEMBLE_SEP, Ensemble
from .engine import NO_BACKBONE, Engine, Method, backbone_runs, with_options
from .errors import TLLError, quoted
from .numbers import parse_decimal, parse_whole
from .matchers import ZeroShot, matcher_part
from .evaluation.metrics import metric_names
from .recipes import Recipe, default_recipe
from .progress import Reporter
from .register import REGISTER, OptionSpec, Part
from .evaluation.results import ResultRow
from .evaluation.tasks import DEFAULT_SEED, DEFAULT_VAL_FRACTION, SEED_LIMIT
from .imported import entry, imported_names
from .runs import Evaluated, Run, record_rows

SPLITS = ("validation", "test")


def default_options(method: str) -> tuple[tuple[str, Any], ...]:
    """A method's options in the default recipe (e.g. the adaptation's hidden size); () for any other method."""
    recipe = _default_recipe()
    return recipe.method.options if method == recipe.method.name else ()


@functools.cache
def _default_recipe() -> Recipe:
    """The best recipe installed here (pretrained weights, hashed), else the weight-free one: found once per
    process, at the first selection made — never at import (importing a module does no work)."""
    return default_recipe()


def _from_default_recipe(read):  # -> a dataclass field whose default is read from the default recipe
    return field(default_factory=lambda: read(_default_recipe()))


@dataclass(frozen=True)
class Selection:
    backbone: str = _from_default_recipe(lambda r: r.backbone)
    method: str = _from_default_recipe(lambda r: r.method.name)
    metric: str = "cosine"
    rerank: str = _from_default_recipe(lambda r: r.method.rerank)
    options: tuple[tuple[str, Any], ...] = _from_default_recipe(lambda r: r.method.options)
    split: str = "validation"
    val_fraction: float = DEFAULT_VAL_FRACTION
    seed: int = DEFAULT_SEED
    rerank_options: tuple[tuple[str, Any], ...] = _from_default_recipe(lambda r: r.method.rerank_options)
    centre: bool = True  # zero-shot: subtract the scored images' mean embedding first (the CLI's --no-centre)

    def to_method(self) -> Method:
        """The method: the sidebar's metric and centring join the options where the matcher takes them."""
        options = with_options(self.method, self.options, metric=self.metric, centre=self.centre)
        return Method(self.method, options, self.rerank, self.rerank_options)

    @property
    def uses_metric(self) -> bool:
        """Whether the method scores with the selection's metric (zero-shot) rather than its own (learned)."""
        return matcher_part(self.method).metric is None

    @property
    def uses_backbone(self) -> bool:
        """Whether the method scores the backbone's embeddings (False: imported scores, read by the lefts' names)."""
        return _uses_embeddings(matcher_part(self.method))

    @property
    def label(self) -> str:
        """``backbone · method label · metric``: the label names every option (``zero-shot+centre=False``); a
        method that uses no backbone (imported scores) is ``method label · own``, whatever the backbone."""
        method = self.to_method()
        if not self.uses_backbone:
            return f"{method.label} · {method.shown_metric}"
        return f"{self.backbone} · {method.label}" + (f" · {method.shown_metric}" if self.uses_metric else "")

    @property
    def known(self) -> bool:
        """Whether its method and backbone are registered now (an imported file taken away takes its part)."""
        return ("matcher", self.method) in REGISTER and _valid_backbone(self.backbone)

    def with_known_parts(self) -> Selection:
        """Itself, with the default method (and its options) or backbone in place of one no longer registered."""
        default = Selection()
        sel = self if ("matcher", self.method) in REGISTER else replace(
            self, method=default.method, options=default.options)
        return sel if _valid_backbone(sel.backbone) else replace(sel, backbone=default.backbone)

    @property
    def sources(self) -> tuple[tuple[str, str], ...]:
        """The imported files its method and backbone are read from, as entered (file, content digest): part of
        every cached answer's key, so a replaced file is scored again and an unchanged one is not."""
        if self.uses_backbone:
            return backbone_sources(self.backbone)
        found = entry("matcher", self.method)
        return () if found is None else (found,)

    def applies(self, name: str) -> bool:
        """Whether field ``name`` plays a part in what this selection scores: the metric and centring only
        for a matcher that takes them (zero-shot; a learned one has its own), re-ranking options only with a
        re-ranker, the validation fraction only on the validation split."""
        if name in SIDEBAR_OPTIONS:
            return any(spec.name == name for spec in matcher_part(self.method).options)
        if name == "rerank_options":
            return self.rerank != "none"
        if name == "val_fraction":
            return self.split == "validation"
        return True

    def to_query(self, *, every: bool = False) -> dict[str, str]:
        """Only what differs from the defaults and applies to the selection (:meth:`applies`: a metric left
        over from zero-shot is not carried beside a learned matcher), as strings (a short, shareable URL);
        ``every``: every field (a stored run, read where the defaults may differ)."""
        default = Selection()
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if every or (value != getattr(default, f.name) and self.applies(f.name)):
                out[f.name] = (json.dumps([list(o) for o in value]) if f.name in _OPTION_FIELDS
                               else json.dumps(value) if isinstance(value, bool) else str(value))
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
        if get("metric") in metric_names():
            sel = replace(sel, metric=get("metric"))
        if ("rerank", get("rerank")) in REGISTER:
            sel = replace(sel, rerank=get("rerank"))
        if get("split") in SPLITS:
            sel = replace(sel, split=get("split"))
        try:
            fraction = parse_decimal(get("val_fraction") or "x")
            if 0 < fraction <= 1:
                sel = replace(sel, val_fraction=fraction)
        except ValueError:
            pass
        try:
            seed = parse_whole(get("seed") or "x")
            if 0 <= seed < SEED_LIMIT:
                sel = replace(sel, seed=seed)
        except ValueError:
            pass
        if get("centre") in ("true", "false"):
            sel = replace(sel, centre=get("centre") == "true")
        options = _options(get("options"), sel.method)
        recipe = _default_recipe()
        rerank_default = recipe.method.rerank_options if sel.rerank == recipe.method.rerank else ()
        rerank_options = _part_options(get("rerank_options"), REGISTER.get("rerank", sel.rerank), rerank_default)
        return replace(sel, options=options, rerank_options=rerank_options)


_OPTION_FIELDS = ("options", "rerank_options")  # carried in the URL as JSON lists of [name, value]


SIDEBAR_OPTIONS = ("metric", "centre")  # matcher options the sidebar sets with its own widgets (Selection's fields)


def settable_options(method: str) -> tuple[OptionSpec, ...]:
    """The options of a method that a selection carries in ``options``: all but those the sidebar sets
    itself (:data:`SIDEBAR_OPTIONS`, the selection's ``metric`` and ``centre``)."""
    return tuple(spec for spec in matcher_part(method).options if spec.name not in SIDEBAR_OPTIONS)

ZERO_SHOT = ZeroShot.name


def backbone_sources(backbone: str) -> tuple[tuple[str, str], ...]:
    """The imported embeddings files the parts of ``backbone`` are read from (file, content digest)."""
    found = (entry("backbone", part) for part in Ensemble.parse(backbone).parts)
    return tuple(f for f in found if f is not None)


def zero_shot_baseline(sel: Selection, backbone: str, metric: str = "cosine") -> Selection:
    """Zero-shot ``metric`` on ``backbone``, no re-ranking, with the rest of ``sel`` (split, fraction, seed)."""
    return replace(sel, backbone=backbone, method=ZERO_SHOT, metric=metric, rerank="none", options=(), rerank_options=())


def imported_selections(sel: Selection) -> list[Selection]:
    """Your own models on ``sel``'s split: each imported scores method as it is (no re-ranking; the backbone
    plays no part), then zero-shot cosine on each imported backbone."""
    scores = [replace(sel, method=name, options=(), rerank="none", rerank_options=())
              for name in imported_names("matcher")]
    return [*scores, *(zero_shot_baseline(sel, name) for name in imported_names("backbone"))]


def leaderboard_selections(sel: Selection) -> list[Selection]:
    """What the overview's leaderboard scores on the validation split: the selection, then zero-shot cosine on
    each backbone that needs no weights, then your own models (:func:`imported_selections`; every label once)."""
    sel = replace(sel, split="validation")
    baselines = [zero_shot_baseline(sel, name) for name, cfg in BACKBONES.items() if not cfg.needs_weights]
    return _unique([sel, *baselines, *imported_selections(sel)])


def leaderboard_now_and_later(sel: Selection, kept: Callable[[Selection], bool]) -> tuple[list[Selection], list[Selection]]:
    """The overview's leaderboard split in two: what it scores at once — the selection, your own models (their
    scores or vectors are given: no pixels to embed) and whatever ``kept`` says is computed already — and what
    waits to be asked for (the weight-free baselines: each a pass over every validation image)."""
    chosen = leaderboard_selections(sel)
    own = {c.label for c in imported_selections(sel)}
    now = [c for k, c in enumerate(chosen) if k == 0 or c.label in own or kept(c)]
    return now, [c for c in chosen if c not in now]


def comparison_choices(sel: Selection) -> list[Selection]:
    """What the compare page offers, the selection first, all on the validation split: the selection with
    each other re-ranker (none included); zero-shot with each metric on its backbone; zero-shot cosine on each
    weight-free backbone; each other matcher with its default options. From the register: a new part shows
    up here with no studio edit."""
    sel = replace(sel, split="validation")
    reranked = [replace(sel, rerank=name, rerank_options=()) for name in REGISTER.names("rerank") if name != sel.rerank]
    metrics = [zero_shot_baseline(sel, sel.backbone, metric) for metric in metric_names()]
    backbones = [zero_shot_baseline(sel, name) for name, cfg in BACKBONES.items() if not cfg.needs_weights]
    matchers = [replace(sel, method=name, options=default_options(name))
                for name in REGISTER.names("matcher") if name not in (sel.method, ZERO_SHOT)]
    return _unique([sel, *reranked, *metrics, *backbones, *matchers, *imported_selections(sel)])


def chosen_method(sel: Selection, backbone: str, method: str, metric: str, rerank: str) -> Selection:
    """Any backbone x matcher x metric x re-ranker on ``sel``'s validation split, each part with its default
    options (what the compare page's "add a method" builds); an unknown part is a one-line error."""
    for kind, name in (("matcher", method), ("rerank", rerank)):
        if (kind, name) not in REGISTER:
            raise TLLError(f"unknown {kind} {quoted(name)}; choose from {', '.join(REGISTER.names(kind))}")
    if not _valid_backbone(backbone):
        raise TLLError(f"unknown backbone {quoted(backbone)}")
    if metric not in metric_names():
        raise TLLError(f"unknown metric {quoted(metric)}; choose from {', '.join(metric_names())}")
    return replace(sel, split="validation", backbone=backbone, method=method, metric=metric, rerank=rerank,
                   options=default_options(method), rerank_options=())


@functools.lru_cache(maxsize=256)
def _uses_embeddings(part: Part) -> bool:
    """Whether a matcher part scores embeddings (asked of it once per entry: building a learned one costs ~2 ms)."""
    return bool(part.create().uses_embeddings)


def _unique(selections: list[Selection]) -> list[Selection]:
    """The selections in order, the first of each label only."""
    first: dict[str, Selection] = {}
    for sel in selections:
        first.setdefault(sel.label, sel)
    return list(first.values())


def leaderboard_rows(eng: Engine, sel: Selection, bar: Reporter | None = None) -> tuple[ResultRow, ResultRow]:
    """The selection's figures on its validation split under both protocols: the 20-candidate tasks row
    (top-1/2/5, MRR, mean rank, top-2 CI) and the full-gallery row (recall@1/5/10, median rank, MRR).
    A learned matcher is fitted once, on the split's fit part: the gallery takes it back from the engine's
    matcher store (an engine without a cache has no store, and fits it again). ``bar`` is told of
    the embedding and training it takes. Both rows are recorded as a run of the folder (``tll_core/runs.py``)."""
    tasks, fit = eng.tasks_for("validation", sel.val_fraction, sel.seed)
    method = sel.to_method()
    hooks = {"progress": bar.images, "callback": bar.epoch} if bar is not None else {}
    if bar is not None:
        bar.expect(eng.stages(tasks, sel.backbone, method, fit))
    [on_tasks] = eng.evaluate_tasks(tasks, [sel.backbone], [method], fit_pairs=fit, seed=sel.seed, **hooks)
    [on_gallery] = eng.evaluate_gallery([sel.backbone], [method], val_fraction=sel.val_fraction, seed=sel.seed,
                                        **hooks)
    record_rows(eng, [evaluated(replace(sel, split="validation"), (on_tasks, on_gallery))])
    return on_tasks, on_gallery


def preview_of(sel: Selection) -> Selection | None:
    """The faster selection to show first while ``sel`` is computed: for the default selection (on any split),
    the default recipe's preview recipe (``Recipe.preview``); None for any other selection."""
    preview = _default_recipe().preview
    if preview is None or replace(sel, split=Selection().split) != Selection():
        return None
    method = preview.method
    return replace(sel, backbone=preview.backbone, method=method.name, rerank=method.rerank, options=method.options,
                   rerank_options=method.rerank_options)


PREVIEW_SAMPLE = 64  # images looked up to tell a computed selection from one that is not (one cache lookup each)


def preview_while_computing(eng: Engine, sel: Selection) -> Selection | None:
    """:func:`preview_of` ``sel`` where the images it reads are not embedded yet with its backbone (a sample of
    them, spread over its fit pairs and tasks, looked up in the cache), else None: computing it costs little."""
    preview = preview_of(sel)
    if preview is None:
        return None
    tasks, fit = eng.tasks_for(sel.split, sel.val_fraction, sel.seed)
    return None if eng.computed(tasks, sel.backbone, sel.to_method(), fit, sample=PREVIEW_SAMPLE) else preview


MAX_LINK_PARTS = 8  # an ensemble in a link: more parts would have the studio embed every image that many times


def _valid_backbone(name: str | None) -> bool:
    if not name or name.count(ENSEMBLE_SEP) >= MAX_LINK_PARTS:  # counted before anything is split
        return False
    return Ensemble.known(name)


def _options(text: str | None, method: str) -> tuple[tuple[str, Any], ...]:
    return _part_options(text, matcher_part(method), default_options(method), settable_options(method))


def _part_options(text: str | None, part: Part, fallback: tuple[tuple[str, Any], ...],
                  settable: tuple[OptionSpec, ...] | None = None) -> tuple[tuple[str, Any], ...]:
    """A part's options from the URL's JSON ``[[name, value], …]``, checked; ``fallback`` when malformed or invalid."""
    allowed = {spec.name for spec in (part.options if settable is None else settable)}
    if text is None:
        return fallback
    if not text or not allowed:
        return ()
    try:
        pairs = json.loads(text)
        options = {str(k): v for k, v in pairs if k in allowed and isinstance(v, (int, float, str, bool))}
        return tuple(sorted(part.checked_options(options).items()))
    except (ValueError, TypeError, RecursionError, TLLError):  # malformed (or nested past Python's stack), or a
        # value of the wrong type or out of range
        return fallback


# ------------------------------------------------------------ runs that persist (tll_core/runs.py)


def evaluated(sel: Selection, rows: Sequence[ResultRow]) -> Evaluated:
    """``sel``'s rows as a run records them."""
    return Evaluated(sel.to_query(every=True), sel.label, sel.backbone, sel.to_method(), sel.uses_backbone,
                     sel.sources, sel.val_fraction, sel.seed, tuple(rows))


def selection_of(backbone: str, method: Method, val_fraction: float, seed: int) -> Selection | None:
    """The validation selection that scores as ``backbone`` x ``method`` does; None when a selection cannot say
    it (flip averaging)."""
    own = dict(method.options)
    chosen = {name: own.pop(name) for name in SIDEBAR_OPTIONS if name in own}
    sel = Selection(backbone=Selection().backbone if backbone == NO_BACKBONE else backbone, method=method.name,
                    metric=chosen.get("metric", "cosine"), rerank=method.rerank, options=tuple(sorted(own.items())),
                    split="validation", val_fraction=val_fraction, seed=seed,
                    rerank_options=tuple(sorted(method.rerank_options)), centre=chosen.get("centre", True))
    return sel if sel.to_method() == method else None


def run_selection(run: Run) -> Selection | None:
    """The selection a run reopens as; None when it cannot be made here as it was (a part taken away)."""
    sel = Selection.from_query(run.query)
    return sel if sel.to_query(every=True) == run.query else None


def record_evaluation(eng: Engine, backbones: list[str], methods: list[Method], rows: Sequence[ResultRow],
                      val_fraction: float, seed: int, cache_dir: str | os.PathLike[str] | None = None) -> int:
    """Record the rows of ``Engine.evaluate``/``evaluate_gallery`` on random foils as runs: row i is run i of
    ``backbone_runs`` (a fusion row after them is not a selection, and is not recorded)."""
    chosen = [(selection_of(b, m, val_fraction, seed), row) for (b, m), row in zip(backbone_runs(backbones, methods), rows)]
    return record_rows(eng, [evaluated(sel, [row]) for sel, row in chosen if sel is not None], cache_dir)
