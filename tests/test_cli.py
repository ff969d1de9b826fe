import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tll_core.cli import main

ROOT = Path(__file__).resolve().parent.parent


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_backbones_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "backbones", "--json")
    rows = json.loads(out)
    assert code == 0 and set(rows[0]) == {"name", "family", "dim", "available"}
    by_name = {r["name"]: r for r in rows}
    assert by_name["combined"]["available"] is True and by_name["resnet50"]["available"] is False


def test_demo_evaluate_submit_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "demo"
    assert run(capsys, "demo", "--out", str(data))[0] == 0
    code, out, _ = run(capsys, "evaluate", "--data", str(data), "--backbone", "combined", "--backbone", "tiny-image",
                       "--metric", "cosine", "--metric", "manhattan", "--val-fraction", "1.0", "--json", "--quiet")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 4
    assert set(rows[0]) == {"backbone", "metric", "method", "top1", "top2", "top5", "mrr", "mean_rank", "n", "top2_ci"}
    best = max(rows, key=lambda r: r["top2"])
    assert best["top2"] > 0.4 and rows[0]["n"] == 160  # clearly above chance (0.1)
    code, out, _ = run(capsys, "evaluate", "--data", str(data), "--quiet")
    assert code == 0 and "combined" in out and "cosine" in out

    sub = tmp_path / "out" / "sub.csv"
    code, out, _ = run(capsys, "submit", "--data", str(data), "--backbone", "combined", "--metric", "cosine", "--out", str(sub), "--quiet")
    assert code == 0 and sub.exists()
    assert run(capsys, "validate-submission", "--data", str(data), str(sub))[0] == 0
    sub.write_text(sub.read_text().replace(",", ";", 1))
    code, _, err = run(capsys, "validate-submission", "--data", str(data), str(sub))
    assert code == 1 and "bad header" in err

    code, out, _ = run(capsys, "cache", "--info")
    assert code == 0 and "embeddings" in out
    code, out, _ = run(capsys, "cache", "--clear")
    assert code == 0 and "cleared" in out


def test_bad_input_is_one_line_no_traceback(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "tll_core", "evaluate", "--data", str(tmp_path / "missing")],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no such data folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_weights_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from tll_core.backbones import deep

    monkeypatch.setattr(deep, "HUB_HOSTS", ("localhost.invalid",))
    data = tmp_path / "demo"
    main(["demo", "--out", str(data)])
    code, _, err = run(capsys, "evaluate", "--data", str(data), "--backbone", "resnet50", "--quiet")
    assert code == 2 and "resnet50" in err and err.count("\n") == 1


def test_random_weights_flag_runs_a_deep_backbone(demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "evaluate", "--data", str(demo_dir), "--backbone", "mobilenetv3_large_100",
                       "--random-weights", "--json", "--quiet")
    assert code == 0 and json.loads(out)[0]["backbone"] == "mobilenetv3_large_100"
