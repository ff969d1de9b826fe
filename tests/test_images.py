import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tll_core import images
from tll_core.errors import DataError
from tll_core.images import ImageBytes, check_header, decode_rgb


def _bytes(im: Image.Image, fmt: str, **kw) -> ImageBytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return ImageBytes(Path(f"x.{fmt.lower()}"), buf.getvalue())


@pytest.mark.parametrize(
    "mode,fmt",
    [("L", "PNG"), ("P", "PNG"), ("CMYK", "JPEG"), ("RGBA", "PNG"), ("I;16", "PNG"), ("1", "PNG"), ("LA", "PNG"), ("RGB", "JPEG")],
)
def test_any_mode_decodes_to_rgb(mode: str, fmt: str) -> None:
    if mode == "I;16":
        src = Image.fromarray(np.arange(30 * 20, dtype=np.uint16).reshape(20, 30) * 100)
    else:
        src = Image.new("RGB", (30, 20), (200, 30, 60)).convert(mode)
    out = decode_rgb(_bytes(src, fmt))
    assert out.mode == "RGB" and out.size == (30, 20)


def test_sixteen_bit_is_rescaled_not_clipped() -> None:
    src = Image.fromarray(np.array([[0, 30000, 65535]], dtype=np.uint16))
    out = np.asarray(decode_rgb(_bytes(src, "PNG")))[0, :, 0]
    assert out[0] == 0 and 100 < out[1] < 140 and out[2] == 255


def test_transparency_is_composited_on_white() -> None:
    src = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert np.asarray(decode_rgb(_bytes(src, "PNG")))[0, 0].tolist() == [255, 255, 255]


def test_exif_orientation_is_applied() -> None:
    src = Image.new("RGB", (30, 20), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    out = decode_rgb(_bytes(src, "JPEG", exif=exif))
    assert out.size == (20, 30)


def test_decompression_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_PIXELS", 100 * 100)
    with pytest.raises(DataError, match="decompression bomb"):
        decode_rgb(_bytes(Image.new("L", (200, 200)), "PNG"))


def test_truncated_jpeg_names_the_file() -> None:
    good = _bytes(Image.new("RGB", (64, 64), (1, 2, 3)), "JPEG")
    with pytest.raises(DataError, match=r"x\.jpeg"):
        decode_rgb(ImageBytes(good.path, good.data[: len(good.data) // 2]))


def test_header_check(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    Image.new("RGB", (5, 5)).save(tmp_path / "ok.jpg")
    assert "empty file" in check_header(tmp_path / "empty.jpg")
    assert "not a readable image" in check_header(tmp_path / "text.jpg")
    assert check_header(tmp_path / "ok.jpg") is None


def test_small_images_decode_exactly_as_pillow_does() -> None:
    """Embeddings are cached by file bytes: normal images must decode bit-identically to a plain decode."""
    rng = np.random.default_rng(0)
    src = Image.fromarray((rng.random((245, 200, 3)) * 255).astype(np.uint8))
    raw = _bytes(src, "JPEG", quality=90)
    expected = np.asarray(Image.open(io.BytesIO(raw.data)).convert("RGB"))
    np.testing.assert_array_equal(np.asarray(decode_rgb(raw)), expected)


def test_large_jpeg_decodes_reduced_and_deterministically() -> None:
    src = Image.new("RGB", (3000, 2000), (20, 120, 220))
    raw = _bytes(src, "JPEG")
    first, second = decode_rgb(raw), decode_rgb(raw)
    assert first.size == (1500, 1000)  # 1/2 scale: the smallest that keeps the long side >= DRAFT_SIDE
    assert max(first.size) >= images.DRAFT_SIDE
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))


def test_decode_budget_depends_on_mode() -> None:
    # a 16-bit grey image costs far more per pixel than an RGB one (float64 rescaling)
    assert images.decode_cost("I;16", (7000, 5700)) > images.MAX_DECODE_BYTES
    assert images.decode_cost("RGB", (4000, 3000)) < images.MAX_DECODE_BYTES
    assert images.decode_cost("I;16", (1000, 1000)) > images.decode_cost("RGB", (1000, 1000))


def test_oversized_image_file_is_refused_before_reading(tmp_path: Path) -> None:
    from tll_core.images import read_image_bytes

    big = tmp_path / "big.jpg"
    with big.open("wb") as fh:
        fh.truncate(images.MAX_IMAGE_BYTES + 1)
    with pytest.raises(DataError, match="exceeds the 52,428,800-byte limit"):
        read_image_bytes(big)
    assert "exceeds" in check_header(big)
