"""One table, every row measured side by side in this run; written to bench/results.md.

    bench/run [--data ../shared/tll-dev]       (about 6 minutes on 2 cores)
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_engine  # noqa: E402
import bench_studio  # noqa: E402
from tll_core.backbones.registry import create_backbone  # noqa: E402
from tll_core.cache import EmbeddingCache  # noqa: E402
from tll_core.dataset import load_dataset  # noqa: E402
from tll_core.demo import write_demo  # noqa: E402
from tll_core.engine import Engine  # noqa: E402
from tll_core.metrics import METRICS  # noqa: E402

Row = tuple[str, str, str]  # what, measured, target / note


def matmul_gflops(size: int = 4096, repeats: int = 3) -> float:
    """Best fp32 matrix-multiply throughput of a few large products: the machine's practical ceiling."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best


def model_gflops(name: str) -> float:
    """FLOPs of one image's forward pass, counted by torch (not a published figure)."""
    from torch.utils.flop_counter import FlopCounterMode

    backbone = create_backbone(name, pretrained=False)
    from PIL import Image

    x = backbone.prepare(Image.new("RGB", (200, 245)))[None]
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        backbone.forward(x)
    return counter.get_total_flops() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "tll-dev")
    args = parser.parse_args()
    data = args.data if (args.data / "train.csv").exists() else write_demo(Path(tempfile.mkdtemp()) / "demo")
    dataset = load_dataset(data)
    paths = [dataset.path(i) for i in sorted(dataset.image_ids())]
    rows: list[Row] = []
    started = time.perf_counter()
    print(f"data: {data} ({len(paths)} images)", flush=True)

    gflops_machine = matmul_gflops()
    rows.append(("matrix multiply (fp32 4096², torch, best of 3)", f"{gflops_machine:.0f} GFLOP/s", "the machine's ceiling for the deep rows"))
    for name in bench_engine.WEIGHT_FREE:
        rows.append((f"features: {name}", f"{bench_engine.throughput(paths[:600], name):.0f} img/s", "≥ 200 img/s"))
    for name in bench_engine.DEEP:
        rate = bench_engine.throughput(paths[:96], name)
        flops = model_gflops(name)
        rows.append((f"features: {name} (random weights)", f"{rate:.1f} img/s",
                     f"{flops:.1f} GFLOP/img → {rate * flops:.0f} GFLOP/s = {rate * flops / gflops_machine:.0%} of matmul"))
    print("features done", flush=True)

    with tempfile.TemporaryDirectory() as cache_dir:
        engine = Engine(dataset, EmbeddingCache(cache_dir))
        start = time.perf_counter()
        result = engine.evaluate(["combined"], list(METRICS))
        cold = time.perf_counter() - start
        start = time.perf_counter()
        Engine(dataset, EmbeddingCache(cache_dir)).evaluate(["combined"], list(METRICS))
        warm_disk = time.perf_counter() - start
        start = time.perf_counter()
        engine.evaluate(["combined"], list(METRICS))
        warm_memory = time.perf_counter() - start
        n = result[0].n
        rows.append((f"evaluate combined x 3 metrics, {n} tasks: cold", f"{cold:.2f} s", "empty cache"))
        rows.append((f"evaluate combined x 3 metrics, {n} tasks: warm", f"{warm_memory:.3f} s in-process, {warm_disk:.3f} s new engine", "< 1 s"))
        if dataset.test_rows:
            test = engine.test()
            test = replace(test, truth=np.zeros(len(test), dtype=np.int64))
            engine.task_embeddings(test, "combined")
            start = time.perf_counter()
            engine.evaluate_tasks(test, ["combined"], list(METRICS))
            rows.append((f"warm evaluation, {len(test)} tasks x 3 metrics", f"{time.perf_counter() - start:.3f} s", "< 1 s"))
        seed_secs, _ = bench_engine.seed_style_evaluation(engine, "combined", 40)
        rows.append(("seed-report style (per-image loop, recomputed every run)", f"{seed_secs:.1f} s",
                     f"ours cold x{seed_secs / cold:.1f}, warm x{seed_secs / warm_memory:.0f} (≥ 10x)"))
        print("evaluation done", flush=True)

        tasks = engine.test() if dataset.test_rows else engine.validation(1.0).tasks
        for label in ("cold", "warm"):
            start = time.perf_counter()
            engine.embedding_map(tasks, "combined", "umap")
            rows.append((f"UMAP of {len(tasks.left_ids) + len(tasks.right_ids)} points: {label}",
                         f"{time.perf_counter() - start:.2f} s", "cached on disk" if label == "warm" else "incl. numba compile"))
        print("umap done", flush=True)

    studio = bench_studio.measure(data)
    rows.append(("studio: first start on the demo (empty cache)", f"{studio['first start on the demo']:.1f} s", "< 60 s"))
    rows.append(("studio: 'next left' rerun (server time)", f"median {studio['next left median'] * 1000:.0f} ms, max {studio['next left max'] * 1000:.0f} ms", "< 300 ms"))
    worst = max(v for k, v in studio.items() if k.startswith("switch to"))
    rows.append(("studio: page switch, warm (slowest of 7 pages)", f"{worst * 1000:.0f} ms", "recomputes nothing"))
    print("studio done", flush=True)

    rss, n, _ = bench_engine.peak_rss_mb(data, "combined", None)
    rows.append((f"peak memory, combined, {n} images", f"{rss:.0f} MB", "< 1.5 GB"))
    rss, n, _ = bench_engine.peak_rss_mb(data, "resnet50", 1000)
    rows.append((f"peak memory, resnet50, {n} images", f"{rss:.0f} MB", "< 3 GB"))

    total = time.perf_counter() - started
    header = (f"Measured {time.strftime('%Y-%m-%d')} by `bench/run` on {platform.machine()}, {torch.get_num_threads()} torch "
              f"threads, {data} ({len(paths)} images); the whole run took {total / 60:.1f} min.")
    table = ["| what | measured | target / note |", "| --- | --- | --- |"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    text = "# Benchmark results\n\n" + header + "\n\n" + "\n".join(table) + "\n"
    (ROOT / "bench" / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
