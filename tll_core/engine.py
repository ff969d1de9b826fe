"""The pipeline, one way: dataset → tasks → embeddings → (fitted) matcher → scores → evaluation → export.

:class:`Engine` holds a loaded dataset, the caches and the built backbones, so that every front end
(CLI, studio, benchmarks) runs the same code.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np

from .backbones.lazy import LazyBackbone, record_identity, recorded_identity
from .backbones.registry import DEFAULT_BACKBONE, Backbone, Ensemble, build_key, create_backbone, get_cfg
from .cache import EmbeddingCache, MatcherStore
from .dataset import Dataset, Pair, load_dataset
from .progress import Stage
from .embeddings import DEFAULT_BATCH_SIZE, DEFAULT_WORKERS, EmbeddingStats, Progress, embed_paths_many, view_identity
from .device import resolve_device
from .errors import TLLError, quoted
from .evaluation.gallery import gallery_metrics, matcher_ranks
from .matchers import LearnedProtocol, Matcher, StateMismatch, TrainingCallback, ZeroShot, matcher_part
from .matchers.base import NoGallery
from .analysis import compare
from .evaluation.metrics import check_finite, evaluate_scores
from .register import Part
from .rerank import rerank
from .evaluation.results import ResultRow
from .evaluation.tasks import (DEFAULT_SEED, DEFAULT_VAL_FRACTION, Split, TaskSet, candidate_tasks, hard_foil_tasks, truth_rights,
                    validation_split)

MEMO_ENTRIES = 48  # embedding arrays kept in memory (image lists x backbones x views: a learned method reads 3 lists)
SHOWN_APART = "metric"  # the matcher option a result row shows in its own column, not in the method's label


@dataclass(frozen=True)
class Method:
    """How candidates are scored: a registered matcher with the options chosen for it, a registered re-ranker
    with its options, and test-time flip averaging. Nothing here is particular to one matcher: zero-shot's
    metric and centring are options like any other (:meth:`zero_shot` builds one)."""

    name: str = "zero-shot"
    options: tuple[tuple[str, Any], ...] = ()  # matcher options, e.g. (("temperature", 0.1),) or (("metric", "euclidean"),)
    rerank: str = "none"
    rerank_options: tuple[tuple[str, Any], ...] = ()  # e.g. (("tau", 0.1),)
    flip_tta: bool = False  # average the scores of the images and of their mirrored views

    @classmethod
    def zero_shot(cls, metric: str = "cosine", *, centre: bool = True, **rest: Any) -> Method:
        """Zero-shot with ``metric`` and centring; only what differs from zero-shot's defaults is carried."""
        return cls("zero-shot", with_options("zero-shot", (), metric=metric, centre=centre), **rest)

    @property
    def part(self) -> Part:
        return matcher_part(self.name)

    @property
    def label(self) -> str:
        parts = [self.name, *(f"{k}={v}" for k, v in self.options if k != SHOWN_APART)]
        if self.rerank != "none":
            own = ",".join(f"{k}={v}" for k, v in self.rerank_options)
            parts.append(f"{self.rerank}({own})" if own else self.rerank)
        if self.flip_tta:
            parts.append("flip-tta")
        return "+".join(parts)

    @property
    def shown_metric(self) -> str:
        """What it scores with, as a result row shows it (the metric option, or the matcher's own)."""
        return self.part.metric_label(dict(self.options))

    def matcher(self) -> Matcher:
        return self.part.create(**dict(self.options))

    @property
    def uses_embeddings(self) -> bool:
        """False for a method that scores by the images' names (imported scores): no backbone applies."""
        return self.matcher().uses_embeddings


NO_BACKBONE = "-"  # a result row's backbone for a method that uses none


def backbone_runs(backbones: list[str], methods: list[Method]) -> list[tuple[str, Method]]:
    """Every backbone x method that uses embeddings, then once each (backbone ``-``) every method that does not."""
    return ([(b, m) for b in backbones for m in methods if m.uses_embeddings]
            + [(NO_BACKBONE, m) for m in methods if not m.uses_embeddings])


def with_options(matcher: str, options: tuple[tuple[str, Any], ...], **chosen: Any) -> tuple[tuple[str, Any], ...]:
    """``options`` plus each of ``chosen`` that ``matcher`` has as an option and that differs from its default
    (e.g. a front end's metric and centring, which only some matchers take), sorted by name."""
    part = matcher_part(matcher)
    specs = {spec.name: spec for spec in part.options}
    extra = {k: v for k, v in chosen.items() if k in specs and v is not None and v != specs[k].default}
    return tuple(sorted({**extra, **dict(options)}.items()))


@dataclass
class Engine:
    dataset: Dataset
    cache: EmbeddingCache | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    workers: int = DEFAULT_WORKERS
    weights: dict[str, str] = field(default_factory=dict)  # backbone name → local weights file
    pretrained: bool = True  # False: deep backbones with seeded random weights (tests, benchmarks)
    device: str = "auto"  # auto, cpu, cuda or mps: deep backbones and learned matchers run there
    stats: EmbeddingStats = field(default_factory=EmbeddingStats)
    trained: int = 0  # matchers trained (not taken from the store) by this engine
    _backbones: dict[tuple, Backbone] = field(default_factory=dict, repr=False)
    _memo: OrderedDict = field(default_factory=OrderedDict, repr=False)
    _prefetched: set = field(default_factory=set, repr=False)  # memo keys a prefetch filled and no one read yet
    _store: MatcherStore | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.device = str(resolve_device(self.device))  # an accelerator that is not here fails up front

    @classmethod
    def open(cls, data: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None, **kw: Any) -> Engine:
        cache = EmbeddingCache(cache_dir)
        return cls(load_dataset(data, index_dir=cache.directory), cache, **kw)

    # ------------------------------------------------------------ embeddings

    def backbone(self, name: str) -> Backbone:
        """The built backbone ``name``, kept per table entry (an entry replaced, e.g. an imported file that
        changed, is built again)."""
        key = (name, get_cfg(name))
        if key not in self._backbones:
            self._backbones[key] = self._lazy_or_built(name)
        return self._backbones[key]

    def _how(self, name: str) -> dict[str, Any]:
        """How this engine builds backbone ``name``: its weights file, pretrained or not, the device."""
        return {"weights": self.weights.get(name), "pretrained": self.pretrained, "device": self.device}

    def _lazy_or_built(self, name: str) -> Backbone:
        """The backbone built now, or — where this setup was built before with this cache (its identity
        recorded) — a :class:`LazyBackbone` that builds it only when it must compute a vector."""
        how = self._how(name)
        setup = build_key(name, **how) if self.cache is not None else None
        if setup is None:
            return create_backbone(name, **how)
        records = Path(self.cache.directory)
        identity = recorded_identity(records, setup)
        if identity is not None:
            return LazyBackbone(get_cfg(name), identity, lambda: create_backbone(name, **how),
                                lambda actual: record_identity(records, setup, actual))
        built = create_backbone(name, **how)
        record_identity(records, setup, built.identity)
        return built

    def embed(self, image_ids: tuple[str, ...] | list[str], backbone: str | Ensemble, progress: Progress | None = None,
              view: str = "") -> np.ndarray:
        """Embeddings of images, from memory when no file changed (size, mtime, ctime, inode), else via the disk cache.

        ``backbone`` may name an ensemble, ``"hog+colour-hist"``: each part L2-normalised, concatenated. Its
        parts are computed in one pass over the images (each read and decoded once for all of them).
        """
        ensemble = Ensemble.parse(backbone)
        parts = self.embed_parts(image_ids, ensemble.parts, progress, view)
        if ensemble.single:
            return parts[0]
        return np.concatenate([p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12) for p in parts], axis=1)

    def embed_parts(self, image_ids: tuple[str, ...] | list[str], names: tuple[str, ...], progress: Progress | None = None,
                    view: str = "", remember: bool = True, signature: tuple | None = None) -> list[np.ndarray]:
        """Each named backbone's embeddings of the images: memo hits and imported vectors as they are, the rest
        in one :func:`embed_paths_many` pass; ``progress`` hears one count of images for all of them.
        ``signature``: the images' stat signatures when the caller took them already."""
        ids = tuple(image_ids)
        if signature is None:
            signature = tuple(self.dataset.stat_signature(i) for i in ids)  # ctime too: a rewrite shows
        out: dict[str, np.ndarray] = {}
        for name in dict.fromkeys(names):
            model = self.backbone(name)
            key = (view_identity(model, view), ids)
            hit = self._memo.get(key)
            if hit is not None and hit[0] == signature:
                self._memo.move_to_end(key)
                if key in self._prefetched:  # counted by the prefetch's own pass
                    self._prefetched.discard(key)
                else:
                    self.stats.images += len(ids)
                    self.stats.cached += len(ids)
                out[name] = hit[1]
                continue
            given = model.vectors_of(ids, view)  # given, not computed from pixels (imported)
            if given is not None:
                out[name] = self._remember(key, signature, given)
        computed = [n for n in dict.fromkeys(names) if n not in out]
        if computed:
            models = [self.backbone(n) for n in computed]
            stat_of = dict(zip(ids, signature))
            vectors = embed_paths_many(list(ids), models, self.cache, batch_size=self.batch_size,
                                       workers=self.workers, progress=progress, stats=self.stats, view=view,
                                       read=self.dataset.read_image,
                                       known=lambda image_id: self.dataset.known_sha1(image_id, stat_of[image_id]))
            for name, model, array in zip(computed, models, vectors):
                out[name] = self._remember((view_identity(model, view), ids), signature, array) if remember else array
        elif progress:
            progress(len(ids), len(ids))
        return [out[n] for n in names]

    def _remember(self, key: tuple, signature: tuple, vectors: np.ndarray) -> np.ndarray:
        vectors.flags.writeable = False  # shared between callers
        self._memo[key] = (signature, vectors)
        while len(self._memo) > MEMO_ENTRIES:
            self._prefetched.discard(self._memo.popitem(last=False)[0])
        return vectors

    def embed_groups(self, groups: list[list[str]], backbone: str, progress: Progress | None = None,
                     view: str = "") -> None:
        """Embed several lists of images in one pass and remember each list's vectors, so that ``embed`` of any
        of them is then a memo hit: a method's fit lefts, fit rights and task images are one progress stage."""
        union = list(dict.fromkeys(i for group in groups for i in group))
        stat_of = {i: self.dataset.stat_signature(i) for i in union}  # taken once, for the pass and every list
        ensemble = Ensemble.parse(backbone)
        parts = self.embed_parts(union, ensemble.parts, progress, view, remember=False,
                                 signature=tuple(stat_of[i] for i in union))
        row = {image_id: k for k, image_id in enumerate(union)}
        for group in groups:
            ids = tuple(group)
            signature = tuple(stat_of[i] for i in ids)
            at = [row[i] for i in ids]
            for name, vectors in zip(ensemble.parts, parts):
                key = (view_identity(self.backbone(name), view), ids)
                self._remember(key, signature, vectors[at])
                self._prefetched.add(key)

    def cached(self, image_ids: tuple[str, ...] | list[str], backbone: str, view: str = "") -> bool:
        """Whether every part of ``backbone`` has each image's vector already — given (imported) or in the disk
        cache under the image's content hash — so embedding them computes nothing. A hash the folder's index
        does not hold is taken from the file's bytes (read, not decoded); an unreadable image is not cached."""
        hashes: dict[str, str | None] = {}
        for name in Ensemble.parse(backbone).parts:
            if self._never_built_here(name):
                return False
            model = self.backbone(name)
            identity = view_identity(model, view)
            if model.vectors_of(tuple(image_ids), view) is not None:
                continue
            for image_id in image_ids:
                if image_id not in hashes:
                    hashes[image_id] = self._content_hash(image_id)
                sha1 = hashes[image_id]
                if sha1 is None or self.cache is None or self.cache.get(identity, sha1) is None:
                    return False
        return True

    def computed(self, tasks: TaskSet, backbone: str, method: Method, fit_pairs: tuple[Pair, ...] = (),
                 sample: int | None = None) -> bool:
        """Whether scoring ``tasks`` under ``method`` would embed nothing: the images of each of its passes
        (:meth:`prefetch`'s) :meth:`cached` — with ``sample``, about that many of each pass, spread over it."""
        for view, groups in _passes(tasks, method, fit_pairs):
            images = list(dict.fromkeys(i for group in groups for i in group))
            if sample:
                images = images[:: max(1, len(images) // sample)]
            if not self.cached(images, backbone, view):
                return False
        return True

    def _never_built_here(self, name: str) -> bool:
        """Whether ``name`` is a packaged deep backbone never built with this cache (no identity recorded): none of
        its vectors can be in it — told without building the network, which takes seconds."""
        if (name, get_cfg(name)) in self._backbones or self.cache is None:
            return False
        setup = build_key(name, **self._how(name))
        return setup is not None and recorded_identity(Path(self.cache.directory), setup) is None

    def _content_hash(self, image_id: str) -> str | None:
        try:
            known = self.dataset.known_sha1(image_id, self.dataset.stat_signature(image_id))
            return known if known is not None else self.dataset.read_image(image_id).sha1
        except (TLLError, OSError):  # gone or unreadable since the folder was loaded
            return None

    def task_embeddings(self, tasks: TaskSet, backbone: str, progress: Progress | None = None,
                        view: str = "") -> tuple[np.ndarray, np.ndarray]:
        """Left and right-pool embeddings of a task set, in one extraction pass."""
        vectors = self.embed(list(tasks.left_ids) + list(tasks.right_ids), backbone, progress, view)
        return vectors[: len(tasks.left_ids)], vectors[len(tasks.left_ids) :]

    # ------------------------------------------------------------ tasks

    def validation(self, val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = DEFAULT_SEED,
                   foils: str = "random", foil_backbone: str = DEFAULT_BACKBONE,
                   progress: Progress | None = None) -> Split:
        """Validation tasks; ``foils="hard"``: the 19 foils are the validation rights nearest to each left
        under ``foil_backbone`` (centred cosine) instead of random ones."""
        split = validation_split(self.dataset, val_fraction, seed)
        if foils == "random":
            return split
        if foils != "hard":
            raise TLLError(f"unknown foil mode {quoted(foils)}; choose random or hard")
        left, right = self.task_embeddings(split.tasks, foil_backbone, progress)
        n = len(split.tasks)
        # column k: the truth of left k (the pool itself is in a seeded order)
        similarity = ZeroShot("cosine").score(left, right, np.tile(truth_rights(split.tasks), (n, 1)))
        return replace(split, tasks=hard_foil_tasks(split.validation, similarity, seed))

    def test(self, seed: int = DEFAULT_SEED) -> TaskSet:
        return candidate_tasks(self.dataset, seed)

    def tasks_for(self, split: str = "validation", val_fraction: float = DEFAULT_VAL_FRACTION,
                  seed: int = DEFAULT_SEED) -> tuple[TaskSet, tuple[Pair, ...]]:
        """The task set of a split and the pairs a learned matcher is fitted on for it: validation tasks and
        the rest of the train pairs, or the test tasks and all train pairs."""
        if split == "test":
            return self.test(seed), self.dataset.train_pairs
        if split != "validation":
            raise TLLError(f"unknown split {quoted(split)}; choose validation or test")
        chosen = self.validation(val_fraction, seed)
        return chosen.tasks, chosen.fit

    # ------------------------------------------------------------ matchers

    @property
    def store(self) -> MatcherStore:
        if self._store is None:
            self._store = MatcherStore(self.cache.directory if self.cache is not None else None)
        return self._store

    def fit(self, method: Method, backbone: str, fit_pairs: tuple[Pair, ...], *, tasks: TaskSet | None = None,
            callback: TrainingCallback | None = None, progress: Progress | None = None) -> Matcher:
        """The matcher of ``method`` fitted on ``fit_pairs`` (from the store when trained before). ``tasks``: the
        task set it will score, whose images a transductive matcher also fits on, unlabelled (every caller that
        scores, maps or searches a task set passes it, so they all get the one fitted matcher)."""
        plain = method.matcher()
        if not plain.learns:
            return plain
        matcher = cast(LearnedProtocol, plain)
        matcher.to(self.device)
        left, right, extra, key = self._fit_data(matcher, backbone, fit_pairs, tasks, progress)
        state = self.store.get(key) if self.cache is not None else None  # no cache: train afresh, store nothing
        if state is not None:
            try:
                matcher.load_state(state, dim=left.shape[1])
                return matcher
            except StateMismatch:  # damaged or foreign: train again (and overwrite it)
                pass
        matcher.fit(left, right, callback, **extra)
        self.trained += 1
        if self.cache is not None:
            self.store.put(key, matcher.state())
        return matcher

    def prefetch(self, tasks: TaskSet, backbone: str, method: Method, fit_pairs: tuple[Pair, ...] = (),
                 progress: Progress | None = None) -> None:
        """Embed what scoring ``tasks`` under ``method`` reads — its fit pairs' lefts and rights (if it learns) and
        the task images — in one pass per image view, before any of it is read: one progress stage, each image
        decoded once for every part of the backbone."""
        for view, groups in _passes(tasks, method, fit_pairs):
            self.embed_groups(groups, backbone, progress, view)

    def stages(self, tasks: TaskSet, backbone: str, method: Method, fit_pairs: tuple[Pair, ...] = ()) -> tuple[Stage, ...]:
        """The stages of :meth:`score` in order, for one progress display: each embedding pass (its images, all
        parts of the backbone at once), then training when the method learns (at most its epochs; a matcher
        trained before is taken from the store and skips it)."""
        parts = " + ".join(Ensemble.parse(backbone).parts)
        out = [Stage("embedding", parts + (f", {view} view" if view else ""),
                     len({i for group in groups for i in group})) for view, groups in _passes(tasks, method, fit_pairs)]
        matcher = method.matcher()
        if matcher.learns and fit_pairs:
            out.append(Stage("training", method.name, cast(LearnedProtocol, matcher).max_epochs))
        return tuple(out)

    def matcher_key(self, method: Method, backbone: str, fit_pairs: tuple[Pair, ...],
                    tasks: TaskSet | None = None) -> str | None:
        """The trained-matcher store's key of ``method`` fitted on ``fit_pairs`` (and, transductive, on the
        images of ``tasks``); None: it learns nothing."""
        plain = method.matcher()
        if not plain.learns:
            return None
        return self._fit_data(cast(LearnedProtocol, plain), backbone, fit_pairs, tasks, None)[3]

    def parts_of(self, backbone: str) -> tuple[int, ...]:
        """The sizes of the blocks an (ensemble) backbone's vector is made of, in order: each part's own blocks
        (its pooled stages and head, or its whole vector)."""
        return tuple(n for part in Ensemble.parse(backbone).parts for n in self.backbone(part).cfg.parts)

    def _fit_data(self, matcher: LearnedProtocol, backbone: str, fit_pairs: tuple[Pair, ...], tasks: TaskSet | None,
                  progress: Progress | None) -> tuple[np.ndarray, np.ndarray, dict[str, Any], str]:
        """What a fit of ``matcher`` reads and its store key: the fit pairs' vectors, the extra inputs its
        ``fit_inputs`` ask for — ``unlabelled`` (the task set's lefts and rights in its fit views; none without a
        task set) and ``parts`` (the backbone's block sizes) — and the key, which covers the unlabelled images."""
        left, right = self._fit_vectors(matcher, backbone, fit_pairs, progress)
        inputs = getattr(matcher, "fit_inputs", frozenset())  # a learned matcher that declares none takes the pairs
        extra: dict[str, Any] = {}
        if "unlabelled" in inputs and tasks is not None:
            extra["unlabelled"] = np.concatenate([np.concatenate(self.task_embeddings(tasks, backbone, progress, view))
                                                  for view in matcher.fit_views()])
        if "parts" in inputs:
            extra["parts"] = self.parts_of(backbone)
        key = self._matcher_key(matcher.key_material(), backbone, left, right, extra.get("unlabelled"))
        return left, right, extra, key

    def _fit_vectors(self, matcher: LearnedProtocol, backbone: str, fit_pairs: tuple[Pair, ...],
                     progress: Progress | None) -> tuple[np.ndarray, np.ndarray]:
        """The fit pairs' left and right embeddings, in each of the matcher's fit views."""
        lefts, rights = [p.left_id for p in fit_pairs], [p.right_id for p in fit_pairs]
        views = matcher.fit_views()
        left = np.concatenate([self.embed(lefts, backbone, progress, v) for v in views])
        right = np.concatenate([self.embed(rights, backbone, progress, v) for v in views])
        return left, right

    def _matcher_key(self, material: dict[str, Any], backbone: str, left: np.ndarray, right: np.ndarray,
                     unlabelled: np.ndarray | None = None) -> str:
        """The matcher's own key material (name, register version, config) + fit-data fingerprint (the unlabelled
        images' too, for a transductive fit) + backbone identity: the same key means the same trained state."""
        digest = hashlib.sha1()
        digest.update(np.ascontiguousarray(left).tobytes())
        digest.update(np.ascontiguousarray(right).tobytes())
        if unlabelled is not None:
            digest.update(b"unlabelled")
            digest.update(np.ascontiguousarray(unlabelled).tobytes())
        identity = [view_identity(self.backbone(b), "") for b in Ensemble.parse(backbone)]
        spec = json.dumps({**material, "backbone": identity, "fit": digest.hexdigest()}, sort_keys=True)
        return hashlib.sha1(spec.encode()).hexdigest()

    def score(self, tasks: TaskSet, backbone: str, method: Method | Matcher, fit_pairs: tuple[Pair, ...] = (), *,
              callback: TrainingCallback | None = None, progress: Progress | None = None) -> np.ndarray:
        """``[n, 20]`` scores of a task set under a method (fitting it on ``fit_pairs`` if it learns)."""
        if not isinstance(method, Method):  # a bare matcher, already fitted
            left, right = self.task_embeddings(tasks, backbone, progress)
            return check_finite(method.score(left, right, tasks.candidates), f"{backbone}, {method.name}")
        self.prefetch(tasks, backbone, method, fit_pairs, progress)
        matcher = self.fit(method, backbone, fit_pairs, tasks=tasks, callback=callback, progress=progress)
        scores = matcher.score_tasks(tasks, lambda view: self.task_embeddings(tasks, backbone, progress, view),
                                     method.flip_tta)
        check_finite(scores, f"{backbone}, {method.label}")
        return check_finite(rerank(scores, tasks.candidates, len(tasks.right_ids), method.rerank,
                                   dict(method.rerank_options)), f"{backbone}, {method.label} after {method.rerank}")

    # ------------------------------------------------------------ evaluation and export

    def evaluate(
        self,
        backbones: list[str],
        metrics: list[str] | None = None,
        *,
        methods: list[Method] | None = None,
        val_fraction: float = DEFAULT_VAL_FRACTION,
        seed: int = DEFAULT_SEED,
        centre: bool = True,
        foils: str = "random",
        foil_backbone: str = DEFAULT_BACKBONE,
        fuse: bool = False,
        progress: Progress | None = None,
        callback: TrainingCallback | None = None,
    ) -> list[ResultRow]:
        """Every backbone × method on the validation tasks. ``metrics`` alone: zero-shot with each metric."""
        split = self.validation(val_fraction, seed, foils, foil_backbone, progress)
        methods = methods or [Method.zero_shot(m, centre=centre) for m in (metrics or ["cosine"])]
        return self.evaluate_tasks(split.tasks, backbones, methods, fit_pairs=split.fit, seed=seed, fuse=fuse,
                                   progress=progress, callback=callback)

    def evaluate_tasks(self, tasks: TaskSet, backbones: list[str], methods: list[Method] | list[str], *,
                       fit_pairs: tuple[Pair, ...] = (), seed: int = DEFAULT_SEED, fuse: bool = False,
                       centre: bool = True, progress: Progress | None = None,
                       callback: TrainingCallback | None = None) -> list[ResultRow]:
        """Every backbone × method on a task set with known truth. Strings in ``methods`` are zero-shot metrics."""
        methods = [m if isinstance(m, Method) else Method.zero_shot(m, centre=centre) for m in methods]
        runs = backbone_runs(backbones, methods)
        rows, all_scores = [], []
        for backbone, method in runs:
            started = time.perf_counter()
            scores = self.score(tasks, backbone, method, fit_pairs, callback=callback, progress=progress)
            all_scores.append(scores)
            rows.append(replace(self._row(backbone, method.shown_metric, method.label, scores, tasks, seed),
                                seconds=time.perf_counter() - started))
        if len(rows) > 1:  # each row's top-2 hits against the first row's, on the same lefts
            rows = [rows[0], *(replace(r, versus_first=compare(tasks, all_scores[0], s).p_value) for r, s in
                               zip(rows[1:], all_scores[1:]))]
        if fuse and len(all_scores) > 1:
            rows.append(self._row("+".join(dict.fromkeys(backbones)), "mixed", "fusion(" + ",".join(r.method for r in rows) + ")",
                                  fuse_scores(all_scores), tasks, seed))
        return rows

    def evaluate_gallery(self, backbones: list[str], methods: list[Method], *,
                         val_fraction: float = DEFAULT_VAL_FRACTION, seed: int = DEFAULT_SEED, backend: str = "auto",
                         progress: Progress | None = None, callback: TrainingCallback | None = None) -> list[ResultRow]:
        """Every backbone x method under the full-gallery protocol: each validation left ranked against all
        validation rights (``tll_core/evaluation/gallery.py``); learned matchers fitted on the split's fit part."""
        split = validation_split(self.dataset, val_fraction, seed)
        truth = truth_rights(split.tasks)  # left i's match: its truth's index in the (shuffled) right pool
        rows = []
        runs = backbone_runs(backbones, methods)
        for backbone, method in runs:
            started = time.perf_counter()
            try:
                rows.append(replace(self._gallery_row(split, truth, backbone, method, seed, backend, progress,
                                                       callback), seconds=time.perf_counter() - started))
            except NoGallery as exc:  # a method that scores 20 candidates only: a row that says so
                rows.append(ResultRow.not_run(backbone, method.shown_metric, method.label, str(exc), protocol="gallery"))
        return rows

    def _gallery_row(self, split: Split, truth: np.ndarray, backbone: str, method: Method, seed: int, backend: str,
                     progress: Progress | None, callback: TrainingCallback | None) -> ResultRow:
        """One method's row under the full-gallery protocol (``NoGallery`` where the matcher cannot score one)."""
        matcher = self.fit(method, backbone, split.fit, tasks=split.tasks, callback=callback, progress=progress)
        nothing = np.empty((0, 0), dtype=np.float32)
        embedded = ([self.task_embeddings(split.tasks, backbone, progress, v) for v in matcher.score_views(method.flip_tta)]
                    if matcher.uses_embeddings else [(nothing, nothing)])  # it asks for none: its gallery() says
        ranks = matcher_ranks(matcher, embedded, truth, rerank_name=method.rerank,
                              rerank_options=dict(method.rerank_options), backend=backend,
                              what=f"{backbone}, {method.label}")
        return ResultRow.of(backbone, method.shown_metric, method.label, gallery_metrics(ranks, len(truth), seed=seed))

    @staticmethod
    def _row(backbone: str, metric: str, label: str, scores: np.ndarray, tasks: TaskSet, seed: int) -> ResultRow:
        return ResultRow.of(backbone, metric, label, evaluate_scores(scores, tasks.truth, seed=seed))

    def map_vectors(self, tasks: TaskSet, backbone: str, matcher: Method | None = None,
                    fit_pairs: tuple[Pair, ...] = (), *, progress: Progress | None = None,
                    callback: TrainingCallback | None = None) -> np.ndarray:
        """The task set's lefts then rights as the vectors ``matcher`` scores with (its ``project``: a learned
        matcher's map, fitted on ``fit_pairs``; zero-shot's centring), in its first scored view; None, or a
        method that scores no embeddings: the backbone's own embeddings."""
        if matcher is None or not matcher.uses_embeddings:
            return self.embed(list(tasks.left_ids) + list(tasks.right_ids), backbone, progress)
        fitted = self.fit(matcher, backbone, fit_pairs, tasks=tasks, callback=callback, progress=progress)
        left, right = self.task_embeddings(tasks, backbone, progress, fitted.score_views(False)[0])
        vectors = np.concatenate(fitted.project(left, right))
        return check_finite(vectors, f"{backbone}, {matcher.label} (its map of the embeddings)")

    def embedding_map(self, tasks: TaskSet, backbone: str, method: str = "pca", seed: int = 0,
                      progress: Progress | None = None, *, matcher: Method | None = None,
                      fit_pairs: tuple[Pair, ...] = (), callback: TrainingCallback | None = None) -> np.ndarray:
        """2-D coordinates of the task set's lefts then rights (``pca`` or ``umap``), cached on disk: of the
        space ``matcher`` scores in (:meth:`map_vectors`), or of the backbone's embeddings when None."""
        from .analysis import project_2d, projection_key

        vectors = self.map_vectors(tasks, backbone, matcher, fit_pairs, progress=progress, callback=callback)
        key = projection_key(vectors, method, seed)
        if self.cache is not None:
            cached = self.cache.get("projection", key)
            if cached is not None and cached.size == 2 * len(vectors):
                return cached.reshape(-1, 2)
        coords = project_2d(vectors, method, seed=seed)
        if self.cache is not None:
            self.cache.put_many("projection", {key: coords.ravel()})
        return coords

    def submit(self, backbone: str | Ensemble, out: str | os.PathLike[str], *, method: Method | None = None,
               seed: int = DEFAULT_SEED, progress: Progress | None = None,
               callback: TrainingCallback | None = None) -> Path:
        """Score the test tasks under ``method`` (zero-shot cosine when none; a learned matcher is fitted on *all*
        train pairs) and write the Kaggle CSV."""
        from .submission import check_output_path, write_submission

        check_output_path(out, self.dataset)  # before the scoring: never over the data's own files
        method = method or Method.zero_shot()
        tasks = self.test(seed)
        scores = self.score(tasks, backbone, method, self.dataset.train_pairs, callback=callback, progress=progress)
        return write_submission(out, tasks, scores)


def fuse_scores(scores: list[np.ndarray]) -> np.ndarray:
    """Score fusion: z-score each method's 20 scores per left, then average the methods."""
    z = [(s - s.mean(axis=1, keepdims=True)) / np.maximum(s.std(axis=1, keepdims=True), 1e-12) for s in scores]
    return np.mean(z, axis=0).astype(np.float32)


def _passes(tasks: TaskSet, method: Method, fit_pairs: tuple[Pair, ...]) -> list[tuple[str, list[list[str]]]]:
    """The embedding passes scoring ``tasks`` under ``method`` takes: per image view, the image lists it reads
    (fit lefts, fit rights, the tasks' lefts + rights)."""
    matcher = method.matcher()
    if not matcher.uses_embeddings:
        return []
    fit_views = matcher.fit_views() if matcher.learns and fit_pairs else ()
    score_views = matcher.score_views(method.flip_tta)
    passes = []
    for view in dict.fromkeys((*fit_views, *score_views)):
        groups = []
        if view in fit_views:
            groups += [[p.left_id for p in fit_pairs], [p.right_id for p in fit_pairs]]
        if view in score_views:
            groups.append(list(tasks.left_ids) + list(tasks.right_ids))
        passes.append((view, groups))
    return passes
