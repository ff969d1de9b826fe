"""The full-gallery retrieval protocol: each left ranked against *every* gallery right (the TLL paper's protocol).

The competition's ``tasks`` protocol ranks a left's truth among 20 candidates; here the truth is ranked
among all ``m`` gallery items (on validation: all validation rights), so the figures are recall@k,
the median rank and the MRR over ranks in 1..m. Ranks count ties against the truth, as
:func:`metrics.truth_ranks` does: a constant scorer ranks every truth m-th.

Scores are made in blocks of lefts (a ``[block, m]`` matrix at a time), so memory stays bounded
whatever the gallery size. Zero-shot cosine has two search backends, which agree on ranks:

- ``exact``: a torch matmul of L2-normalised (optionally centred) vectors, block by block;
- ``faiss``: a ``faiss.IndexFlatIP`` (exact inner product, multi-threaded), used by ``auto`` when the
  ``faiss`` module is importable and the gallery holds more than ``FAISS_THRESHOLD`` items.

Every matcher says how it scores a whole gallery (``Matcher.gallery``: a blockwise scorer, giving the
scores its ``score`` gives with all gallery indices as candidates); zero-shot cosine's are inner products of
unit vectors, which faiss may search. Re-ranking needs the whole ``[n, m]`` score
matrix (csls and sinkhorn normalise over columns): it is supported while ``n * m <= MAX_DENSE``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import TLLError, quoted
from ..matchers import Matcher
from ..matchers.base import GalleryScorer as Scorer
from .figures import Evaluation, evaluate_ranks
from .metrics import check_finite, truth_ranks
from ..rerank import rerank

BACKENDS = ("auto", "exact", "faiss")
FAISS_THRESHOLD = 50_000  # auto: faiss above this many gallery items (when importable), else exact
BLOCK_ELEMENTS = 1 << 23  # a block's working set, in floats: [block, m] scores, or [block, m, d] gathered rights
MAX_DENSE = 1 << 24  # re-ranking: at most this many scores (n * m) held at once



def gallery_metrics(ranks: np.ndarray, gallery: int, *, n_boot: int = 1000, seed: int = 0) -> Evaluation:
    """Every registered figure of the ``gallery`` protocol from the truth's ranks among ``gallery`` items."""
    ranks = np.asarray(ranks, dtype=np.int64)
    if len(ranks) == 0:
        raise TLLError("no lefts to rank against the gallery")
    if ranks.min() < 1 or ranks.max() > gallery:
        raise ValueError(f"ranks must lie in 1..{gallery}")
    return evaluate_ranks(ranks, "gallery", gallery, n_boot=n_boot, seed=seed)


# ---------------------------------------------------------------- scorers


def matcher_scorer(matcher: Matcher, left: np.ndarray, gallery: np.ndarray) -> Scorer:
    """A fitted matcher's scores of every gallery item, as the matcher itself says to make them (``gallery``)."""
    return matcher.gallery(left, gallery).scorer


def mean_scorer(scorers: Sequence[Scorer]) -> Scorer:
    """The mean of several scorers (flip test-time augmentation: the images and their mirrors)."""
    if len(scorers) == 1:
        return scorers[0]
    return lambda start, stop: np.mean([s(start, stop) for s in scorers], axis=0)


def block_rows(m: int, width: int = 1) -> int:
    """Lefts per block so that ``block * m * width`` floats stay within ``BLOCK_ELEMENTS``."""
    return max(1, BLOCK_ELEMENTS // max(1, m * width))


# ---------------------------------------------------------------- ranks


def scorer_ranks(scorer: Scorer, truth: np.ndarray, m: int, *, block: int, rerank_name: str = "none",
                 rerank_options: dict[str, Any] | None = None, what: str = "gallery scores") -> np.ndarray:
    """Each left's truth rank among all ``m`` gallery items; blockwise, or on the dense matrix to re-rank."""
    n = len(truth)
    if rerank_name == "none":
        ranks = [truth_ranks(check_finite(scorer(s, min(s + block, n)), what), truth[s : s + block])
                 for s in range(0, n, block)]
        return np.concatenate(ranks) if ranks else np.empty(0, dtype=np.int64)
    if n * m > MAX_DENSE:
        raise TLLError(f"rerank {rerank_name} needs the whole {n} x {m} gallery score matrix (over {MAX_DENSE:,} "
                       "scores); use --rerank none")
    scores = check_finite(np.concatenate([scorer(s, min(s + block, n)) for s in range(0, n, block)]), what)
    candidates = np.tile(np.arange(m, dtype=np.int64), (n, 1))
    reranked = rerank(scores, candidates, m, rerank_name, rerank_options)
    return truth_ranks(check_finite(reranked, f"{what} after {rerank_name}"), truth)


def faiss_ranks(left_unit: np.ndarray, gallery_unit: np.ndarray, truth: np.ndarray, *, block: int | None = None,
                what: str = "gallery scores") -> np.ndarray:
    """Truth ranks from a ``faiss.IndexFlatIP`` over the gallery: each block of lefts is searched for all ``m``
    items (sorted scores); the rank counts the items scoring >= the truth, as the exact backend does."""
    faiss = import_faiss()
    gallery_unit = check_finite(np.ascontiguousarray(gallery_unit, dtype=np.float32), f"{what} (gallery)")
    left_unit = check_finite(np.ascontiguousarray(left_unit, dtype=np.float32), f"{what} (lefts)")
    m = len(gallery_unit)
    index = faiss.IndexFlatIP(gallery_unit.shape[1])
    index.add(gallery_unit)
    block = block or block_rows(m, 3)  # float32 scores + int64 labels
    out = []
    for s in range(0, len(left_unit), block):
        scores, labels = index.search(left_unit[s : s + block], m)
        check_finite(scores, what)
        at = np.argmax(labels == truth[s : s + block, None], axis=1)
        truth_score = scores[np.arange(len(at)), at]
        out.append((scores >= truth_score[:, None]).sum(axis=1).astype(np.int64))
    return np.concatenate(out) if out else np.empty(0, dtype=np.int64)


def import_faiss():  # -> the faiss module
    try:
        import faiss
    except ImportError:
        raise TLLError("the faiss gallery backend needs the faiss module: pip install faiss-cpu") from None
    return faiss


def faiss_importable() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str, m: int) -> str:
    """``auto``: faiss when importable and the gallery is larger than ``FAISS_THRESHOLD``, else exact."""
    if backend not in BACKENDS:
        raise TLLError(f"unknown gallery backend {quoted(backend)}; choose from: {', '.join(BACKENDS)}")
    if backend == "auto":
        return "faiss" if m > FAISS_THRESHOLD and faiss_importable() else "exact"
    return backend


def matcher_ranks(matcher: Matcher, views: Sequence[tuple[np.ndarray, np.ndarray]], truth: np.ndarray, *,
                  rerank_name: str = "none", rerank_options: dict[str, Any] | None = None, backend: str = "auto",
                  what: str = "gallery scores") -> np.ndarray:
    """Truth ranks under a (fitted) matcher; ``views``: (left, gallery) embeddings per view, scores averaged.

    Each matcher says how it scores a gallery (``Matcher.gallery``); where its scores are inner products of unit
    vectors (zero-shot cosine), one view and no re-ranking, faiss may search them instead (asked for
    explicitly otherwise, faiss is an error)."""
    m = len(views[0][1])
    searches = [matcher.gallery(left, gallery) for left, gallery in views]
    chosen = resolve_backend(backend, m)
    searchable = len(searches) == 1 and searches[0].units is not None and rerank_name == "none"
    if chosen == "faiss" and not searchable:
        if backend == "faiss":
            raise TLLError("the faiss gallery backend searches zero-shot cosine only, without --flip-tta or "
                           "re-ranking; use --rerank none or the exact backend")
        chosen = "exact"
    if chosen == "faiss":
        return faiss_ranks(*searches[0].units, truth, what=what)
    width = max(search.width for search in searches)
    return scorer_ranks(mean_scorer([search.scorer for search in searches]), truth, m, block=block_rows(m, width),
                        rerank_name=rerank_name, rerank_options=rerank_options, what=what)
