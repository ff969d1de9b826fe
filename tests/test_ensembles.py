"""Ensemble backbone names ``a+b`` on the command line: accepted, each part checked against the registry."""
from pathlib import Path

import json
import pytest

from tll_core.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_evaluate_accepts_an_ensemble(demo_dir: Path, capsys: pytest.CaptureFixture[str], warm_demo_cache: Path) -> None:
    code, out, err = run(capsys, "evaluate", "--data", str(demo_dir), "--backbone", "hog+colour-hist", "--json", "--quiet")
    assert code == 0, err
    (row,) = json.loads(out)
    assert row["backbone"] == "hog+colour-hist" and 0 < row["top2"] <= 1


@pytest.mark.parametrize("argv", [
    ("evaluate", "--backbone", "hog+nope"),
    ("evaluate", "--foil-backbone", "hog+nope", "--foils", "hard"),
    ("submit", "--backbone", "hog+nope", "--out", "unused.csv"),
])
def test_a_bad_part_is_one_line_naming_it(demo_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          argv: tuple[str, ...]) -> None:
    command, *rest = argv
    code, out, err = run(capsys, command, "--data", str(demo_dir), *rest, "--quiet")
    assert code == 2 and out == "" and not (tmp_path / "unused.csv").exists()
    assert err.startswith("error: unknown backbone 'nope'") and err.strip().count("\n") == 0


def test_weights_without_a_name_go_to_the_one_deep_part(demo_dir: Path, capsys: pytest.CaptureFixture[str],
                                                         tmp_path: Path) -> None:
    missing = tmp_path / "w.safetensors"
    # the file is attributed to mobilenetv3_large_100 (the only deep part), so the error names it as missing
    code, _, err = run(capsys, "evaluate", "--data", str(demo_dir), "--backbone", "hog+mobilenetv3_large_100",
                       "--weights", str(missing), "--quiet")
    assert code == 2 and "weights file not found (for backbone mobilenetv3_large_100)" in err
    code, _, err = run(capsys, "evaluate", "--data", str(demo_dir), "--backbone", "mobilenetv3_large_100+clip-rn50",
                       "--weights", str(missing), "--quiet")
    assert code == 2 and "say which backbone" in err


def test_an_ensemble_decodes_each_image_once_and_gives_its_parts_vectors(kaggle_dir: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Every part of ``a+b+c`` is computed in one pass: each image read and decoded once (not once per part),
    and the vectors are those each part gives alone, L2-normalised and concatenated."""
    import numpy as np

    from tll_core import embeddings
    from tll_core.cache import EmbeddingCache
    from tll_core.engine import Engine

    engine = Engine.open(kaggle_dir, cache_dir=tmp_path / "c")
    ids = [p.left_id for p in engine.dataset.train_pairs][:10]
    decoded = []
    real = embeddings.decode_rgb
    monkeypatch.setattr(embeddings, "decode_rgb", lambda image: decoded.append(image.sha1) or real(image))
    together = engine.embed(ids, "hog+colour-hist+tiny-image")
    assert sorted(decoded) == sorted(engine.dataset.read_image(i).sha1 for i in ids)  # once each
    alone = Engine.open(kaggle_dir, cache_dir=tmp_path / "other")
    parts = [alone.embed(ids, name) for name in ("hog", "colour-hist", "tiny-image")]
    expected = np.concatenate([p / np.linalg.norm(p, axis=1, keepdims=True) for p in parts], axis=1)
    np.testing.assert_array_equal(together, expected)
    decoded.clear()
    again = Engine(engine.dataset, EmbeddingCache(tmp_path / "c"))  # a fresh engine on the same disk cache
    np.testing.assert_array_equal(again.embed(ids, "hog+colour-hist+tiny-image"), together)
    assert decoded == []  # every part's vector came from the cache: nothing decoded


def test_scoring_a_learned_method_is_one_pass_per_view_as_its_stages_say(tmp_path: Path) -> None:
    """``Engine.stages`` is what ``score`` then does: the fit pairs and the task images embedded in one pass
    (one count of images, every part at once), then training — no other embedding report."""
    from conftest import make_kaggle
    from tll_core.engine import Engine, Method

    engine = Engine.open(make_kaggle(tmp_path / "d", n_pairs=100), cache_dir=tmp_path / "c")
    tasks, fit = engine.tasks_for("validation", 0.5, 0)
    method = Method("adaptation", options=(("epochs", 3), ("patience", 3), ("pca_dim", 8)))
    stages = engine.stages(tasks, "hog+tiny-image", method, fit)
    assert [s.kind for s in stages] == ["embedding", "training"] and stages[1].total == 3
    images = {i for p in fit for i in (p.left_id, p.right_id)} | set(tasks.left_ids) | set(tasks.right_ids)
    assert stages[0].total == len(images) and stages[0].label == "hog + tiny-image"
    reports, epochs = [], []
    engine.score(tasks, "hog+tiny-image", method, fit, progress=lambda d, t: reports.append((d, t)), callback=epochs.append)
    first_pass = [r for r in reports if r[1] == len(images)]
    assert first_pass and first_pass[-1] == (len(images), len(images)) and reports[0][0] <= reports[-1][0]
    later = reports[len(first_pass):]
    assert all(d == t for d, t in later), later  # everything after the pass is read from memory at once
    assert 1 <= len(epochs) <= 3
