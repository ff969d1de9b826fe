"""Cases from the adversarial pass on issue 18's fixes (2026-12): the ones marked ``FOUND`` failed on the code
that pass attacked and were fixed with it; the others held and guard what held."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_kaggle, write_csv
from tll_core.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _identical(root: Path, n_pairs: int) -> Path:
    """A Kaggle train part where every image has the same bytes: no scorer can know anything."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    for side, prefix in (("left", "l"), ("right", "r")):
        (root / "train" / side).mkdir(parents=True, exist_ok=True)
        for i in range(n_pairs):
            Image.fromarray(pixels).save(root / "train" / side / f"{prefix}{i:03d}.jpg", quality=90)
    write_csv(root / "train.csv", [["left", "right"], *[[f"l{i:03d}", f"r{i:03d}"] for i in range(n_pairs)]])
    return root


# ---------------------------------------------------------------- no order leaks the truth


# FOUND: failed on the code the pass attacked
@pytest.mark.parametrize("rerank", ["sinkhorn", "dual-softmax", "hungarian"])
def test_hard_foils_on_identical_images_stay_at_chance(tmp_path: Path, capsys, rerank: str) -> None:
    """--foils hard picks the 19 'nearest' rights with a stable argsort: on ties every left gets the same
    19 low-index rights, so its truth is the only right listed once and a re-ranker finds it (top-2 ~0.94)."""
    data = _identical(tmp_path / "same", 120)
    code, out, err = _run(capsys, "evaluate", "--data", str(data), "--backbone", "tiny-image", "--method", "zero-shot",
                          "--rerank", rerank, "--foils", "hard", "--foil-backbone", "tiny-image", "--val-fraction", "1.0",
                          "--quiet", "--json", "--cache-dir", str(tmp_path / "c"))
    assert code == 0, err
    [row] = json.loads(out)
    assert row["top2"] <= 0.15, row


def test_random_foils_on_identical_images_stay_at_chance(tmp_path: Path, capsys) -> None:
    data = _identical(tmp_path / "same", 120)
    code, out, err = _run(capsys, "evaluate", "--data", str(data), "--backbone", "tiny-image", "--method", "zero-shot",
                          "--rerank", "none", "--rerank", "csls", "--rerank", "hungarian", "--val-fraction", "1.0",
                          "--quiet", "--json", "--cache-dir", str(tmp_path / "c"))
    assert code == 0, err
    assert all(r["top2"] <= 0.10 for r in json.loads(out)), out


# ---------------------------------------------------------------- URL params: never raise


# FOUND: failed on the code the pass attacked
def test_a_link_with_a_5000_digit_seed_keeps_the_default() -> None:
    from tll_core.selection import Selection

    assert Selection.from_query({"seed": "9" * 5000}).seed == Selection().seed  # ValueError (int digit limit) today


# FOUND: failed on the code the pass attacked
@pytest.mark.parametrize("field", ["options", "rerank_options"])
def test_a_link_with_deeply_nested_json_options_keeps_the_defaults(field: str) -> None:
    from tll_core.selection import Selection

    sel = Selection.from_query({"method": "adaptation", "rerank": "sinkhorn", field: "[" * 5000})  # RecursionError
    assert sel.method == "adaptation"


# FOUND: failed on the code the pass attacked
def test_a_link_seed_beyond_the_engines_range_keeps_the_default() -> None:
    """seed=2**70 is kept, then every figure on the page is the engine's 'seed must be … 2^63-1' error."""
    from tll_core.selection import Selection

    assert Selection.from_query({"seed": str(2**70)}).seed == Selection().seed


# ---------------------------------------------------------------- one number rule


# FOUND: failed on the code the pass attacked
@pytest.mark.parametrize("value", ["\u00a02", "2\u00a0", "2\u2003", "\u30002"])
def test_option_values_with_unicode_spaces_are_refused(kaggle_dir: Path, capsys, value: str) -> None:
    """OptionSpec.parse uses str.strip(), which removes no-break and other Unicode spaces (numbers.py strips
    only ASCII blanks): `--option epochs=\\xa02` trains with epochs=2."""
    code, _, err = _run(capsys, "evaluate", "--data", str(kaggle_dir), "--backbone", "tiny-image", "--method",
                        "adaptation", "--rerank", "none", "--option", f"epochs={value}", "--quiet")
    assert code == 2 and "epochs" in err, err


# FOUND: failed on the code the pass attacked
def test_cache_size_limit_env_with_a_no_break_space_is_refused(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("TLL_CACHE_SIZE_LIMIT", "1000000\u00a0")
    code, _, err = _run(capsys, "cache", "--cache-dir", str(tmp_path / "c"))
    assert code == 2 and "TLL_CACHE_SIZE_LIMIT" in err, err


# FOUND: failed on the code the pass attacked
def test_cache_size_limit_env_of_5000_digits_is_one_line_exit_2(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("TLL_CACHE_SIZE_LIMIT", "9" * 5000)
    code, _, err = _run(capsys, "cache", "--cache-dir", str(tmp_path / "c"))
    assert code == 2 and "unexpected" not in err and "TLL_CACHE_SIZE_LIMIT" in err, err


@pytest.mark.parametrize("value", ["1_000", "\uff15", "\u0665", "5\u00a0"])
def test_seed_flag_follows_the_number_rule(kaggle_dir: Path, capsys, value: str) -> None:
    code, _, err = _run(capsys, "evaluate", "--data", str(kaggle_dir), "--seed", value)
    assert code == 2 and "--seed" in err and len(err.splitlines()) == 1, err


# ---------------------------------------------------------------- learned matchers' fit-size checks


# FOUND: failed on the code the pass attacked
def test_flip_augment_does_not_count_mirrors_as_fit_pairs(tmp_path: Path, capsys) -> None:
    """40 pairs at --val-fraction 0.5: 20 fit pairs, refused without flip_augment ('at least 40 are needed'),
    trained with it (the mirrored views are counted as 20 more pairs)."""
    data = make_kaggle(tmp_path / "data", n_pairs=40)
    code, _, err = _run(capsys, "evaluate", "--data", str(data), "--backbone", "tiny-image", "--method", "adaptation",
                        "--rerank", "none", "--val-fraction", "0.5", "--option", "epochs=1", "--option",
                        "flip_augment=true", "--quiet", "--cache-dir", str(tmp_path / "c"))
    assert code == 2 and "20 fit pairs" in err, err


# ---------------------------------------------------------------- messages


# FOUND: failed on the code the pass attacked
@pytest.mark.parametrize("argv", [["evaluate", "--data", "/tmp/{long}", "--backbone", "hog", "--quiet"],
                                  ["demo", "--out", "/tmp/{long}"],
                                  ["cache", "--cache-dir", "/tmp/{long}"]])
def test_a_long_path_is_quoted_shortened(capsys, argv: list[str]) -> None:
    long = "a" * 300
    code, _, err = _run(capsys, *[a.format(long=long) for a in argv])
    assert code == 2 and long not in err and "characters)" in err, err


# ---------------------------------------------------------------- the embedding cache


# FOUND: failed on the code the pass attacked
def test_a_cached_vector_of_the_wrong_size_is_recomputed(kaggle_dir: Path, tmp_path: Path, capsys) -> None:
    """A well-formed entry (right key, valid digest) whose length is not the backbone's dim: 'unexpected
    ValueError: could not broadcast', exit 1, instead of a miss."""
    from tll_core.backbones.registry import create_backbone
    from tll_core.cache import EmbeddingCache
    from tll_core.embeddings import view_identity

    identity = view_identity(create_backbone("tiny-image"), "")
    sha1 = hashlib.sha1((kaggle_dir / "train/left/l000.jpg").read_bytes()).hexdigest()
    cache = EmbeddingCache(tmp_path / "c")
    cache.put_many(identity, {sha1: np.ones(3, np.float32)})
    cache.close()
    code, _, err = _run(capsys, "evaluate", "--data", str(kaggle_dir), "--backbone", "tiny-image", "--method",
                        "zero-shot", "--rerank", "none", "--quiet", "--cache-dir", str(tmp_path / "c"))
    assert code == 0, err


# ---------------------------------------------------------------- nothing outside the data folder


# FOUND: failed on the code the pass attacked
def test_an_image_folder_symlinked_outside_is_not_listed(tmp_path: Path, capsys) -> None:
    """train/left -> an outside folder: its listing is used to resolve names, so a message tells which files
    exist there ('could be train/left/secret.jpg and train/left/secret.png')."""
    data = make_kaggle(tmp_path / "data")
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("secret.jpg", "secret.png"):
        Image.new("RGB", (8, 8)).save(outside / name)
    import shutil

    for image in (data / "train/left").iterdir():  # the outside folder holds the lefts too: only 'secret' is at fault
        shutil.copy(image, outside / image.name)
    shutil.rmtree(data / "train/left")
    os.symlink(outside, data / "train/left")
    with open(data / "train.csv", "a") as fh:
        fh.write("secret,r000\n")
    code, _, err = _run(capsys, "evaluate", "--data", str(data), "--backbone", "hog", "--quiet")
    assert code == 2 and "secret.png" not in err, err


def test_duplicate_lefts_go_by_the_file(kaggle_dir: Path, capsys) -> None:
    with open(kaggle_dir / "train.csv", "a") as fh:
        fh.write("l000.jpg,r001\n")
    code, _, err = _run(capsys, "evaluate", "--data", str(kaggle_dir), "--backbone", "hog", "--quiet")
    assert code == 2 and "duplicate left 'l000.jpg'" in err and "both are train/left/l000.jpg" in err, err


# ---------------------------------------------------------------- bit-identical results


# FOUND: failed on the code the pass attacked
@pytest.mark.slow
def test_siamese_scores_are_bit_identical_run_to_run_and_across_threads(demo_dir: Path, tmp_path: Path) -> None:
    """The Siamese net's CSV differs in the 7th digit between runs with OMP_NUM_THREADS=2 (1e-6), and
    between 1, 2 and 4 threads; OMP_NUM_THREADS=1 is stable. adaptation and pair-classifier are identical."""
    digests = set()
    for i, threads in enumerate(("1", "2", "2", "4")):
        out = tmp_path / f"s{i}.csv"
        env = {**os.environ, "OMP_NUM_THREADS": threads, "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-m", "tll_core", "submit", "--data", str(demo_dir), "--backbone", "tiny-image",
                        "--method", "siamese", "--option", "epochs=5", "--rerank", "none", "--no-cache", "--quiet",
                        "--out", str(out)], check=True, env=env, cwd=ROOT, capture_output=True)
        digests.add(hashlib.sha256(out.read_bytes()).hexdigest())
    assert len(digests) == 1
