"""Batched, cached, streaming feature extraction.

Images are read and hashed in chunks of one batch; cached vectors are taken as they are; the rest are
decoded and prepared in worker threads (the next batch is prepared while the model runs on this one)
and committed to the cache batch by batch. Memory holds one or two batches of images, whatever the
size of the dataset.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from .backbones.registry import Backbone
from .cache import EmbeddingCache
from .errors import DataError
from .images import ImageBytes, decode_rgb, read_image_bytes
from .runtime import batch_for_this_thread, tune_malloc

Progress = Callable[[int, int], None]  # (images done, images in all)
DEFAULT_BATCH_SIZE = 32
DEFAULT_WORKERS = 2
VIEWS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "": lambda im: im,
    "flip": ImageOps.mirror,
    "gray": lambda im: ImageOps.grayscale(im).convert("RGB"),
    "gray-flip": lambda im: ImageOps.mirror(ImageOps.grayscale(im).convert("RGB")),
}


def view_identity(backbone: Backbone, view: str) -> str:
    return backbone.identity + (f"|view:{view}" if view else "")


@dataclass
class EmbeddingStats:
    """Counts summed over every extraction given the same stats (an engine's, shared by the studio's sessions).
    Unreadable images are not kept here: each extraction reports its own, in the DataError it raises."""

    images: int = 0
    computed: int = 0  # vectors the backbone computed in this run
    cached: int = 0  # vectors taken from the cache


def embed_paths(
    paths: Sequence[Path] | Sequence[str],
    backbone: Backbone,
    cache: EmbeddingCache | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int = DEFAULT_WORKERS,
    progress: Progress | None = None,
    stats: EmbeddingStats | None = None,
    view: str = "",
    read: Callable[[Any], ImageBytes] = read_image_bytes,
) -> np.ndarray:
    """``[len(paths), dim]`` float32 embeddings. This call's unreadable images (and only this call's: not those
    of earlier calls given the same ``stats``) are all collected into one DataError.

    ``view``: a key of :data:`VIEWS` (``""`` is the image itself); each view is cached separately.
    ``read``: how an item of ``paths`` becomes bytes; the default takes it as a file path (a regular file,
    size-capped); :meth:`Dataset.read_image` with image ids also confines each read to the data folder.
    """
    [out] = embed_paths_many(paths, [backbone], cache, batch_size=batch_size, workers=workers, progress=progress,
                             stats=stats, view=view, read=read)
    return out


def embed_paths_many(
    paths: Sequence[Path] | Sequence[str],
    backbones: Sequence[Backbone],
    cache: EmbeddingCache | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int = DEFAULT_WORKERS,
    progress: Progress | None = None,
    stats: EmbeddingStats | None = None,
    view: str = "",
    read: Callable[[Any], ImageBytes] = read_image_bytes,
    known: Callable[[Any], str | None] | None = None,
) -> list[np.ndarray]:
    """:func:`embed_paths` for several backbones at once (the members of an ensemble): each image is read,
    hashed and decoded once, then prepared for each backbone that has no cached vector of it. One array per
    backbone, in order; ``progress`` counts images (an image is done when every backbone has its vector).
    ``known``: an item's content SHA-1 where it is known without reading it (the folder's image index); an
    image whose every vector is cached under it is not read at all."""
    tune_malloc()
    batch_size = batch_for_this_thread(batch_size)
    transform = VIEWS[view]
    identities = [view_identity(b, view) for b in backbones]
    stats = stats if stats is not None else EmbeddingStats()
    stats.images += len(paths) * len(backbones)
    failures: list[str] = []  # this call's own
    outs = [np.zeros((len(paths), b.cfg.dim), dtype=np.float32) for b in backbones]
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending: list[_Batch] | None = None
        for start in range(0, len(paths), max(1, batch_size)):
            batches = [_Batch() for _ in backbones]
            chunk = [row for row in range(start, min(start + batch_size, len(paths)))
                     if not _known_and_cached(known, paths[row], cache, identities, backbones, outs, row, stats)]
            done += min(start + batch_size, len(paths)) - start - len(chunk)
            for row, image in zip(chunk, pool.map(lambda item: _read(read, item), [paths[i] for i in chunk])):
                if isinstance(image, str):
                    failures.append(image)
                    continue
                missing = [k for k, b in enumerate(backbones)
                           if not _from_cache(cache, identities[k], image, b, outs[k], row, stats)]
                if missing:
                    prepared = pool.submit(_prepare_many, [backbones[k] for k in missing], image, transform)
                    for slot, k in enumerate(missing):
                        batches[k].add(row, image, prepared, slot)
            done_now = len(chunk) - len({r for b in batches for r in b.rows})
            if pending is not None:  # embed the previous batch while the workers prepare this one
                done += _finish_all(pending, backbones, identities, cache, outs, stats, failures)
            done += done_now
            pending = batches
            if progress:
                progress(done, len(paths))
        if pending is not None:
            done += _finish_all(pending, backbones, identities, cache, outs, stats, failures)
    if progress:
        progress(done, len(paths))
    if failures:
        raise DataError(list(dict.fromkeys(failures)), what="unreadable image")
    return outs


def _known_and_cached(known: Callable[[Any], str | None] | None, item: Any, cache: EmbeddingCache | None,
                      identities: list[str], backbones: Sequence[Backbone], outs: list[np.ndarray], row: int,
                      stats: EmbeddingStats) -> bool:
    """Whether every backbone's vector of ``item`` came from the cache by its known content hash (the folder's
    image index: unchanged since hashed), placed in ``outs`` without reading the file."""
    sha1 = known(item) if known is not None and cache is not None else None
    if sha1 is None:
        return False
    vectors = [cache.get(identity, sha1) for identity in identities]
    if any(v is None or v.shape != (b.cfg.dim,) for v, b in zip(vectors, backbones)):
        return False
    for out, vector in zip(outs, vectors):
        out[row] = vector
    stats.cached += len(backbones)
    return True


def _from_cache(cache: EmbeddingCache | None, identity: str, image: ImageBytes, backbone: Backbone,
                out: np.ndarray, row: int, stats: EmbeddingStats) -> bool:
    """Place the cached vector of ``image`` in ``out[row]``; False when there is none of the right size (a
    well-formed entry of another size, e.g. a forged one, is recomputed)."""
    vector = cache.get(identity, image.sha1) if cache is not None else None
    if vector is None or vector.shape != (backbone.cfg.dim,):
        return False
    out[row] = vector
    stats.cached += 1
    return True


@dataclass
class _Batch:
    """One backbone's share of a chunk: the rows it must compute, their images, and the future that prepares
    them (shared by the backbones of one image: ``slots`` says which of its results is this backbone's)."""

    rows: list[int] = field(default_factory=list)
    images: list[ImageBytes] = field(default_factory=list)
    prepared: list[Future[Any]] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)

    def add(self, row: int, image: ImageBytes, prepared: Future[Any], slot: int) -> None:
        self.rows.append(row)
        self.images.append(image)
        self.prepared.append(prepared)
        self.slots.append(slot)


def _read(read: Callable[[Any], ImageBytes], item: Any) -> ImageBytes | str:
    try:
        return read(item)
    except DataError as exc:
        return str(exc)


def _prepare_many(backbones: list[Backbone], image: ImageBytes,
                  transform: Callable[[Image.Image], Image.Image]) -> list[Any] | DataError:
    """The image decoded once and prepared for each backbone (a DataError: it cannot be decoded)."""
    try:
        picture = transform(decode_rgb(image))
        return [b.prepare(picture) for b in backbones]
    except DataError as exc:
        return exc


def _finish_all(batches: list[_Batch], backbones: Sequence[Backbone], identities: list[str],
                cache: EmbeddingCache | None, outs: list[np.ndarray], stats: EmbeddingStats,
                failures: list[str]) -> int:
    """Embed a chunk's prepared batches (one per backbone); returns how many of its images were computed."""
    rows: set[int] = set()
    for batch, backbone, identity, out in zip(batches, backbones, identities, outs):
        _finish(batch, backbone, identity, cache, out, stats, failures)
        rows.update(batch.rows)
    return len(rows)


def _finish(batch: _Batch, backbone: Backbone, identity: str, cache: EmbeddingCache | None, out: np.ndarray,
            stats: EmbeddingStats, failures: list[str]) -> None:
    """Embed a prepared batch, commit it to the cache and place it in ``out``; its images that could not be
    decoded are added to ``failures``."""
    prepared = [f.result() for f in batch.prepared]
    good = [(r, im, p[s]) for r, im, p, s in zip(batch.rows, batch.images, prepared, batch.slots)
            if not isinstance(p, DataError)]
    failures.extend(str(p) for p in prepared if isinstance(p, DataError))
    if good:
        vectors = backbone.embed([p for _, _, p in good])
        stats.computed += len(good)
        if cache is not None:
            cache.put_many(identity, {im.sha1: v for (_, im, _), v in zip(good, vectors)})
        out[[r for r, _, _ in good]] = vectors
