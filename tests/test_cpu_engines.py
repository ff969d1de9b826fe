"""How packaged backbones run on the CPU: ONNX Runtime by default, the frozen TorchScript graph where it cannot
be had, eager torch last. Each engine's vectors agree with the eager model's within tolerance (not bit for bit:
engines and CPU kernels differ in the last bits), so each has its own cache identity."""
from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from tll_core.backbones import deep
from tll_core.backbones.deep import CPU_ENGINE_ENV, cpu_engine_key, normalise
from tll_core.backbones.registry import build_key, create_backbone

LITE0 = "efficientnet-lite0"


def _images() -> list[Image.Image]:
    """Noise, a smooth gradient and flat grey: inputs unlike each other, at the TLL images' size."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (245, 200, 3), dtype=np.uint8)
    ramp = np.broadcast_to(np.linspace(0, 255, 200, dtype=np.uint8)[None, :, None], (245, 200, 3)).copy()
    ramp[..., 1] = ramp[..., 1][::-1]
    grey = np.full((245, 200, 3), 128, np.uint8)
    return [Image.fromarray(a) for a in (noise, ramp, grey)]


def _eager(backbone, images: list[Image.Image]) -> np.ndarray:
    """The same images through the eager torch module itself (no engine)."""
    with torch.inference_mode():
        batch = normalise(torch.stack([backbone.prepare(im) for im in images]), backbone.cfg.preprocess)
        return backbone.model(batch.contiguous(memory_format=torch.channels_last)).numpy()


@pytest.mark.slow
def test_onnxruntime_is_the_default_cpu_engine_and_its_vectors_equal_eager_torch_within_1e5(built_backbones) -> None:
    backbone = built_backbones(LITE0)  # create_backbone("efficientnet-lite0"), built once per session
    assert "|onnxruntime-" in backbone.identity
    images = _images()
    vectors = backbone.embed([backbone.prepare(im) for im in images])
    eager = _eager(backbone, images)
    assert vectors.shape == (3, 1280) and vectors.dtype == np.float32
    assert np.abs(eager).max() > 1.0  # vectors of real size (up to ~5), so 1e-5 is float32 rounding after 60 layers
    # |Δ| ≤ 1e-5 (1 + |v|): the frozen TorchScript graph needs the relative part too (1.5e-5 on the ramp)
    np.testing.assert_allclose(vectors, eager, rtol=1e-5, atol=1e-5)
    # a batch of one and a batch of three give the same vector (the exported batch dimension is dynamic)
    np.testing.assert_allclose(backbone.embed([backbone.prepare(images[1])])[0], vectors[1], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_torchscript_engine_has_another_identity_and_agrees_with_onnxruntime(
        built_backbones, monkeypatch: pytest.MonkeyPatch) -> None:
    onnx_backbone = built_backbones(LITE0)
    monkeypatch.setenv(CPU_ENGINE_ENV, "torchscript")
    frozen = create_backbone(LITE0)
    assert frozen.identity.replace("|jit-frozen", "") == onnx_backbone.identity.replace(
        f"|onnxruntime-{onnx_backbone.forward.version}", "")  # the same model, weights and preprocessing
    assert "|jit-frozen" in frozen.identity and frozen.identity != onnx_backbone.identity
    images = _images()
    np.testing.assert_allclose(frozen.embed([frozen.prepare(im) for im in images]),
                               onnx_backbone.embed([onnx_backbone.prepare(im) for im in images]), rtol=0, atol=1e-4)


@pytest.mark.slow
def test_without_onnxruntime_the_torchscript_graph_is_used_with_one_warning_line(
        built_backbones, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed: importing it raises ImportError
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backbone = create_backbone(LITE0)
    assert "|jit-frozen" in backbone.identity and "onnxruntime" not in backbone.identity
    notes = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(notes) == 1 and "\n" not in notes[0] and "onnxruntime" in notes[0] and LITE0 in notes[0]
    images = _images()
    np.testing.assert_allclose(backbone.embed([backbone.prepare(im) for im in images]),
                               built_backbones(LITE0).embed([backbone.prepare(im) for im in images]), rtol=0, atol=1e-4)


@pytest.mark.slow
def test_a_failing_export_falls_back_to_torchscript(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_export(*args, **kwargs):
        raise RuntimeError("exporter cannot take this model\nsecond line")

    monkeypatch.setattr(torch.onnx, "export", broken_export)
    with pytest.warns(RuntimeWarning, match="exporter cannot take this model second line"):
        backbone = create_backbone(LITE0)
    assert "|jit-frozen" in backbone.identity


def test_the_engine_asked_for_is_part_of_the_recorded_build_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A warm start takes a recorded identity for the build (``LazyBackbone``): another engine is another build."""
    monkeypatch.delenv(CPU_ENGINE_ENV, raising=False)
    default_key, default_build = cpu_engine_key(), build_key(LITE0)
    assert deep.cpu_engine_wanted() == "onnxruntime"
    for engine in ("torchscript", "eager"):
        monkeypatch.setenv(CPU_ENGINE_ENV, engine)
        assert deep.cpu_engine_wanted() == engine
        assert cpu_engine_key() != default_key and build_key(LITE0) != default_build
    monkeypatch.setenv(CPU_ENGINE_ENV, "no-such-engine")  # not one of CPU_ENGINES: the default
    assert deep.cpu_engine_wanted() == "onnxruntime" and build_key(LITE0) == default_build


@pytest.mark.slow
def test_eager_engine_runs_the_module_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CPU_ENGINE_ENV, "eager")
    backbone = create_backbone(LITE0)
    assert backbone.forward is backbone.model
    assert "|onnxruntime" not in backbone.identity and "|jit-frozen" not in backbone.identity
    images = _images()
    np.testing.assert_array_equal(backbone.embed([backbone.prepare(im) for im in images]), _eager(backbone, images))
