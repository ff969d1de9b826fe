"""``reproduce`` hands over each row as it finishes; the CLI's text table grows row by row."""
import functools
import json
from pathlib import Path

import pytest

import tll_core.reproduce as reproduce_module
from tll_core.cli import main
from tll_core.backbones.registry import Ensemble
from tll_core.engine import Engine, Method
from tll_core.reproduce import reproduce


def zero_shot(experiment: str, backbone: str, method: Method) -> bool:
    """The quick part of the plan: zero-shot rows (the learned matchers take about a minute on the demo), and
    none that would run the packaged pretrained lite backbones (another minute and a half, and not the subject)."""
    return method.name == "zero-shot" and not any(part in reproduce_module.LITE for part in Ensemble.parse(backbone))


@pytest.mark.slow
def test_each_row_is_delivered_as_soon_as_it_is_ready(demo_dir: Path, warm_demo_cache: Path) -> None:
    engine = Engine.open(demo_dir)  # on a copy of the warm demo cache: stats.images counts cached images too
    seen = []  # (row, images embedded so far) at each callback

    rows = reproduce(engine, on_row=lambda row: seen.append((row, engine.stats.images)), plan_filter=zero_shot)
    assert [r for r, _ in seen] == rows and len(rows) > 20
    assert all(r.method.startswith("zero-shot") for r in rows)
    ran = [(r, images) for r, images in seen if not r.skipped]
    assert {r.backbone for r, _ in ran} >= {"combined", "hog", "tiny-image"}
    # the first computed row came back before the later backbones were embedded
    assert 0 < ran[0][1] < ran[-1][1] == engine.stats.images
    assert all(a <= b for (_, a), (_, b) in zip(seen, seen[1:]))


@pytest.mark.slow
def test_cli_prints_the_header_then_each_row_when_it_is_ready(demo_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str], warm_demo_cache: Path) -> None:
    chunks: list[str] = []  # what stdout held each time a row was handed over

    def streaming(engine, *, progress=None, on_row=None):
        def record(row) -> None:
            on_row(row)
            chunks.append(capsys.readouterr().out)

        return reproduce(engine, progress=progress, on_row=record if on_row else None, plan_filter=zero_shot)

    monkeypatch.setattr(reproduce_module, "reproduce", streaming)
    code = main(["reproduce", "--data", str(demo_dir), "--quiet"])
    chunks.append(capsys.readouterr().out)
    assert code == 0 and chunks[-1] == ""  # nothing is left to print at the end
    header, first = chunks[0].splitlines()
    assert header.startswith("experiment") and first.startswith("zero-shot, 3 metrics")
    assert all(len(c.splitlines()) == 1 for c in chunks[1:-1]) and len(chunks) > 20

    code = main(["reproduce", "--data", str(demo_dir), "--quiet", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0 and len(rows) == len(chunks) - 1 and chunks[-2].split()[0] == rows[-1]["experiment"].split()[0]
