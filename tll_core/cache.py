"""The persistent caches (diskcache over SQLite) — no pickle anywhere.

:class:`EmbeddingCache` (``<cache>/embeddings``) keys vectors by ``backbone identity | SHA-1 of the image
bytes``. The identity carries the backbone, its weights (tag, file hash or random seed) and the
preprocessing version, so renamed or duplicated images are not recomputed and changed ones are. A value is
raw bytes: magic, dim, float32 data and a BLAKE2 digest of the key and those bytes (:func:`bound_digest`),
so a value moved to another key — rows' values swapped or rotated in the database — fails there.
:class:`MatcherStore` (``<cache>/matchers``) keeps fitted matchers as magic, BLAKE2 digest and safetensors
bytes of named arrays, the digest bound to the key the same way (two matchers' values swapped fail it); a
state that fails its digest, has an old magic or holds a non-finite number is treated as missing
(the matcher is trained again; names, shapes and dtypes are checked by the matcher's ``load_state``).
A value that fails its check is treated as missing (and recomputed), never crashed on.
Each embedding batch is committed as it finishes, so a run killed half-way keeps what it finished.

When the cache itself cannot be used (the cache only holds recomputable data, so nothing is lost by these):

- a damaged database (``file is not a database``, ``database disk image is malformed``), found on opening
  or later, is moved aside — renamed ``cache.db.damaged-<timestamp>`` with its ``-wal``/``-shm``, never
  deleted — and an empty database started. The store says so in one line: appended to its ``notices``
  list and issued as a :class:`CacheNotice` warning.
- a full disk, a read-only or uncreatable folder, or a locked database raise :class:`CacheError`, a
  one-line :class:`~tll_core.errors.TLLError` naming the cache folder and what to do (the CLI exits 2).
  Nothing is computed without caching silently.
- :meth:`clear` (and :func:`clear_cache`, which the CLI uses) works on a full disk or a damaged database:
  when SQLite's DELETEs fail, the files diskcache made in the store's own subfolder (the database with
  its ``-wal``/``-shm`` and the value-file folders) are removed and an empty database made. Damaged
  copies moved aside are kept (:func:`damaged_copies` lists them).

The size limit is stored in the database: it is passed to diskcache only when given (``size_limit`` or
``$TLL_CACHE_SIZE_LIMIT``), or for a new database (4 GiB); otherwise the stored one is kept.
"""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import sqlite3
import struct
import time
import warnings
from collections.abc import Callable, Mapping
from contextlib import closing, suppress
from pathlib import Path
from typing import Any, TypeVar

import diskcache
import numpy as np

from .errors import TLLError, quoted, shown, shown_path
from .numbers import WHOLE_RULE, parse_whole

CACHE_DIR_ENV = "TLL_CACHE_DIR"
DEFAULT_CACHE_DIR = Path(__file__).resolve().parent.parent / "cache"
MAGIC = b"TLLE2"  # 2: the digest covers the key (TLLE1 entries are misses, recomputed)
STATE_MAGIC = b"TLLM2"  # 2: the digest covers the key (TLLM1 states are misses, trained again)
DIGEST_BYTES = 16
DEFAULT_SIZE_LIMIT = 4 * 2**30
SIZE_LIMIT_ENV = "TLL_CACHE_SIZE_LIMIT"  # bytes; the least recently stored embeddings are evicted past it
DBNAME = diskcache.core.DBNAME  # "cache.db"
DAMAGED = ".damaged-"

T = TypeVar("T")


class CacheError(TLLError):
    """The cache folder cannot be used. ``kind``: full, readonly, busy, damaged or unusable."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class CacheNotice(UserWarning):
    """A one-line notice about the cache (a damaged database was moved aside)."""


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR)


def check_size_limit(size_limit: int) -> int:
    """The limit, if it is a positive number of bytes (0 would evict every embedding as it is stored)."""
    if isinstance(size_limit, bool) or not isinstance(size_limit, int) or not 0 < size_limit < 2**63:  # SQLite's INTEGER
        raise TLLError(f"cache size limit {shown(size_limit)}: must be a positive number of bytes below 2^63 "
                       f"(to empty the cache, use `python -m tll_core cache --clear`)")
    return size_limit


def env_size_limit() -> int | None:
    """``$TLL_CACHE_SIZE_LIMIT`` in bytes, or None when unset; anything but a positive integer is an error."""
    text = os.environ.get(SIZE_LIMIT_ENV, "")
    if not text.strip(" \t"):
        return None
    try:
        limit = parse_whole(text)
    except ValueError:
        limit = 0
    if limit <= 0:
        raise TLLError(f"{SIZE_LIMIT_ENV}={quoted(text)}: must be a positive whole number of bytes ({WHOLE_RULE})")
    return limit


# ------------------------------------------------------------------ failures of the cache itself

_KINDS_BY_ERRNO = {errno.ENOSPC: "full", errno.EDQUOT: "full", errno.EROFS: "readonly", errno.EACCES: "readonly",
                   errno.EPERM: "readonly"}
_KINDS_BY_SQLITE = (  # (substring of the message or error name, kind); first match wins
    ("database or disk is full", "full"), ("SQLITE_FULL", "full"),
    ("readonly database", "readonly"), ("SQLITE_READONLY", "readonly"),
    ("unable to open database file", "readonly"), ("SQLITE_CANTOPEN", "readonly"),
    ("malformed", "damaged"), ("file is not a database", "damaged"),
    ("SQLITE_CORRUPT", "damaged"), ("SQLITE_NOTADB", "damaged"),
    ("database is locked", "busy"), ("SQLITE_BUSY", "busy"),
)


def failure_kind(exc: BaseException) -> tuple[str, str] | None:
    """(kind, one-line detail) when ``exc`` (or what caused it) comes from SQLite or the OS; None for a bug.

    diskcache hides some SQLite errors behind ``Timeout ... from None``: the cause is still ``__context__``.
    """
    seen: list[BaseException] = []
    while exc is not None and len(seen) < 5:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    for e in seen:
        if isinstance(e, sqlite3.Error):
            text = f"{e} {getattr(e, 'sqlite_errorname', '')}"
            kind = next((k for needle, k in _KINDS_BY_SQLITE if needle in text), "unusable")
            return kind, str(e).replace("\n", " ")
        if isinstance(e, OSError):
            return _KINDS_BY_ERRNO.get(e.errno or 0, "unusable"), (e.strerror or str(e)).replace("\n", " ")
    if any(isinstance(e, diskcache.Timeout) for e in seen):
        return "busy", "timed out waiting for another process"
    return None


def cache_error(kind: str, detail: str, folder: Path) -> CacheError:
    """The one line a user sees for a cache folder that cannot be used."""
    advice = {
        "full": f"free some space, run `python -m tll_core cache --clear --cache-dir {shown_path(folder)}`, or use --no-cache",
        "readonly": "use --no-cache, or set TLL_CACHE_DIR to a writable folder",
        "busy": "another process holds the cache; try again, or use --no-cache",
        "damaged": f"run `python -m tll_core cache --clear --cache-dir {shown_path(folder)}` or delete the folder",
    }.get(kind, "use --no-cache, or set TLL_CACHE_DIR to another folder")
    what = {"full": "no space left for the cache", "readonly": "cache folder is not writable",
            "busy": "cache is locked", "damaged": "damaged cache database"}.get(kind, "cache is unusable")
    return CacheError(f"{shown_path(folder)}: {what} ({shown(detail, 200)}); {advice}", kind)


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


def damaged_copies(directory: str | os.PathLike[str] | None = None) -> list[Path]:
    """The damaged databases moved aside in the cache's subfolders (kept for the user to inspect or delete)."""
    root = Path(directory) if directory is not None else default_cache_dir()
    return sorted(p for sub in (EmbeddingCache.SUBFOLDER, MatcherStore.SUBFOLDER)
                  for p in (root / sub).glob(f"{DBNAME}{DAMAGED}*") if not p.name.endswith(("-wal", "-shm")))


def damaged_note(directory: str | os.PathLike[str] | None = None) -> str:
    """``; N damaged database(s) kept aside: …`` for the CLI's lines, or "" when there are none."""
    kept = damaged_copies(directory)
    return f"; {len(kept)} damaged database(s) kept aside: {', '.join(map(str, kept))}" if kept else ""


def remove_cache_files(folder: Path) -> None:
    """Delete what diskcache made in ``folder`` without asking SQLite (whose DELETEs need space on disk).

    That is the database with its ``-wal``/``-shm``/``-journal`` and the two-hex-digit folders of value
    files; damaged copies moved aside and anything else in the folder are left alone.
    """
    try:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with suppress(FileNotFoundError):
                (folder / f"{DBNAME}{suffix}").unlink()
        for sub in (folder.iterdir() if folder.is_dir() else ()):
            if sub.is_dir() and not sub.is_symlink() and len(sub.name) == 2 and _is_hex(sub.name):
                shutil.rmtree(sub)
    except OSError as exc:
        kind, detail = failure_kind(exc) or ("unusable", str(exc))
        raise cache_error(kind, detail, folder.parent) from exc


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _stored_count(database: Path) -> int:
    """How many entries a database holds, read without writing anything (0 when it cannot be read)."""
    if not database.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1)) as conn:
            row = conn.execute("SELECT value FROM Settings WHERE key = 'count'").fetchone()
        return int(row[0]) if row else 0
    except (sqlite3.Error, ValueError, TypeError):
        return 0


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


class _Store:
    """One diskcache database in ``<directory>/<SUBFOLDER>``, whose SQLite and OS failures are handled
    as the module docstring says."""

    SUBFOLDER = ""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.notices: list[str] = []  # one line each: what was done about a damaged database
        self._cache: diskcache.Cache | None = None
        self._inode: int | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            kind, detail = failure_kind(exc) or ("readonly", str(exc))
            raise cache_error("full" if kind == "full" else "readonly", f"cannot create {self.folder.name}/: {detail}",
                              self.directory) from exc
        self._guard(self._db)

    @property
    def folder(self) -> Path:
        return self.directory / self.SUBFOLDER

    @property
    def database(self) -> Path:
        return self.folder / DBNAME

    def _settings(self) -> dict[str, Any]:
        return {}

    def _db(self) -> diskcache.Cache:
        """The open diskcache (opened again after a damaged database was moved aside)."""
        if self._cache is None:
            self._inode = _inode(self.database)
            cache = diskcache.Cache.__new__(diskcache.Cache)
            try:
                cache.__init__(str(self.folder), disk=NoPickleDisk, **self._settings())
            except BaseException:  # close its connection now: the traceback would keep it (and the file) open
                with suppress(Exception):
                    cache.close()
                raise
            self._cache, self._inode = cache, _inode(self.database)
        return self._cache

    def _guard(self, action: Callable[[], T], *, recover: bool = True) -> T:
        """``action()``, with SQLite/OS failures made one-line CacheErrors; a damaged database is moved
        aside and ``action`` run once more on a fresh one."""
        try:
            return action()
        except Exception as exc:
            found = failure_kind(exc)
            if found is None:
                raise
            kind, detail = found
            if kind == "damaged" and recover:
                self._move_aside(detail)
                return self._guard(action, recover=False)
            raise cache_error(kind, detail, self.directory) from exc

    def _move_aside(self, detail: str) -> None:
        self._close_quietly()
        db = self.database
        if self._inode is None or _inode(db) != self._inode:  # gone, or another process did it already
            return
        target = db.with_name(f"{DBNAME}{DAMAGED}{time.strftime('%Y%m%d-%H%M%S')}")
        for n in range(1, 1000):
            if not target.exists():
                break
            target = target.with_name(f"{DBNAME}{DAMAGED}{time.strftime('%Y%m%d-%H%M%S')}-{n}")
        try:
            db.rename(target)
            for suffix in ("-wal", "-shm"):
                with suppress(FileNotFoundError):
                    Path(f"{db}{suffix}").rename(f"{target}{suffix}")
        except OSError as exc:
            kind, why = failure_kind(exc) or ("unusable", str(exc))
            raise cache_error("damaged", f"{detail}; cannot move it aside: {why}", self.directory) from exc
        notice = f"{db}: damaged cache database ({detail}) moved aside to {target.name}; started an empty one"
        self.notices.append(notice)
        warnings.warn(notice, CacheNotice, stacklevel=4)

    def _close_quietly(self) -> None:
        if self._cache is not None:
            with suppress(sqlite3.Error, OSError):
                self._cache.close()
        self._cache = None

    def __len__(self) -> int:
        return self._guard(lambda: len(self._db()))

    def clear(self) -> int:
        """Remove every entry; how many there were. Works on a full disk (see the module docstring)."""
        count = self._guard(lambda: len(self._db()))
        try:
            return self._guard(lambda: self._db().clear(), recover=False)
        except CacheError as exc:
            if exc.kind not in ("full", "damaged"):
                raise
        self._close_quietly()
        remove_cache_files(self.folder)
        with suppress(CacheError):  # an empty one; else made on the next use
            self._guard(self._db)
        return count

    def close(self) -> None:
        self._close_quietly()


def bound_digest(key: str, payload: bytes) -> bytes:
    """The BLAKE2 digest of a stored value *and the key it is stored under*: a value moved to another key (rows'
    values swapped or rotated in the database, value files swapped) fails its check there. The key's length
    comes first, so no split of key + payload into two other parts gives the same digest."""
    name = key.encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(digest_size=DIGEST_BYTES)
    digest.update(struct.pack("<Q", len(name)))
    digest.update(name)
    digest.update(payload)
    return digest.digest()


def encode_vector(key: str, vector: np.ndarray) -> bytes:
    """The bytes stored under ``key``: magic, dim, float32 data and the digest of key and all before it."""
    data = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
    body = MAGIC + struct.pack("<I", vector.size) + data
    return body + bound_digest(key, body)


def decode_vector(key: str, blob: bytes) -> np.ndarray | None:
    """The vector, or None if the bytes are damaged in any way, an old format, or were stored under another key."""
    if not isinstance(blob, bytes) or len(blob) < len(MAGIC) + 4 + DIGEST_BYTES or not blob.startswith(MAGIC):
        return None
    body, digest = blob[:-DIGEST_BYTES], blob[-DIGEST_BYTES:]
    if bound_digest(key, body) != digest:
        return None
    (dim,) = struct.unpack_from("<I", body, len(MAGIC))
    data = body[len(MAGIC) + 4 :]
    if len(data) != dim * 4:
        return None
    return np.frombuffer(data, dtype=np.float32).copy()


class EmbeddingCache(_Store):
    """Embeddings by (backbone identity, image SHA-1)."""

    SUBFOLDER = "embeddings"

    def __init__(self, directory: str | os.PathLike[str] | None = None, size_limit: int | None = None) -> None:
        limit = size_limit if size_limit is not None else env_size_limit()
        self._given_limit = None if limit is None else check_size_limit(limit)
        super().__init__(directory)

    def _settings(self) -> dict[str, Any]:
        # small vectors live inside SQLite (one atomic commit per batch), never as loose files
        settings: dict[str, Any] = dict(eviction_policy="least-recently-stored", disk_min_file_size=2**20,
                                        cull_limit=10)
        limit = self._given_limit
        if limit is None and (not self.database.exists() or self.database.stat().st_size == 0):
            limit = DEFAULT_SIZE_LIMIT  # a new database; an existing one keeps its stored limit
        if limit is not None:
            settings["size_limit"] = limit
        return settings

    @property
    def size_limit(self) -> int:
        return int(self._guard(lambda: self._db().size_limit))

    @staticmethod
    def key(identity: str, sha1: str) -> str:
        return f"{identity}|{sha1}"

    def get(self, identity: str, sha1: str) -> np.ndarray | None:
        key = self.key(identity, sha1)
        blob = self._guard(lambda: _read(self._db(), key))
        return None if blob is None else decode_vector(key, blob)

    def put_many(self, identity: str, vectors: dict[str, np.ndarray]) -> None:
        """Store a batch in one transaction: it lands whole or not at all."""
        self._guard(lambda: self._put_many(identity, vectors))

    def _put_many(self, identity: str, vectors: dict[str, np.ndarray]) -> None:
        cache = self._db()
        with cache.transact():
            for sha1, vector in vectors.items():
                key = self.key(identity, sha1)
                cache.set(key, encode_vector(key, vector))

    def volume(self) -> int:
        return self._guard(lambda: self._db().volume())

    def set_size_limit(self, size_limit: int) -> None:
        """Persist a new limit and evict down to it now."""
        check_size_limit(size_limit)
        self._given_limit = size_limit
        self._guard(lambda: (self._db().reset("size_limit", size_limit), self._db().cull()))


def _read(cache: diskcache.Cache, key: str) -> Any:
    """The stored value, or None when it is refused (not raw bytes) or its value file is unreadable."""
    try:
        return cache.get(key, default=None)
    except (ValueError, OSError):
        return None


def encode_state(key: str, state: Mapping[str, np.ndarray]) -> bytes:
    """The bytes stored under ``key``: magic, the digest of key and safetensors bytes, the safetensors bytes."""
    from safetensors.numpy import save

    data = save({k: np.ascontiguousarray(v) for k, v in state.items()})
    return STATE_MAGIC + bound_digest(key, data) + data


def decode_state(key: str, blob: Any) -> dict[str, np.ndarray] | None:
    """The named arrays, or None if the bytes are damaged, an old format, were stored under another key (two
    matchers' values swapped) or hold a non-finite number. (Whether the arrays fit a matcher — names, shapes,
    dtypes — is the matcher's check: ``load_state``.)"""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    head = len(STATE_MAGIC) + DIGEST_BYTES
    if not isinstance(blob, bytes) or len(blob) < head or not blob.startswith(STATE_MAGIC):
        return None
    digest, data = blob[len(STATE_MAGIC) : head], blob[head:]
    if bound_digest(key, data) != digest:
        return None
    try:
        state = load(data)
    except (SafetensorError, ValueError):
        return None
    if not all(np.isfinite(a).all() for a in state.values() if a.dtype.kind in "fc"):
        return None
    return state


class MatcherStore(_Store):
    """Fitted matchers by key: named arrays as safetensors bytes (no pickle) with a digest bound to the key,
    on the same NoPickleDisk."""

    SUBFOLDER = "matchers"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The stored state, or None (train again) when it is missing or damaged."""
        return decode_state(key, self._guard(lambda: _read(self._db(), key)))

    def put(self, key: str, state: Mapping[str, np.ndarray]) -> None:
        blob = encode_state(key, state)
        self._guard(lambda: self._db().set(key, blob))

    def keys(self) -> list[str]:
        """The keys of the stored matchers."""
        return self._guard(lambda: list(self._db().iterkeys()))


def clear_cache(directory: str | os.PathLike[str] | None = None) -> tuple[int, int]:
    """Empty the embedding cache and the matcher store: (embeddings, matchers) removed.

    Works even where a store cannot be opened because the disk is full: its files are removed.
    """
    root = Path(directory) if directory is not None else default_cache_dir()
    return _clear(EmbeddingCache, root), _clear(MatcherStore, root)


def _clear(kind: type[_Store], root: Path) -> int:
    try:
        store = kind(root)
    except CacheError as exc:
        if exc.kind != "full":
            raise
        folder = root / kind.SUBFOLDER
        count = _stored_count(folder / DBNAME)
        remove_cache_files(folder)
        return count
    try:
        return store.clear()
    finally:
        store.close()
