"""Recipes (backbone × matcher × options × re-ranking) chosen on k folds × seeds of the dev pairs.

A fixed share of the pairs (``--confirm-share``, drawn from the pairs alone, never from a fold seed) is set
aside first as the confirmation part. The rest is cut into ``--folds`` folds for each of ``--seeds``: each
split validates on one fold's own pairs (20-candidate tasks drawn among them) and fits learned matchers on
the other folds only. A recipe's row: the mean top-2 over every fold × seed, its spread (standard
deviation), the worst and best split, and the mean of the splits' bootstrap 95 % CIs. Choose on these rows;
score the one chosen recipe with ``--confirm`` (fitted on a fold-sized draw of the development pairs,
validated on the confirmation pairs) — a figure no choice has touched. Rows print as they finish.

    .venv/bin/python bench/recipe_sweep.py --data ../shared/tll-dev --folds 2 --seeds 0 1 2 \\
        --recipe efficientnet-lite0 --recipe "efficientnet-lite0+combined rerank=sinkhorn" \\
        --recipe "efficientnet-lite0 method=adaptation hidden=512"

A recipe is a backbone followed by ``key=value`` words: ``method``, ``rerank``, ``flip_tta``, ``rerank.OPTION``
(an option of the re-ranker, e.g. ``rerank.tau=0.03``) and any option of the matcher (zero-shot's ``metric``
among them).
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
from tll_core.evaluation.tasks import confirmation_part, confirmation_split, fold_splits  # noqa: E402


def register_variants() -> None:
    """Experimental variants of the packaged EfficientNet-Lite backbones (names ending in ``~…``), as measured
    in bench/README.md: ``~tf`` the TF-"SAME"-padding architecture, and on it ``~imnet`` (ImageNet mean/std),
    ``~squash`` (no crop), ``~gem`` (GeM p=3), ``~ms``/``~ms2`` (pooled intermediate stages); and
    ``efficientnet-lite0-stages~345`` (blocks 3, 4, 5 and the head). The registry's own entries are the
    symmetric-padding variant that won."""
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
    stages = BACKBONES["efficientnet-lite0-stages"]  # the registry's blocks 4, 5 + head; here also block 3
    BACKBONES["efficientnet-lite0-stages~345"] = replace(stages, name="efficientnet-lite0-stages~345", stages=(3, 4, 5),
                                                         stage_dims=(80, 112, 192), dim=1280 + 80 + 112 + 192)


def parse_recipe(text: str) -> tuple[str, Method]:
    backbone, *words = text.split()
    kw: dict = {}
    options, rerank_options = [], []
    for word in words:
        key, _, value = word.partition("=")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        if key in ("method", "rerank"):
            kw[key if key != "method" else "name"] = parsed
        elif key == "flip_tta":
            kw["flip_tta"] = bool(parsed)
        elif key.startswith("rerank."):
            rerank_options.append((key.removeprefix("rerank."), parsed))
        else:
            options.append((key, parsed))
    return backbone, Method(**kw, options=tuple(sorted(options)), rerank_options=tuple(sorted(rerank_options)))


def summary(text: str, rows: list, seconds: float) -> dict:
    """One recipe's figures over its splits: mean, spread (standard deviation), worst and best split."""
    top2 = [r.top2 for r in rows]
    return {"recipe": text, "top2": float(np.mean(top2)), "spread": float(np.std(top2)), "worst": float(min(top2)),
            "best": float(max(top2)), "splits": top2,
            "ci": [float(np.mean([r.top2_ci[0] for r in rows])), float(np.mean([r.top2_ci[1] for r in rows]))],
            "top1": float(np.mean([r.top1 for r in rows])), "mrr": float(np.mean([r.mrr for r in rows])),
            "seconds": seconds}


def line(row: dict) -> str:
    lo, hi = row["ci"]
    return (f"| {row['recipe']} | **{row['top2']:.3f}** ± {row['spread']:.3f} | {row['worst']:.3f} | "
            f"{row['best']:.3f} | [{lo:.3f}, {hi:.3f}] | {row['top1']:.3f} | {row['mrr']:.3f} | {row['seconds']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--folds", type=int, default=2, help="k of k-fold (2: the 50/50 fit/validation ratio)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="fold seeds")
    parser.add_argument("--confirm-share", type=float, default=0.2,
                        help="share of the pairs set aside for confirmation, never in any fold (0: none)")
    parser.add_argument("--confirm", action="store_true",
                        help="also score each recipe on the confirmation pairs (only for a recipe already chosen)")
    parser.add_argument("--recipe", action="append", required=True)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    register_variants()
    engine = Engine.open(args.data)
    development, confirmation = confirmation_part(engine.dataset.train_pairs, args.confirm_share)
    splits = [s for seed in args.seeds for s in fold_splits(development, args.folds, seed)]
    confirming = [confirmation_split(development, confirmation, len(splits[0].fit), seed) for seed in args.seeds] \
        if args.confirm else []
    print(f"{len(development)} development pairs in {args.folds} folds x seeds {args.seeds} "
          f"({len(splits[0].fit)} fit / {len(splits[0].validation)} validation pairs a split); "
          f"{len(confirmation)} confirmation pairs set aside" + (" (scored below)" if confirming else " (not scored)"))
    print("| recipe | top-2 mean ± spread over folds x seeds | worst split | best split | mean 95% CI | top-1 | MRR | s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    out = []
    for text in args.recipe:
        backbone, method = parse_recipe(text)
        start = time.perf_counter()
        rows = [engine.evaluate_tasks(s.tasks, [backbone], [method], fit_pairs=s.fit, seed=s.seed)[0] for s in splits]
        row = summary(text, rows, time.perf_counter() - start)
        if confirming:
            checked = [engine.evaluate_tasks(s.tasks, [backbone], [method], fit_pairs=s.fit, seed=s.seed)[0]
                       for s in confirming]
            row["confirmation"] = summary(text + " (confirmation)", checked, time.perf_counter() - start)
        out.append(row)
        print(line(row), flush=True)
        if confirming:
            print(line(row["confirmation"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
