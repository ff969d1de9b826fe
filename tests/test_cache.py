import hashlib
import sqlite3
import struct
from contextlib import closing
from pathlib import Path

import diskcache
import numpy as np
import pytest
from PIL import Image

from conftest import image
from tll_core.backbones.registry import create_backbone
from tll_core.cache import EmbeddingCache, decode_vector, encode_vector
from tll_core.embeddings import EmbeddingStats, embed_paths
from tll_core.errors import DataError


class Counting:
    """Wraps a real backbone and counts the images it embeds."""

    def __init__(self, name: str = "combined") -> None:
        self.inner = create_backbone(name)
        self.cfg, self.identity, self.calls = self.inner.cfg, self.inner.identity, 0

    def prepare(self, im: Image.Image):
        return self.inner.prepare(im)

    def embed(self, prepared):
        self.calls += len(prepared)
        return self.inner.embed(prepared)


@pytest.fixture
def folder(tmp_path: Path) -> list[Path]:
    return [image(tmp_path / "img" / f"{i}.jpg", seed=i) for i in range(10)]


def test_second_run_computes_nothing(folder: list[Path], tmp_path: Path) -> None:
    cache, backbone = EmbeddingCache(tmp_path / "c"), Counting()
    first = embed_paths(folder, backbone, cache, batch_size=3)
    assert backbone.calls == 10
    stats = EmbeddingStats()
    second = embed_paths(folder, backbone, cache, batch_size=3, stats=stats)
    assert backbone.calls == 10 and stats.cached == 10 and stats.computed == 0
    np.testing.assert_array_equal(first, second)


def test_renamed_or_duplicated_images_are_not_recomputed(folder: list[Path], tmp_path: Path) -> None:
    cache, backbone = EmbeddingCache(tmp_path / "c"), Counting()
    embed_paths(folder, backbone, cache)
    copy = tmp_path / "img" / "copy-of-3.jpg"
    copy.write_bytes(folder[3].read_bytes())
    out = embed_paths([copy], backbone, cache)
    assert backbone.calls == 10
    np.testing.assert_array_equal(out[0], embed_paths([folder[3]], backbone, cache)[0])


def test_changed_image_is_recomputed(folder: list[Path], tmp_path: Path) -> None:
    cache, backbone = EmbeddingCache(tmp_path / "c"), Counting()
    before = embed_paths(folder, backbone, cache)
    image(folder[4], seed=99)
    after = embed_paths(folder, backbone, cache)
    assert backbone.calls == 11
    assert not np.array_equal(before[4], after[4]) and np.array_equal(before[5], after[5])


def test_damaged_entry_is_recomputed_not_crashed_on(folder: list[Path], tmp_path: Path) -> None:
    cache, backbone = EmbeddingCache(tmp_path / "c"), Counting()
    before = embed_paths(folder, backbone, cache)
    cache.close()
    store = tmp_path / "c" / "embeddings"
    assert sorted(p.name for p in store.iterdir() if not p.name.startswith("cache.db")) == []  # no loose value files
    with diskcache.Cache(str(store)) as raw:  # diskcache's own API, as another writer would use it
        keys = sorted(raw)
        assert len(keys) == 10
        for key in keys[:2]:
            damaged = bytearray(raw[key])
            damaged[40] ^= 0xFF
            raw[key] = bytes(damaged)
    cache = EmbeddingCache(tmp_path / "c")
    after = embed_paths(folder, backbone, cache)
    assert backbone.calls == 12
    np.testing.assert_array_equal(before, after)


def test_pickled_values_are_never_loaded(tmp_path: Path) -> None:
    EmbeddingCache(tmp_path / "c").close()
    with diskcache.Cache(str(tmp_path / "c" / "embeddings")) as raw:
        # a value diskcache pickles (a list): diskcache itself would unpickle it, ours refuses
        raw[EmbeddingCache.key("b", "x")] = ["boom"]
        assert raw[EmbeddingCache.key("b", "x")] == ["boom"]
    assert EmbeddingCache(tmp_path / "c").get("b", "x") is None


def test_vector_encoding_round_trip_and_damage() -> None:
    v = np.arange(7, dtype=np.float32)
    blob = encode_vector("k", v)
    np.testing.assert_array_equal(decode_vector("k", blob), v)
    assert decode_vector("k", blob[:-1]) is None and decode_vector("k", b"junk") is None
    assert decode_vector("k", blob[:10] + bytes([blob[10] ^ 1]) + blob[11:]) is None
    assert decode_vector("k2", blob) is None and decode_vector("", blob) is None  # bound to its key


def test_values_rotated_between_keys_are_recomputed(kaggle_dir: Path, tmp_path: Path) -> None:
    """Every stored vector moved on to the next row's key by an SQL UPDATE: each one is a digest mismatch
    there, so it is recomputed (and overwritten) and the figures are those of the undamaged run."""
    from tll_core.dataset import load_dataset
    from tll_core.engine import Engine

    def run() -> tuple[Engine, list]:
        engine = Engine(load_dataset(kaggle_dir), EmbeddingCache(tmp_path / "c"))
        rows = engine.evaluate(["combined"])
        engine.cache.close()
        return engine, rows

    first, expected = run()
    with closing(sqlite3.connect(tmp_path / "c" / "embeddings" / "cache.db")) as db, db:
        stored = db.execute("SELECT rowid, value FROM Cache ORDER BY rowid").fetchall()
        assert len(stored) == first.stats.computed > 2 and all(isinstance(v, bytes) for _, v in stored)
        rotated = [v for _, v in stored[1:]] + [stored[0][1]]
        db.executemany("UPDATE Cache SET value = ? WHERE rowid = ?", [(v, r) for v, (r, _) in zip(rotated, stored)])
    second, rows = run()
    assert second.stats.computed == first.stats.computed and second.stats.cached == 0
    assert rows == expected
    third, rows = run()  # the recomputed vectors were stored over the moved ones
    assert third.stats.computed == 0 and rows == expected


def test_old_format_vectors_are_recomputed(folder: list[Path], tmp_path: Path) -> None:
    """An entry of the format before values were bound to their keys (magic TLLE1, digest of the bytes
    alone) is a miss: recomputed and stored again, not an error."""
    cache, backbone = EmbeddingCache(tmp_path / "c"), Counting()
    before = embed_paths(folder, backbone, cache)
    cache.close()
    with diskcache.Cache(str(tmp_path / "c" / "embeddings")) as raw:
        for key in list(raw)[:3]:
            data = raw[key][9:-16]  # magic (5 bytes), dim (4), float32 data, digest (16)
            body = b"TLLE1" + struct.pack("<I", len(data) // 4) + data
            raw[key] = body + hashlib.blake2b(body, digest_size=16).digest()
    cache = EmbeddingCache(tmp_path / "c")
    np.testing.assert_array_equal(embed_paths(folder, backbone, cache), before)
    assert backbone.calls == 13
    embed_paths(folder, backbone, cache)
    assert backbone.calls == 13


def test_unreadable_images_are_all_reported(folder: list[Path], tmp_path: Path) -> None:
    folder[2].write_bytes(folder[2].read_bytes()[:100])
    folder[6].write_text("nope")
    with pytest.raises(DataError) as info:
        embed_paths(folder, create_backbone("combined"), EmbeddingCache(tmp_path / "c"))
    assert "2 unreadable images" in str(info.value) and "2.jpg" in str(info.value) and "6.jpg" in str(info.value)


def test_each_extraction_reports_its_own_unreadable_images(folder: list[Path], kaggle_dir: Path,
                                                           tmp_path: Path) -> None:
    """Extractions sharing one stats object (an engine's, shared by the studio's sessions) each report the
    unreadable images among their own paths: never those of an earlier extraction again."""
    folder[2].unlink()  # refused when read
    folder[6].write_bytes(folder[6].read_bytes()[: folder[6].stat().st_size * 2 // 3])  # refused when decoded
    stats, backbone, cache = EmbeddingStats(), create_backbone("combined"), EmbeddingCache(tmp_path / "c")
    for paths, bad in ((folder[:5], "2.jpg"), (folder[5:], "6.jpg"), (folder[:5], "2.jpg"), (folder, None)):
        with pytest.raises(DataError) as info:
            embed_paths(paths, backbone, cache, stats=stats)
        problems = info.value.problems
        assert [Path(p.split(":")[0]).name for p in problems] == ([bad] if bad else ["2.jpg", "6.jpg"]), problems

    from tll_core.dataset import load_dataset
    from tll_core.engine import Engine

    engine = Engine(load_dataset(kaggle_dir), cache)
    broken = engine.dataset.path(engine.dataset.train_pairs[3].left_id)  # l003
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size * 2 // 3])
    for _ in range(3):
        with pytest.raises(DataError) as info:
            engine.embed([p.left_id for p in engine.dataset.train_pairs], "combined")
        assert len(info.value.problems) == 1 and "l003" in str(info.value), info.value.problems


def test_progress_reaches_the_total(folder: list[Path]) -> None:
    seen: list[tuple[int, int]] = []
    embed_paths(folder, create_backbone("tiny-image"), None, batch_size=4, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (10, 10) and all(a <= b for (a, _), (b, _) in zip(seen, seen[1:]))


def test_engine_memory_memo_notices_a_changed_file(kaggle_dir: Path) -> None:
    from tll_core.dataset import load_dataset
    from tll_core.engine import Engine

    engine = Engine(load_dataset(kaggle_dir), EmbeddingCache(kaggle_dir.parent / "c"))
    ids = [p.left_id for p in engine.dataset.train_pairs[:5]]
    first = engine.embed(ids, "combined")
    assert engine.stats.computed == 5
    again = engine.embed(ids, "combined")
    assert again is first and engine.stats.computed == 5
    image(engine.dataset.path(ids[2]), seed=77)  # rewritten: size, mtime or inode changes
    changed = engine.embed(ids, "combined")
    assert engine.stats.computed == 6 and not np.array_equal(changed[2], first[2])
    np.testing.assert_array_equal(changed[0], first[0])
