"""Engine benchmark: every figure is measured side by side in one run and printed with its ratio.

    .venv/bin/python bench/bench_engine.py [--data ../shared/tll-dev] [--full]

Without --data (or when the folder is absent) it runs on the demo dataset. --full embeds all images
with resnet50 for the peak-memory row (about 8 minutes on 2 cores); otherwise that row uses 1000 images.
Deep models use seeded random weights: the same FLOPs as pretrained ones.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tll_core.backbones.registry import create_backbone  # noqa: E402
from tll_core.cache import EmbeddingCache  # noqa: E402
from tll_core.dataset import load_dataset  # noqa: E402
from tll_core.demo import write_demo  # noqa: E402
from tll_core.embeddings import embed_paths  # noqa: E402
from tll_core.engine import Engine  # noqa: E402
from tll_core.images import decode_rgb, read_image_bytes  # noqa: E402
from tll_core.evaluation.metrics import metric_names, evaluate_scores  # noqa: E402
from tll_core.runtime import tune_malloc  # noqa: E402

WEIGHT_FREE = ("combined", "hog", "colour-hist", "tiny-image")
DEEP = ("resnet50", "mobilenetv3_large_100", "clip-rn50")
LITE = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2",  # packaged ImageNet weights
        "efficientnet-lite0-stages", "efficientnet-lite0-stages-views")


def throughput(paths: list[Path], name: str, *, pretrained: bool = False, repeats: int = 1, backbone=None, **kw) -> float:
    """img/s of ``embed_paths`` (decode + preprocess in its worker threads + model, no cache): the best of
    ``repeats`` passes over ``paths`` after a warm-up batch."""
    backbone = backbone or create_backbone(name, pretrained=pretrained)
    embed_paths(paths[:32], backbone, None)  # warm-up: first-call allocations, oneDNN primitives
    best = 0.0
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        embed_paths(paths, backbone, None, **kw)
        best = max(best, len(paths) / (time.perf_counter() - start))
    return best


def lite_rows(paths: list[Path], names: Sequence[str]) -> None:
    """img/s of the packaged backbones ``names``, one after the other in this process (side by side)."""
    for name in names:
        print(f"{name:32} {throughput(paths[:256], name, pretrained=True, repeats=2):8.1f}   (packaged ImageNet weights)")


def stage_times(paths: list[Path], backbone, batch_size: int = 32) -> dict[str, float]:
    """Where a deep row's time goes, each stage alone and serially in this thread (ms per image): decode
    (bytes → RGB), preprocess (``backbone.prepare``) with torch's default threads and with one thread, and
    the model (``backbone.embed`` on prepared batches). Best of two passes each."""
    import torch

    tune_malloc()  # as embed_paths does
    raw = [read_image_bytes(p) for p in paths]

    def best_ms(fn, n: int) -> float:
        fn()
        times = []
        for _ in range(2):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times) / n * 1000

    images = [decode_rgb(r) for r in raw]
    prepared = [backbone.prepare(im) for im in images]
    out = {"decode": best_ms(lambda: [decode_rgb(r) for r in raw], len(raw)),
           "preprocess": best_ms(lambda: [backbone.prepare(im) for im in images], len(images))}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out["preprocess 1 thread"] = best_ms(lambda: [backbone.prepare(im) for im in images], len(images))
    finally:
        torch.set_num_threads(threads)
    batches = [prepared[i:i + batch_size] for i in range(0, len(prepared), batch_size)]
    out["model"] = best_ms(lambda: [backbone.embed(b) for b in batches], len(prepared))
    return out


def seed_style_evaluation(engine: Engine, backbone: str, limit: int) -> tuple[float, float]:
    """As the seed reports did it: for each left, load and describe it and its 20 candidates, one image
    at a time, and compare in a Python loop. Nothing is kept between runs."""
    tasks = engine.validation().tasks
    describe = create_backbone(backbone)
    start = time.perf_counter()
    hits = []
    for i in range(min(limit, len(tasks))):
        def vec(image_id: str) -> np.ndarray:
            return describe.embed([describe.prepare(decode_rgb(read_image_bytes(engine.dataset.path(image_id))))])[0]
        left = vec(tasks.left_ids[i])
        scores = []
        for j in tasks.candidates[i]:
            right = vec(tasks.right_ids[j])
            scores.append(float(left @ right / (np.linalg.norm(left) * np.linalg.norm(right))))
        hits.append(sorted(range(20), key=lambda k: -scores[k]).index(int(tasks.truth[i])) < 2)
    elapsed = time.perf_counter() - start
    return elapsed * len(tasks) / len(hits), float(np.mean(hits))


def peak_rss_mb(data: Path, backbone: str, limit: int | None) -> tuple[float, int, float]:
    code = f"""
import sys, time, json
sys.path.insert(0, {str(ROOT)!r})
from tll_core.dataset import load_dataset
from tll_core.backbones.registry import create_backbone
from tll_core.embeddings import embed_paths
ds = load_dataset({str(data)!r}, check_images=False)
ids = sorted(ds.image_ids())[:{limit}]
start = time.perf_counter()
embed_paths([ds.path(i) for i in ids], create_backbone({backbone!r}, pretrained=False), None)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps([int(hwm) / 1024, len(ids), time.perf_counter() - start]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    rss, n, secs = json.loads(out.strip().splitlines()[-1])
    return rss, n, secs


def malloc_ab(paths: list[Path]) -> tuple[float, float]:
    code = f"""
import sys, json
sys.path.insert(0, {str(ROOT / 'bench')!r}); sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from bench_engine import throughput
print(throughput([Path(p) for p in {[str(p) for p in paths]!r}], "mobilenetv3_large_100"))
"""
    rates = []
    for setting in ("0", "1"):
        env = dict(os.environ, TLL_MALLOC_TUNE=setting)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
        rates.append(float(out.strip().splitlines()[-1]))
    return rates[0], rates[1]


def thread_rows(paths: list[Path]) -> list[tuple[str, float]]:
    """The default recipe's backbones in one pass (each image decoded once), in the main thread and in another
    (the studio's script threads): 32-image batches, and the batch size a non-main thread is given
    (``runtime.batch_for_this_thread``: glibc's per-thread malloc arenas page-fault batches over 64 MiB anew)."""
    import threading

    from tll_core.embeddings import embed_paths_many
    from tll_core import runtime
    from tll_core.recipes import default_recipe

    backbones = [create_backbone(n) for n in default_recipe().parts]
    embed_paths_many(paths[:16], backbones, None)  # warm-up
    rows: list[tuple[str, float]] = []

    def timed(tag: str, size: int) -> None:
        start = time.perf_counter()
        embed_paths_many(paths, backbones, None, batch_size=size)
        rows.append((tag, len(paths) / (time.perf_counter() - start)))

    timed("main thread, batch 32", 32)
    real = runtime.THREAD_BATCH_SIZE
    for tag, cap in (("another thread, batch 32 (uncapped)", 32), (f"another thread, batch {real} (as run)", real)):
        runtime.THREAD_BATCH_SIZE = cap
        worker = threading.Thread(target=timed, args=(tag, 32))
        worker.start()
        worker.join()
    runtime.THREAD_BATCH_SIZE = real
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "tll-dev")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--seed-style-lefts", type=int, default=60, help="lefts timed for the seed-style loop")
    parser.add_argument("--lite", nargs="+", choices=LITE, help="only these packaged backbones' img/s rows, side by side")
    args = parser.parse_args()
    data = args.data
    if not (data / "train.csv").exists():
        data = write_demo(Path(tempfile.mkdtemp()) / "demo")
    dataset = load_dataset(data)
    ids = sorted(dataset.image_ids())
    paths = [dataset.path(i) for i in ids]
    print(f"data: {data} ({len(ids)} images); torch threads: {__import__('torch').get_num_threads()}")

    print("\n## Feature extraction (no cache), img/s")
    if args.lite:
        lite_rows(paths, args.lite)
        return
    for name in WEIGHT_FREE:
        print(f"{name:24} {throughput(paths[:600], name):8.1f}")
    for name in DEEP:
        print(f"{name:24} {throughput(paths[:96], name):8.1f}   (random weights)")
    lite_rows(paths, LITE)
    off, on = malloc_ab(paths[:128])
    print(f"mobilenetv3 malloc tuning: off {off:.1f} → on {on:.1f} img/s (x{on / off:.2f})")
    backbone = create_backbone("resnet50", pretrained=False)
    start = time.perf_counter(); embed_paths(paths[:64], backbone, None); with_cl = 64 / (time.perf_counter() - start)
    backbone.channels_last = False
    backbone.model.to(memory_format=__import__("torch").contiguous_format)
    start = time.perf_counter(); embed_paths(paths[:64], backbone, None); without_cl = 64 / (time.perf_counter() - start)
    print(f"resnet50 channels_last: off {without_cl:.1f} → on {with_cl:.1f} img/s (x{with_cl / without_cl:.2f})")
    for tag, rate in thread_rows(paths[:256]):
        print(f"default recipe's 3 backbones, one pass, {tag}: {rate:6.1f} img/s")

    print("\n## evaluate: combined x 3 metrics, default validation split")
    with tempfile.TemporaryDirectory() as cache_dir:
        engine = Engine(dataset, EmbeddingCache(cache_dir))
        start = time.perf_counter(); rows = engine.evaluate(["combined"], list(metric_names())); cold = time.perf_counter() - start
        start = time.perf_counter(); engine2 = Engine(dataset, EmbeddingCache(cache_dir)); engine2.evaluate(["combined"], list(metric_names())); warm = time.perf_counter() - start
        n_tasks = rows[0].n
        print(f"cold {cold:.2f} s, warm {warm:.3f} s ({n_tasks} tasks; top-2 cosine {rows[0].top2:.3f})")
        if dataset.test_rows:  # the 2000 test tasks, with a stand-in truth (timing only)
            test = engine2.test()
            test = replace(test, truth=np.zeros(len(test), dtype=np.int64))
            engine2.task_embeddings(test, "combined")  # cold fill, not timed
            start = time.perf_counter()
            engine2.evaluate_tasks(test, ["combined"], list(metric_names()))
            in_process = time.perf_counter() - start
            engine3 = Engine(dataset, EmbeddingCache(cache_dir))
            start = time.perf_counter()
            engine3.evaluate_tasks(test, ["combined"], list(metric_names()))
            from_disk = time.perf_counter() - start
            print(f"warm evaluation, {len(test)} tasks x 3 metrics: {in_process:.3f} s in-process (studio), "
                  f"{from_disk:.3f} s from the disk cache (a new process)")
        seed_secs, seed_top2 = seed_style_evaluation(engine2, "combined", args.seed_style_lefts)
        print(f"seed-style per-image loop (recomputed every run; extrapolated from {args.seed_style_lefts} lefts): "
              f"{seed_secs:.1f} s for {n_tasks} tasks → ours cold x{seed_secs / cold:.1f}, warm rerun x{seed_secs / warm:.0f}")

    print("\n## Peak memory (a fresh process, VmHWM)")
    rss, n, secs = peak_rss_mb(data, "combined", None)
    print(f"combined:  {rss:7.0f} MB over {n} images ({n / secs:.0f} img/s)")
    rss, n, secs = peak_rss_mb(data, "resnet50", None if args.full else 1000)
    print(f"resnet50:  {rss:7.0f} MB over {n} images ({n / secs:.1f} img/s)")


if __name__ == "__main__":
    main()
