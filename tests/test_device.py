"""--device: resolution, the one-line failure for an accelerator that is not here, and unchanged CPU results.

The accelerator itself is exercised only where there is one (the CUDA tests skip elsewhere); the choice
logic is exercised everywhere by patching what torch reports as available.
"""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tll_core.backbones.registry import create_backbone
from tll_core.cli import main
from tll_core.device import available_devices, resolve_device
from tll_core.engine import Engine, Method
from tll_core.errors import TLLError
from tll_core.matchers import Adaptation, AdaptationCfg, PairClassifier, PairClassifierCfg, Siamese, SiameseCfg
from test_matchers import synthetic

CUDA = torch.cuda.is_available()


def _only(monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


def _photos(n: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray((rng.random((120, 96, 3)) * 255).astype(np.uint8)) for _ in range(n)]


def test_auto_is_the_cpu_without_an_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    if not CUDA and not torch.backends.mps.is_available():
        assert resolve_device() == torch.device("cpu")  # this machine, unpatched
    _only(monkeypatch, cuda=False, mps=False)
    assert resolve_device("auto") == torch.device("cpu") and available_devices() == ["cpu"]
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("cuda,mps,expected", [(True, False, "cuda"), (False, True, "mps"), (True, True, "cuda")])
def test_auto_prefers_cuda_then_mps(monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool, expected: str) -> None:
    _only(monkeypatch, cuda, mps)
    assert resolve_device("auto").type == expected
    assert available_devices()[-1] == "cpu"


@pytest.mark.parametrize("name", ["cuda", "mps"])
def test_an_absent_accelerator_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    _only(monkeypatch, cuda=False, mps=False)
    with pytest.raises(TLLError) as info:
        resolve_device(name)
    message = str(info.value)
    assert "\n" not in message and name in message and "available: auto, cpu" in message


def test_unknown_device_name() -> None:
    with pytest.raises(TLLError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    for name in ("auto", "cpu", "cuda", "mps"):  # every documented name is known: it resolves or is said to be absent
        try:
            resolve_device(name)
        except TLLError as exc:
            assert "unknown" not in str(exc) and name in str(exc)


def test_engine_resolves_its_device_up_front(demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _only(monkeypatch, cuda=False, mps=False)
    assert Engine.open(demo_dir).device == "cpu"
    with pytest.raises(TLLError, match="device cuda"):
        Engine.open(demo_dir, device="cuda")


def test_cli_device_cuda_without_cuda_exits_2_with_one_line(demo_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    _only(monkeypatch, cuda=False, mps=False)
    code = main(["evaluate", "--data", str(demo_dir), "--device", "cuda", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.strip().count("\n") == 0 and "cuda" in err
    code = main(["evaluate", "--data", str(demo_dir), "--device", "cpu", "--backbone", "combined", "--metric", "cosine",
                 "--json", "--quiet"])
    assert code == 0


@pytest.mark.slow
def test_deep_backbone_on_cpu_explicitly_equals_the_default() -> None:
    default = create_backbone("mobilenetv3_large_100", pretrained=False)
    on_cpu = create_backbone("mobilenetv3_large_100", pretrained=False, device="cpu")
    assert on_cpu.identity == default.identity  # existing caches stay valid
    assert default.identity == "mobilenetv3_large_100|timm:mobilenetv3_large_100|random-seed0|pp1"
    batch = [default.prepare(p) for p in _photos()]
    a, b = default.embed(batch), on_cpu.embed(batch)
    assert a.dtype == np.float32 and np.array_equal(a, b)


@pytest.mark.parametrize("make", [
    lambda: Adaptation(AdaptationCfg(pca_dim=16, epochs=4, hidden=8)),
    lambda: Siamese(SiameseCfg(pca_dim=16, epochs=4)),
    lambda: PairClassifier(PairClassifierCfg(pca_dim=16, epochs=3, sampling="1:19")),
])
def test_learned_matcher_on_cpu_explicitly_equals_the_default(make) -> None:
    (fl, fr), (vl, vr, cand, _) = synthetic(n_fit=200, n_val=60)
    default, on_cpu = make(), make().to("cpu")
    assert on_cpu.device == torch.device("cpu") and on_cpu.cfg == default.cfg  # the device is no option
    for m in (default, on_cpu):
        m.fit(fl, fr)
    np.testing.assert_array_equal(on_cpu.score(vl, vr, cand), default.score(vl, vr, cand))
    assert default.curve.holdout_top2 == on_cpu.curve.holdout_top2


def test_engine_moves_learned_matchers_to_its_device(demo_dir: Path) -> None:
    engine = Engine.open(demo_dir, device="cpu")
    split = engine.validation()
    matcher = engine.fit(Method("adaptation", options=(("epochs", 2),)), "tiny-image", split.fit)
    assert matcher.device == torch.device("cpu")


@pytest.mark.skipif(not CUDA, reason="no CUDA device here")
def test_cuda_backbone_autocasts_and_keeps_its_own_cache_identity() -> None:
    cpu = create_backbone("mobilenetv3_large_100", pretrained=False, device="cpu")
    gpu = create_backbone("mobilenetv3_large_100", pretrained=False, device="cuda")
    assert gpu.identity == cpu.identity + "|amp-fp16"
    batch = [cpu.prepare(p) for p in _photos()]
    a, b = cpu.embed(batch), gpu.embed(batch)
    assert b.dtype == np.float32 and isinstance(b, np.ndarray) and b.shape == a.shape
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.99


@pytest.mark.skipif(not CUDA, reason="no CUDA device here")
def test_cuda_learned_matcher_scores_like_the_cpu_one() -> None:
    (fl, fr), (vl, vr, cand, _) = synthetic(n_fit=200, n_val=60)
    cpu, gpu = Adaptation(AdaptationCfg(pca_dim=16, epochs=4)), Adaptation(AdaptationCfg(pca_dim=16, epochs=4)).to("cuda")
    cpu.fit(fl, fr)
    gpu.fit(fl, fr)
    a, b = cpu.score(vl, vr, cand), gpu.score(vl, vr, cand)
    assert isinstance(b, np.ndarray) and b.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-2)  # fp32 on both; float noise only
    assert all(v.dtype == np.float32 for v in gpu.state().values())


@pytest.mark.slow
def test_studio_sidebar_lists_only_devices_that_are_here(warm_demo_cache: Path) -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=180)
    at.query_params["backbone"] = "combined"  # weight-free: the default recipe's deep backbones are not the subject
    at.run()
    box = at.sidebar.selectbox(key="w_device")
    assert box.options == ["auto", *available_devices()] and box.value == "auto"
    box.set_value("cpu").run()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    assert at.session_state["device"] == "cpu" and at.sidebar.selectbox(key="w_device").value == "cpu"
