import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tll_core.backbones import deep
from tll_core.backbones.compat import ensure_torchvision_ops
from tll_core.backbones.registry import BACKBONES, create_backbone, weights_available
from tll_core.dataset import load_dataset
from tll_core.embeddings import embed_paths
from tll_core.errors import TLLError, WeightsUnavailable

WEIGHT_FREE = [n for n, c in BACKBONES.items() if not c.needs_weights]


def _photo(seed: int) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((245, 200, 3)) * 255).astype(np.uint8))


@pytest.mark.parametrize("name", WEIGHT_FREE)
def test_weight_free_backbones_end_to_end(name: str, demo_dir: Path) -> None:
    ds = load_dataset(demo_dir)
    paths = [ds.path(p.left_id) for p in ds.train_pairs[:6]]
    vectors = embed_paths(paths, create_backbone(name), batch_size=4)
    assert vectors.shape == (6, BACKBONES[name].dim) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all() and np.linalg.matrix_rank(vectors) > 1


def test_registry_covers_the_reported_models() -> None:
    timm_ids = {c.model_id for c in BACKBONES.values() if c.family == "timm"}
    assert {"resnet50", "resnet101", "resnet152", "densenet201", "vgg16", "mobilenetv3_large_100", "efficientnet_b0"} <= timm_ids
    assert any(i.startswith("mobilenetv2") for i in timm_ids) and any("dino" in i for i in timm_ids)
    clip = {c.model_id for c in BACKBONES.values() if c.family == "open_clip"}
    assert {"RN50", "RN101", "RN50x4", "ViT-B-32", "ViT-L-14"} <= clip


def test_torchvision_compat_registers_a_working_nms() -> None:
    ensure_torchvision_ops()
    import timm  # noqa: F401  (fails with "operator torchvision::nms does not exist" without the compat module)

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=torch.float)
    keep = torch.ops.torchvision.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
    assert keep.tolist() == [0, 2]


@pytest.mark.parametrize("name", ["mobilenetv3_large_100", pytest.param("clip-rn50", marks=pytest.mark.slow)])
def test_deep_backbones_with_random_weights_same_code_path(name: str) -> None:
    backbone = create_backbone(name, pretrained=False)
    assert "random-seed0" in backbone.identity
    out = backbone.embed([backbone.prepare(_photo(0)), backbone.prepare(_photo(1))])
    assert out.shape == (2, BACKBONES[name].dim) and np.isfinite(out).all()
    again = create_backbone(name, pretrained=False)  # seeded: the same random weights, so cacheable
    np.testing.assert_allclose(again.embed([again.prepare(_photo(0))])[0], out[0], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_local_weights_file_is_loaded(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    source = create_backbone("mobilenetv3_large_100", pretrained=False)
    state = {k: v.contiguous() for k, v in source.model.state_dict().items()}
    state = {k: v + 0.01 for k, v in state.items() if v.is_floating_point()} | {k: v for k, v in state.items() if not v.is_floating_point()}
    save_file(state, tmp_path / "w.safetensors")
    loaded = create_backbone("mobilenetv3_large_100", weights=tmp_path / "w.safetensors")
    assert "file-sha1:" in loaded.identity
    for key, value in loaded.model.state_dict().items():
        torch.testing.assert_close(value, state[key])


def test_wrong_weights_file_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"bogus.weight": torch.zeros(3)}, tmp_path / "bad.safetensors")
    with pytest.raises(TLLError, match="does not match backbone"):
        create_backbone("mobilenetv3_large_100", weights=tmp_path / "bad.safetensors")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(TLLError, match="not a readable weights file"):
        create_backbone("mobilenetv3_large_100", weights=tmp_path / "junk.pth")


@pytest.mark.parametrize("name", ["resnet50", "clip-rn50x4"])
def test_offline_weights_error_is_fast_and_names_the_model(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deep, "HUB_HOST", "localhost.invalid")  # a hub that cannot be reached, on any machine
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable) as info:
        create_backbone(name)
    assert time.monotonic() - start < 30  # the hub clients' own retries take about a minute
    message = str(info.value)
    assert name in message and BACKBONES[name].weights_tag in message
    assert "--weights" in message and "TLL_WEIGHTS_DIR" in message
    assert not weights_available(name) and weights_available("combined")
    studio = info.value.studio  # the same problem for a studio user: no CLI flag, how to reach the running studio
    assert name in studio and "--weights" not in studio and "restart the studio with TLL_WEIGHTS_DIR=" in studio


def test_weights_dir_env_makes_weights_available(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "resnet50.safetensors").write_bytes(b"")
    monkeypatch.setenv("TLL_WEIGHTS_DIR", str(tmp_path))
    assert weights_available("resnet50") and not weights_available("resnet101")


def test_unknown_backbone() -> None:
    with pytest.raises(TLLError, match="unknown backbone 'resnet9000'"):
        create_backbone("resnet9000")


def test_another_thread_embeds_in_small_batches_with_the_same_vectors(tmp_path) -> None:
    """Outside the main thread (the studio's scripts) batches are capped (glibc's per-thread arenas page-fault
    large batches anew); the batching changes nothing in the vectors of a descriptor, and the progress counts
    arrive batch by batch of the capped size."""
    import threading

    from conftest import make_kaggle
    from tll_core.dataset import load_dataset
    from tll_core.embeddings import embed_paths_many
    from tll_core.runtime import THREAD_BATCH_SIZE, batch_for_this_thread

    assert batch_for_this_thread(32) == 32 and batch_for_this_thread(4) == 4
    ds = load_dataset(make_kaggle(tmp_path / "d", n_pairs=12))
    ids = sorted(ds.image_ids())[:20]
    backbones = [create_backbone("hog"), create_backbone("colour-hist")]
    main = embed_paths_many(ids, backbones, None, read=ds.read_image, batch_size=32)
    seen: dict = {}

    def work() -> None:
        seen["size"] = batch_for_this_thread(32)
        reports: list = []
        seen["vectors"] = embed_paths_many(ids, backbones, None, read=ds.read_image, batch_size=32,
                                           progress=lambda d, t: reports.append(d))
        seen["reports"] = reports

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert seen["size"] == THREAD_BATCH_SIZE < 32
    for a, b in zip(main, seen["vectors"]):
        np.testing.assert_array_equal(a, b)
    assert len(seen["reports"]) > 20 // THREAD_BATCH_SIZE  # one report per (capped) batch, and the last
