"""Search by example: the nearest lefts and rights of one image under a backbone and a (fitted) matcher.

The query is an image of the folder (its id) or an uploaded image (its bytes, read in memory and checked as
every image is: size, format, decompression-bomb limits). It is scored by the matcher itself, as the
full-gallery protocol scores (``Matcher.gallery``, ``tll_core/evaluation/gallery.py``):

- its nearest **rights**: the query plays a left, scored against every right of the split's pool (its
  row of the gallery scores);
- its nearest **lefts**: the query plays a right, every left of the split scored against it (its column:
  ``Matcher.score`` with the query as each left's one candidate, the same scores ``gallery`` gives).

A query that is not already in the pool it plays in (an upload, a left searched among lefts) joins that
pool for the search, so zero-shot centring covers every image scored, as on the split. An image never
matches itself. Zero-shot cosine with one view is an inner-product search that faiss answers for pools
over the gallery protocol's ``FAISS_THRESHOLD`` (``auto``); anything else is exact. Re-ranking orders a
whole task set, not one query: scores here are the matcher's own, before it.

An upload is embedded through the backbone's own path (``embed_paths``) with no cache: nothing of it is
written, so it can never be taken for a folder image.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backbones.registry import Ensemble
from .embeddings import Progress, embed_paths
from .engine import Engine, Method
from .errors import DataError, TLLError, quoted, shown
from .evaluation.gallery import import_faiss, resolve_backend
from .evaluation.metrics import check_finite
from .evaluation.tasks import TaskSet
from .images import MAX_IMAGE_BYTES, ImageBytes, check_bytes, decode_rgb
from .matchers import Matcher, TrainingCallback
from .selection import Selection

SIDES = ("left", "right")  # what is searched for: the split's lefts, or its right pool
DEFAULT_K = 10
UPLOAD_PREFIX = "upload:"  # an upload's shown name: never an image id of the folder (ids are relative paths)


@dataclass(frozen=True)
class Query:
    """What a search starts from: a folder image (``image_id``) or an upload's embedding per scored view."""

    name: str
    image_id: str | None = None
    vectors: tuple[tuple[str, np.ndarray], ...] = ()  # (view, [d] vector) of an upload

    @classmethod
    def of_image(cls, image_id: str) -> Query:
        return cls(image_id, image_id=image_id)


@dataclass(frozen=True)
class Neighbour:
    """One image found: where it ranks, its score, and the lefts whose Ranked view shows it (a left: itself;
    a right: the lefts whose 20 candidates hold it, the one whose truth it is first)."""

    image_id: str
    name: str
    side: str
    rank: int
    score: float
    lefts: tuple[str, ...]


@dataclass(frozen=True)
class Nearest:
    """The ``k`` nearest of one side to a query, best first, with how they were found and what a score means."""

    query: str
    side: str
    neighbours: tuple[Neighbour, ...]
    searched: int  # the images ranked (the pool, the query itself left out)
    backend: str  # exact or faiss
    meaning: str


# ---------------------------------------------------------------- uploads


def read_upload(name: str, data: bytes) -> ImageBytes:
    """An uploaded file's bytes as an image the engine decodes, held in memory only: checked, then decoded once
    (so that a damaged file is told now, not when it is embedded). A file too large, empty, of another format,
    corrupt or a decompression bomb is a one-line ``DataError`` naming it."""
    shown_name = f"{UPLOAD_PREFIX}{shown(Path(name or 'image').name)}"
    if len(data) > MAX_IMAGE_BYTES:
        raise DataError(f"{shown_name}: {len(data):,} bytes, over the {MAX_IMAGE_BYTES:,}-byte limit")
    image = ImageBytes(Path(shown_name), bytes(data))
    problem = check_bytes(image, shown_name)
    if problem:
        raise DataError(problem)
    decode_rgb(image)
    return image


def embed_upload(eng: Engine, image: ImageBytes, backbone: str, view: str = "") -> np.ndarray:
    """An uploaded image's ``[d]`` embedding through each backbone part's own path, as ``Engine.embed`` makes a
    folder image's (an ensemble: each part L2-normalised, concatenated); no cache is read or written."""
    parts = []
    for name in Ensemble.parse(backbone):
        model = eng.backbone(name)
        if model.vectors_of((), view) is not None:
            raise TLLError(f"backbone {quoted(name)} is imported embeddings, given by image name: an uploaded "
                           "image has none; search from an image of the folder")
        parts.append(embed_paths([image], model, None, batch_size=1, workers=1, stats=eng.stats, view=view,
                                 read=lambda item: item)[0])
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([p / max(float(np.linalg.norm(p)), 1e-12) for p in parts]).astype(np.float32)


def upload_query(eng: Engine, sel: Selection, image: ImageBytes) -> Query:
    """An upload as a query: embedded under every view the selection's matcher scores."""
    method = sel.to_method()
    views = method.matcher().score_views(method.flip_tta)
    return Query(str(image.path), vectors=tuple((v, embed_upload(eng, image, sel.backbone, v)) for v in views))


# ---------------------------------------------------------------- the search


@dataclass(frozen=True)
class Searcher:
    """A split's lefts and rights embedded under every view a fitted matcher scores: what each query is scored
    against (made once per selection; a query then costs one row or column of scores)."""

    eng: Engine
    backbone: str
    method: Method
    matcher: Matcher
    tasks: TaskSet
    pools: tuple[tuple[str, np.ndarray, np.ndarray], ...]  # (view, lefts, rights)

    def nearest(self, query: Query, side: str, k: int = DEFAULT_K, *, backend: str = "auto") -> Nearest:
        """The ``k`` images of ``side`` (the split's lefts or rights) nearest to ``query``, best first."""
        if side not in SIDES:
            raise TLLError(f"unknown side {quoted(side)}; choose left or right")
        tasks, as_left = self.tasks, side == "right"  # the query plays a left to find rights, a right to find lefts
        own_ids = tasks.left_ids if as_left else tasks.right_ids
        pools, at = [], 0
        for view, left, right in self.pools:
            if query.image_id in own_ids:
                at = own_ids.index(query.image_id)
            else:  # it joins the pool it plays in
                vector = self._query_vector(query, view, left, right)
                at = len(own_ids)
                left, right = (np.vstack([left, vector]), right) if as_left else (left, np.vstack([right, vector]))
            pools.append((left, right))
        found_ids = tasks.right_ids if as_left else tasks.left_ids
        order, scores, chosen = _ranked(self.matcher, pools, at, as_left, k + 1, backend,
                                        f"{self.backbone}, {self.method.label}")
        neighbours: list[Neighbour] = []
        for j, score in zip(order, scores):
            if found_ids[j] != query.image_id and len(neighbours) < k:
                neighbours.append(_neighbour(tasks, side, int(j), len(neighbours) + 1, float(score)))
        searched = len(found_ids) - (query.image_id in found_ids)
        return Nearest(query.name, side, tuple(neighbours), searched, chosen, score_meaning(self.method))

    def _query_vector(self, query: Query, view: str, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """The query's ``[1, d]`` embedding in ``view``: an upload's own; an image of the split's other pool, its
        row there; any other folder image's through the engine."""
        if query.image_id in self.tasks.left_ids:
            return left[self.tasks.left_ids.index(query.image_id)][None, :]
        if query.image_id in self.tasks.right_ids:
            return right[self.tasks.right_ids.index(query.image_id)][None, :]
        if query.image_id is not None:
            return self.eng.embed([query.image_id], self.backbone, None, view)
        given = dict(query.vectors)
        if view not in given:
            raise TLLError(f"{query.name}: not embedded in the {view or 'plain'} view the matcher scores")
        return np.asarray(given[view], dtype=np.float32)[None, :]


def searcher(eng: Engine, sel: Selection, *, progress: Progress | None = None,
             callback: TrainingCallback | None = None) -> Searcher:
    """The selection's split ready to search: its matcher fitted on the split's fit part (from the store when
    trained before) and its lefts and rights embedded under each view the matcher scores."""
    method = sel.to_method()
    if not method.uses_embeddings:
        raise TLLError(f"{method.label} scores the 20 candidates of each left by name: it has no embeddings to "
                       "search; pick a method that scores a backbone's embeddings")
    tasks, fit = eng.tasks_for(sel.split, sel.val_fraction, sel.seed)
    matcher = eng.fit(method, sel.backbone, fit, tasks=tasks, progress=progress, callback=callback)
    pools = tuple((view, *eng.task_embeddings(tasks, sel.backbone, progress, view))
                  for view in matcher.score_views(method.flip_tta))
    return Searcher(eng, sel.backbone, method, matcher, tasks, pools)


def nearest(eng: Engine, sel: Selection, query: Query, side: str, k: int = DEFAULT_K, *, backend: str = "auto",
            progress: Progress | None = None, callback: TrainingCallback | None = None) -> Nearest:
    """The ``k`` images of ``side`` (the split's lefts or rights) nearest to ``query`` under the selection's
    backbone and matcher (:func:`searcher`, then :meth:`Searcher.nearest`)."""
    return searcher(eng, sel, progress=progress, callback=callback).nearest(query, side, k, backend=backend)


def _ranked(matcher: Matcher, pools: list[tuple[np.ndarray, np.ndarray]], at: int, as_left: bool, top: int,
            backend: str, what: str) -> tuple[np.ndarray, np.ndarray, str]:
    """The best ``top`` of the searched pool for the query at index ``at`` of the pool it plays in: indices,
    scores (best first) and the backend used. Exact: the matcher's scores averaged over views; faiss: an
    inner-product index over zero-shot cosine's unit vectors (one view only)."""
    size = len(pools[0][1] if as_left else pools[0][0])
    chosen = resolve_backend(backend, size)
    if chosen == "faiss":
        units = matcher.gallery(*pools[0]).units if len(pools) == 1 else None
        if units is not None:
            left_unit, right_unit = units
            pool, probe = (right_unit, left_unit[at]) if as_left else (left_unit, right_unit[at])
            return (*_faiss_top(pool, probe, top, what), "faiss")
        if backend == "faiss":
            raise TLLError("the faiss backend searches zero-shot cosine only, without flip test-time averaging; "
                           "use the exact backend")
        chosen = "exact"
    if as_left:
        scores = np.mean([matcher.gallery(left, right).scorer(at, at + 1)[0] for left, right in pools], axis=0)
    else:
        scores = np.mean([matcher.score(left, right, np.full((len(left), 1), at, dtype=np.int64))[:, 0]
                          for left, right in pools], axis=0)
    check_finite(scores, what)
    order = np.argsort(-scores, kind="stable")[:top]
    return order, scores[order], chosen


def _faiss_top(pool: np.ndarray, probe: np.ndarray, top: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    faiss = import_faiss()
    index = faiss.IndexFlatIP(pool.shape[1])
    index.add(check_finite(np.ascontiguousarray(pool, dtype=np.float32), what))
    scores, labels = index.search(np.ascontiguousarray(probe[None, :], dtype=np.float32), min(top, len(pool)))
    return labels[0], check_finite(scores[0], what)


def _neighbour(tasks: TaskSet, side: str, j: int, rank: int, score: float) -> Neighbour:
    if side == "left":
        return Neighbour(tasks.left_ids[j], tasks.left_names[j], side, rank, score, (tasks.left_names[j],))
    return Neighbour(tasks.right_ids[j], tasks.right_names[j], side, rank, score, holding_lefts(tasks, j))


def holding_lefts(tasks: TaskSet, right: int) -> tuple[str, ...]:
    """The lefts whose 20 candidates hold right ``right`` (an index into the pool), the one whose truth it is first."""
    holders = np.flatnonzero((tasks.candidates == right).any(axis=1))
    known = tasks.has_truth
    truth_of = [i for i in holders if known and tasks.candidates[i, tasks.truth[i]] == right]
    ordered = [*truth_of, *(i for i in holders if i not in truth_of)]
    return tuple(tasks.left_names[i] for i in ordered)


_METRIC_MEANINGS = {
    "cosine": "the cosine similarity of {space}: 1 the same direction, 0 unrelated, −1 opposite",
    "euclidean": "minus the Euclidean distance between {space}: 0 identical, more negative is farther",
    "manhattan": "minus the Manhattan (L1) distance between {space}: 0 identical, more negative is farther",
    "classifier": "the pair classifier's logit that the two images are a pair: 0 even odds, higher is likelier",
}


def score_meaning(method: Method) -> str:
    """One line saying what a score of ``method`` is (higher is always nearer)."""
    options = dict(method.options)
    if method.part.metric is None:  # zero-shot: its metric on the embeddings, centred or not
        centre = options.get("centre", method.part.option("centre").default)
        space = "the embeddings" + (" (centred on the split's images)" if centre else "")
    else:
        space = f"the images as the trained {method.name} maps them"
    metric = method.shown_metric
    text = _METRIC_MEANINGS.get(metric, f"the {metric} score of {{space}}; higher is nearer").format(space=space)
    if method.rerank != "none":
        text += f" — before {method.rerank}, which re-ranks a whole task set, not one query"
    return text
