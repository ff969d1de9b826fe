"""Shared fixtures. Nothing here needs the network or ../shared: data is made in tmp folders."""
from __future__ import annotations

import contextlib
import csv
import os
import shutil
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


# ------------------------------------------------------------ expensive setup shared by the slow tests
#
# Building a packaged EfficientNet-Lite backbone (SHA-256 check, name mapping, JIT trace + freeze) takes
# seconds, and embedding the demo with the default recipe's deep backbones and training its matcher takes
# tens of seconds on 2 cores. Tests whose subject is neither get them from these fixtures: real objects
# and real cache entries made once per session by the code under test, never stand-ins.


class BuiltBackbones:
    """Packaged-weight backbones built once per session by the real ``create_backbone(name)``."""

    def __init__(self) -> None:
        self._built: dict = {}

    def __call__(self, name: str):
        from tll_core.backbones.deep import cpu_engine_key
        from tll_core.backbones.registry import create_backbone

        key = (name, cpu_engine_key())  # a test that asks for another CPU engine ($TLL_CPU_ENGINE) builds its own
        if key not in self._built:
            self._built[key] = create_backbone(name)
        return self._built[key]

    def reusable(self, name: str, weights, pretrained: bool, device: str) -> bool:
        """Whether ``create_backbone(name, ...)`` would build exactly what ``self(name)`` built: pretrained
        weights from the installed package (no weights file, none in $TLL_WEIGHTS_DIR), on the CPU."""
        from tll_core.backbones.registry import BACKBONES, local_weights_file
        from tll_core.device import resolve_device

        cfg = BACKBONES.get(name)
        return (cfg is not None and cfg.packaged is not None and pretrained and weights is None
                and local_weights_file(name) is None and str(resolve_device(device)) == "cpu")

    def patch_engine(self, mp: pytest.MonkeyPatch) -> None:
        """Engines (CLI, studio, library) take these instead of building the same backbones again."""
        import tll_core.engine as engine_module

        real = engine_module.create_backbone

        def create_backbone(name, *, weights=None, pretrained=True, device="cpu"):
            if self.reusable(name, weights, pretrained, device):
                return self(name)
            return real(name, weights=weights, pretrained=pretrained, device=device)

        mp.setattr(engine_module, "create_backbone", create_backbone)


@pytest.fixture(scope="session")
def built_backbones() -> BuiltBackbones:
    return BuiltBackbones()


@pytest.fixture
def reuse_backbones(built_backbones: BuiltBackbones, monkeypatch: pytest.MonkeyPatch) -> BuiltBackbones:
    """This test's engines reuse the session's packaged backbones (built by the same call they would make)."""
    built_backbones.patch_engine(monkeypatch)
    return built_backbones


@contextlib.contextmanager
def _isolated_master_env(tmp_path_factory: pytest.TempPathFactory, folder: Path):
    """What ``_isolated_env`` gives a test, for a session fixture (made before any test's own environment)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TLL_CACHE_DIR", str(folder))
        mp.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf")))
        mp.delenv("TLL_WEIGHTS_DIR", raising=False)
        yield mp


def _demo_images(engine) -> list[str]:
    """Every image of the demo: the train pairs (fit and validation parts) and the test tasks."""
    split = engine.validation()
    images = [p.left_id for p in split.fit] + [p.right_id for p in split.fit]
    images += list(split.tasks.left_ids) + list(split.tasks.right_ids)
    test = engine.test()
    return list(dict.fromkeys(images + list(test.left_ids) + list(test.right_ids)))


@pytest.fixture(scope="session")
def warm_demo_master(tmp_path_factory: pytest.TempPathFactory, demo_dir: Path) -> Path:
    """A cache folder in which the real engine has embedded every demo image with every weight-free
    backbone. Never handed out itself: tests get a copy (``warm_demo_cache``)."""
    from tll_core.backbones.registry import BACKBONES
    from tll_core.cache import EmbeddingCache
    from tll_core.dataset import load_dataset
    from tll_core.engine import Engine

    folder = tmp_path_factory.mktemp("warm-demo") / "cache"
    with _isolated_master_env(tmp_path_factory, folder):
        engine = Engine(load_dataset(demo_dir), EmbeddingCache(folder))
        images = _demo_images(engine)
        for name, cfg in BACKBONES.items():
            if not cfg.needs_weights:
                engine.embed(images, name)
        engine.cache.close()
    return folder


@pytest.fixture(scope="session")
def warm_recipe_master(tmp_path_factory: pytest.TempPathFactory, demo_dir: Path, warm_demo_master: Path,
                       built_backbones: BuiltBackbones) -> Path:
    """The warm demo cache, in which the real engine has also run the default recipe on the demo once: on
    the default validation split (every train image embedded with each of the recipe's backbones, its
    learned matcher trained on the fit part and stored) and on the test tasks (the test images embedded,
    the matcher trained on every train pair and stored). Never handed out itself: tests get a copy
    (``warm_recipe_cache``)."""
    from tll_core.cache import EmbeddingCache
    from tll_core.dataset import load_dataset
    from tll_core.engine import Engine
    from tll_core.matchers import LearnedMatcher
    from tll_core.recipes import default_recipe

    folder = copy_warm_cache(warm_demo_master, tmp_path_factory.mktemp("warm-recipe") / "cache")
    with _isolated_master_env(tmp_path_factory, folder) as mp:
        recipe = default_recipe()
        built_backbones.patch_engine(mp)
        engine = Engine(load_dataset(demo_dir), EmbeddingCache(folder))
        split = engine.validation()
        engine.score(split.tasks, recipe.backbone, recipe.method, split.fit)
        engine.score(engine.test(), recipe.backbone, recipe.method, engine.dataset.train_pairs)
        assert engine.trained == (2 if isinstance(recipe.method.matcher(), LearnedMatcher) else 0)
        engine.cache.close()
        engine.store.close()
    return folder


def copy_warm_cache(master: Path, target: Path) -> Path:
    """A private copy of a warm cache master at ``target`` (what the test writes never reaches the master)."""
    shutil.copytree(master, target)
    return target


@pytest.fixture
def warm_demo_cache(warm_demo_master: Path, tmp_path_factory: pytest.TempPathFactory,
                    monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's TLL_CACHE_DIR is a private copy of the warm demo cache (instead of an empty folder):
    the demo's images are embedded already with every weight-free backbone."""
    folder = copy_warm_cache(warm_demo_master, tmp_path_factory.mktemp("warm") / "cache")
    monkeypatch.setenv("TLL_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def warm_recipe_cache(warm_recipe_master: Path, tmp_path_factory: pytest.TempPathFactory,
                      monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's TLL_CACHE_DIR is a private copy of the warm recipe cache (instead of an empty folder):
    the demo embedded with every weight-free backbone and the default recipe's, its matchers trained."""
    folder = copy_warm_cache(warm_recipe_master, tmp_path_factory.mktemp("warm") / "cache")
    monkeypatch.setenv("TLL_CACHE_DIR", str(folder))
    return folder


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


def demo_subset(demo: Path, root: Path, n_pairs: int) -> Path:
    """A Kaggle-layout folder (train part only) of the demo's first ``n_pairs`` train pairs, files copied byte
    for byte: the same images, so a warm demo cache already holds their embeddings."""
    with (demo / "train.csv").open(newline="") as fh:
        header, *rows = list(csv.reader(fh))
    rows = rows[:n_pairs]
    assert len(rows) == n_pairs
    for left, right in rows:
        for side, name in (("left", left), ("right", right)):
            (root / "train" / side).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(demo / "train" / side / f"{name}.jpg", root / "train" / side / f"{name}.jpg")
    return write_csv(root / "train.csv", [header, *rows]).parent


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
