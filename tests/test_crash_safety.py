"""Crash safety and concurrency of the embedding cache, the cache's size limit, and the data-root confinement."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import make_kaggle
from tll_core.cache import EmbeddingCache
from tll_core.dataset import allowed_data_folder, load_dataset
from tll_core.engine import Engine
from tll_core.errors import DataError

ROOT = Path(__file__).resolve().parent.parent
MODEL = "mobilenetv3_large_100"  # small, random weights: ~0.1 s a batch of 4 on 2 cores


def _cli(data: Path, cache: Path, model: str = MODEL) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "tll_core", "evaluate", "--data", str(data), "--backbone", model,
                             "--random-weights", "--val-fraction", "1.0", "--batch-size", "4", "--quiet",
                             "--cache-dir", str(cache)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _stored(cache: Path) -> int:
    db = cache / "embeddings" / "cache.db"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM Cache").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _embed_all(data: Path, cache: Path, model: str = MODEL) -> tuple[np.ndarray, Engine]:
    engine = Engine(load_dataset(data), EmbeddingCache(cache), pretrained=False, batch_size=4)
    tasks = engine.validation(1.0).tasks
    return engine.embed(list(tasks.left_ids) + list(tasks.right_ids), model), engine


@pytest.mark.slow
def test_sigkill_mid_run_keeps_finished_batches(tmp_path: Path) -> None:
    # 48 pairs: 96 images in 24 batches of 4; killed after 3 or more batches are stored, with ~20 still to go
    data = make_kaggle(tmp_path / "data", n_pairs=48)
    images = 2 * 48
    cache = tmp_path / "killed"
    proc = _cli(data, cache)
    deadline = time.monotonic() + 120
    while _stored(cache) < 12 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read().decode()[-500:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = _stored(cache)
    assert 12 <= kept < images
    resumed, engine = _embed_all(data, cache)
    assert engine.stats.cached == kept and engine.stats.computed == images - kept  # only the remainder
    fresh, _ = _embed_all(data, tmp_path / "uninterrupted")
    np.testing.assert_allclose(resumed, fresh, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_two_processes_share_one_cache(demo_dir: Path, tmp_path: Path) -> None:
    # a descriptor computed per image: bit-identical vectors whichever process computed them, so any
    # difference between the two runs' figures or from a lone run could only come from the cache.
    # (CPU CNNs differ in the last bits with the batch's make-up, which cache hits change.)
    cache = tmp_path / "shared"
    procs = [_cli(demo_dir, cache, "combined"), _cli(demo_dir, cache, "combined")]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-1000:]
    outputs = [proc.stdout.read().decode() for proc in procs]
    assert outputs[0] == outputs[1] and "combined" in outputs[0]
    shared, engine = _embed_all(demo_dir, cache, "combined")
    assert engine.stats.computed == 0 and engine.stats.cached == 320  # every entry readable (checksummed)
    alone, _ = _embed_all(demo_dir, tmp_path / "alone", "combined")
    np.testing.assert_array_equal(shared, alone)


def test_size_limit_evicts_the_oldest(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "c", size_limit=200_000)
    for i in range(40):
        cache.put_many("b", {f"{i:040d}": np.full(2000, i, dtype=np.float32)})  # ~8 kB each
    assert cache.volume() <= 200_000 * 1.5 and len(cache) < 40
    assert cache.get("b", f"{39:040d}") is not None and cache.get("b", f"{0:040d}") is None
    cache.set_size_limit(50_000)
    assert len(cache) < 10


def test_data_roots_confine_typed_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    allowed = tmp_path / "allowed"
    (allowed / "tll").mkdir(parents=True)
    monkeypatch.setenv("TLL_DATA_ROOTS", f"{allowed}{os.pathsep}{tmp_path / 'other'}")
    assert allowed_data_folder(allowed / "tll") == (allowed / "tll").resolve()
    for bad in (tmp_path, allowed / ".." / "x", "/etc"):
        with pytest.raises(DataError, match="outside the allowed data folders"):
            allowed_data_folder(bad)
    monkeypatch.delenv("TLL_DATA_ROOTS")
    assert allowed_data_folder("/etc") == Path("/etc")


def test_studio_refuses_a_folder_outside_the_roots(demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TLL_DATA_ROOTS", str(tmp_path / "nowhere"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update(backbone="combined", method="zero-shot")  # the subject is the folder, not the recipe
    at.run()
    at.sidebar.text_input(key="w_data").set_value(str(demo_dir)).run()
    assert not at.exception and "outside the allowed data folders" in at.error[0].value
