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
