import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import demo_subset, make_kaggle
from tll_core.cli import main
from tll_core.dataset import N_CANDIDATES, load_dataset
from tll_core.matchers.learned import MIN_FIT_PAIRS
from tll_core.recipes import default_recipe

ROOT = Path(__file__).resolve().parent.parent


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_backbones_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "backbones", "--json")
    rows = json.loads(out)
    assert code == 0 and set(rows[0]) == {"name", "family", "dim", "pretrained", "available", "weights"}
    by_name = {r["name"]: r for r in rows}
    assert by_name["combined"]["available"] is True and by_name["resnet50"]["available"] is False


@pytest.mark.slow
def test_demo_evaluate_submit_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str], warm_demo_cache: Path) -> None:
    # the cache folder is a copy of the warm demo cache: the demo's weight-free embeddings are there already
    data = tmp_path / "demo"
    assert run(capsys, "demo", "--out", str(data))[0] == 0
    code, out, _ = run(capsys, "evaluate", "--data", str(data), "--backbone", "combined", "--backbone", "tiny-image",
                       "--metric", "cosine", "--metric", "manhattan", "--val-fraction", "1.0", "--json", "--quiet")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 4
    assert set(rows[0]) == {"backbone", "metric", "method", "top1", "top2", "top5", "mrr", "mean_rank", "n", "top2_ci"}
    best = max(rows, key=lambda r: r["top2"])
    assert best["top2"] > 0.4 and rows[0]["n"] == 160  # clearly above chance (0.1)

    sub = tmp_path / "out" / "sub.csv"
    code, out, _ = run(capsys, "submit", "--data", str(data), "--backbone", "combined", "--metric", "cosine", "--out", str(sub), "--quiet")
    assert code == 0 and sub.exists() and "its matcher (zero-shot) learns nothing" in out
    assert run(capsys, "validate-submission", "--data", str(data), str(sub))[0] == 0
    sub.write_text(sub.read_text().replace(",", ";", 1))
    code, _, err = run(capsys, "validate-submission", "--data", str(data), str(sub))
    assert code == 1 and "bad header" in err

    code, out, _ = run(capsys, "cache", "--info")
    assert code == 0 and "embeddings" in out
    code, out, _ = run(capsys, "cache", "--clear")
    assert code == 0 and "cleared" in out


@pytest.mark.slow
def test_evaluate_without_flags_runs_the_default_recipe(demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       warm_recipe_cache: Path, reuse_backbones) -> None:
    # a folder just big enough for the default recipe's learned matcher (MIN_FIT_PAIRS fit pairs after 20
    # validation pairs), made of demo pairs: their embeddings under the recipe's backbones are in the warm
    # recipe cache (and the recipe's packaged backbones are the session's, built by the same create_backbone
    # call), so what runs here is the CLI's choice of recipe and its matcher, trained on these 40 fit pairs
    data = demo_subset(demo_dir, tmp_path / "data", MIN_FIT_PAIRS + N_CANDIDATES)
    code, out, err = run(capsys, "evaluate", "--data", str(data), "--json", "--quiet")
    (row,) = json.loads(out)
    recipe = default_recipe()  # no flags: the default recipe (pretrained when its package is installed)
    assert code == 0 and row["backbone"] == recipe.backbone and row["method"] == recipe.method.label, err
    assert row["n"] == N_CANDIDATES


@pytest.mark.slow
def test_bad_input_is_one_line_no_traceback(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "tll_core", "evaluate", "--data", str(tmp_path / "missing")],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no such data folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_weights_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from tll_core.backbones import deep

    monkeypatch.setattr(deep, "HUB_HOST", "localhost.invalid")
    data = tmp_path / "demo"
    main(["demo", "--out", str(data)])
    code, _, err = run(capsys, "evaluate", "--data", str(data), "--backbone", "resnet50", "--quiet")
    assert code == 2 and "resnet50" in err and err.count("\n") == 1


@pytest.mark.slow
def test_random_weights_flag_runs_a_deep_backbone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the smallest folder on which the default method still trains its learned matcher (as on the demo, whose
    # 320 images would take the deep backbone over twice as long as these 120)
    data = make_kaggle(tmp_path / "data", n_pairs=MIN_FIT_PAIRS + N_CANDIDATES)
    code, out, _ = run(capsys, "evaluate", "--data", str(data), "--backbone", "mobilenetv3_large_100",
                       "--random-weights", "--json", "--quiet")
    assert code == 0 and json.loads(out)[0]["backbone"] == "mobilenetv3_large_100"


@pytest.mark.slow
def test_evaluate_methods_and_reranks(demo_dir: Path, capsys: pytest.CaptureFixture[str], warm_demo_cache: Path) -> None:
    code, out, _ = run(capsys, "evaluate", "--data", str(demo_dir), "--backbone", "combined", "--method", "zero-shot", "--method", "adaptation",
                       "--rerank", "none", "--rerank", "sinkhorn", "--option", "epochs=3", "--option", "pca_dim=16",
                       "--fuse", "--json", "--quiet")
    rows = json.loads(out)
    assert code == 0
    assert [r["method"] for r in rows] == ["zero-shot", "zero-shot+sinkhorn", "adaptation+epochs=3+pca_dim=16",
                                           "adaptation+epochs=3+pca_dim=16+sinkhorn", rows[-1]["method"]]
    assert rows[-1]["method"].startswith("fusion(") and rows[2]["metric"] == "cosine"


def test_bad_option_is_one_line(demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "evaluate", "--data", str(demo_dir), "--method", "adaptation", "--option", "temprature=1", "--quiet")
    assert code == 2 and "temprature" in err and err.count("\n") == 1


@pytest.mark.slow
def test_submit_with_a_learned_method(demo_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      warm_demo_cache: Path) -> None:
    sub = tmp_path / "sub.csv"
    code, out, _ = run(capsys, "submit", "--data", str(demo_dir), "--backbone", "combined", "--method", "pair-classifier", "--option", "epochs=2",
                       "--rerank", "sinkhorn", "--out", str(sub), "--quiet")
    assert code == 0 and "pair-classifier+epochs=2+sinkhorn" in out
    n_pairs = len(load_dataset(demo_dir).train_pairs)
    assert f"its matcher (pair-classifier) was trained on all {n_pairs} train pairs\n" in out  # none held out
    code, out, _ = run(capsys, "submit", "--data", str(demo_dir), "--backbone", "combined", "--method", "adaptation",
                       "--option", "epochs=2", "--option", "transductive=true", "--out", str(sub), "--quiet")
    assert code == 0 and f"trained on all {n_pairs} train pairs and, unlabelled, the test images" in out
    assert run(capsys, "validate-submission", "--data", str(demo_dir), str(sub))[0] == 0


@pytest.mark.slow
def test_reproduce_lists_weight_free_rows_and_skips_with_reasons(demo_dir: Path, capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch, warm_demo_cache: Path) -> None:
    import tll_core.reproduce as reproduce
    from tll_core.backbones.registry import BACKBONES
    from tll_core.backbones.registry import Ensemble

    def quick(experiment: str, backbone: str, method) -> bool:
        """The plan without the rows that would run a pretrained deep backbone (the packaged lite weights are
        installed here) or train more than one matcher: every weight-needing row is kept (listed as skipped,
        at no cost), and the weight-free rows keep zero-shot (with its re-rankings) and one pair classifier."""
        parts = Ensemble.parse(backbone).parts
        if any(p in reproduce.LITE for p in parts):
            return False
        if any(BACKBONES[p].needs_weights for p in parts):
            return True
        return method.name == "zero-shot" or experiment == "pair classifier, balanced sampling"

    monkeypatch.setattr(reproduce, "reproduce", functools.partial(reproduce.reproduce, plan_filter=quick))
    code, out, _ = run(capsys, "reproduce", "--data", str(demo_dir), "--json", "--quiet")
    rows = json.loads(out)
    assert code == 0
    ran = [r for r in rows if not r["skipped"]]
    skipped = [r for r in rows if r["skipped"]]
    assert {r["backbone"] for r in ran} >= {"combined", "hog"} and all(r["n"] > 0 for r in ran)
    assert any(r["method"] == "zero-shot+sinkhorn" for r in ran) and any(r["method"].startswith("pair-classifier") for r in ran)
    assert {r["backbone"] for r in skipped} >= {"vgg16", "resnet50", "clip-rn50x4"}
    assert all("weights" in r["skipped"] for r in skipped)


@pytest.mark.parametrize("method", ["adaptation", "pair-classifier"])
def test_training_with_nothing_left_to_train_on_exits_2_naming_the_counts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], method: str) -> None:
    """Issue 18, defect 5: ``holdout=0.99`` on 40 fit pairs exited 0 with a figure and library warnings."""
    import warnings

    data = make_kaggle(tmp_path / "data", n_pairs=MIN_FIT_PAIRS + N_CANDIDATES)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = run(capsys, "evaluate", "--data", str(data), "--backbone", "tiny-image", "--method", method,
                             "--option", "holdout=0.99", "--quiet")
    assert code == 2 and out == "", (out, err)
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert "holds back 40 of 40 fit pairs and leaves 0 to train on" in err and "at least 20" in err
    assert not [w for w in caught if not issubclass(w.category, DeprecationWarning)], [str(w.message) for w in caught]
