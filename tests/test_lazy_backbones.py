"""A warm start builds no network it does not run: a packaged backbone built before with this cache answers its
identity from the record and is built only when it must compute a vector, with the same vectors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import make_kaggle
from tll_core.backbones.lazy import RECORD_FILE, LazyBackbone
from tll_core.backbones.registry import weights_available
from tll_core.engine import Engine
from tll_core.errors import TLLError

NAME = "efficientnet-lite0"
pytestmark = pytest.mark.skipif(not weights_available(NAME), reason="efficientnet-lite0's package is not installed")


def test_a_recorded_backbone_is_built_only_to_compute(tmp_path: Path) -> None:
    root = make_kaggle(tmp_path / "d", n_pairs=12)
    first = Engine.open(root, cache_dir=tmp_path / "c")
    ids = sorted(first.dataset.image_ids())
    seen = first.embed(ids[:6], NAME)
    assert not isinstance(first.backbone(NAME), LazyBackbone)  # the first build records its identity
    warm = Engine.open(root, cache_dir=tmp_path / "c")  # a restart: a new engine on the same cache
    lazy = warm.backbone(NAME)
    assert isinstance(lazy, LazyBackbone) and lazy.identity == first.backbone(NAME).identity
    np.testing.assert_array_equal(warm.embed(ids[:6], NAME), seen)
    assert not lazy.is_built  # every vector came from the cache
    fresh = warm.embed(ids[6:10], NAME)
    assert lazy.is_built
    np.testing.assert_array_equal(fresh, first.embed(ids[6:10], NAME))


def test_a_record_that_does_not_match_the_build_is_one_line_and_replaced(tmp_path: Path) -> None:
    root = make_kaggle(tmp_path / "d", n_pairs=12)
    first = Engine.open(root, cache_dir=tmp_path / "c")
    ids = sorted(first.dataset.image_ids())
    first.embed(ids[:2], NAME)
    record = tmp_path / "c" / RECORD_FILE
    data = json.loads(record.read_text())
    record.write_text(json.dumps({k: v + "|forged" for k, v in data.items()}))
    with pytest.raises(TLLError, match="not as recorded") as caught:
        Engine.open(root, cache_dir=tmp_path / "c").embed(ids[:2], NAME)
    assert "\n" not in str(caught.value)
    assert json.loads(record.read_text()) == data  # the build's own identity again
    np.testing.assert_array_equal(Engine.open(root, cache_dir=tmp_path / "c").embed(ids[:2], NAME),
                                  first.embed(ids[:2], NAME))


@pytest.mark.parametrize("content", ["{broken", "[1, 2]", '{"k": 3}'])
def test_a_damaged_record_only_costs_a_build(tmp_path: Path, content: str) -> None:
    root = make_kaggle(tmp_path / "d", n_pairs=12)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / RECORD_FILE).write_text(content)
    engine = Engine.open(root, cache_dir=tmp_path / "c")
    ids = sorted(engine.dataset.image_ids())[:2]
    assert engine.embed(ids, NAME).shape[0] == 2 and not isinstance(engine.backbone(NAME), LazyBackbone)


def test_whether_vectors_are_cached_is_told_without_building_a_network(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """``Engine.cached`` (the studio's preview check): a packaged backbone never built with this cache has none of
    its vectors there — no build needed to say so; one built before answers from its record, unbuilt."""
    import tll_core.engine as engine_module

    root = make_kaggle(tmp_path / "d", n_pairs=12)
    cold = Engine.open(root, cache_dir=tmp_path / "c")
    ids = sorted(cold.dataset.image_ids())
    real_create = engine_module.create_backbone
    cold.backbone("hog")  # a descriptor: built at once, as ever

    def no_build(*args, **kwargs):
        raise AssertionError("a network was built to answer a cache lookup")

    monkeypatch.setattr(engine_module, "create_backbone", no_build)
    assert not cold.cached(ids[:6], NAME) and not cold.cached(ids[:6], f"hog+{NAME}")
    monkeypatch.setattr(engine_module, "create_backbone", real_create)
    cold.embed(ids[:6], NAME)
    assert cold.cached(ids[:6], NAME) and not cold.cached(ids, NAME)
    monkeypatch.setattr(engine_module, "create_backbone", no_build)
    warm = Engine.open(root, cache_dir=tmp_path / "c")  # a restart: its identity is recorded
    assert warm.cached(ids[:6], NAME) and not warm.cached(ids, NAME)
    assert not warm.backbone(NAME).is_built
