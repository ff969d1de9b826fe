"""The embedding map as an instrument, without a browser: reading area selections from plotly events, the lefts a selection stands for, the thumbnails (size, JPEG, only through the confined reader) and
the hover layer's payload."""
from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import image, make_kaggle
from test_analysis import small_tasks
from tll_core.analysis import map_points, selected_points, thumbnail_points
from tll_core.dataset import load_dataset
from tll_core.thumbnails import data_url, thumbnail_jpeg, thumbnail_urls

TRACES = [[0, 2, 4], [1, 3]]  # e.g. the lefts trace and the rights trace


def _event(points: list[dict], box: list | None = None, lasso: list | None = None) -> dict:
    return {"selection": {"points": points, "point_indices": [p.get("point_index") for p in points],
                          "box": box or [], "lasso": lasso or []}}


def test_a_box_a_lasso_or_shift_clicks_select_points_of_any_trace() -> None:
    box = [{"xref": "x", "yref": "y", "x": [0.0, 1.0], "y": [0.0, 1.0]}]
    lasso = [{"xref": "x", "yref": "y", "x": [0.0, 1.0, 0.5], "y": [0.0, 0.0, 1.0]}]
    one = [{"curve_number": 0, "point_index": 1}]
    assert selected_points(_event(one, box=box), TRACES) == [2]
    assert selected_points(_event(one, lasso=lasso), TRACES) == [2]
    many = [{"curve_number": 0, "point_index": 0}, {"curve_number": 1, "point_index": 1}]
    assert selected_points(_event(many, box=box), TRACES) == [0, 3]
    assert selected_points(_event(many + many), TRACES) == [0, 3]  # each point once


def test_a_malformed_or_empty_event_picks_nothing() -> None:
    for event in (None, {}, {"selection": None}, _event([]), {"selection": {"points": "x", "box": "y"}},
                  _event([{"curve_number": 5, "point_index": 0}]), "junk"):
        assert selected_points(event, TRACES) == [], event


def test_a_point_stands_for_its_left() -> None:
    """A left opens itself; a right the left whose truth it is; a foil nothing. The focus is those lefts."""
    points = map_points(small_tasks(4))  # lefts 0..3, rights 4..35; left i's truth is right i (point 4 + i)
    assert [points.left_of(k) for k in (0, 3, 4, 7, 8)] == [0, 3, 0, 3, None]
    assert points.lefts_of([5, 1, 0, 4, 9, 35]) == ["l1", "l0"]  # once each, in order; foils dropped
    assert points.lefts_of([]) == []


def test_thumbnails_are_bounded_lefts_first() -> None:
    points = map_points(small_tasks(4))  # 36 points
    assert thumbnail_points(points) == tuple(range(36))
    assert thumbnail_points(points, limit=6) == (0, 1, 2, 3, 4, 5)  # the 4 lefts, then the first rights
    assert thumbnail_points(points, limit=0) == ()


def _jpeg_size(jpeg: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(jpeg)) as im:
        assert im.format == "JPEG"
        return im.size


def test_a_thumbnail_is_a_small_jpeg_with_the_aspect_kept(tmp_path: Path) -> None:
    data = make_kaggle(tmp_path / "data", n_pairs=2, n_test=0, n_test_rights=0)
    image(data / "train/left/l000.jpg", size=(200, 245))  # a TLL image's size
    image(data / "train/right/r000.png", size=(30, 20), mode="RGBA")  # small, another format and mode
    (data / "train/right/r000.jpg").unlink()
    ds = load_dataset(data)
    jpeg = thumbnail_jpeg(ds.read_image("train/left/l000.jpg"), side=80)
    assert jpeg[:3] == b"\xff\xd8\xff" and _jpeg_size(jpeg) == (65, 80) and len(jpeg) < 6000
    assert _jpeg_size(thumbnail_jpeg(ds.read_image("train/right/r000.png"), side=80)) == (30, 20)  # never enlarged
    url = data_url(jpeg)
    assert url.startswith("data:image/jpeg;base64,") and base64.b64decode(url.split(",", 1)[1]) == jpeg
    with pytest.raises(ValueError):
        thumbnail_jpeg(ds.read_image("train/left/l000.jpg"), side=0)


def test_thumbnails_come_only_through_the_confined_reader(tmp_path: Path) -> None:
    """A file swapped for a symlink out of the folder, a vanished file and a corrupt one have no thumbnail;
    the others still do."""
    data = make_kaggle(tmp_path / "data", n_pairs=4, n_test=0, n_test_rights=0)
    ds = load_dataset(data)
    ids = [p.left_id for p in ds.train_pairs]
    (data / ids[0]).unlink()
    (data / ids[0]).symlink_to(image(tmp_path / "outside.jpg", size=(50, 50)))
    (data / ids[1]).unlink()
    (data / ids[2]).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    urls = thumbnail_urls(ds, ids, side=32)
    assert urls[:3] == ("", "", "") and urls[3].startswith("data:image/jpeg;base64,")
    assert max(_jpeg_size(base64.b64decode(urls[3].split(",", 1)[1]))) == 32

    class Reader:  # what is read goes through read_image, and nothing else
        def __init__(self) -> None:
            self.read: list[str] = []

        def read_image(self, image_id: str):
            self.read.append(image_id)
            return ds.read_image(image_id)

    reader = Reader()
    assert thumbnail_urls(reader, ids[3:], side=32) == urls[3:] and reader.read == ids[3:]


def test_the_hover_payload_is_script_safe_and_complete() -> None:
    from studio.map_hover import hover_html, hover_payload

    xy = np.array([[0.5, -1.0], [2.0, 3.0], [1.0, 1.0]], dtype=np.float32)
    payload = hover_payload([[0, 2], [1]], [1, 0, None], xy, ["data:image/jpeg;base64,AA==", "", "</script><b>"],
                            ["a", "a", "<img src=x>&"])
    assert "<" not in payload and ">" not in payload and "&" not in payload
    data = json.loads(payload)
    assert data == {"traces": [[0, 2], [1]], "partner": [1, 0, -1], "xy": [[0.5, -1.0], [2.0, 3.0], [1.0, 1.0]],
                    "thumb": ["data:image/jpeg;base64,AA==", "", "</script><b>"], "open": ["a", "a", "<img src=x>&"]}
    document = hover_html(payload)
    assert len(re.findall("</script>", document)) == 2  # the data's own closing tag and the script's, no more
