"""Error analysis over scored tasks: ranked candidate lists, failures, paired comparisons, embedding maps.

Plain functions over arrays, for the studio and for anyone scripting an analysis. The studio pages only
lay out what these return.
"""
from __future__ import annotations

from collections.abc import Collection, Sequence

import hashlib
from dataclasses import dataclass

import numpy as np

from .errors import quoted
from .evaluation.metrics import truth_ranks
from .evaluation.shares import task_shares
from .evaluation.significance import mcnemar_exact
from .evaluation.tasks import TaskSet, truth_rights


@dataclass(frozen=True)
class Candidate:
    position: int  # column in test_candidates.csv order (c0..c19)
    rank: int  # 1 = highest score (ties broken by position)
    name: str
    image_id: str
    score: float
    is_truth: bool
    share: float  # its softmax share of the task's standardised scores (tll_core.evaluation.shares)


@dataclass(frozen=True)
class RankedTask:
    index: int
    left: str
    left_id: str
    candidates: tuple[Candidate, ...]  # in rank order
    truth_rank: int | None  # ties count against the truth; None when the truth is unknown

    def in_original_order(self) -> list[Candidate]:
        return sorted(self.candidates, key=lambda c: c.position)

    @property
    def truth(self) -> Candidate | None:
        """The true candidate, or None when the truth is unknown (test tasks)."""
        return next((c for c in self.candidates if c.is_truth), None)

    @property
    def beating_truth(self) -> tuple[Candidate, ...]:
        """The other candidates scoring at least the truth's score, best first: what put the truth at its rank
        (ties count against the truth, as in its rank); () when the truth is unknown."""
        truth = self.truth
        if truth is None:
            return ()
        return tuple(c for c in self.candidates if not c.is_truth and c.score >= truth.score)


def ranked_task(tasks: TaskSet, scores: np.ndarray, i: int) -> RankedTask:
    order = np.argsort(-scores[i], kind="stable")
    shares = task_shares(scores[i : i + 1])[0]  # (refuses a non-finite score: never a figure)
    truth = int(tasks.truth[i]) if tasks.has_truth else -1
    cands = []
    for rank, pos in enumerate(order, start=1):
        j = int(tasks.candidates[i, pos])
        cands.append(Candidate(int(pos), rank, tasks.right_names[j], tasks.right_ids[j], float(scores[i, pos]),
                               int(pos) == truth, float(shares[pos])))
    truth_rank = int(truth_ranks(scores[i : i + 1], tasks.truth[i : i + 1])[0]) if truth >= 0 else None
    return RankedTask(i, tasks.left_names[i], tasks.left_ids[i], tuple(cands), truth_rank)


def hits(tasks: TaskSet, scores: np.ndarray, k: int = 2) -> np.ndarray:
    """``[n]`` bools: whether each left's truth ranks in the top ``k`` (ties count against the truth)."""
    return truth_ranks(scores, tasks.truth) <= k


def misses(tasks: TaskSet, scores: np.ndarray, k: int = 2) -> tuple[int, ...]:
    """The lefts whose truth ranks outside the top ``k``, in task order."""
    return tuple(int(i) for i in np.flatnonzero(~hits(tasks, scores, k)))


def next_miss(tasks: TaskSet, scores: np.ndarray, after: int, k: int = 2,
              among: Sequence[int] | None = None) -> int | None:
    """The first left after ``after`` whose truth misses the top ``k``, wrapping round to the first one;
    None when every left is a hit. ``among``: only these lefts count (e.g. those picked on the map)."""
    missed = misses(tasks, scores, k)
    if among is not None:
        missed = tuple(sorted(set(missed) & set(among)))
    return next((i for i in missed if i > after), missed[0] if missed else None)


@dataclass(frozen=True)
class Failure:
    index: int
    left: str
    truth_rank: int
    margin: float  # best score minus the truth's score (how far the truth was beaten)
    beaten_by: tuple[int, ...]  # positions of the candidates scoring >= the truth, best first
    truth_score: float


# the orders failures() can list in, by the names the studio shows; the first is the default
FAILURE_SORTS = ("worst rank first", "largest margin", "smallest margin", "lowest truth score", "task order")
_SORT_KEYS = {  # ties fall back to the task order, so every order is total and stable
    "worst rank first": lambda f: (-f.truth_rank, -f.margin, f.index),
    "largest margin": lambda f: (-f.margin, -f.truth_rank, f.index),
    "smallest margin": lambda f: (f.margin, -f.truth_rank, f.index),
    "lowest truth score": lambda f: (f.truth_score, -f.truth_rank, f.index),
    "task order": lambda f: f.index,
}


def failures(tasks: TaskSet, scores: np.ndarray, *, min_rank: int = 3, max_rank: int = 20,
             min_margin: float | None = None, max_margin: float | None = None,
             min_truth_score: float | None = None, max_truth_score: float | None = None,
             lefts: Collection[str] | None = None, sort: str = FAILURE_SORTS[0]) -> list[Failure]:
    """Lefts whose truth ranks in [min_rank, max_rank] (default: outside the top 2), whose margin and truth
    score lie in the given closed ranges (None: unbounded) and, with ``lefts``, whose name is one of them;
    listed in the order ``sort`` names (one of :data:`FAILURE_SORTS`; by default the worst first: lowest
    truth rank, then largest margin)."""
    if sort not in _SORT_KEYS:
        raise ValueError(f"unknown failure order {quoted(sort)}; choose from {', '.join(FAILURE_SORTS)}")
    ranks = truth_ranks(scores, tasks.truth)
    truth_score = scores[np.arange(len(scores)), tasks.truth]
    margin = scores.max(axis=1) - truth_score
    keep = (ranks >= min_rank) & (ranks <= max_rank)
    keep &= _within(margin, min_margin, max_margin) & _within(truth_score, min_truth_score, max_truth_score)
    if lefts is not None:
        wanted = set(lefts)
        keep &= np.fromiter((name in wanted for name in tasks.left_names), bool, len(tasks.left_names))
    rows = np.flatnonzero(keep)
    order = np.argsort(-scores[rows], axis=1, kind="stable")  # one sort for every failure kept
    out = []
    for i, row_order in zip(rows, order):
        beating = row_order[(row_order != tasks.truth[i]) & (scores[i, row_order] >= truth_score[i])]
        out.append(Failure(int(i), tasks.left_names[i], int(ranks[i]), float(margin[i]),
                           tuple(int(p) for p in beating), float(truth_score[i])))
    return sorted(out, key=_SORT_KEYS[sort])


def _within(values: np.ndarray, low: float | None, high: float | None) -> np.ndarray:
    """Whether each value lies in [low, high]; a missing bound does not limit."""
    inside = np.ones(len(values), dtype=bool)
    if low is not None:
        inside &= values >= low
    if high is not None:
        inside &= values <= high
    return inside


@dataclass(frozen=True)
class FailureRanges:
    """The spans of the failures' margins and truth scores (the bounds of the studio's range filters)."""

    margin: tuple[float, float]
    truth_score: tuple[float, float]


def failure_ranges(found: Sequence[Failure]) -> FailureRanges:
    """The smallest and largest margin and truth score among ``found``; (0, 0) spans when it is empty."""
    if not found:
        return FailureRanges((0.0, 0.0), (0.0, 0.0))
    margins = [f.margin for f in found]
    truths = [f.truth_score for f in found]
    return FailureRanges((min(margins), max(margins)), (min(truths), max(truths)))


@dataclass(frozen=True)
class Comparison:
    """Two methods on the same tasks: top-2 hits, disagreement slices and an exact McNemar test."""

    a_only: tuple[int, ...]  # A right (truth in its top 2), B wrong
    b_only: tuple[int, ...]
    both_right: tuple[int, ...]
    both_wrong: tuple[int, ...]
    p_value: float  # two-sided exact McNemar (binomial on the discordant pairs)

    @property
    def slices(self) -> dict[str, tuple[int, ...]]:
        """The four slices of the lefts by who hits them, by the names the studio shows."""
        return {"A right, B wrong": self.a_only, "B right, A wrong": self.b_only,
                "both wrong": self.both_wrong, "both right": self.both_right}


def compare(tasks: TaskSet, scores_a: np.ndarray, scores_b: np.ndarray, k: int = 2) -> Comparison:
    hit_a, hit_b = hits(tasks, scores_a, k), hits(tasks, scores_b, k)
    idx = lambda mask: tuple(int(i) for i in np.flatnonzero(mask))  # noqa: E731
    a_only, b_only = idx(hit_a & ~hit_b), idx(~hit_a & hit_b)
    return Comparison(a_only, b_only, idx(hit_a & hit_b), idx(~hit_a & ~hit_b), mcnemar_exact(len(a_only), len(b_only)))


# ---------------------------------------------------------------- embedding maps


@dataclass(frozen=True)
class MapPoints:
    """The points of a task set's embedding map: its lefts, then its rights (the order of
    ``Engine.embedding_map``), each with its true partner where the truth is known."""

    names: tuple[str, ...]
    image_ids: tuple[str, ...]
    sides: tuple[str, ...]  # "left" or "right"
    partners: tuple[int | None, ...]  # a left's truth right, a right's left (the first whose truth it is), or None
    n_left: int

    def __len__(self) -> int:
        return len(self.image_ids)

    def left_of(self, k: int) -> int | None:
        """The left point a point opens in Ranked: a left itself, a right the left whose truth it is (None
        for a foil, or where the truth is unknown)."""
        return k if k < self.n_left else self.partners[k]

    def lefts_of(self, picked: Sequence[int]) -> list[str]:
        """The names of the lefts that ``picked`` points stand for (:meth:`left_of`), once each, in order."""
        lefts = (self.left_of(k) for k in picked)
        return list(dict.fromkeys(self.names[i] for i in lefts if i is not None))


def map_points(tasks: TaskSet) -> MapPoints:
    n_left = len(tasks)
    partners: list[int | None] = [None] * (n_left + len(tasks.right_ids))
    if tasks.has_truth:
        truth_right = truth_rights(tasks)
        for i, j in enumerate(truth_right):
            partners[i] = n_left + int(j)
            if partners[n_left + int(j)] is None:
                partners[n_left + int(j)] = i
    return MapPoints(tasks.left_names + tasks.right_names, tasks.left_ids + tasks.right_ids,
                     ("left",) * n_left + ("right",) * len(tasks.right_ids), tuple(partners), n_left)


MAP_COLOURINGS = ("side", "hit / miss")


def map_groups(tasks: TaskSet, scores: np.ndarray, colour_by: str = "side", k: int = 2) -> np.ndarray:
    """The legend group of each map point: its side, or (``"hit / miss"``, when the truth is known) whether
    each left's truth is in the top ``k``, and ``"right"`` for the rights."""
    if colour_by not in MAP_COLOURINGS:
        raise ValueError(f"unknown colouring {quoted(colour_by)}; choose from {', '.join(MAP_COLOURINGS)}")
    n_right = len(tasks.right_ids)
    if colour_by == "hit / miss" and tasks.has_truth:
        return np.concatenate([np.where(hits(tasks, scores, k), "hit", "miss"), np.full(n_right, "right")])
    return np.array(["left"] * len(tasks) + ["right"] * n_right)


def project_2d(vectors: np.ndarray, method: str = "pca", *, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """2-D coordinates of embeddings (rows L2-normalised after centring): ``pca`` (instant) or ``umap``."""
    x = vectors.astype(np.float32) - vectors.mean(axis=0, dtype=np.float64).astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if method == "pca":
        return pca_2d(x, seed=seed)
    if method == "umap":
        import umap

        reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, metric="cosine", random_state=seed,
                            init="pca" if len(x) > n_neighbors + 2 else "random", n_jobs=1)
        return reducer.fit_transform(x).astype(np.float32)
    raise ValueError(f"unknown projection {quoted(method)}")


def pca_2d(x: np.ndarray, *, seed: int = 0, oversample: int = 10, passes: int = 4) -> np.ndarray:
    """The rows of ``x`` on its top two principal components, by a randomized range finder (Halko, Martinsson
    & Tropp 2011): ``passes`` products of the ``[n, d]`` matrix with a ``[d, 2 + oversample]`` block instead of
    a full SVD — 4000 x 5462 takes well under a second here where the full SVD took minutes. Deterministic
    (seeded test block; each component's sign fixed by its largest entry); exact SVD for small matrices."""
    x = np.asarray(x, dtype=np.float32)
    x = x - x.mean(axis=0)
    k = 2 + oversample
    if min(x.shape) <= 4 * k:
        _, _, vt = np.linalg.svd(x, full_matrices=False)
    else:
        q = x @ np.random.default_rng(seed).standard_normal((x.shape[1], k)).astype(np.float32)
        for _ in range(passes):
            q, _ = np.linalg.qr(q)
            q = x @ (x.T @ q)
        q, _ = np.linalg.qr(q)
        _, _, vt = np.linalg.svd(q.T @ x, full_matrices=False)
    components = vt[:2]
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    out = x @ (components * signs[:, None]).T
    return np.pad(out, ((0, 0), (0, 2 - out.shape[1]))).astype(np.float32)  # a 1-d input: a flat second axis


PROJECTION_VERSION = 2  # bump when a projection's coordinates change: part of their cache key


def projection_key(vectors: np.ndarray, method: str, seed: int) -> str:
    digest = hashlib.sha1(np.ascontiguousarray(vectors).tobytes())
    return f"map|{method}|v{PROJECTION_VERSION}|{seed}|{digest.hexdigest()}"


def _selection(event: object) -> dict | object | None:
    return getattr(event, "selection", None) or (event.get("selection") if isinstance(event, dict) else None)


def _field(selection: object, name: str) -> object:
    return selection.get(name) if isinstance(selection, dict) else getattr(selection, name, None)


def selected_points(event: object, traces: Sequence[Sequence[int]]) -> list[int]:
    """Map point indices from a Streamlit plotly selection event (``st.plotly_chart(on_select=...)``).

    ``traces[c][i]`` is the map point drawn as point ``i`` of trace ``c``; each selected point is looked up by
    its ``curve_number`` and ``point_index`` (a point of another trace, e.g. the pair lines, is ignored).
    Nothing is read from ``customdata``: plotly sends numpy arrays there as base64 blocks, not numbers.
    Accepts the event object or its dict form; never raises on a malformed event."""
    selection = _selection(event)
    if not selection:
        return []
    points = _field(selection, "points")
    out = []
    for p in points if isinstance(points, (list, tuple)) else []:
        if not isinstance(p, dict):
            continue
        curve, index = p.get("curve_number"), p.get("point_index", p.get("point_number"))
        if (isinstance(curve, int) and isinstance(index, int) and 0 <= curve < len(traces)
                and 0 <= index < len(traces[curve])):
            out.append(int(traces[curve][index]))
    return list(dict.fromkeys(out))


MAP_THUMBNAILS = 2000
"""At most this many map points carry a hover thumbnail. Each is ~2.6 KB as a data URL and the browser is sent
them all at once (again only when the projection or colouring changes), so this bounds that message to ~5 MB:
every point of a validation split of up to 1000 pairs (tll-dev's: 500 points, 1.3 MB); of the tll-dev test
split's 4000 points, the 2000 lefts."""


def thumbnail_points(points: MapPoints, limit: int = MAP_THUMBNAILS) -> tuple[int, ...]:
    """The map points that get a hover thumbnail: all of them up to ``limit``, else the lefts first (each
    opens in Ranked), then the rights in order."""
    return tuple(range(min(len(points), max(limit, 0))))
