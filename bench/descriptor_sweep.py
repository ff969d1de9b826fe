"""How the weight-free defaults were chosen: HOG variants and combined-descriptor weights.

    .venv/bin/python bench/descriptor_sweep.py [--data ../shared/tll-dev] [--val-fraction 1.0]

Top-1 / top-2 of centred cosine on validation tasks (all 1000 pairs by default: more tasks, less noise).
"""
from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from skimage.feature import hog

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tll_core.backbones import weight_free as wf  # noqa: E402
from tll_core.dataset import load_dataset  # noqa: E402
from tll_core.images import decode_rgb, read_image_bytes  # noqa: E402
from tll_core.matchers import ZeroShot  # noqa: E402
from tll_core.evaluation.metrics import evaluate_scores  # noqa: E402
from tll_core.evaluation.tasks import validation_split  # noqa: E402


def hog_variant(scales, cell, block, sqrt, norm="L2-Hys"):
    def describe(im):
        return np.concatenate([hog(wf.gray(im, s), orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(block, block),
                                   block_norm=norm, transform_sqrt=sqrt) for s in scales]).astype(np.float32)
    return describe


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "tll-dev")
    parser.add_argument("--val-fraction", type=float, default=1.0)
    args = parser.parse_args()
    tasks = validation_split(load_dataset(args.data), args.val_fraction, 0).tasks
    ds = load_dataset(args.data)
    ids = list(tasks.left_ids) + list(tasks.right_ids)
    with ThreadPoolExecutor(2) as pool:
        images = list(pool.map(lambda i: decode_rgb(read_image_bytes(ds.path(i))), ids))

    def features(describe):
        with ThreadPoolExecutor(2) as pool:
            return np.stack(list(pool.map(describe, images)))

    def report(name, feats, centre=True):
        n = len(tasks)
        e = evaluate_scores(ZeroShot("cosine", centre=centre).score(feats[:n], feats[n:], tasks.candidates), tasks.truth)
        print(f"{name:52} top1 {e.top1:.3f}  top2 {e.top2:.3f}  [{e.top2_ci[0]:.3f}, {e.top2_ci[1]:.3f}]")

    two = ((96, 120), (48, 60))
    variants = {
        "HOG 2x2 blocks": hog_variant(two, 12, 2, False),
        "HOG 3x3 blocks": hog_variant(two, 12, 3, False),
        "HOG 3x3 blocks, sqrt gamma (the 'hog' default)": hog_variant(two, 12, 3, True),
        "HOG 3x3 blocks, L2 norm": hog_variant(two, 12, 3, False, "L2"),
        "HOG 3 scales (+144x180), 3x3 blocks": hog_variant(two + ((144, 180),), 12, 3, False),
        "HOG 8px cells, 3x3 blocks": hog_variant(two, 8, 3, False),
    }
    print(f"{len(tasks)} tasks from {args.data}")
    hog_feats = None
    for name, describe in variants.items():
        start = time.perf_counter()
        feats = features(describe)
        rate = len(images) / (time.perf_counter() - start)
        report(f"{name} ({rate:.0f} img/s)", feats)
        if "default" in name:
            hog_feats = feats
            report("  the same, not centred", feats, centre=False)
    colour, tiny = features(wf.colour_histogram), features(wf.tiny_image)
    report("colour histogram", colour)
    report("tiny image", tiny)

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    for wc in (0.0, 0.2, 0.35, 0.5):
        for wt in (0.0, 0.2, 0.35):
            report(f"combined: hog + {wc} colour + {wt} tiny", np.hstack([unit(hog_feats), wc * unit(colour), wt * unit(tiny)]))


if __name__ == "__main__":
    main()
