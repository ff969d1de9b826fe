"""Accuracy levers that are not matcher options, each against its own baseline on the same dev folds.

    .venv/bin/python bench/lever_sweep.py --data ../shared/tll-dev --lever seed-ensemble [--seeds 0 1 2]
        [--backbone efficientnet-lite0+efficientnet-lite2+combined]

The folds are ``recipe_sweep.py``'s (the confirmation part set aside, 2 folds per seed). On each split the
baseline is the adaptation matcher (``hidden=512``) fitted on the fit pairs, then Sinkhorn; each lever changes
one thing and is scored on the same split, so the difference is paired. Levers:

- ``seed-ensemble``: the scores of 5 fits (seeds 0-4) averaged before Sinkhorn;
- ``self-training``: pseudo-pairs from the validation tasks' own images — each left's best candidate after
  Sinkhorn, kept when that right's best left is the same left (mutual) and among the ``--share`` most confident
  lefts — added to the fit pairs for a second fit (the truth is read only to print the pseudo-pairs' precision);
- ``all-negatives``: a listwise loss over every fit right (each left of a batch against all the fit rights, not
  just the batch's): the hardest negatives the fit part has are always in its softmax;
- ``refit-all``: a second fit on every fit pair (5 % held back) for the first fit's best epoch count;
- ``fuse-backbones``: one adaptation per part of the ensemble, their scores z-scored per left and averaged
  (scaled to the concatenation's spread, so Sinkhorn's temperature means the same), against the concatenation.

Options of the matcher (temperature, pca_dim, hidden, flip_augment, transductive, …) are swept with
``recipe_sweep.py`` instead. Results: bench/README.md, "The accuracy levers".
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tll_core.backbones.registry import Ensemble  # noqa: E402
from tll_core.engine import Engine  # noqa: E402
from tll_core.evaluation.metrics import evaluate_scores  # noqa: E402
from tll_core.evaluation.tasks import Split, confirmation_part, fold_splits  # noqa: E402
from tll_core.matchers.learned import Adaptation, AdaptationCfg  # noqa: E402
from tll_core.rerank import rerank  # noqa: E402

BASE = dict(hidden=512)


def vectors(engine: Engine, split: Split, backbone: str) -> tuple[np.ndarray, ...]:
    fit_left = engine.embed([p.left_id for p in split.fit], backbone)
    fit_right = engine.embed([p.right_id for p in split.fit], backbone)
    return (fit_left, fit_right, *engine.task_embeddings(split.tasks, backbone))


def top2(scores: np.ndarray, split: Split) -> float:
    tasks = split.tasks
    return evaluate_scores(rerank(scores, tasks.candidates, len(tasks.right_ids), "sinkhorn"), tasks.truth, n_boot=1).top2


def fitted(left: np.ndarray, right: np.ndarray, **options) -> Adaptation:
    matcher = Adaptation(AdaptationCfg(**{**BASE, **options}))
    matcher.fit(left, right)
    return matcher


class AllNegatives(Adaptation):
    """InfoNCE whose left→right softmax runs over every fit right (the batch's lefts against the whole bank)."""

    bank_rows: np.ndarray

    def loss(self, model, left, right, generator):  # noqa: ANN001, ANN201
        bank = getattr(self, "bank", None)
        if bank is None:
            bank = self.bank = self._project(self.bank_rows)
        za, zb = F.normalize(model.left(left), dim=1), F.normalize(model.right(right), dim=1)
        zbank = F.normalize(model.right(bank), dim=1)
        t = self.cfg.temperature
        negatives = (za @ zbank.T / t).masked_fill((zbank[None] - zb[:, None]).abs().sum(-1) < 1e-6, float("-inf"))
        logits = torch.cat([(za * zb).sum(1, keepdim=True) / t, negatives], 1)
        loss = F.cross_entropy(logits, torch.zeros(len(left), dtype=torch.long))
        return (loss + F.cross_entropy(zb @ za.T / t, torch.arange(len(left)))) / 2


def pseudo_pairs(scores: np.ndarray, split: Split, share: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Confident mutual one-to-one pairs among the tasks' own images: (left rows, right-pool rows, precision)."""
    candidates = split.tasks.candidates
    log_p = rerank(scores, candidates, len(split.tasks.right_ids), "sinkhorn")
    rows = np.arange(len(candidates))
    best = log_p.argmax(1)
    right, p = candidates[rows, best], np.exp(log_p[rows, best])
    owner: dict[int, int] = {}
    for i in np.argsort(-p):
        owner.setdefault(int(right[i]), int(i))
    keep = np.array([i for i in rows if owner[int(right[i])] == i], dtype=np.int64)
    keep = keep[np.argsort(-p[keep])][: int(round(share * len(candidates)))]
    truth = candidates[rows, split.tasks.truth]
    return keep, right[keep], float((right[keep] == truth[keep]).mean()) if len(keep) else 0.0


def lever_scores(lever: str, engine: Engine, split: Split, backbone: str, share: float,
                 base: Adaptation, parts: tuple[np.ndarray, ...]) -> np.ndarray:
    fit_left, fit_right, left, right = parts
    candidates = split.tasks.candidates
    if lever == "seed-ensemble":
        return np.mean([fitted(fit_left, fit_right, seed=s).score(left, right, candidates) for s in range(5)], axis=0)
    if lever == "self-training":
        keep, rights, precision = pseudo_pairs(base.score(left, right, candidates), split, share)
        print(f"  {len(keep)} pseudo-pairs, precision {precision:.2f}", flush=True)
        return fitted(np.concatenate([fit_left, left[keep]]), np.concatenate([fit_right, right[rights]]),
                      seed=1).score(left, right, candidates)
    if lever == "all-negatives":
        matcher = AllNegatives(AdaptationCfg(**BASE))
        matcher.bank_rows = fit_right
        matcher.fit(fit_left, fit_right)
        return matcher.score(left, right, candidates)
    if lever == "refit-all":
        return fitted(fit_left, fit_right, epochs=max(1, base.curve.best_epoch), patience=100_000,
                      holdout=0.05).score(left, right, candidates)
    if lever == "fuse-backbones":
        concatenated = base.score(left, right, candidates)
        z = [standardised(fitted(*vectors(engine, split, part)[:2]).score(*vectors(engine, split, part)[2:], candidates))
             for part in Ensemble.parse(backbone).parts]
        fused = np.mean(z, axis=0)
        return fused / fused.std() * concatenated.std()
    raise SystemExit(f"unknown lever {lever}")


def standardised(scores: np.ndarray) -> np.ndarray:
    return (scores - scores.mean(1, keepdims=True)) / (scores.std(1, keepdims=True) + 1e-8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--lever", required=True,
                        choices=("seed-ensemble", "self-training", "all-negatives", "refit-all", "fuse-backbones"))
    parser.add_argument("--backbone", default="efficientnet-lite0+efficientnet-lite2+combined")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--share", type=float, default=0.5, help="self-training: share of the lefts pseudo-paired")
    args = parser.parse_args()
    torch.set_num_threads(1)
    engine = Engine.open(args.data)
    development, _ = confirmation_part(engine.dataset.train_pairs, 0.2)
    rows: dict[str, list[float]] = {"baseline": [], args.lever: []}
    for seed in args.seeds:
        for split in fold_splits(development, 2, seed):
            parts = vectors(engine, split, args.backbone)
            base = fitted(*parts[:2])
            rows["baseline"].append(top2(base.score(*parts[2:], split.tasks.candidates), split))
            rows[args.lever].append(top2(lever_scores(args.lever, engine, split, args.backbone, args.share, base,
                                                      parts), split))
            print(f"{split.tasks.name}, seed {seed}: {rows['baseline'][-1]:.3f} -> {rows[args.lever][-1]:.3f}", flush=True)
    for name, values in rows.items():
        v = np.asarray(values)
        print(f"{name}: {v.mean():.3f} ± {v.std():.3f}, worst {v.min():.3f} ({len(v)} splits)")


if __name__ == "__main__":
    main()
