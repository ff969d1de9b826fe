"""Test-time views and pooling of EfficientNet-Lite's features, on the dev folds (issue 22's last levers).

Step 1 runs the packaged lite model (eager torch) once per *view* of the 2000 train images — a preprocessing
(``c224``: the registry's centre crop; ``s224``: the whole image squashed; ``p224``: crop_pct 1.0; ``c288`` …)
with or without a mirror (``f`` suffix), in colour or grey (``g`` suffix: luminance copied to R, G, B) — and
keeps, per image, blocks 3, 4, 5 average-pooled, the head average-pooled (``head``), GeM-pooled (``gem``),
max-pooled (``max``) and on a 2x2 grid (``grid``), and block 5 on a 2x2 grid (``s5grid``), in ``--work``.
Step 2 scores each ``--variant`` on the splits ``recipe_sweep.py`` uses (2 folds x ``--seeds``, the
confirmation part never read) with the default recipe's matcher — adaptation ``hidden=512``, ``centre_parts``,
``transductive``, ``--members`` maps (1: stop 26's default; 3: today's), ``--dropout`` (0: stop 27's; 0.25:
today's), Sinkhorn — fitted as ``Engine.score`` fits it.
A variant is a list of blocks, each ``VIEW:FEATURE``, ``avg(VIEW:FEATURE,…)`` (the views' L2-normalised
vectors averaged: test-time augmentation) or ``combined`` (the engine's weight-free descriptor):

    TLL_CACHE_DIR=… .venv/bin/python bench/view_sweep.py --data ../shared/tll-dev --work /tmp/tll-views \\
        --variant "lite0_c224:s4 lite0_c224:s5 lite0_c224:head combined" \\
        --variant "avg(lite0_c224:s4,lite0_s224:s4) avg(lite0_c224:s5,lite0_s224:s5) avg(lite0_c224:head,lite0_s224:head) combined"

The first variant is the default recipe's backbone and matches its ``recipe_sweep.py`` row (0.703 on seeds 0–5).
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tll_core.backbones.compat import ensure_torchvision_ops  # noqa: E402

ensure_torchvision_ops()

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from tll_core.backbones.deep import normalise, preprocess_transform  # noqa: E402
from tll_core.backbones.registry import BACKBONES, create_backbone  # noqa: E402
from tll_core.backbones.weight_free import unit_rows  # noqa: E402
from tll_core.engine import Engine  # noqa: E402
from tll_core.evaluation.metrics import evaluate_scores  # noqa: E402
from tll_core.evaluation.tasks import confirmation_part, fold_splits  # noqa: E402
from tll_core.images import decode_rgb  # noqa: E402
from tll_core.matchers.learned import Adaptation, AdaptationCfg  # noqa: E402
from tll_core.rerank import rerank  # noqa: E402

VIEW = re.compile(r"lite(\d)_([cps])(\d+)(f?)(g?)$")  # lite N, crop / squash / whole-side crop, size, mirrored, grey


def extract(engine: Engine, view: str, work: Path) -> Path:
    """The view's pooled features of every train image, computed once into ``work``."""
    out = work / f"{view}.npz"
    if out.exists():
        return out
    match = VIEW.match(view)
    if not match:
        raise SystemExit(f"{view}: not a view (lite0_c224, lite0_s224f, lite2_c260, …)")
    n, kind, size, mirror, grey = int(match[1]), match[2], int(match[3]), bool(match[4]), bool(match[5])
    cfg = BACKBONES[f"efficientnet-lite{n}"]
    pp = replace(cfg.preprocess, size=size, resize="squash" if kind == "s" else "crop",
                 crop_pct=1.0 if kind == "p" else cfg.preprocess.crop_pct)
    model = create_backbone(cfg.name).model.float().eval()  # the packaged weights, as the engine loads them
    transform = preprocess_transform(pp)
    ids = [i for p in engine.dataset.train_pairs for i in (p.left_id, p.right_id)]
    feats: dict[str, list[torch.Tensor]] = {k: [] for k in ("s3", "s4", "s5", "s5grid", "head", "gem", "max", "grid")}
    start = time.perf_counter()
    with torch.inference_mode():
        for b in range(0, len(ids), 32):
            images = [decode_rgb(engine.dataset.read_image(i)) for i in ids[b:b + 32]]  # the engine's decoding
            if grey:
                images = [im.convert("L").convert("RGB") for im in images]
            x = normalise(torch.stack([transform(im.transpose(Image.FLIP_LEFT_RIGHT) if mirror else im)
                                       for im in images]), pp)
            x = model.bn1(model.conv_stem(x))
            for i, stage in enumerate(model.blocks):
                x = stage(x)
                if i in (3, 4, 5):
                    feats[f"s{i}"].append(x.mean((2, 3)))
                if i == 5:
                    feats["s5grid"].append(torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1))
            head = model.bn2(model.conv_head(x))
            feats["head"].append(head.mean((2, 3)))
            feats["gem"].append(head.clamp_min(1e-6).pow(3).mean((2, 3)).pow(1 / 3))
            feats["max"].append(head.amax((2, 3)))
            feats["grid"].append(torch.nn.functional.adaptive_avg_pool2d(head, 2).flatten(1))
    np.savez(out, ids=np.array(ids), **{k: torch.cat(v).numpy() for k, v in feats.items()})
    print(f"{view}: {len(ids)} images in {time.perf_counter() - start:.0f} s", flush=True)
    return out


class Blocks:
    """A variant's blocks for any image ids: each block L2-normalised, side by side, with its sizes."""

    def __init__(self, engine: Engine, work: Path) -> None:
        self.engine, self.work, self.loaded = engine, work, {}

    def block(self, ids: list[str], spec: str) -> np.ndarray:
        if spec == "combined":
            return self.engine.embed(ids, "combined")
        if spec.startswith("avg(") and spec.endswith(")"):
            return unit_rows(np.mean([self.block(ids, s) for s in spec[4:-1].split(",")], axis=0))
        view, _, feature = spec.partition(":")
        if view not in self.loaded:
            z = np.load(extract(self.engine, view, self.work))
            self.loaded[view] = ({i: k for k, i in enumerate(z["ids"])}, {k: z[k] for k in z.files if k != "ids"})
        index, arrays = self.loaded[view]
        return unit_rows(arrays[feature][[index[i] for i in ids]])

    def __call__(self, ids: list[str], specs: list[str]) -> tuple[np.ndarray, tuple[int, ...]]:
        blocks = [self.block(list(ids), s) for s in specs]
        return np.concatenate(blocks, axis=1), tuple(b.shape[1] for b in blocks)


def top2_of(specs: list[str], split, blocks: Blocks, members: int, dropout: float = 0.0) -> float:
    fit_left, parts = blocks([p.left_id for p in split.fit], specs)
    fit_right, _ = blocks([p.right_id for p in split.fit], specs)
    left, _ = blocks(split.tasks.left_ids, specs)
    right, _ = blocks(split.tasks.right_ids, specs)
    matcher = Adaptation(AdaptationCfg(centre_parts=True, hidden=512, transductive=True, members=members,
                                       dropout=dropout))
    matcher.fit(fit_left, fit_right, unlabelled=np.concatenate([left, right]), parts=parts)
    scores = rerank(matcher.score(left, right, split.tasks.candidates), split.tasks.candidates,
                    len(split.tasks.right_ids), "sinkhorn", {})
    return evaluate_scores(scores, split.tasks.truth, n_boot=1).top2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True, help="folder for the views' features (about 60 MB each)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--variant", action="append", required=True)
    parser.add_argument("--members", type=int, default=1, help="the adaptation's maps (the default recipe: 3)")
    parser.add_argument("--dropout", type=float, default=0.0, help="the adaptation's input dropout (the default "
                                                                   "recipe: 0.25; the accurate one: 0.4)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    engine = Engine.open(args.data)
    development, _ = confirmation_part(engine.dataset.train_pairs, 0.2)
    splits = [s for seed in args.seeds for s in fold_splits(development, 2, seed)]
    blocks = Blocks(engine, args.work)
    print("| variant | top-2 mean ± spread | worst split | splits |\n| --- | --- | --- | --- |", flush=True)
    for variant in args.variant:
        top2 = np.array([top2_of(variant.split(), s, blocks, args.members, args.dropout) for s in splits])
        print(f"| {variant} | **{top2.mean():.3f}** ± {top2.std():.3f} | {top2.min():.3f} | "
              f"{' '.join(f'{t:.3f}' for t in top2)} |", flush=True)


if __name__ == "__main__":
    main()
