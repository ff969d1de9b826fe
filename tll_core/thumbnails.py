"""Small JPEG thumbnails as data URLs: what the embedding map shows beside a hovered point.

Every image is read through the dataset's confined reader (:meth:`Dataset.read_image`, re-checked at every
open) and decoded by :func:`~tll_core.images.decode_rgb` (bombs refused, EXIF-rotated, any mode to RGB);
only the re-encoded thumbnail's bytes leave here, never a path. An image that cannot be read has no
thumbnail (``""``) instead of stopping the others.
"""
from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Protocol

from .errors import TLLError
from .images import ImageBytes, decode_rgb

THUMBNAIL_SIDE = 96
"""The longer side in pixels: a TLL image (~200x245) becomes 78x96, about 2.6 KB as a data URL (80 px: 2.1 KB,
64 px: 1.4 KB, measured on tll-dev) — faces and objects are still told apart at a glance."""
THUMBNAIL_QUALITY = 70
JPEG_PREFIX = "data:image/jpeg;base64,"


class ImageReader(Protocol):  # a Dataset: its confined read
    def read_image(self, image_id: str) -> ImageBytes: ...


def thumbnail_jpeg(image: ImageBytes, side: int = THUMBNAIL_SIDE, quality: int = THUMBNAIL_QUALITY) -> bytes:
    """The image shrunk to fit ``side`` x ``side`` (aspect kept, never enlarged) as baseline JPEG bytes.
    Raises DataError (a TLLError naming the file) when it cannot be decoded."""
    if side < 1:
        raise ValueError(f"thumbnail side must be at least 1 pixel, not {side}")
    im = decode_rgb(image)
    im.thumbnail((side, side))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()


def data_url(jpeg: bytes) -> str:
    """JPEG bytes as a ``data:image/jpeg;base64,…`` URL (nothing for the browser to fetch)."""
    return JPEG_PREFIX + base64.b64encode(jpeg).decode("ascii")


def thumbnail_urls(reader: ImageReader, image_ids: Sequence[str], side: int = THUMBNAIL_SIDE) -> tuple[str, ...]:
    """A data-URL thumbnail for each image id, read through ``reader.read_image`` (the confined reader);
    ``""`` for an image that is refused, missing or undecodable."""
    return tuple(_one_url(reader, image_id, side) for image_id in image_ids)


def _one_url(reader: ImageReader, image_id: str, side: int) -> str:
    try:
        return data_url(thumbnail_jpeg(reader.read_image(image_id), side))
    except TLLError:
        return ""
