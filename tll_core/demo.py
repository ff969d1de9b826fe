"""The demo dataset: a small, deterministic TLL-like folder in the Kaggle layout, made offline.

Items are regions of the photographs that scikit-image ships inside its wheel. A left is one view of
a region; its right is another view of the same region (shifted, zoomed, maybe mirrored, recoloured,
blurred or grey). Foils are other regions, often of the same photograph, so the task is not trivial.
"""
from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from .dataset import CANDIDATE_COLUMNS, N_CANDIDATES, SAMPLE_CSV, TEST_CSV, TRAIN_CSV

PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "cat",
    "colorwheel", "brick", "camera", "coins", "grass", "gravel", "moon", "page", "text", "clock", "cell",
    "microaneurysms",
)
REGIONS_PER_PHOTO = 10
N_TEST = 40
SIZE = (200, 245)  # (w, h) as in the competition data
SEED = 2023
VERSION = "2"


def _photo(name: str) -> Image.Image:
    import skimage.data

    arr = np.asarray(getattr(skimage.data, name)())
    if arr.dtype != np.uint8:
        arr = (arr.astype(np.float64) / max(float(arr.max()), 1e-12) * 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return Image.fromarray(arr[..., :3])


def _view(photo: Image.Image, box: tuple[float, float, float, float], rng: np.random.Generator, alter: bool) -> Image.Image:
    x, y, w, h = box
    if alter:
        zoom = rng.uniform(0.7, 1.3)
        x += rng.uniform(-0.2, 0.2) * w
        y += rng.uniform(-0.2, 0.2) * h
        w, h = w * zoom, h * zoom
    W, H = photo.size
    x, y = float(np.clip(x, 0, max(0, W - w))), float(np.clip(y, 0, max(0, H - h)))
    im = photo.resize(SIZE, Image.BILINEAR, box=(x, y, min(W, x + w), min(H, y + h)))
    if not alter:
        return im
    if rng.random() < 0.5:
        im = ImageOps.mirror(im)
    arr = np.asarray(im, dtype=np.float32) * rng.uniform(0.7, 1.3, size=3) + rng.uniform(-25, 25)
    im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if rng.random() < 0.3:
        im = im.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 2.5)))
    if rng.random() < 0.2:
        im = ImageOps.grayscale(im).convert("RGB")
    return im


def _codes(n: int, rng: np.random.Generator) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    codes: list[str] = []
    seen: set[str] = set()
    while len(codes) < n:
        code = "".join(rng.choice(letters, 3))
        if code not in seen:
            seen.add(code)
            codes.append(code)
    return codes


def write_demo(out: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write the demo into ``out`` (train.csv, test_candidates.csv, sample-submission.csv, images)."""
    out = Path(out)
    marker = out / ".tll-demo"
    if marker.exists() and marker.read_text() == VERSION and not overwrite:
        return out
    if out.exists() and any(out.iterdir()):
        if not marker.exists():
            from .errors import TLLError

            raise TLLError(f"{out}: folder is not empty; choose an empty or new folder for the demo")
        shutil.rmtree(out)
    rng = np.random.default_rng(SEED)
    items = []
    for name in PHOTOS:
        photo = _photo(name)
        W, H = photo.size
        for _ in range(REGIONS_PER_PHOTO):
            h = rng.uniform(0.35, 0.7) * H
            w = min(W, h * SIZE[0] / SIZE[1])
            items.append((photo, (rng.uniform(0, W - w), rng.uniform(0, H - h), w, h)))
    order = rng.permutation(len(items))
    codes = _codes(2 * len(items), rng)
    n_train = len(items) - N_TEST
    split_of = {int(i): ("train" if k < n_train else "test") for k, i in enumerate(order)}
    pairs: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
    for k, i in enumerate(order):
        photo, box = items[int(i)]
        split = split_of[int(i)]
        left, right = codes[2 * k], codes[2 * k + 1]
        for side, code, alter in (("left", left, False), ("right", right, True)):
            folder = out / split / side
            folder.mkdir(parents=True, exist_ok=True)
            _view(photo, box, rng, alter).save(folder / f"{code}.jpg", quality=90)
        pairs[split].append((left, right))
    _write_csv(out / TRAIN_CSV, ("left", "right"), pairs["train"])
    test_rights = [r for _, r in pairs["test"]]
    rows, sample = [], []
    for i, (left, right) in enumerate(pairs["test"]):
        foils = [test_rights[j] for j in rng.choice([j for j in range(len(test_rights)) if j != i], N_CANDIDATES - 1, replace=False)]
        candidates = foils[:]
        candidates.insert(int(rng.integers(0, N_CANDIDATES)), right)
        rows.append((left, *candidates))
        sample.append((left, *(f"{v:.6f}" for v in rng.random(N_CANDIDATES))))
    _write_csv(out / TEST_CSV, ("left", *CANDIDATE_COLUMNS), rows)
    _write_csv(out / SAMPLE_CSV, ("left", *CANDIDATE_COLUMNS), sample)
    _write_csv(out / "test_truth.csv", ("left", "right"), pairs["test"])  # demo only: lets a submission be scored
    marker.write_text(VERSION)
    return out


def _write_csv(path: Path, header: tuple[str, ...], rows: list) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
