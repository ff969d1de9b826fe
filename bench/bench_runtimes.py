"""CPU inference runtimes and JPEG decoders for the EfficientNet-Lite backbones, side by side in one run.

    .venv/bin/python bench/bench_runtimes.py [--data ../shared/tll-dev] [--rounds 5]

Real packaged weights, real images. Model rows: eager torch, the frozen TorchScript graph, ONNX Runtime (CPU
provider, 2 intra-op threads, graph optimisation ALL; with and without spinning threads) and OpenVINO (CPU,
f32 inference precision, latency and throughput hints), at batch 8 and 32, timed in interleaved rounds (every
engine once per round, in turn) so that load from other work on the machine falls on all of them alike; each
row gives the median over rounds and the range. Vector rows: the largest |difference| from eager torch of the
vectors ``embed`` returns (what the cache stores, not normalised). Decoder rows: Pillow through the project's
checked ``decode_rgb``, Pillow alone, simplejpeg and PyTurboJPEG (where importable), and whether their pixels
equal Pillow's. Pipeline rows: ``embed_paths_many`` (decode + prepare in 2 worker threads + model, no cache)
for lite0 alone and for the default recipe's three backbones, with each CPU engine (``TLL_CPU_ENGINE``).
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from report import matmul_gflops, model_gflops  # noqa: E402
from tll_core.backbones.deep import CPU_ENGINE_ENV, normalise  # noqa: E402
from tll_core.backbones.registry import create_backbone  # noqa: E402
from tll_core.dataset import load_dataset  # noqa: E402
from tll_core.embeddings import embed_paths_many  # noqa: E402
from tll_core.images import decode_rgb, open_image, read_image_bytes  # noqa: E402
from tll_core.recipes import default_recipe  # noqa: E402
from tll_core.runtime import tune_malloc  # noqa: E402

LITES = ("efficientnet-lite0", "efficientnet-lite2")
BATCHES = (8, 32)
EAGER, TORCHSCRIPT = "eager torch (channels_last)", "TorchScript frozen (before)"


def spread(rates: list[float]) -> str:
    return f"{statistics.median(rates):7.1f} img/s  (range {min(rates):.1f}–{max(rates):.1f})"


def onnx_bytes(model: torch.nn.Module, size: int) -> bytes:
    """The eager model exported with torch's TorchScript-based ONNX exporter, batch dimension dynamic."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, 3, size, size),), buf, dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=17)
    return buf.getvalue()


def model_engines(backbone) -> dict[str, Callable[[np.ndarray | torch.Tensor], np.ndarray]]:
    """Each engine as a function of a normalised batch (in the layout it is fed) → vectors."""
    import onnxruntime as ort

    engines: dict[str, Callable] = {}
    eager = backbone.model
    engines[EAGER] = lambda x: eager(x).numpy()
    os.environ[CPU_ENGINE_ENV] = "torchscript"  # the engine before ONNX Runtime, built by the project's code
    try:
        frozen = create_backbone(backbone.cfg.name).forward
    finally:
        os.environ.pop(CPU_ENGINE_ENV)
    engines[TORCHSCRIPT] = lambda x: frozen(x).numpy()
    options = ort.SessionOptions()  # as the project's session (deep.OnnxRuntimeForward), but spinning
    options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    spinning = ort.InferenceSession(onnx_bytes(eager, backbone.cfg.preprocess.size), options,
                                    providers=["CPUExecutionProvider"])
    engines[f"ONNX Runtime {ort.__version__}, spinning"] = lambda x: spinning.run(None, {"x": x})[0]
    adopted = backbone.forward  # the backbone's own engine (ONNX Runtime, idle threads not spinning)
    engines[f"ONNX Runtime {ort.__version__} (adopted)"] = lambda x: adopted(torch.from_numpy(x)).numpy()
    try:
        import openvino as ov
    except ImportError:
        return engines
    core = ov.Core()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        path.write_bytes(onnx_bytes(eager, backbone.cfg.preprocess.size))
        read = core.read_model(str(path))
    for hint in ("LATENCY", "THROUGHPUT"):
        compiled = core.compile_model(read, "CPU", {"PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": "f32",
                                                     "INFERENCE_NUM_THREADS": 2})
        engines[f"OpenVINO {ov.__version__.split('-')[0]} {hint.lower()}"] = lambda x, c=compiled: c(x)[0]
    return engines


def model_rows(name: str, raw: list, rounds: int) -> None:
    backbone = create_backbone(name)
    prepared = [backbone.prepare(decode_rgb(r)) for r in raw]
    engines = model_engines(backbone)
    flops = model_gflops(backbone)
    with torch.inference_mode():
        normalised = normalise(torch.stack(prepared), backbone.cfg.preprocess)
        inputs = {"torch": normalised.contiguous(memory_format=torch.channels_last),
                  "numpy": np.ascontiguousarray(normalised.numpy())}

        def feed(engine: str) -> object:
            return inputs["torch"] if engine in (EAGER, TORCHSCRIPT) else inputs["numpy"]

        reference = engines[EAGER](inputs["torch"])
        print(f"\n### {name} ({len(raw)} images, {flops:.2f} GFLOP/img; eager vectors' max |v| {np.abs(reference).max():.2f})")
        for engine, run in engines.items():
            diff = np.abs(run(feed(engine)) - reference).max()
            print(f"{engine:36} max |Δ| vs eager {diff:.2e}")
        for batch in BATCHES:
            rates: dict[str, list[float]] = {e: [] for e in engines}
            for engine, run in engines.items():  # warm-up: first-call allocations, primitive caches
                run(feed(engine)[:batch])
            for _ in range(rounds):
                for engine, run in engines.items():
                    x = feed(engine)
                    start = time.perf_counter()
                    for i in range(0, len(raw), batch):
                        run(x[i:i + batch])
                    rates[engine].append(len(raw) / (time.perf_counter() - start))
            base = statistics.median(rates[TORCHSCRIPT])
            for engine, r in rates.items():
                print(f"batch {batch:2} {engine:36} {spread(r)}  x{statistics.median(r) / base:.2f} of TorchScript  "
                      f"{statistics.median(r) * flops / CEILING[0] * 100:4.0f}% of matmul")


CEILING = [1.0]  # GFLOP/s, measured at the start of the run


def decoder_rows(raw: list, rounds: int) -> None:
    """ms per image for each decoder, one thread and two; and whether the pixels equal Pillow's."""
    data = [r.data for r in raw]

    def pillow(b: bytes) -> np.ndarray:
        with open_image(io.BytesIO(b)) as im:
            return np.asarray(im.convert("RGB"))

    decoders: dict[str, Callable[[bytes], np.ndarray]] = {
        "Pillow via decode_rgb (checks, EXIF)": lambda b, r={id(x.data): x for x in raw}: np.asarray(decode_rgb(r[id(b)])),
        "Pillow alone": pillow,
    }
    try:
        import simplejpeg

        decoders[f"simplejpeg {simplejpeg.__version__}"] = lambda b: simplejpeg.decode_jpeg(b, "RGB")
        decoders["simplejpeg, fastdct+fastupsample"] = lambda b: simplejpeg.decode_jpeg(b, "RGB", fastdct=True, fastupsample=True)
    except ImportError:
        pass
    try:
        from turbojpeg import TJPF_RGB, TurboJPEG

        jpeg = TurboJPEG()
        decoders["PyTurboJPEG"] = lambda b: jpeg.decode(b, pixel_format=TJPF_RGB)
    except (ImportError, RuntimeError, OSError) as exc:
        print(f"PyTurboJPEG: not measured ({type(exc).__name__}: {exc})".splitlines()[0])
    reference = [pillow(b) for b in data]
    print(f"\n## JPEG decoding, {len(data)} images ({reference[0].shape[1]}x{reference[0].shape[0]} px)")
    for name, decode in decoders.items():
        out = [decode(b) for b in data]
        same = sum(o.shape == r.shape and np.array_equal(o, r) for o, r in zip(out, reference))
        worst = max(int(np.abs(o.astype(int) - r).max()) for o, r in zip(out, reference))
        times = {1: [], 2: []}
        for _ in range(rounds):
            for threads in (1, 2):
                with ThreadPoolExecutor(threads) as pool:
                    start = time.perf_counter()
                    list(pool.map(decode, data))
                    times[threads].append((time.perf_counter() - start) / len(data) * 1000)
        print(f"{name:38} {statistics.median(times[1]):5.2f} ms/img 1 thread, {statistics.median(times[2]):5.2f} "
              f"2 threads; pixels equal to Pillow's: {same}/{len(data)} (max |Δ| {worst})")


def pipeline_rows(paths: list[Path], rounds: int, engines: list[str]) -> None:
    """``embed_paths_many`` (no cache) for lite0 alone and the default recipe, per CPU engine, interleaved."""
    print(f"\n## Pipeline: embed_paths_many, {len(paths)} images, 2 decoding workers, no cache")
    built: dict[str, list] = {}
    for engine in engines:
        os.environ[CPU_ENGINE_ENV] = engine
        built[engine] = [create_backbone(n) for n in ("efficientnet-lite0", *default_recipe().parts)]
        print(f"{engine}: {', '.join(b.identity.split('|', 3)[-1] for b in built[engine][:2])}")
    os.environ.pop(CPU_ENGINE_ENV)
    lite0_flops = model_gflops(built[engines[-1]][0])  # GFLOP an image: the % of the matmul ceiling a rate is
    cases = [("lite0", lambda bs: bs[:1]), (f"recipe ({default_recipe().backbone})", lambda bs: bs[1:])]
    for label, pick in cases:
        for batch in BATCHES:
            rates: dict[str, list[float]] = {e: [] for e in engines}
            for engine in engines:
                embed_paths_many(paths[:16], pick(built[engine]), None, batch_size=batch)
            for _ in range(rounds):
                for engine in engines:
                    start = time.perf_counter()
                    embed_paths_many(paths, pick(built[engine]), None, batch_size=batch)
                    rates[engine].append(len(paths) / (time.perf_counter() - start))
            base = statistics.median(rates[engines[0]])
            for engine, r in rates.items():
                share = (f"  {100 * statistics.median(r) * lite0_flops / CEILING[0]:.0f} % of the matmul ceiling"
                         if label == "lite0" else "")
                print(f"{label:30} batch {batch:2} {engine:12} {spread(r)}  x{statistics.median(r) / base:.2f}{share}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "tll-dev")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=64, help="images per model timing")
    parser.add_argument("--pipeline-images", type=int, default=192)
    parser.add_argument("--only", choices=("models", "decoders", "pipeline"), action="append")
    args = parser.parse_args()
    tune_malloc()
    dataset = load_dataset(args.data, check_images=False)
    paths = [dataset.path(i) for i in sorted(dataset.image_ids())]
    raw = [read_image_bytes(p) for p in paths[:args.images]]
    load = os.getloadavg()[0]
    best = matmul_gflops()
    CEILING[0] = max(best.values())
    print(f"data: {args.data} ({len(paths)} images); torch threads {torch.get_num_threads()}; "
          f"load average at start {load:.2f}; matmul ceiling {CEILING[0]:.0f} GFLOP/s")
    only = set(args.only or ("models", "decoders", "pipeline"))
    if "models" in only:
        print("\n## Model alone (normalised batches ready; median of rounds, interleaved)")
        for name in LITES:
            model_rows(name, raw, args.rounds)
    if "decoders" in only:
        decoder_rows(raw, args.rounds)
    if "pipeline" in only:
        pipeline_rows(paths[:args.pipeline_images], args.rounds, ["torchscript", "onnxruntime"])
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
