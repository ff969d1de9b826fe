"""Safe image decoding: any mode to RGB, EXIF orientation applied, decompression bombs refused."""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DataError

MAX_PIXELS = 40_000_000
"""Larger images are refused as decompression bombs (TLL images are ~200x245)."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")

Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own guard, as a second line of defence


@dataclass(frozen=True)
class ImageBytes:
    """An image file's raw bytes and their SHA-1, read once: the hash keys the cache, the bytes decode."""

    path: Path
    data: bytes

    @property
    def sha1(self) -> str:
        return hashlib.sha1(self.data).hexdigest()


def read_image_bytes(path: Path) -> ImageBytes:
    try:
        return ImageBytes(path, path.read_bytes())
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def check_header(path: Path, shown: str | None = None) -> str | None:
    """Cheap up-front check (header only, no decode). Returns a problem (naming the file as ``shown``,
    default the path) or None."""
    problem = _header_problem(path)
    return None if problem is None else problem.replace(str(path), shown or str(path), 1)


def _header_problem(path: Path) -> str | None:
    try:
        if path.stat().st_size == 0:
            return f"{path}: empty file"
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return _size_problem(path, im.size)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return f"{path}: {_bomb(exc)}"
    except UnidentifiedImageError:
        return f"{path}: not a readable image"
    except OSError as exc:
        return f"{path}: cannot read ({exc.strerror or exc})"


def _bomb(exc: Exception) -> str:
    """Pillow's own guard fired before ours could read the size: report it in our words."""
    import re

    size = re.search(r"\((\d+) pixels\)", str(exc))
    pixels = f"{int(size.group(1)):,} pixels" if size else "too many pixels"
    return f"{pixels} exceeds the {MAX_PIXELS:,}-pixel limit (decompression bomb?)"


def _size_problem(path: Path, size: tuple[int, int]) -> str | None:
    w, h = size
    if w * h > MAX_PIXELS:
        return f"{path}: {w}x{h} pixels exceeds the {MAX_PIXELS:,}-pixel limit (decompression bomb?)"
    if w < 1 or h < 1:
        return f"{path}: image has no pixels"
    return None


def decode_rgb(image: ImageBytes) -> Image.Image:
    """Decode to an RGB PIL image, EXIF-rotated. Raises DataError naming the file on any failure."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(image.data))
            problem = _size_problem(image.path, im.size)
            if problem:
                raise DataError(problem)
            im.load()
            im = ImageOps.exif_transpose(im)
            return to_rgb(im)
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{image.path}: {_bomb(exc)}") from None
    except UnidentifiedImageError:
        raise DataError(f"{image.path}: not a readable image") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{image.path}: corrupt image ({exc})") from None


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB; transparency is composited on white, high bit depths rescaled."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")
