"""Safe image decoding: any mode to RGB, EXIF orientation applied, decompression bombs refused.

Only the raster formats of :data:`IMAGE_FORMATS` are ever decoded: every image is opened by
:func:`open_image` (the project's one call of Pillow's ``Image.open``, tests/test_structure.py checks), which
tries no other plugin — Pillow's EPS plugin would run Ghostscript on a file's content.

Memory is bounded whatever a folder holds: files over :data:`MAX_IMAGE_BYTES` are refused before being read,
large JPEGs are decoded at a reduced size (libjpeg's DCT scaling, deterministic) and other images whose
decoding would need more than :data:`MAX_DECODE_BYTES` are refused. Images no larger than
:data:`DRAFT_SIDE` (all TLL images) decode exactly as Pillow decodes them.
"""
from __future__ import annotations

import hashlib
import io
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DataError
from .files import open_regular, read_regular

MAX_PIXELS = 40_000_000
"""Larger images are refused as decompression bombs (TLL images are ~200x245)."""
MAX_IMAGE_BYTES = 50 * 2**20
"""Larger image files are refused unread."""
MAX_DECODE_BYTES = 256 * 2**20
"""Estimated peak memory of decoding one image (see :func:`decode_cost`); over it, the image is refused."""
DRAFT_SIDE = 1024
"""JPEGs with a longer side are decoded at 1/2, 1/4 or 1/8 scale, still at least this long (backbones use ~260 px)."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
"""The Pillow formats decoded (those IMAGE_SUFFIXES name, whatever a file is called): raster formats whose
plugins run no other program. Anything else — EPS (Ghostscript), PDF, … — is "not a readable image"."""
_FORMATS_SAID = ", ".join(IMAGE_FORMATS[:-1]) + f" or {IMAGE_FORMATS[-1]}"

Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own guard, as a second line of defence


def open_image(fp: str | os.PathLike[str] | BinaryIO) -> Image.Image:
    """Pillow's ``Image.open`` trying only :data:`IMAGE_FORMATS` (UnidentifiedImageError for any other
    format). Every image the project opens goes through here: never ``Image.open`` itself."""
    return Image.open(fp, formats=IMAGE_FORMATS)


def not_readable(shown: str | os.PathLike[str]) -> str:
    """The one line for a file that is no image of :data:`IMAGE_FORMATS`."""
    return f"{shown}: not a readable image (the formats read are {_FORMATS_SAID})"


@dataclass(frozen=True)
class ImageBytes:
    """An image file's raw bytes and their SHA-1, read once: the hash keys the cache, the bytes decode."""

    path: Path
    data: bytes

    @property
    def sha1(self) -> str:
        return hashlib.sha1(self.data).hexdigest()


def read_image_bytes(path: Path, shown: str | None = None, *, root: Path | None = None) -> ImageBytes:
    """An image file's bytes: a regular file of at most MAX_IMAGE_BYTES (inside ``root``, resolved, when given).
    ``path`` of the result is the file as resolved now."""
    data = read_regular(path, shown or str(path), MAX_IMAGE_BYTES, root)
    return ImageBytes(Path(os.path.realpath(path)) if root is not None else Path(path), data)


def check_header(path: Path, shown: str | None = None, *, root: Path | None = None) -> str | None:
    """Cheap up-front check (header only, no decode). Returns a problem (naming the file as ``shown``,
    default the path) or None."""
    shown = shown or str(path)
    try:
        with open_regular(path, shown, MAX_IMAGE_BYTES, root) as fh:
            return _header_problem(fh, shown)
    except DataError as exc:
        return str(exc)


def check_bytes(image: ImageBytes, shown: str) -> str | None:
    """:func:`check_header` of bytes already read: a one-line problem naming ``shown``, or None. For bytes
    handed on undecoded (the studio shows them), which must be an image this module would decode."""
    return _header_problem(io.BytesIO(image.data), shown)


MAX_TIFF_TAG_VALUES = 65_536
"""A TIFF tag holding more values is refused before Pillow reads it (it would make a Python int of each:
~10x the file in memory). A 40-Mpixel image stored one row per strip needs < 10,000."""
_TIFF_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}


def tiff_problem(fh: BinaryIO, shown: str) -> str | None:
    """For a TIFF, why its first IFD must not be parsed (a tag with more than MAX_TIFF_TAG_VALUES values,
    or more entries than that), else None; any other file: None. Leaves ``fh`` at the start."""
    try:
        head = fh.read(16)
        order = {b"II": "<", b"MM": ">"}.get(head[:2])
        if order is None or len(head) < 8:
            return None
        magic = int.from_bytes(head[2:4], "little" if order == "<" else "big")
        big = magic == 43  # BigTIFF: 8-byte counts and offsets
        if magic not in (42, 43):
            return None
        endian = "little" if order == "<" else "big"
        offset = int.from_bytes(head[8:16] if big else head[4:8], endian)
        fh.seek(offset)
        raw = fh.read(8 if big else 2)
        entries = int.from_bytes(raw, endian) if raw else 0
        if entries > MAX_TIFF_TAG_VALUES:
            return f"{shown}: a TIFF directory of {entries:,} entries (limit {MAX_TIFF_TAG_VALUES:,})"
        size = 20 if big else 12
        table = fh.read(entries * size)
        for k in range(0, len(table) - size + 1, size):
            count = int.from_bytes(table[k + 4 : k + (12 if big else 8)], endian)
            if count > MAX_TIFF_TAG_VALUES and _TIFF_TYPE_SIZE.get(int.from_bytes(table[k + 2 : k + 4], endian)):
                tag = int.from_bytes(table[k : k + 2], endian)
                return f"{shown}: TIFF tag {tag} lists {count:,} values (limit {MAX_TIFF_TAG_VALUES:,})"
        return None
    finally:
        fh.seek(0)


def _header_problem(fh: BinaryIO, shown: str) -> str | None:
    try:
        if fh.seek(0, io.SEEK_END) == 0:
            return f"{shown}: empty file"
        fh.seek(0)
        problem = tiff_problem(fh, shown)
        if problem:
            return problem
        with _quiet(), open_image(fh) as im:
            return _size_problem(shown, im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return f"{shown}: {_bomb(exc)}"
    except UnidentifiedImageError:
        return not_readable(shown)
    except (OSError, ValueError, SyntaxError) as exc:  # ValueError: e.g. a PNG text chunk over Pillow's limit
        return f"{shown}: corrupt image ({_one_line(exc)})"


_WARNINGS_LOCK = threading.Lock()


@contextmanager
def _quiet() -> Iterator[None]:
    """Pillow's warnings about a file's content (corrupt EXIF, ...) silenced, its bomb warning an error.

    ``warnings.catch_warnings`` swaps process-wide state, so the threads that decode take turns here; only
    header parsing and EXIF handling run inside, never the pixel decoding.
    """
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _bomb(exc: Exception) -> str:
    """Pillow's own guard fired before ours could read the size: report it in our words."""
    import re

    size = re.search(r"\((\d+) pixels\)", str(exc))
    pixels = f"{int(size.group(1)):,} pixels" if size else "too many pixels"
    return f"{pixels} exceeds the {MAX_PIXELS:,}-pixel limit (decompression bomb?)"


def _size_problem(shown: str | Path, im: Image.Image) -> str | None:
    """Why an opened (not yet decoded) image must not be decoded, or None. Sets a JPEG's draft size first."""
    w, h = im.size
    if w * h > MAX_PIXELS:
        return f"{shown}: {w}x{h} pixels exceeds the {MAX_PIXELS:,}-pixel limit (decompression bomb?)"
    if w < 1 or h < 1:
        return f"{shown}: image has no pixels"
    _draft(im)
    cost = decode_cost(im.mode, im.size)
    if cost > MAX_DECODE_BYTES:
        return (f"{shown}: a {w}x{h} {im.mode} image needs about {cost // 2**20:,} MiB to decode, over the "
                f"{MAX_DECODE_BYTES // 2**20:,} MiB limit")
    return None


def _draft(im: Image.Image) -> None:
    """Ask a large JPEG to decode reduced by the largest of 2, 4 or 8 that keeps its longer side >= DRAFT_SIDE
    (a no-op for other formats and for images no longer than DRAFT_SIDE)."""
    w, h = im.size
    if max(w, h) > DRAFT_SIDE:
        factor = max(w, h) / DRAFT_SIDE
        im.draft(None, (max(1, int(w / factor)), max(1, int(h / factor))))


_HIGH_BIT = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def decode_cost(mode: str, size: tuple[int, int]) -> int:
    """Estimated peak bytes of :func:`decode_rgb` for an image of this (drafted) mode and size: the decoded
    buffer and its EXIF-transposed copy, plus what :func:`to_rgb` allocates for the mode."""
    stored = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}.get(mode, 4)
    if mode in _HIGH_BIT:
        extra = 8 + 8 + 1 + 1 + 4  # float64 array, its rescaled copy, uint8, L, RGB
    elif mode in ("RGBA", "LA", "PA", "P"):
        extra = 4 * 4  # RGBA, white background, composite, RGB
    else:
        extra = 0 if mode == "RGB" else 4
    return size[0] * size[1] * (2 * stored + extra)


def decode_rgb(image: ImageBytes) -> Image.Image:
    """Decode to an RGB PIL image, EXIF-rotated. Raises DataError naming the file on any failure."""
    try:
        data = io.BytesIO(image.data)
        problem = tiff_problem(data, str(image.path))
        if problem:
            raise DataError(problem)
        with _quiet():
            im = open_image(data)
            problem = _size_problem(image.path, im)
        if problem:
            raise DataError(problem)
        im.load()  # the costly part, outside the lock
        with _quiet():
            im = ImageOps.exif_transpose(im)
        return to_rgb(im)
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{image.path}: {_bomb(exc)}") from None
    except UnidentifiedImageError:
        raise DataError(not_readable(image.path)) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{image.path}: corrupt image ({_one_line(exc)})") from None


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB; transparency is composited on white, high bit depths rescaled."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(im, dtype=np.float64)
        finite = np.isfinite(arr)  # a float TIFF may hold NaN or infinity: they take the nearest finite end
        lo, hi = (float(arr[finite].min()), float(arr[finite].max())) if finite.any() else (0.0, 0.0)
        arr = np.nan_to_num(arr, copy=False, nan=lo, posinf=hi, neginf=lo)
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")
