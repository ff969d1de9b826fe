"""Shared fixtures. Nothing here needs the network or ../shared: data is made in tmp folders."""
from __future__ import annotations

import contextlib
import csv
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tll_core.demo import write_demo


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own cache folder and an empty Hugging Face cache."""
    monkeypatch.setenv("TLL_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf")))
    monkeypatch.delenv("TLL_WEIGHTS_DIR", raising=False)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo(tmp_path_factory.mktemp("demo") / "demo")


def image(path: Path, seed: int = 0, size: tuple[int, int] = (40, 48), mode: str = "RGB") -> Path:
    rng = np.random.default_rng(seed)
    arr = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).convert(mode).save(path)
    return path


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return path


def make_kaggle(root: Path, n_pairs: int = 24, n_test: int = 3, n_test_rights: int = 22) -> Path:
    """A minimal valid Kaggle-layout folder with random images."""
    pairs = [[f"l{i:03d}", f"r{i:03d}"] for i in range(n_pairs)]
    for i, (l, r) in enumerate(pairs):
        image(root / "train/left" / f"{l}.jpg", seed=i)
        image(root / "train/right" / f"{r}.jpg", seed=1000 + i)
    write_csv(root / "train.csv", [["left", "right"], *pairs])
    rights = [f"t{i:03d}" for i in range(n_test_rights)]
    for i, r in enumerate(rights):
        image(root / "test/right" / f"{r}.jpg", seed=2000 + i)
    rows = [["left", *[f"c{i}" for i in range(20)]]]
    for i in range(n_test):
        image(root / "test/left" / f"q{i:03d}.jpg", seed=3000 + i)
        rows.append([f"q{i:03d}", *rights[i : i + 20]])
    write_csv(root / "test_candidates.csv", rows)
    return root


@pytest.fixture
def kaggle_dir(tmp_path: Path) -> Path:
    return make_kaggle(tmp_path / "data")


_RECORDING: list[list[str]] = []  # the lists currently recording opened paths
_HOOKED: list[bool] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _RECORDING and isinstance(args[0], (str, bytes, os.PathLike)):
        for opened in _RECORDING:
            opened.append(os.fsdecode(args[0]))


@contextlib.contextmanager
def files_opened():
    """Every path opened (audit event ``open``) inside the block; one process-wide hook, installed once
    (audit hooks cannot be removed)."""
    if not _HOOKED:
        sys.addaudithook(_audit)
        _HOOKED.append(True)
    opened: list[str] = []
    _RECORDING.append(opened)
    try:
        yield opened
    finally:
        _RECORDING.remove(opened)
