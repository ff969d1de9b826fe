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
from .runtime import tune_malloc

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
    tune_malloc()
    transform = VIEWS[view]
    identity = view_identity(backbone, view)
    stats = stats if stats is not None else EmbeddingStats()
    stats.images += len(paths)
    failures: list[str] = []  # this call's own
    out = np.zeros((len(paths), backbone.cfg.dim), dtype=np.float32)
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending: _Batch | None = None
        for start in range(0, len(paths), max(1, batch_size)):
            batch = _Batch()
            chunk = range(start, min(start + batch_size, len(paths)))
            for row, image in zip(chunk, pool.map(lambda item: _read(read, item), [paths[i] for i in chunk])):
                vector = None
                if isinstance(image, str):
                    failures.append(image)
                elif cache is not None:
                    vector = cache.get(identity, image.sha1)
                    if vector is not None and vector.shape != (backbone.cfg.dim,):
                        vector = None  # well-formed but of another size (a forged entry): recomputed
                if vector is not None:
                    out[row] = vector
                    stats.cached += 1
                elif not isinstance(image, str):
                    batch.add(row, image, pool.submit(_prepare_one, backbone, image, transform))
            done += len(chunk) - len(batch.rows)
            if pending is not None:  # embed the previous batch while the workers prepare this one
                done += _finish(pending, backbone, identity, cache, out, stats, failures)
            pending = batch
            if progress:
                progress(done, len(paths))
        if pending is not None:
            done += _finish(pending, backbone, identity, cache, out, stats, failures)
    if progress:
        progress(done, len(paths))
    if failures:
        raise DataError(failures, what="unreadable image")
    return out


@dataclass
class _Batch:
    rows: list[int] = field(default_factory=list)
    images: list[ImageBytes] = field(default_factory=list)
    prepared: list[Future[Any]] = field(default_factory=list)

    def add(self, row: int, image: ImageBytes, prepared: Future[Any]) -> None:
        self.rows.append(row)
        self.images.append(image)
        self.prepared.append(prepared)


def _read(read: Callable[[Any], ImageBytes], item: Any) -> ImageBytes | str:
    try:
        return read(item)
    except DataError as exc:
        return str(exc)


def _prepare_one(backbone: Backbone, image: ImageBytes, transform: Callable[[Image.Image], Image.Image]) -> Any:
    try:
        return backbone.prepare(transform(decode_rgb(image)))
    except DataError as exc:
        return exc


def _finish(batch: _Batch, backbone: Backbone, identity: str, cache: EmbeddingCache | None, out: np.ndarray,
            stats: EmbeddingStats, failures: list[str]) -> int:
    """Embed a prepared batch, commit it to the cache and place it in ``out``; its images that could not be
    decoded are added to ``failures``. Returns its row count."""
    prepared = [f.result() for f in batch.prepared]
    good = [(r, im, p) for r, im, p in zip(batch.rows, batch.images, prepared) if not isinstance(p, DataError)]
    failures.extend(str(p) for p in prepared if isinstance(p, DataError))
    if good:
        vectors = backbone.embed([p for _, _, p in good])
        stats.computed += len(good)
        if cache is not None:
            cache.put_many(identity, {im.sha1: v for (_, im, _), v in zip(good, vectors)})
        out[[r for r, _, _ in good]] = vectors
    return len(batch.rows)
