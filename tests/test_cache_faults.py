"""The cache when its own storage fails: damaged databases, read-only folders, full disks, clearing on a full
disk, the stored size limit, and the matcher store's integrity checks.

Faults are real where they can be made without root (garbage or truncated databases, a folder under a file,
SQLite's own max_page_count and read-only mode); the rest are injected at the sqlite3/OS layer, below
diskcache and the code under test.
"""
from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import diskcache
import numpy as np
import pytest

from conftest import make_kaggle
from tll_core.cache import (DBNAME, DEFAULT_SIZE_LIMIT, CacheError, CacheNotice, EmbeddingCache, MatcherStore,
                            clear_cache, damaged_copies, default_cache_dir)
from tll_core.cli import main
from tll_core.dataset import load_dataset
from tll_core.engine import Engine, Method
from tll_core.errors import TLLError

ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0
FULL = "database or disk is full"


def vec(i: int, n: int = 500) -> np.ndarray:
    return np.full(n, i, dtype=np.float32)


def sha(i: int) -> str:
    return f"{i:040d}"


def filled(folder: Path, n: int = 3) -> EmbeddingCache:
    cache = EmbeddingCache(folder)
    cache.put_many("b", {sha(i): vec(i) for i in range(n)})
    return cache


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def one_error_line(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "unexpected" not in err
    for needle in needles:
        assert needle in lines[0], (needle, err)


Inject = Callable[..., None]


@pytest.fixture
def inject(monkeypatch: pytest.MonkeyPatch) -> Inject:
    """Make every new SQLite connection faulty: statements matching ``fail`` raise ``error``; ``readonly``
    opens the database read-only (SQLite then refuses writes itself); ``full`` caps the database at its
    current size (SQLite then answers "database or disk is full" itself); ``times``: fail only so often."""
    real = sqlite3.connect

    def install(fail: str | None = None, error: Exception | None = None, *, readonly: bool = False,
                full: bool = False, times: int = 10**9) -> None:
        pattern = re.compile(fail) if fail else None
        left = [times]

        class Faulty(sqlite3.Connection):
            def execute(self, sql: str, *args: object) -> sqlite3.Cursor:  # type: ignore[override]
                if pattern is not None and pattern.search(sql) and left[0] > 0:
                    left[0] -= 1
                    raise error or sqlite3.OperationalError(FULL)
                return super().execute(sql, *args)

        def connect(database: str, *args: object, **kwargs: object) -> sqlite3.Connection:
            if readonly and not str(database).startswith("file:"):
                database, kwargs = f"file:{database}?mode=ro", {**kwargs, "uri": True}
            con = real(database, *args, factory=Faulty, **kwargs)  # type: ignore[call-overload]
            if full:
                con.execute("PRAGMA max_page_count = 1")  # raised to the current page count: no growth
            return con

        monkeypatch.setattr(sqlite3, "connect", connect)

    return install


# ------------------------------------------------------------------ damaged databases


def garbage(db: Path) -> None:
    db.write_bytes(np.random.default_rng(0).bytes(20_000))


def truncated(db: Path) -> None:
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])


@pytest.mark.parametrize("damage, detail", [(garbage, "file is not a database"), (truncated, "malformed")])
def test_damaged_database_is_moved_aside_and_a_fresh_one_started(tmp_path: Path, damage: Callable[[Path], None],
                                                                 detail: str) -> None:
    cache = filled(tmp_path / "c", 60)
    cache.close()
    db = tmp_path / "c" / "embeddings" / DBNAME
    damage(db)
    damaged_bytes = db.read_bytes()
    with pytest.warns(CacheNotice, match="damaged cache database"):
        cache = EmbeddingCache(tmp_path / "c")
    (notice,) = cache.notices
    assert str(db) in notice and detail in notice and "\n" not in notice
    (copy,) = damaged_copies(tmp_path / "c")
    assert copy.name.startswith(f"{DBNAME}.damaged-") and copy.name in notice
    assert copy.read_bytes() == damaged_bytes  # kept as it was, never deleted
    assert len(cache) == 0 and cache.get("b", sha(1)) is None
    cache.put_many("b", {sha(1): vec(1)})
    np.testing.assert_array_equal(cache.get("b", sha(1)), vec(1))
    assert cache.size_limit == DEFAULT_SIZE_LIMIT


def corrupt_cache_table(db: Path) -> None:
    """Overwrite every page but the schema and the Settings table's: the database opens, then its
    Cache table reads as "database disk image is malformed"."""
    with sqlite3.connect(db) as con:
        keep = {1} | {r for (r,) in con.execute("SELECT rootpage FROM sqlite_master WHERE tbl_name = 'Settings'")}
        page = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    data = bytearray(db.read_bytes())
    rng = np.random.default_rng(1)
    for number in range(2, len(data) // page + 1):
        if number not in keep:
            data[(number - 1) * page : number * page] = rng.bytes(page)
    db.write_bytes(bytes(data))


def test_database_damaged_after_opening_is_recovered_on_use(tmp_path: Path) -> None:
    cache = filled(tmp_path / "c", 60)
    cache.close()
    corrupt_cache_table(tmp_path / "c" / "embeddings" / DBNAME)
    cache = EmbeddingCache(tmp_path / "c")
    assert cache.notices == []  # opened fine: the damage is in the Cache table
    with pytest.warns(CacheNotice):
        assert cache.get("b", sha(5)) is None  # malformed on reading: moved aside, a miss
    assert len(cache.notices) == 1 and "malformed" in cache.notices[0]
    cache.put_many("b", {sha(5): vec(5)})
    np.testing.assert_array_equal(cache.get("b", sha(5)), vec(5))
    assert len(damaged_copies(tmp_path / "c")) == 1


def test_damage_found_while_storing_is_recovered_and_the_batch_stored(tmp_path: Path) -> None:
    cache = filled(tmp_path / "c", 60)
    cache.close()
    corrupt_cache_table(tmp_path / "c" / "embeddings" / DBNAME)
    cache = EmbeddingCache(tmp_path / "c")
    with pytest.warns(CacheNotice):
        cache.put_many("b", {sha(i): vec(i) for i in range(100, 104)})
    assert len(cache) == 4 and cache.get("b", sha(103)) is not None


def test_damaged_matcher_store_is_recovered(tmp_path: Path) -> None:
    MatcherStore(tmp_path / "c").put("k", {"w": np.ones(3, np.float32)})
    garbage(tmp_path / "c" / "matchers" / DBNAME)
    with pytest.warns(CacheNotice):
        store = MatcherStore(tmp_path / "c")
    assert store.get("k") is None and len(store.notices) == 1
    store.put("k", {"w": np.ones(3, np.float32)})
    assert store.get("k") is not None


def test_injected_database_errors_are_recovered(tmp_path: Path, inject: Inject) -> None:
    cache = filled(tmp_path / "c")
    cache.close()
    inject(r"^SELECT .* FROM Cache", sqlite3.DatabaseError("database disk image is malformed"), times=1)
    with pytest.warns(CacheNotice):
        assert cache.get("b", sha(1)) is None
    assert "malformed" in cache.notices[0] and len(damaged_copies(tmp_path / "c")) == 1


def test_cli_info_and_clear_on_a_damaged_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    filled(tmp_path / "c").close()
    garbage(tmp_path / "c" / "embeddings" / DBNAME)
    code, out, err = cli(capsys, "cache", "--info", "--cache-dir", str(tmp_path / "c"))
    assert code == 0 and "0 embeddings" in out and "1 damaged database(s) kept aside" in out
    assert len(err.strip().splitlines()) == 1 and "damaged cache database" in err and "moved aside" in err
    garbage(tmp_path / "c" / "matchers" / DBNAME)
    code, out, err = cli(capsys, "cache", "--clear", "--cache-dir", str(tmp_path / "c"))
    assert code == 0 and "cleared 0 embeddings and 0 trained matchers" in out
    assert len(damaged_copies(tmp_path / "c")) == 2


# ------------------------------------------------------------------ read-only or uncreatable folders


@pytest.mark.skipif(ROOT_USER, reason="root writes through chmod; the injected tests below cover this as root")
@pytest.mark.parametrize("existing", [False, True])
def test_read_only_cache_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], existing: bool) -> None:
    folder = tmp_path / "ro"
    if existing:
        filled(folder).close()
    folder.mkdir(exist_ok=True)
    paths = [folder, *folder.rglob("*")]
    for p in paths:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        with pytest.raises(CacheError, match="not writable"):
            EmbeddingCache(folder)
        code, _, err = cli(capsys, "cache", "--info", "--cache-dir", str(folder))
        assert code == 2
        one_error_line(err, str(folder), "--no-cache", "TLL_CACHE_DIR")
    finally:
        for p in paths:
            p.chmod(0o755 if p.is_dir() else 0o644)


def test_uncreatable_cache_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("not a folder")
    folder = tmp_path / "file" / "cache"
    with pytest.raises(CacheError) as info:
        MatcherStore(folder)
    assert info.value.kind == "readonly" and str(folder) in str(info.value)
    code, _, err = cli(capsys, "cache", "--info", "--cache-dir", str(folder))
    assert code == 2
    one_error_line(err, str(folder), "cannot create", "--no-cache")


def test_read_only_file_system_when_creating_the_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def mkdir(path: object, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(os, "mkdir", mkdir)
    code, _, err = cli(capsys, "cache", "--info", "--cache-dir", str(tmp_path / "c"))
    assert code == 2
    one_error_line(err, str(tmp_path / "c"), os.strerror(errno.EROFS), "TLL_CACHE_DIR")


def test_read_only_database_on_opening(tmp_path: Path, capsys: pytest.CaptureFixture[str], inject: Inject) -> None:
    filled(tmp_path / "c").close()
    inject(readonly=True)  # SQLite itself: "attempt to write a readonly database"
    for argv in (["--info"], ["--clear"]):
        code, _, err = cli(capsys, "cache", *argv, "--cache-dir", str(tmp_path / "c"))
        assert code == 2
        one_error_line(err, str(tmp_path / "c"), "not writable", "readonly database")


def test_read_only_database_while_storing(tmp_path: Path, inject: Inject) -> None:
    cache = filled(tmp_path / "c")
    cache.close()
    inject(readonly=True)
    with pytest.raises(CacheError, match="readonly database") as info:
        cache.put_many("b", {sha(9): vec(9)})
    assert info.value.kind == "readonly" and str(tmp_path / "c") in str(info.value)


# ------------------------------------------------------------------ full disks


def test_full_disk_while_storing_embeddings(tmp_path: Path, inject: Inject, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = filled(tmp_path / "c")
    cache.close()
    inject(full=True)  # SQLite itself: "database or disk is full"
    with pytest.raises(CacheError) as info:
        cache.put_many("b", {sha(i): vec(i, 2000) for i in range(10, 40)})
    message = str(info.value)
    assert info.value.kind == "full" and "\n" not in message
    assert message.startswith(f"{tmp_path / 'c'}: no space left") and FULL in message and "--clear" in message
    monkeypatch.undo()
    cache.close()
    assert len(EmbeddingCache(tmp_path / "c")) == 3  # the batch landed not at all


def test_full_disk_while_storing_a_matcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = MatcherStore(tmp_path / "c")

    class NoSpace(io.FileIO):
        def write(self, data: object) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def faulty_open(path: str, mode: str = "r", *args: object, **kwargs: object) -> object:
        return NoSpace(path, mode.replace("b", "")) if "x" in mode else open(path, mode, *args, **kwargs)

    monkeypatch.setattr(diskcache.core, "open", faulty_open, raising=False)  # value files: the OS layer
    with pytest.raises(CacheError) as info:
        store.put("k", {"w": np.ones((100, 100), np.float32)})  # 40 kB: a value file
    assert info.value.kind == "full" and str(tmp_path / "c") in str(info.value)
    assert os.strerror(errno.ENOSPC) in str(info.value)


def test_full_disk_in_an_evaluate_run_is_exit_2(demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               inject: Inject) -> None:
    EmbeddingCache(tmp_path / "c").close()
    inject(full=True)
    code, _, err = cli(capsys, "evaluate", "--data", str(demo_dir), "--backbone", "tiny-image", "--metric", "cosine",
                       "--quiet", "--cache-dir", str(tmp_path / "c"))
    assert code == 2
    one_error_line(err, str(tmp_path / "c"), "no space left", FULL)


def test_full_disk_on_opening_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], inject: Inject) -> None:
    inject(r"^INSERT OR REPLACE INTO Settings")
    code, _, err = cli(capsys, "cache", "--info", "--cache-dir", str(tmp_path / "c"))
    assert code == 2
    one_error_line(err, str(tmp_path / "c"), "no space left", FULL)


def populated(root: Path) -> None:
    filled(root).close()
    store = MatcherStore(root)
    store.put("big", {"w": np.ones((100, 100), np.float32)})  # a value file under matchers/xx/yy/
    store.close()
    (root / "notes.txt").write_text("mine")
    (root / "matchers" / "keep.txt").write_text("mine too")


def value_files(root: Path) -> list[Path]:
    return list(root.rglob("*.val"))


@pytest.mark.parametrize("fail", [r"^DELETE FROM Cache", r"^INSERT OR REPLACE INTO Settings"])
def test_clear_works_on_a_full_disk(tmp_path: Path, capsys: pytest.CaptureFixture[str], inject: Inject,
                                    monkeypatch: pytest.MonkeyPatch, fail: str) -> None:
    root = tmp_path / "c"
    populated(root)
    assert value_files(root)
    inject(fail)  # diskcache's DELETEs (or even opening) fail with "database or disk is full"
    code, out, err = cli(capsys, "cache", "--clear", "--cache-dir", str(root))
    assert code == 0 and "cleared 3 embeddings and 1 trained matchers" in out, err
    assert not value_files(root)
    assert (root / "notes.txt").read_text() == "mine" and (root / "matchers" / "keep.txt").exists()
    monkeypatch.undo()
    assert len(EmbeddingCache(root)) == 0 and len(MatcherStore(root)) == 0


def test_clear_method_on_a_full_disk_frees_the_files(tmp_path: Path, inject: Inject) -> None:
    populated(tmp_path / "c")
    store = MatcherStore(tmp_path / "c")
    store.close()
    inject(r"^DELETE FROM Cache")
    assert store.clear() == 1
    assert not value_files(tmp_path / "c") and len(store) == 0


def test_clear_keeps_damaged_copies(tmp_path: Path) -> None:
    filled(tmp_path / "c").close()
    garbage(tmp_path / "c" / "embeddings" / DBNAME)
    with pytest.warns(CacheNotice):
        assert clear_cache(tmp_path / "c") == (0, 0)
    assert len(damaged_copies(tmp_path / "c")) == 1


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MB file system (a tmpfs), where mounting one is allowed (root with CAP_SYS_ADMIN)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if not ROOT_USER or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)


def test_a_real_full_disk(small_disk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = small_disk / "c"
    cache = EmbeddingCache(root)
    with pytest.raises(CacheError) as info:
        for i in range(1000):  # 16 kB each: the 2 MB disk fills after about a hundred
            cache.put_many("b", {sha(i): vec(i, 4096)})
    assert info.value.kind == "full" and str(root) in str(info.value)
    stored = len(cache)
    cache.close()
    assert stored > 10
    code, out, err = cli(capsys, "cache", "--clear", "--cache-dir", str(root))
    assert code == 0 and f"cleared {stored} embeddings" in out, err
    cache = EmbeddingCache(root)
    cache.put_many("b", {sha(1): vec(1, 4096)})  # room again
    assert len(cache) == 1 and shutil.disk_usage(small_disk).used < 1 * 2**20


# ------------------------------------------------------------------ the size limit


def test_size_limit_persists(capsys: pytest.CaptureFixture[str]) -> None:
    assert EmbeddingCache().size_limit == DEFAULT_SIZE_LIMIT  # a new cache
    code, out, _ = cli(capsys, "cache", "--size-limit", str(5 * 2**20))
    assert code == 0 and "limit 5 MiB" in out
    assert EmbeddingCache().size_limit == 5 * 2**20  # the next open keeps it
    code, out, _ = cli(capsys, "cache", "--info")
    assert code == 0 and "limit 5 MiB" in out


def test_size_limit_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLL_CACHE_SIZE_LIMIT", str(7 * 2**20))
    assert EmbeddingCache(tmp_path / "c").size_limit == 7 * 2**20
    monkeypatch.delenv("TLL_CACHE_SIZE_LIMIT")
    assert EmbeddingCache(tmp_path / "c").size_limit == 7 * 2**20


def test_clear_with_a_size_limit(capsys: pytest.CaptureFixture[str]) -> None:
    filled(default_cache_dir()).close()
    code, out, _ = cli(capsys, "cache", "--clear", "--size-limit", str(3 * 2**20))
    assert code == 0 and "cleared 3 embeddings" in out
    cache = EmbeddingCache()
    assert len(cache) == 0 and cache.size_limit == 3 * 2**20


@pytest.mark.parametrize("limit", ["0", "-5"])
def test_size_limit_must_be_positive(capsys: pytest.CaptureFixture[str], limit: str) -> None:
    filled(default_cache_dir()).close()
    for argv in ([], ["--clear"]):
        code, _, err = cli(capsys, "cache", f"--size-limit={limit}", *argv)
        assert code == 2
        one_error_line(err, f"cache size limit {limit}", "positive", "--clear")
    assert len(EmbeddingCache()) == 3  # nothing cleared
    with pytest.raises(TLLError):
        EmbeddingCache().set_size_limit(int(limit))


@pytest.mark.parametrize("text", ["lots", "4GiB", "-1", "0", "1.5"])
def test_size_limit_env_garbage_is_one_line(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                            text: str) -> None:
    monkeypatch.setenv("TLL_CACHE_SIZE_LIMIT", text)
    with pytest.raises(TLLError, match="TLL_CACHE_SIZE_LIMIT"):
        EmbeddingCache()
    code, _, err = cli(capsys, "cache", "--info")
    assert code == 2
    one_error_line(err, f"TLL_CACHE_SIZE_LIMIT={text!r}")


# ------------------------------------------------------------------ the matcher store's integrity checks

STATE = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.zeros(4, np.float32)}


def test_matcher_state_round_trip(tmp_path: Path) -> None:
    store = MatcherStore(tmp_path / "c")
    store.put("k", STATE)
    got = store.get("k")
    assert got is not None and set(got) == set(STATE)
    np.testing.assert_array_equal(got["w"], STATE["w"])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_matcher_state_with_non_finite_numbers_is_none(tmp_path: Path, bad: float) -> None:
    store = MatcherStore(tmp_path / "c")
    w = STATE["w"].copy()
    w[1, 2] = bad
    store.put("k", {**STATE, "w": w})
    assert store.get("k") is None


def test_flipped_byte_in_the_database_is_none(tmp_path: Path) -> None:
    store = MatcherStore(tmp_path / "c")
    store.put("k", STATE)
    store.close()
    with sqlite3.connect(tmp_path / "c" / "matchers" / DBNAME) as db:
        ((rowid, value),) = db.execute("SELECT rowid, value FROM Cache").fetchall()
        assert isinstance(value, bytes), "a small state is stored inside the database"
        damaged = bytearray(value)
        damaged[-5] ^= 0x01  # one bit of the last weight
        db.execute("UPDATE Cache SET value = ? WHERE rowid = ?", (bytes(damaged), rowid))
    db.close()
    assert MatcherStore(tmp_path / "c").get("k") is None


def test_flipped_byte_in_a_value_file_is_none(tmp_path: Path) -> None:
    store = MatcherStore(tmp_path / "c")
    store.put("k", {"w": np.ones((100, 100), np.float32)})
    (file,) = value_files(tmp_path / "c")
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0x01
    file.write_bytes(bytes(data))
    assert store.get("k") is None


def test_old_format_matcher_state_is_none(tmp_path: Path) -> None:
    from safetensors.numpy import save

    from tll_core.cache import NoPickleDisk

    old = diskcache.Cache(str(tmp_path / "c" / "matchers"), disk=NoPickleDisk)
    old.set("k", save(STATE))  # what the store wrote before it had a digest
    old.close()
    assert MatcherStore(tmp_path / "c").get("k") is None


def swap_rows(db_path: Path) -> None:
    """Swap the stored values of the database's two entries (in the database or as value files) by SQL."""
    columns = "mode, filename, value"
    with closing(sqlite3.connect(db_path)) as db, db:
        (a, *va), (b, *vb) = db.execute(f"SELECT rowid, {columns} FROM Cache ORDER BY rowid").fetchall()
        for rowid, values in ((a, vb), (b, va)):
            db.execute("UPDATE Cache SET mode = ?, filename = ?, value = ? WHERE rowid = ?", (*values, rowid))


@pytest.mark.parametrize("size", [3, 100])  # a 12-weight state inside the database; 40 kB ones as value files
def test_swapped_matcher_states_are_none(tmp_path: Path, size: int) -> None:
    store = MatcherStore(tmp_path / "c")
    one, two = {"w": np.ones((size, size), np.float32)}, {"w": np.full((size, size), 2, np.float32)}
    store.put("one", one)
    store.put("two", two)
    store.close()
    assert len(value_files(tmp_path / "c")) == (2 if size == 100 else 0)
    swap_rows(tmp_path / "c" / "matchers" / DBNAME)
    store = MatcherStore(tmp_path / "c")
    assert store.get("one") is None and store.get("two") is None
    store.put("one", one)  # trained again: stored over the swapped value
    np.testing.assert_array_equal(store.get("one")["w"], one["w"])


# two matchers of the same shapes; a 960 x 16 float32 PCA basis (61 kB) makes each state a value file
TWO_MATCHERS = [Method("adaptation", options=(("epochs", e), ("pca_dim", 16))) for e in (2, 3)]


def _evaluated(data: Path, cache: Path) -> tuple[Engine, list]:
    engine = Engine(load_dataset(data), EmbeddingCache(cache))
    rows = engine.evaluate(["tiny-image"], methods=TWO_MATCHERS)
    engine.cache.close()
    engine.store.close()
    return engine, rows


@pytest.fixture
def fit_dir(tmp_path: Path) -> Path:
    """A folder with enough train pairs for a learned matcher's fit part (60 of 80)."""
    return make_kaggle(tmp_path / "data", n_pairs=80)


def test_two_matchers_with_swapped_value_files_are_retrained(fit_dir: Path, tmp_path: Path) -> None:
    """Two trained matchers of the same shapes, their value files' contents swapped: each digest names the
    other key, so both are trained again (and the figures are the undamaged run's), never used for the other."""
    first, expected = _evaluated(fit_dir, tmp_path / "c")
    assert first.trained == 2
    a, b = sorted(value_files(tmp_path / "c" / "matchers"))
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    second, rows = _evaluated(fit_dir, tmp_path / "c")
    assert second.trained == 2 and rows == expected
    third, rows = _evaluated(fit_dir, tmp_path / "c")  # the retrained states were stored over the swapped ones
    assert third.trained == 0 and rows == expected


def test_old_magic_matcher_state_is_retrained(fit_dir: Path, tmp_path: Path) -> None:
    """A state of the format before it was bound to its key (magic TLLM1, digest of the safetensors bytes
    alone) is a miss: trained again, not used and not an error."""
    from tll_core.cache import NoPickleDisk

    first, expected = _evaluated(fit_dir, tmp_path / "c")
    with closing(diskcache.Cache(str(tmp_path / "c" / "matchers"), disk=NoPickleDisk)) as raw:
        keys = list(raw)
        assert len(keys) == 2
        for key in keys:
            data = raw[key][5 + 16 :]  # magic, digest, safetensors bytes
            raw[key] = b"TLLM1" + hashlib.blake2b(data, digest_size=16).digest() + data
    second, rows = _evaluated(fit_dir, tmp_path / "c")
    assert second.trained == 2 and rows == expected
