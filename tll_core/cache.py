"""The persistent embedding cache (diskcache over SQLite) — no pickle anywhere.

Key: ``backbone identity | SHA-1 of the image bytes``. The identity carries the backbone, its weights
(tag, file hash or random seed) and the preprocessing version, so renamed or duplicated images are not
recomputed and changed ones are. A value is raw bytes: magic, dim, float32 data and a BLAKE2 digest.
A value that fails its digest is treated as missing (and recomputed), never crashed on.
Each batch is committed as it finishes, so a run killed half-way keeps what it finished.
"""
from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import diskcache
import numpy as np

CACHE_DIR_ENV = "TLL_CACHE_DIR"
DEFAULT_CACHE_DIR = Path(__file__).resolve().parent.parent / "cache"
MAGIC = b"TLLE1"
DIGEST_BYTES = 16
DEFAULT_SIZE_LIMIT = 4 * 2**30
SIZE_LIMIT_ENV = "TLL_CACHE_SIZE_LIMIT"  # bytes; the least recently stored embeddings are evicted past it


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR)


def default_size_limit() -> int:
    text = os.environ.get(SIZE_LIMIT_ENV, "")
    return int(text) if text.isdigit() else DEFAULT_SIZE_LIMIT


class NoPickleDisk(diskcache.Disk):
    """A diskcache Disk that stores only str keys and bytes values, and refuses to unpickle anything."""

    def put(self, key):  # type: ignore[no-untyped-def]
        if not isinstance(key, str):
            raise TypeError("cache keys must be str")
        return super().put(key)

    def get(self, key, raw):  # type: ignore[no-untyped-def]
        if not raw:
            raise ValueError("refusing to unpickle a cache key")
        return super().get(key, raw)

    def store(self, value, read, key=diskcache.UNKNOWN):  # type: ignore[no-untyped-def]
        if not isinstance(value, bytes):
            raise TypeError("cache values must be bytes")
        return super().store(value, read, key=key)

    def fetch(self, mode, filename, value, read):  # type: ignore[no-untyped-def]
        if mode not in (diskcache.core.MODE_RAW, diskcache.core.MODE_BINARY):
            raise ValueError("refusing to unpickle a cache value")
        return super().fetch(mode, filename, value, read)


def encode_vector(vector: np.ndarray) -> bytes:
    data = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
    body = MAGIC + struct.pack("<I", vector.size) + data
    return body + hashlib.blake2b(body, digest_size=DIGEST_BYTES).digest()


def decode_vector(blob: bytes) -> np.ndarray | None:
    """The vector, or None if the bytes are damaged in any way."""
    if not isinstance(blob, bytes) or len(blob) < len(MAGIC) + 4 + DIGEST_BYTES or not blob.startswith(MAGIC):
        return None
    body, digest = blob[:-DIGEST_BYTES], blob[-DIGEST_BYTES:]
    if hashlib.blake2b(body, digest_size=DIGEST_BYTES).digest() != digest:
        return None
    (dim,) = struct.unpack_from("<I", body, len(MAGIC))
    data = body[len(MAGIC) + 4 :]
    if len(data) != dim * 4:
        return None
    return np.frombuffer(data, dtype=np.float32).copy()


class EmbeddingCache:
    """Embeddings by (backbone identity, image SHA-1)."""

    def __init__(self, directory: str | os.PathLike[str] | None = None, size_limit: int | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.size_limit = default_size_limit() if size_limit is None else size_limit
        # small vectors live inside SQLite (one atomic commit per batch), never as loose files
        self._cache = diskcache.Cache(
            str(self.directory / "embeddings"), disk=NoPickleDisk, size_limit=self.size_limit,
            eviction_policy="least-recently-stored", disk_min_file_size=2**20, cull_limit=10,
        )

    @staticmethod
    def key(identity: str, sha1: str) -> str:
        return f"{identity}|{sha1}"

    def get(self, identity: str, sha1: str) -> np.ndarray | None:
        try:
            blob = self._cache.get(self.key(identity, sha1), default=None)
        except (ValueError, OSError):  # refused (not raw bytes) or an unreadable value file
            return None
        return None if blob is None else decode_vector(blob)

    def put_many(self, identity: str, vectors: dict[str, np.ndarray]) -> None:
        """Store a batch in one transaction: it lands whole or not at all."""
        with self._cache.transact():
            for sha1, vector in vectors.items():
                self._cache.set(self.key(identity, sha1), encode_vector(vector))

    def __len__(self) -> int:
        return len(self._cache)

    def volume(self) -> int:
        return self._cache.volume()

    def clear(self) -> int:
        return self._cache.clear()

    def set_size_limit(self, size_limit: int) -> None:
        """Persist a new limit and evict down to it now."""
        self.size_limit = size_limit
        self._cache.reset("size_limit", size_limit)
        self._cache.cull()

    def close(self) -> None:
        self._cache.close()


class MatcherStore:
    """Fitted matchers by key: named float arrays as safetensors bytes (no pickle), on the same NoPickleDisk."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self._cache = diskcache.Cache(str(self.directory / "matchers"), disk=NoPickleDisk)

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        from safetensors import SafetensorError
        from safetensors.numpy import load

        try:
            blob = self._cache.get(key, default=None)
            return None if blob is None else load(blob)
        except (ValueError, OSError, SafetensorError):  # refused, unreadable or damaged: train again
            return None

    def put(self, key: str, state: dict[str, np.ndarray]) -> None:
        from safetensors.numpy import save

        self._cache.set(key, save({k: np.ascontiguousarray(v) for k, v in state.items()}))

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> int:
        return self._cache.clear()
