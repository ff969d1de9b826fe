"""Issue 22's "partial fine-tuning" lever, measured on the dev folds (the same folds x seeds as recipe_sweep).

1. Cache once, for every development image (the confirmation pairs are never read), the frozen lite0's
   intermediate feature maps at the input of its last stages (``blocks[5]``: 112x14x14, ``blocks[6]``:
   192x7x7) for a few augmented views (plain, mirrored, random crops with colour jitter and a random flip),
   as float16 numpy under ``--work`` (/tmp, never the repo), with the pooled stage outputs and the frozen head.
2. Per fold split, train the last stage(s) + the head (initialised from the pretrained weights, BatchNorm
   statistics frozen) with a bidirectional InfoNCE loss on the split's fit pairs (AdamW, early stopping on
   top-2 of the fit pairs the adaptation matcher holds back, the pretrained weights as epoch 0: kept only if
   an epoch beats them), then score the split's validation tasks: the fine-tuned lite0 alone (centred cosine,
   and with Sinkhorn) and as a drop-in for the default recipe's lite0 part (lite0 + lite2 + combined, each
   L2-normalised, under the adaptation matcher hidden=512, then Sinkhorn: the comparison that decides).
3. Learned fusion of pooled stages (blocks 4, 5 and the head): a per-stage linear projection to one space,
   mixed with learned per-stage weights, trained the same way, against the naive concatenation.

    nice .venv/bin/python bench/finetune_sweep.py --data ../shared/tll-dev --work /tmp/tll-finetune

Every variant prints mean ± spread (std) and the worst split over folds x seeds, and the training seconds per
split. Fixed seeds: a rerun gives the same rows (up to the CPU's kernels).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tll_core.backbones.deep import normalise  # noqa: E402
from tll_core.backbones.registry import BACKBONES, create_backbone  # noqa: E402
from tll_core.dataset import Pair  # noqa: E402
from tll_core.engine import Engine  # noqa: E402
from tll_core.evaluation.metrics import evaluate_scores  # noqa: E402
from tll_core.evaluation.tasks import Split, confirmation_part, fold_splits, random_candidates  # noqa: E402
from tll_core.images import decode_rgb  # noqa: E402
from tll_core.matchers import Adaptation, AdaptationCfg, ZeroShot  # noqa: E402
from tll_core.matchers.learned import held_back  # noqa: E402
from tll_core.rerank import rerank  # noqa: E402

TEMPERATURE = 1 / 15  # the adaptation matcher's InfoNCE temperature
STAGES = ("p4", "p5", "head")  # pooled outputs fused in step 3: blocks[4], blocks[5], the head


# ---------------------------------------------------------------- step 1: the feature cache


@dataclass
class Features:
    """Per development image (rows) and view (axis 1): the frozen lite's maps at the input of blocks[5],
    blocks[6] and the head, the pooled outputs of blocks[4] and blocks[5], and the pooled frozen head."""

    ids: list[str]
    row: dict[str, int]
    map5: np.ndarray  # [n, V, C5, H5, W5] float16
    map6: np.ndarray  # [n, V, C6, H6, W6] float16
    map7: np.ndarray  # the head's input
    pooled: dict[str, np.ndarray]  # p4, p5, head: [n, V, d] float32


def augment(size: int):
    from torchvision.transforms import v2 as T

    bicubic = T.InterpolationMode.BICUBIC
    return T.Compose([T.RandomResizedCrop(size, scale=(0.35, 1.0), ratio=(0.75, 4 / 3), interpolation=bicubic),
                      T.RandomHorizontalFlip(), T.ColorJitter(0.3, 0.3, 0.3, 0.05), T.ToImage()])


class Trunk(nn.Module):
    """The frozen lite, returning the maps at the input of blocks[5], blocks[6] and the head (``map5``,
    ``map6``, ``map7``), the pooled outputs of blocks[4] and blocks[5] and the pooled head, as a tuple
    (``CACHED`` order) so that it can be traced and frozen (BN folded: ~1.7x eager on the CPU)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m = self.model
        x = m.bn1(m.conv_stem(x))
        for stage in m.blocks[:5]:
            x = stage(x)
        map5 = x
        map6 = m.blocks[5](map5)
        map7 = m.blocks[6](map6)
        head = m.bn2(m.conv_head(map7)).mean((2, 3))
        return map5, map6, map7, map5.mean((2, 3)), map6.mean((2, 3)), head


CACHED = ("map5", "map6", "map7", "p4", "p5", "head")


def traced_trunk(model: nn.Module, size: int) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    trunk = Trunk(model).eval().to(memory_format=torch.channels_last)
    example = torch.randn(2, 3, size, size).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        eager = trunk(example)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(trunk, example, check_trace=False)))
        traced = frozen(example)
    gap = max(float((a - b).abs().max() / a.abs().max()) for a, b in zip(eager, traced))
    print(f"  traced trunk: largest relative gap to eager {gap:.2e}", flush=True)

    def run(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(CACHED, frozen(x.contiguous(memory_format=torch.channels_last))))

    return run


def cache_features(engine: Engine, ids: list[str], lite: int, views: int, work: Path) -> Features:
    from PIL import ImageOps

    name = f"efficientnet-lite{lite}"
    folder = work / f"{name}-v{views}-n{len(ids)}"
    done = folder / "done.json"
    backbone = create_backbone(name)
    model = copy.deepcopy(backbone.model).eval()
    pp = BACKBONES[name].preprocess
    with torch.inference_mode():
        shapes = {k: tuple(v.shape[1:]) for k, v in zip(CACHED, Trunk(model)(torch.zeros(1, 3, pp.size, pp.size)))}
    folder.mkdir(parents=True, exist_ok=True)
    mode = "r" if done.exists() else "w+"
    maps = {k: np.lib.format.open_memmap(folder / f"{k}.npy", mode=mode, dtype=np.float16, shape=(len(ids), views, *shapes[k]))
            for k in ("map5", "map6", "map7")}
    pooled = {k: np.lib.format.open_memmap(folder / f"{k}.npy", mode=mode, dtype=np.float32, shape=(len(ids), views, *shapes[k]))
              for k in STAGES}
    if mode == "w+":
        started = time.perf_counter()
        torch.manual_seed(1234)  # the random crops and jitter: the same views on every run
        random_view = augment(pp.size)
        trunk = traced_trunk(model, pp.size)
        step = 16
        with torch.inference_mode():
            for start in range(0, len(ids), step):
                chunk = ids[start:start + step]
                batch = []
                for image_id in chunk:
                    image = decode_rgb(engine.dataset.read_image(image_id))
                    batch += [backbone.transform(image), backbone.transform(ImageOps.mirror(image))]
                    batch += [random_view(image) for _ in range(views - 2)]
                out = trunk(normalise(torch.stack(batch), pp))
                for k, v in out.items():
                    target = maps[k] if k in maps else pooled[k]
                    target[start:start + len(chunk)] = v.reshape(len(chunk), views, *v.shape[1:]).numpy()
                if start % 320 == 0:
                    print(f"  cached {start + len(chunk)}/{len(ids)} images ({time.perf_counter() - started:.0f} s)",
                          flush=True)
        for array in (*maps.values(), *pooled.values()):
            array.flush()
        done.write_text(json.dumps({"seconds": time.perf_counter() - started}))
    return Features(ids, {i: k for k, i in enumerate(ids)}, maps["map5"], maps["map6"], maps["map7"],
                    {k: np.asarray(v) for k, v in pooled.items()})


# ---------------------------------------------------------------- step 2/3: encoders trained on the cache


class Tail(nn.Module):
    """The lite's stages from ``cut`` on + its head (deep copies of the pretrained modules), pooled; with
    ``fuse``, the pooled blocks[4]/[5] outputs (computed here where they are, else frozen from the cache) and
    the head are mixed by a learned fusion instead (:class:`Fusion`)."""

    def __init__(self, model: nn.Module, cut: int, fusion: Fusion | None = None) -> None:
        super().__init__()
        self.cut = cut
        self.stages = nn.ModuleList(copy.deepcopy(model.blocks[cut:]))
        self.conv_head, self.bn2 = copy.deepcopy(model.conv_head), copy.deepcopy(model.bn2)
        self.fusion = fusion

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = batch[f"map{self.cut}"].float()
        pooled = dict(batch)
        for i, stage in enumerate(self.stages, start=self.cut):
            x = stage(x)
            if i == 5:
                pooled["p5"] = x.mean((2, 3))
        pooled["head"] = self.bn2(self.conv_head(x)).mean((2, 3))
        return self.fusion(pooled) if self.fusion is not None else pooled["head"]

    def train(self, mode: bool = True) -> Tail:
        super().train(mode)
        for module in self.modules():  # BatchNorm keeps its ImageNet statistics (small batches, few images)
            if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
                module.eval()
        return self


class Fusion(nn.Module):
    """Learned fusion of pooled stages: each stage centred (fit mean), L2-normalised, projected by its own
    linear map (initialised from its top PCA components on the fit part, at most ``dim``), scaled by a learned
    per-stage weight (softplus, starting at 1) and concatenated: the cosine of two fused vectors is a learned
    weighting of the stages' own (projected) cosines, with no cross-stage terms."""

    def __init__(self, means: dict[str, torch.Tensor], bases: dict[str, torch.Tensor], names: tuple[str, ...]) -> None:
        super().__init__()
        self.names = names
        for k in names:
            self.register_buffer(f"mean_{k}", means[k])
        self.proj = nn.ModuleDict({k: nn.Linear(bases[k].shape[0], bases[k].shape[1], bias=False) for k in names})
        with torch.no_grad():
            for k in names:
                self.proj[k].weight.copy_(bases[k].T)
        self.weight = nn.Parameter(torch.zeros(len(names)))

    def stage_weights(self) -> torch.Tensor:
        return F.softplus(self.weight) / F.softplus(torch.zeros(()))

    def forward(self, pooled: dict[str, torch.Tensor]) -> torch.Tensor:
        w = self.stage_weights()
        parts = [w[i] * self.proj[k](F.normalize(pooled[k].float() - getattr(self, f"mean_{k}"), dim=1))
                 for i, k in enumerate(self.names)]
        return torch.cat(parts, dim=1)


class Pooled(nn.Module):
    """An encoder of frozen pooled stages only (for the fusion-without-fine-tuning variant)."""

    def __init__(self, fusion: Fusion) -> None:
        super().__init__()
        self.fusion = fusion

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.fusion(batch)


@dataclass
class TrainCfg:
    lr: float = 1e-4  # the pretrained stages
    fusion_lr: float = 1e-3  # a fusion's own projections and stage weights
    weight_decay: float = 1e-2
    batch: int = 64  # pairs
    epochs: int = 8
    patience: int = 3
    holdout: float = 0.15


def gather(features: Features, rows: np.ndarray, views: np.ndarray, keys: tuple[str, ...]) -> dict[str, torch.Tensor]:
    out = {}
    for k in keys:
        source = getattr(features, k) if k.startswith("map") else features.pooled[k]
        out[k] = torch.from_numpy(np.ascontiguousarray(source[rows, views])).float()
    return out


def encode(encoder: nn.Module, features: Features, rows: np.ndarray, keys: tuple[str, ...], step: int = 128) -> np.ndarray:
    """Plain-view vectors of images (rows) through the encoder, float32 numpy."""
    encoder.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(rows), step):
            r = rows[s:s + step]
            out.append(encoder(gather(features, r, np.zeros(len(r), dtype=np.int64), keys)).float().numpy())
    return np.concatenate(out)


def centred_top2(left: np.ndarray, right: np.ndarray, candidates: np.ndarray, truth: np.ndarray) -> float:
    return evaluate_scores(ZeroShot("cosine").score(left, right, candidates), truth, n_boot=1).top2


def train_encoder(encoder: nn.Module, features: Features, fit: tuple[Pair, ...], keys: tuple[str, ...],
                  centre: torch.Tensor | None, cfg: TrainCfg, seed: int, views: tuple[int, ...] | None = None) -> dict:
    """InfoNCE on the fit pairs not held back (a random view of each image per epoch); early stopping on the
    held-back pairs' top-2 (plain views, the adaptation matcher's own held-back pairs and tasks), starting
    from the untrained encoder's figure (epoch 0): the weights of the best epoch are kept."""
    n = len(fit)
    order = np.random.default_rng([0, 4]).permutation(n)  # Adaptation's held-back pairs (its seed 0)
    n_hold = held_back(n, cfg.holdout, "finetune")
    hold, train = order[:n_hold], order[n_hold:]
    left_rows = np.array([features.row[p.left_id] for p in fit])
    right_rows = np.array([features.row[p.right_id] for p in fit])
    hold_candidates, hold_truth = random_candidates(n_hold, np.random.default_rng([0, 3]))
    views_t = np.asarray(views if views is not None else range(features.map5.shape[1]))  # the views trained on
    rng = np.random.default_rng([seed, 77])
    torch.manual_seed(seed)
    named = [(k, p) for k, p in encoder.named_parameters() if p.requires_grad]
    groups = [{"params": [p for k, p in named if not k.startswith("fusion.")], "lr": cfg.lr},
              {"params": [p for k, p in named if k.startswith("fusion.")], "lr": cfg.fusion_lr}]
    optimiser = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=cfg.weight_decay)

    def held_top2() -> float:
        return centred_top2(encode(encoder, features, left_rows[hold], keys),
                            encode(encoder, features, right_rows[hold], keys), hold_candidates, hold_truth)

    def unit(z: torch.Tensor) -> torch.Tensor:
        return F.normalize(z - centre if centre is not None else z, dim=1)

    started = time.perf_counter()
    best, best_state, best_epoch, stale, curve = held_top2(), copy.deepcopy(encoder.state_dict()), 0, 0, []
    curve.append(best)
    for epoch in range(1, cfg.epochs + 1):
        encoder.train()
        perm = rng.permutation(train)
        for s in range(0, len(perm), cfg.batch):
            idx = perm[s:s + cfg.batch]
            if len(idx) < 2:
                continue
            za = unit(encoder(gather(features, left_rows[idx], rng.choice(views_t, len(idx)), keys)))
            zb = unit(encoder(gather(features, right_rows[idx], rng.choice(views_t, len(idx)), keys)))
            logits = za @ zb.T / TEMPERATURE
            target = torch.arange(len(idx))
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        top2 = held_top2()
        curve.append(top2)
        if top2 > best:
            best, best_state, best_epoch, stale = top2, copy.deepcopy(encoder.state_dict()), epoch, 0
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    encoder.load_state_dict(best_state)
    return {"seconds": time.perf_counter() - started, "best_epoch": best_epoch, "curve": [round(c, 3) for c in curve]}


# ---------------------------------------------------------------- evaluation


def part(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass
class SplitData:
    split: Split
    fit_left: np.ndarray  # rows in Features
    fit_right: np.ndarray
    task_left: np.ndarray
    task_right: np.ndarray


def split_data(split: Split, features: Features) -> SplitData:
    rows = features.row
    return SplitData(split, np.array([rows[p.left_id] for p in split.fit]), np.array([rows[p.right_id] for p in split.fit]),
                     np.array([rows[i] for i in split.tasks.left_ids]), np.array([rows[i] for i in split.tasks.right_ids]))


def score_alone(vectors: np.ndarray, data: SplitData) -> dict[str, float]:
    """The vectors alone: centred cosine, and with Sinkhorn."""
    tasks = data.split.tasks
    scores = ZeroShot("cosine").score(vectors[data.task_left], vectors[data.task_right], tasks.candidates)
    sink = rerank(scores, tasks.candidates, len(tasks.right_ids), "sinkhorn")
    return {"cosine": evaluate_scores(scores, tasks.truth, n_boot=1).top2,
            "cosine+sinkhorn": evaluate_scores(sink, tasks.truth, n_boot=1).top2}


def score_ensemble(parts: list[np.ndarray], data: SplitData) -> dict[str, float]:
    """The default recipe's matcher on parts (each L2-normalised, concatenated): adaptation hidden=512 fitted on
    the split's fit pairs, then Sinkhorn — as ``Engine.score`` does it."""
    vectors = np.concatenate([part(p) for p in parts], axis=1)
    tasks = data.split.tasks
    matcher = Adaptation(AdaptationCfg(hidden=512))
    matcher.fit(vectors[data.fit_left], vectors[data.fit_right])
    scores = matcher.score(vectors[data.task_left], vectors[data.task_right], tasks.candidates)
    sink = rerank(scores, tasks.candidates, len(tasks.right_ids), "sinkhorn")
    return {"ens-adaptation": evaluate_scores(scores, tasks.truth, n_boot=1).top2,
            "ens-adaptation+sinkhorn": evaluate_scores(sink, tasks.truth, n_boot=1).top2}


def pca_basis(x: np.ndarray, dim: int) -> np.ndarray:
    _, _, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    return vt[:dim].T.astype(np.float32)


def make_fusion(features: Features, data: SplitData, names: tuple[str, ...], dim: int,
                override: dict[str, np.ndarray] | None = None) -> Fusion:
    """A Fusion whose means and PCA bases come from the fit part's plain views (``override``: vectors of a
    stage computed otherwise, e.g. by the fine-tuned tail at epoch 0 — the same as the frozen ones)."""
    rows = np.concatenate([data.fit_left, data.fit_right])
    means, bases = {}, {}
    for k in names:
        x = features.pooled[k][rows, 0]
        mean = x.mean(0)
        unit_x = part(x - mean)
        means[k] = torch.from_numpy(mean.astype(np.float32))
        bases[k] = torch.from_numpy(pca_basis(unit_x, min(dim, unit_x.shape[1])))
    return Fusion(means, bases, names)


# ---------------------------------------------------------------- the sweep


def summary(values: list[float]) -> str:
    return f"**{np.mean(values):.3f}** ± {np.std(values):.3f} (worst {min(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/tll-finetune"), help="feature cache (never the repo)")
    parser.add_argument("--views", type=int, default=4, help="views per image: plain, mirror, then random crops")
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+",
                        default=["frozen", "concat-stages", "fusion", "ft7", "ft6", "ft6-fusion"])
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--fusion-dim", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    engine = Engine.open(args.data)
    development, _ = confirmation_part(engine.dataset.train_pairs, 0.2)  # the confirmation pairs: never read
    splits = [s for seed in args.seeds for s in fold_splits(development, args.folds, seed)]
    ids = list(dict.fromkeys([p.left_id for p in development] + [p.right_id for p in development]))
    started = time.perf_counter()
    features = cache_features(engine, ids, 0, args.views, args.work)
    print(f"feature cache: {len(ids)} images x {args.views} views ({time.perf_counter() - started:.0f} s)", flush=True)
    frozen = {k: engine.embed(ids, k) for k in ("efficientnet-lite0", "efficientnet-lite2", "combined")}
    agree = np.sum(part(frozen["efficientnet-lite0"]) * part(features.pooled["head"][:, 0]), axis=1)
    print(f"cached head vs the engine's lite0: cosine min {agree.min():.6f}", flush=True)
    base = create_backbone("efficientnet-lite0").model.eval()
    for p in base.parameters():
        p.requires_grad_(False)
    cfg = TrainCfg(lr=args.lr, epochs=args.epochs)
    results: dict[str, dict[str, list]] = {}

    def record(variant: str, figures: dict[str, float], seconds: float = 0.0, info: dict | None = None) -> None:
        row = results.setdefault(variant, {"seconds": [], "info": []})
        for k, v in figures.items():
            row.setdefault(k, []).append(v)
        row["seconds"].append(seconds)
        row["info"].append(info or {})

    all_rows = np.arange(len(ids))
    for s in splits:
        data = split_data(s, features)
        tag = f"seed {s.seed}, {s.tasks.name}"
        lite2, combined = frozen["efficientnet-lite2"], frozen["combined"]
        for variant in args.variants:
            t0 = time.perf_counter()
            info: dict = {}
            if variant == "frozen":  # the default recipe, lite0 as the engine embeds it
                lite0 = frozen["efficientnet-lite0"]
            elif variant in ("ft7", "ft6", "ft5"):
                cut = int(variant[-1])
                tail = Tail(base, cut)
                for p in tail.parameters():
                    p.requires_grad_(True)
                centre = torch.from_numpy(features.pooled["head"][np.concatenate([data.fit_left, data.fit_right]), 0].mean(0))
                # the head alone (a 1x1 conv) takes a larger step: at the stages' lr it barely moved in 2 epochs
                tail_cfg = TrainCfg(lr=3 * cfg.lr, epochs=cfg.epochs) if cut == 7 else cfg
                info = train_encoder(tail, features, s.fit, (f"map{cut}",), centre, tail_cfg, s.seed)
                lite0 = encode(tail, features, all_rows, (f"map{cut}",))
            elif variant == "concat-stages":  # naive: pooled blocks[4], blocks[5] and head, each L2-normalised
                lite0 = np.concatenate([part(features.pooled[k][:, 0]) for k in STAGES], axis=1)
            elif variant in ("centred-head", "centred-stages"):  # nothing learned but each stage's fit mean
                fit_rows = np.concatenate([data.fit_left, data.fit_right])
                names = ("head",) if variant == "centred-head" else STAGES
                lite0 = np.concatenate([part(features.pooled[k][:, 0] - features.pooled[k][fit_rows, 0].mean(0))
                                        for k in names], axis=1)
            elif variant.split("-")[0] in ("fusion", "head") or variant == "ft6-fusion":
                # fusion: blocks[4], blocks[5] and the head; head-proj: the head alone (the same learned
                # projection, no fusion); -plain: trained on the plain views only, -flip: plain + mirror
                names = ("head",) if variant.startswith("head") else STAGES
                fusion = make_fusion(features, data, names, args.fusion_dim)
                train_views = {"plain": (0,), "flip": (0, 1)}.get(variant.split("-")[-1])
                if variant != "ft6-fusion":
                    encoder, keys = Pooled(fusion), names
                    fusion_cfg = TrainCfg(epochs=60, patience=10)
                else:
                    encoder, keys = Tail(base, 6, fusion), ("map6", "p4", "p5")
                    fusion_cfg = cfg
                for p in encoder.parameters():
                    p.requires_grad_(True)
                info = train_encoder(encoder, features, s.fit, keys, None, fusion_cfg, s.seed, train_views)
                info["stage_weights"] = [round(w, 3) for w in fusion.stage_weights().tolist()]
                lite0 = encode(encoder, features, all_rows, keys)
            else:
                raise SystemExit(f"unknown variant {variant}")
            seconds = time.perf_counter() - t0
            figures = {**score_alone(lite0, data), **score_ensemble([lite0, lite2, combined], data)}
            record(variant, figures, seconds, info)
            print(f"  {tag} {variant}: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items())
                  + f" (train {seconds:.0f} s{', ' + json.dumps(info) if info else ''})", flush=True)
    print("\n| variant | lite0 part alone, cosine | alone + Sinkhorn | in lite0+lite2+combined, adaptation | "
          "+ Sinkhorn (the default's place) | training s / split |")
    print("| --- | --- | --- | --- | --- | --- |")
    for variant, row in results.items():
        print(f"| {variant} | {summary(row['cosine'])} | {summary(row['cosine+sinkhorn'])} | "
              f"{summary(row['ens-adaptation'])} | {summary(row['ens-adaptation+sinkhorn'])} | "
              f"{np.mean(row['seconds']):.0f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
