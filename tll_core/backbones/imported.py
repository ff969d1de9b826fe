"""Embeddings computed elsewhere (a user's own model, often on a GPU) as a backbone family, ``imported``.

A file gives each image's vector by the image's path relative to the data folder (``train/left/abc.jpg``):

- ``.npz``: arrays ``names`` (N strings) and ``embeddings`` (N x D numbers), read with ``allow_pickle=False``
  (an object array is refused, never unpickled);
- ``.parquet``: a ``name`` column and an ``embedding`` column of equal-length number lists (pyarrow).

Nothing is computed from pixels: the backbone gives its vectors by name (``Backbone.vectors_of``). Its table
entry carries the file's content digest (``weights_tag``), so a changed file is another backbone (the engine
builds it again; the in-memory memo is keyed by identity). Every problem is one line naming the file and the
row or name.
"""
from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, TLLError, quoted, shown_path
from ..files import read_regular
from ..register import register
from .base import Backbone, BackboneCfg, Family, MapKind

EMBEDDING_SUFFIXES = (".npz", ".parquet")
MAX_EMBEDDINGS_BYTES = 2 * 2**30  # 2 GiB: 100k images x 5k float32 dims; refused unread above
MAX_DIM = 65_536


@dataclass(frozen=True)
class Embeddings:
    """An imported file's vectors by image name."""

    names: tuple[str, ...]
    vectors: np.ndarray  # [N, D] float32, finite
    digest: str  # SHA-1 of the file's bytes

    def rows(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}


_READ: dict[tuple, Embeddings] = {}  # the last few files read, by (path, size, mtime, inode): read once
_READ_KEPT = 4


def read_embeddings(path: str | Path) -> Embeddings:
    """The names and vectors of an ``.npz`` or ``.parquet`` file, checked (one line naming the problem)."""
    path = Path(path)
    try:
        st = path.stat()
        key: tuple | None = (str(path.absolute()), st.st_size, st.st_mtime_ns, st.st_ino)
    except OSError:
        key = None  # read_regular says what is wrong
    if key in _READ:
        return _READ[key]
    embeddings = _read_embeddings(path)
    if key is not None:
        _READ[key] = embeddings
        while len(_READ) > _READ_KEPT:
            _READ.pop(next(iter(_READ)))
    return embeddings


def _read_embeddings(path: Path) -> Embeddings:
    if path.suffix.lower() not in EMBEDDING_SUFFIXES:
        raise TLLError(f"{shown_path(path)}: embeddings must be a .npz or .parquet file")
    data = read_regular(path, shown_path(path), MAX_EMBEDDINGS_BYTES)
    if not data:
        raise TLLError(f"{shown_path(path)}: empty file")
    names, vectors = (_npz if path.suffix.lower() == ".npz" else _parquet)(path, data)
    return Embeddings(*_checked(path, names, vectors), hashlib.sha1(data).hexdigest())


def _unpacked_size(path: Path, data: bytes) -> None:
    """Refuse, before anything is inflated, an archive whose members unpack to more than the cap (a compressed
    bomb), or whose ``embeddings`` header declares more than ``MAX_DIM`` columns."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            size = sum(info.file_size for info in archive.infolist())
            if size <= MAX_EMBEDDINGS_BYTES and "embeddings.npy" in archive.namelist():
                with archive.open("embeddings.npy") as member:  # the .npy header only: ~128 bytes inflated
                    major, _ = np.lib.format.read_magic(member)
                    read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                    shape = read_header(member)[0]
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return  # np.load says what is wrong with it
    if size > MAX_EMBEDDINGS_BYTES:
        raise TLLError(f"{shown_path(path)}: unpacks to {size:,} bytes, more than {MAX_EMBEDDINGS_BYTES:,}")
    if "shape" in locals() and len(shape) == 2 and shape[1] > MAX_DIM:
        raise TLLError(f"{shown_path(path)}: {shape[1]} dimensions, more than {MAX_DIM}")


def _npz(path: Path, data: bytes) -> tuple[list, np.ndarray]:
    if not data.startswith(b"PK"):  # np.load would take any other bytes for a pickle (and call it one)
        raise TLLError(f"{shown_path(path)}: not a readable .npz (not a zip archive: save it with numpy.savez)")
    _unpacked_size(path, data)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            missing = [k for k in ("names", "embeddings") if k not in npz.files]
            if missing:
                raise TLLError(f"{shown_path(path)}: no array named {', '.join(missing)} (an .npz needs 'names' and "
                               f"'embeddings'; it has {', '.join(quoted(f) for f in npz.files[:5]) or 'none'})")
            names, vectors = npz["names"], npz["embeddings"]
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise TLLError(f"{shown_path(path)}: holds a pickled (object) array, which is never loaded; save "
                           "'names' as strings and 'embeddings' as numbers") from None
        raise TLLError(f"{shown_path(path)}: not a readable .npz ({str(exc).splitlines()[0][:120]})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise TLLError(f"{shown_path(path)}: not a readable .npz ({type(exc).__name__})") from None
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise TLLError(f"{shown_path(path)}: 'names' must be a 1-D array of strings (it is {names.dtype}, shape {names.shape})")
    if vectors.ndim != 2:
        raise TLLError(f"{shown_path(path)}: 'embeddings' must be N x D (it has shape {vectors.shape})")
    decoded = [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names.tolist()]
    return decoded, vectors


def _parquet(path: Path, data: bytes) -> tuple[list, np.ndarray]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is in requirements.txt
        raise TLLError(f"{shown_path(path)}: reading .parquet needs pyarrow (pip install pyarrow)") from None
    import pyarrow.compute as pc

    where = shown_path(path)
    try:  # on the calling thread (use_threads=False): arrow's pool and torch's clashed at interpreter exit
        meta = pq.ParquetFile(pa.BufferReader(data)).metadata
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        if size > MAX_EMBEDDINGS_BYTES:
            raise TLLError(f"{where}: unpacks to {size:,} bytes, more than {MAX_EMBEDDINGS_BYTES:,}")
        table = pq.read_table(pa.BufferReader(data), use_threads=False)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise TLLError(f"{where}: not a readable .parquet ({type(exc).__name__})") from None
    missing = [c for c in ("name", "embedding") if c not in table.column_names]
    if missing:
        raise TLLError(f"{where}: no column {', '.join(missing)} (a .parquet needs 'name' and 'embedding')")
    names, column = table.column("name").combine_chunks(), table.column("embedding").combine_chunks()
    if not (pa.types.is_string(names.type) or pa.types.is_large_string(names.type)) or names.null_count:
        raise TLLError(f"{where}: the 'name' column must hold text in every row")
    if not len(column):
        raise TLLError(f"{where}: no embeddings in it")
    kind = column.type
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)) or not (
            pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type)):
        raise TLLError(f"{where}: 'embedding' must be a list of numbers in every row (it is {kind})")
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    nulls = np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))
    if len(nulls):
        raise TLLError(f"{where} row {int(nulls[0]) + 1}: 'embedding' is empty (null)")
    odd = np.flatnonzero(lengths != lengths[0])
    if len(odd):
        raise TLLError(f"{where} row {int(odd[0]) + 1}: {int(lengths[odd[0]])} numbers, but row 1 has {int(lengths[0])} "
                       "(every embedding must have the same length)")
    values = column.flatten()
    if values.null_count:
        raise TLLError(f"{where}: 'embedding' holds an empty (null) number")
    vectors = values.to_numpy(zero_copy_only=False).astype(np.float64).reshape(len(column), int(lengths[0]))
    return names.to_pylist(), vectors


def _checked(path: Path, names: list[str], vectors: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    where = shown_path(path)
    if vectors.dtype.kind not in "fiu" or vectors.dtype.kind == "b":
        raise TLLError(f"{where}: embeddings must be numbers (they are {vectors.dtype})")
    if len(names) != len(vectors):
        raise TLLError(f"{where}: {len(names)} names but {len(vectors)} embeddings")
    if not len(names) or not vectors.shape[1]:
        raise TLLError(f"{where}: no embeddings in it")
    if vectors.shape[1] > MAX_DIM:
        raise TLLError(f"{where}: {vectors.shape[1]} dimensions, more than {MAX_DIM}")
    as32 = vectors.astype(np.float32)
    bad = ~np.isfinite(as32).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise TLLError(f"{where}: the embedding of {quoted(names[first])} (row {first + 1}) is not finite "
                       f"(NaN or infinity{' or beyond float32' if np.isfinite(vectors[first]).all() else ''}); "
                       f"{int(bad.sum())} row(s) in all")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        problem = _name_problem(name)
        if problem:
            raise TLLError(f"{where} row {i + 1}: {problem}")
        if name in seen:
            raise TLLError(f"{where}: {quoted(name)} is listed twice (rows {seen[name] + 1} and {i + 1})")
        seen[name] = i
    return tuple(names), np.ascontiguousarray(as32)


def _name_problem(name: str) -> str | None:
    """Why a name cannot be an image path inside the data folder, or None."""
    if not name or "\x00" in name:
        return "an empty name or one with a NUL byte"
    if name.startswith(("/", "\\")) or ":" in name or "\\" in name:
        return f"name {quoted(name)} is not a path relative to the data folder (e.g. train/left/abc.jpg)"
    if ".." in name.split("/"):
        return f"name {quoted(name)} would leave the data folder"
    return None


class ImportedBackbone(Backbone):
    """Vectors looked up by image name; the file is read once, when first asked."""

    def __init__(self, cfg: BackboneCfg) -> None:
        self.cfg = cfg
        self.identity = f"{cfg.name}|imported|{cfg.weights_tag}"
        self._table: tuple[dict[str, int], np.ndarray] | None = None

    def vectors_of(self, image_ids: tuple[str, ...], view: str = "") -> np.ndarray:
        if view:
            raise TLLError(f"backbone {self.cfg.name}: imported embeddings have no {view} view; turn off flip "
                           "test-time averaging, flip_augment and grayscale for it")
        rows, vectors = self._read()
        missing = [i for i in image_ids if i not in rows]
        if missing:
            raise DataError(f"{self.cfg.model_id}: no embedding for {quoted(missing[0])}"
                            + (f" and {len(missing) - 1} more image(s)" if len(missing) > 1 else "")
                            + " (names are paths relative to the data folder, e.g. train/left/abc.jpg)")
        return vectors[[rows[i] for i in image_ids]]

    def _read(self) -> tuple[dict[str, int], np.ndarray]:
        if self._table is None:
            embeddings = read_embeddings(self.cfg.model_id)
            if f"sha1:{embeddings.digest}" != self.cfg.weights_tag:
                raise TLLError(f"{shown_path(self.cfg.model_id)}: changed since it was added as backbone "
                               f"{self.cfg.name}; add it again")
            self._table = embeddings.rows(), embeddings.vectors
        return self._table

    def prepare(self, image: object) -> object:
        raise TLLError(f"backbone {self.cfg.name}: imported embeddings are looked up by name, not computed")

    def embed(self, prepared: list) -> np.ndarray:
        raise TLLError(f"backbone {self.cfg.name}: imported embeddings are looked up by name, not computed")


@register("family", "imported", help="embeddings computed elsewhere (.npz or .parquet by image name): "
                                     "--embeddings NAME=FILE, or a file in <data>/methods/")
class ImportedFamily(Family):
    def build(self, cfg: BackboneCfg, weights_file: object = None, pretrained: bool = True,
              device: str = "cpu") -> ImportedBackbone:
        return ImportedBackbone(cfg)

    def map_kind(self, cfg: BackboneCfg) -> MapKind | None:
        return None

    def no_map_reason(self, cfg: BackboneCfg) -> str:
        return f"{cfg.name} is imported embeddings: there are no feature maps to show where images match"


def imported_cfg(name: str, path: str | Path, embeddings: Embeddings) -> BackboneCfg:
    """The table entry of an imported file: the family, the file, its digest and width."""
    return BackboneCfg(name, "imported", str(Path(path).resolve()), f"sha1:{embeddings.digest}",
                       int(embeddings.vectors.shape[1]), description=f"imported embeddings from {Path(path).name}")
