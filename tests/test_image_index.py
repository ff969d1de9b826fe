"""The folder's image index: a restart does not check or hash an unchanged image again, and a changed one is."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import image, make_kaggle
from tll_core import dataset as datasets
from tll_core.dataset import load_dataset
from tll_core.errors import DataError


def _counting(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str]]:
    checked, read = [], []
    real_check, real_read = datasets.Dataset.check_image, datasets.Dataset.read_image
    monkeypatch.setattr(datasets.Dataset, "check_image", lambda self, i: checked.append(i) or real_check(self, i))
    monkeypatch.setattr(datasets.Dataset, "read_image", lambda self, i: read.append(i) or real_read(self, i))
    return checked, read


def test_a_second_load_checks_and_hashes_only_what_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_kaggle(tmp_path / "d", n_pairs=12)
    checked, read = _counting(monkeypatch)
    first = load_dataset(root, index_dir=tmp_path / "cache")
    content = first.fingerprint()
    n = len(set(first.image_ids()))
    assert len(checked) == n and len(read) == n
    checked.clear(), read.clear()
    again = load_dataset(root, index_dir=tmp_path / "cache")  # a new process: only the index file is shared
    assert again.fingerprint() == content and checked == [] and read == []
    changed = sorted(first.image_ids())[0]
    image(root / changed, seed=99)  # rewritten with other pixels
    third = load_dataset(root, index_dir=tmp_path / "cache")
    assert checked == [changed] and third.fingerprint() != content and read == [changed]
    assert third.fingerprint() == load_dataset(root).fingerprint()  # the same digest as with no index at all


def test_a_broken_image_is_found_again_and_never_recorded_as_checked(tmp_path: Path) -> None:
    root = make_kaggle(tmp_path / "d", n_pairs=12)
    load_dataset(root, index_dir=tmp_path / "cache")
    victim = sorted(load_dataset(root).image_ids())[0]
    (root / victim).write_bytes(b"not an image")
    for _ in range(2):
        with pytest.raises(DataError, match=victim.split("/")[-1]):
            load_dataset(root, index_dir=tmp_path / "cache")


@pytest.mark.parametrize("content", [b"{not json", b'{"version": 1, "images": {"x": [1, 2, 3, "four", true, ""]}}',
                                     b'{"version": 99, "images": {}}', b"[]"])
def test_a_damaged_index_is_ignored_and_rewritten(tmp_path: Path, content: bytes) -> None:
    root = make_kaggle(tmp_path / "d", n_pairs=12)
    expected = load_dataset(root).fingerprint()
    load_dataset(root, index_dir=tmp_path / "cache")
    [index] = (tmp_path / "cache" / "images").iterdir()
    index.write_bytes(content)
    assert load_dataset(root, index_dir=tmp_path / "cache").fingerprint() == expected
    assert json.loads(index.read_text())["version"] == 1  # rewritten whole


def test_a_forged_hash_is_not_believed_for_a_file_rewritten_since(tmp_path: Path) -> None:
    """The index vouches for a file only with the signature it was recorded with: a rewrite changes the
    ctime, so a file replaced with the same size and mtime is hashed again."""
    root = make_kaggle(tmp_path / "d", n_pairs=12)
    first = load_dataset(root, index_dir=tmp_path / "cache")
    content = first.fingerprint()
    victim = root / sorted(first.image_ids())[0]
    stat = victim.stat()
    data = bytearray(victim.read_bytes())
    data[-3] ^= 0xFF  # same size
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime
    assert load_dataset(root, index_dir=tmp_path / "cache").fingerprint() != content


def test_an_unchanged_image_whose_vectors_are_cached_is_not_read_again(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A restart on a warm cache takes every vector by the image's recorded hash without opening the file; a
    rewritten image is read (and its new vector computed)."""
    import numpy as np

    from tll_core.engine import Engine

    root = make_kaggle(tmp_path / "d", n_pairs=12)
    first = Engine.open(root, cache_dir=tmp_path / "c")
    first.dataset.fingerprint()  # the studio's first run: every image hashed, and recorded
    ids = sorted(first.dataset.image_ids())[:8]
    expected = first.embed(ids, "hog+colour-hist")
    checked, read = _counting(monkeypatch)
    warm = Engine.open(root, cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(warm.embed(ids, "hog+colour-hist"), expected)
    assert read == [] and warm.stats.cached == 2 * len(ids) and warm.stats.computed == 0
    image(root / ids[0], seed=77)
    again = Engine.open(root, cache_dir=tmp_path / "c")
    changed = again.embed(ids, "hog+colour-hist")
    assert read == [ids[0]] and again.stats.computed == 2
    assert not np.array_equal(changed[0], expected[0]) and np.array_equal(changed[1:], expected[1:])
