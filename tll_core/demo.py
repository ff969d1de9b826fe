"""The demo dataset: a small, deterministic TLL-like folder in the Kaggle layout, made offline.

Items are regions of the photographs that scikit-image ships inside its wheel. A left is one view of
a region; its right is another view of the same region (shifted, zoomed, maybe mirrored, recoloured,
blurred or grey). Foils are other regions, often of the same photograph, so the task is not trivial.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from .dataset import CANDIDATE_COLUMNS, N_CANDIDATES, SAMPLE_CSV, TEST_CSV, TRAIN_CSV
from .errors import TLLError, shown, shown_path
from .files import read_regular

PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "cat",
    "colorwheel", "brick", "camera", "coins", "grass", "gravel", "moon", "page", "text", "clock", "cell",
    "microaneurysms",
)
REGIONS_PER_PHOTO = 10
N_TEST = 40
SIZE = (200, 245)  # (w, h) as in the competition data
SEED = 2023
VERSION = "2"  # the generated files; bump when they change (the marker format may change without it)
MARKER = ".tll-demo"  # JSON: {"version", "files": {relative path: [size, sha256]}}, written last
MAX_MARKER_BYTES = 2**20  # the demo's is ~40 KB


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
    """Write the demo into ``out`` (train.csv, test_candidates.csv, sample-submission.csv, images).

    Never deletes anything it did not write. A missing or empty ``out`` gets the demo by an atomic rename
    of a fully written temporary sibling, so several writers at once (studio sessions) are safe: the
    first rename wins and the others find a complete demo. A complete demo of this version is returned
    as is. Any other non-empty folder is refused, unless it is a demo (it holds a marker) and
    ``overwrite`` is set: then the demo's own files are rewritten in place and nothing else is touched.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TLLError(f"{shown_path(out)}: is a file, not a folder; choose an empty or new folder for the demo")
    if is_complete_demo(out) and not overwrite:
        return out
    if _missing_or_empty(out):
        return _write_fresh(out)
    if not overwrite or _marker_text(out) is None:
        raise TLLError(f"{shown_path(out)}: folder is not empty and holds no complete demo (version {VERSION}); "
                       f"choose an empty or new folder for the demo")
    return _overwrite(out)


def _missing_or_empty(out: Path) -> bool:
    try:
        return not out.exists() or not any(out.iterdir())
    except OSError as exc:
        raise TLLError(f"{shown_path(out)}: cannot read the folder ({exc.strerror or exc})") from exc


def is_complete_demo(out: str | os.PathLike[str]) -> bool:
    """``out`` holds every file its marker lists, unchanged (size and SHA-256), for this version.

    A marker in the old format (just the version, no manifest) is accepted when it names this version
    and every file the demo's CSVs name is present: the old writer wrote its marker last.
    """
    out = Path(out)
    text = _marker_text(out)
    if text is None:
        return False
    if text.strip() == VERSION:
        return _legacy_complete(out)
    files = _manifest_files(text)
    return files is not None and all(_matches(out / rel, entry) for rel, entry in files.items())


def _marker_text(out: Path) -> str | None:
    """The marker's text; None when it is missing, unreadable, not a regular file (a FIFO would block)
    or larger than any marker the demo writes (a link to /dev/zero)."""
    try:
        return read_regular(out / MARKER, MARKER, MAX_MARKER_BYTES).decode("utf-8")
    except (TLLError, UnicodeDecodeError):
        return None


def _manifest_files(text: str) -> dict[str, list] | None:
    """The marker's {relative path: [size, sha256]} when it is a manifest of this version, else None."""
    try:
        manifest = json.loads(text)
    except ValueError:
        return None
    if not isinstance(manifest, dict) or manifest.get("version") != VERSION:
        return None
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return None
    for rel, entry in files.items():
        parts = Path(rel).parts
        if Path(rel).is_absolute() or ".." in parts or not isinstance(entry, list) or len(entry) != 2:
            return None
    return files


def _matches(path: Path, entry: list) -> bool:
    size, digest = entry
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size != size:
            return False
        return _sha256(path) == digest
    except OSError:
        return False


def _legacy_complete(out: Path) -> bool:
    try:
        pairs = {split: _rows(out / name) for split, name in (("train", TRAIN_CSV), ("test", "test_truth.csv"))}
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    if sum(map(len, pairs.values())) != len(PHOTOS) * REGIONS_PER_PHOTO:
        return False
    if not all((out / name).is_file() for name in (TEST_CSV, SAMPLE_CSV)):
        return False
    return all(len(pair) == 2 and (out / split / side / f"{code}.jpg").is_file()
               for split, rows in pairs.items() for pair in rows for side, code in zip(("left", "right"), pair))


def _rows(path: Path) -> list[list[str]]:
    """A CSV's rows after its header (a regular file of at most a demo CSV's size: a FIFO never blocks)."""
    try:
        text = read_regular(path, path.name, MAX_MARKER_BYTES).decode("utf-8")
    except TLLError as exc:
        raise OSError(str(exc)) from None
    return list(csv.reader(io.StringIO(text, newline="")))[1:]


def _write_fresh(out: Path) -> Path:
    """Generate into a temporary sibling, then rename it onto the missing or empty ``out``."""
    tmp = _temp_sibling(out)
    try:
        try:
            _generate(tmp)
            os.chmod(tmp, 0o755)  # mkdtemp made it private; the demo is ordinary data
        except OSError as exc:
            raise TLLError(f"{shown_path(out)}: cannot write the demo ({exc.strerror or exc})") from exc
        try:
            os.rename(tmp, out)  # atomic; replaces an empty folder, fails on a non-empty one
        except OSError as exc:
            if is_complete_demo(out):  # another writer got there first
                return out
            raise TLLError(f"{shown_path(out)}: cannot move the demo into place ({exc.strerror or exc}); "
                           f"choose an empty or new folder for the demo") from exc
        return out
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)  # only ever our own temporary folder


def _overwrite(out: Path) -> Path:
    """Rewrite a demo folder's own files in place; files the demo does not write are left alone."""
    text = _marker_text(out) or ""
    old = _manifest_files(text)
    if old is None and not text.strip().isdecimal():  # garbage: none of the files there is known to be the demo's
        old = {}
    tmp = _temp_sibling(out)
    try:
        new = _generate(tmp)
        for rel in new:
            target = out / rel
            if old is not None and (target.exists() or target.is_symlink()) and rel not in old:
                raise TLLError(f"{shown_path(target)}: not written by the demo; move it away or choose an empty or new folder")
        for rel in [*new, MARKER]:
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / rel, out / rel)
        return out
    except OSError as exc:
        raise TLLError(f"{shown_path(out)}: cannot overwrite the demo ({exc.strerror or exc})") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _temp_sibling(out: Path) -> Path:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    except OSError as exc:
        raise TLLError(f"{shown_path(out.parent)}: cannot write the demo here ({exc.strerror or exc})") from exc


def _generate(out: Path) -> dict[str, list]:
    """Write the whole demo into the (empty, private) folder ``out``; its marker, a manifest, last."""
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
    return _write_manifest(out)


def _write_manifest(out: Path) -> dict[str, list]:
    files = {p.relative_to(out).as_posix(): [p.stat().st_size, _sha256(p)]
             for p in sorted(out.rglob("*")) if p.is_file() and p.name != MARKER}
    (out / MARKER).write_text(json.dumps({"version": VERSION, "files": files}, indent=1), encoding="utf-8")
    return files


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _write_csv(path: Path, header: tuple[str, ...], rows: list) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
