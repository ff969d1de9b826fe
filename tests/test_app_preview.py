"""The studio's first view on a folder where the default recipe is not computed yet (``studio/preview.py``), with
streamlit's AppTest: it opens on the preview recipe, computes the default in a thread, and switches to it when a
run finds it ready — unless the user chose something else meanwhile. The page's own timer that triggers those
runs is the browser test's subject (tests/test_browser_preview.py); here each run is triggered by hand.

The default recipe is a weight-free one here (``hog``, previewed by ``colour-hist``): what is under test is the
studio's handling, on backbones that embed the demo in seconds."""
from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tll_core import selection as selection_module
from tll_core.engine import Method
from tll_core.errors import TLLError
from tll_core.recipes import Recipe

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PREVIEW = Recipe("colour-hist", Method.zero_shot(rerank="none"))
RECIPE = Recipe("hog", Method.zero_shot(rerank="sinkhorn"), preview=PREVIEW)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """``RECIPE`` is the default; its background job waits for this event before it computes anything (hog
    embeds the demo in a second: the job would be done before the test could look at the preview)."""
    import studio.preview

    monkeypatch.setattr(selection_module, "_default_recipe", lambda: RECIPE)
    opened, real = threading.Event(), studio.preview.computed_elsewhere

    def gated(sel, content):
        work = real(sel, content)

        def after_the_gate(bar) -> None:
            opened.wait(120)
            work(bar)
        return after_the_gate

    monkeypatch.setattr(studio.preview, "computed_elsewhere", gated)
    yield opened
    opened.set()  # no job left waiting


def _opened(data: Path) -> AppTest:
    """The studio opened on ``data`` (its own copy of the demo, so its own engine and job) with an empty cache."""
    os.environ["TLL_DATA"] = str(data)  # restored by the fixture's monkeypatch
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def data(demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TLL_DATA", str(demo_dir))
    return Path(shutil.copytree(demo_dir, tmp_path / "demo"))


@pytest.fixture
def app(gate: threading.Event, data: Path) -> AppTest:
    """The studio on a copy of the demo, with an empty cache, and ``RECIPE`` as the default: opened (its first run)."""
    return _opened(data)


def _job(at: AppTest):
    from studio.preview import background_jobs, job_key

    return background_jobs()[0][job_key(at.session_state["awaited"])]


def _rows(at: AppTest) -> list[str]:
    return list(at.dataframe[0].value["selection"])


def test_the_first_view_shows_the_preview_then_the_default_once_it_is_computed(app: AppTest, gate) -> None:
    preview, default = app.session_state["selection"], app.session_state["awaited"].default
    assert (preview.backbone, default.backbone) == (PREVIEW.backbone, RECIPE.backbone)
    assert preview.to_method() == PREVIEW.method and default.to_method() == RECIPE.method
    assert app.sidebar.selectbox(key="w_backbone").value == PREVIEW.backbone
    assert any("Showing the quick recipe" in c.value for c in app.caption)
    assert _rows(app) == [preview.label]  # the first view: the preview's row, computed before anything else
    assert "backbone" not in app.query_params  # the link is the default's: a reload waits for it again
    app.run()
    assert app.session_state["selection"] == preview  # not ready: no switch
    gate.set()
    assert _job(app).done.wait(120) and _job(app).error is None
    app.run()  # what the page's timer does: the banner finds the default ready and switches the whole studio
    assert not app.exception, app.exception
    assert app.session_state["selection"] == default and "awaited" not in app.session_state
    assert app.sidebar.selectbox(key="w_backbone").value == RECIPE.backbone
    assert not any("Showing the quick recipe" in c.value for c in app.caption)
    assert set(_rows(app)) == {preview.label, default.label}  # the default's row came from the job: kept
    assert "backbone" not in app.query_params  # the default: the URL carries nothing
    app.switch_page("pages/ranked.py").run()
    assert not app.exception and len(app.get("image")) >= 21  # its scores, kept by the job too


def test_a_choice_made_while_waiting_is_kept(app: AppTest, gate) -> None:
    app.sidebar.selectbox(key="w_rerank").set_value("csls").run()
    chosen = app.session_state["selection"]
    assert chosen.backbone == PREVIEW.backbone and chosen.rerank == "csls"
    assert "awaited" not in app.session_state  # no switch to come
    from studio.preview import background_jobs

    gate.set()
    for job in list(background_jobs()[0].values()):
        job.done.wait(120)
    app.run()
    assert not app.exception and app.session_state["selection"] == chosen


def test_a_default_that_cannot_be_computed_is_one_line_and_the_preview_stays(
        monkeypatch: pytest.MonkeyPatch, gate, data: Path) -> None:
    real = selection_module.leaderboard_rows

    def failing(eng, sel, bar=None):
        if sel.backbone == RECIPE.backbone:
            raise TLLError("train/left/l001.jpg: corrupt image (truncated)")
        return real(eng, sel, bar)

    monkeypatch.setattr(selection_module, "leaderboard_rows", failing)
    at = _opened(data)
    preview = at.session_state["selection"]
    assert preview.backbone == PREVIEW.backbone
    gate.set()
    assert _job(at).done.wait(120)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not at.warning:
        at.run()
    assert not at.exception
    [warning] = [w.value.replace("\\", "") for w in at.warning if "could not be computed" in w.value]  # unescaped
    assert "train/left/l001.jpg: corrupt image" in warning and "\n" not in warning and "Traceback" not in warning
    assert at.session_state["selection"] == preview


def test_a_second_session_on_the_same_folder_waits_on_the_same_job(app: AppTest, gate, data: Path) -> None:
    """A reload (or another tab) while the default is computed: the preview again, and no second job."""
    from studio.preview import background_jobs

    other = _opened(data)
    assert other.session_state["selection"] == app.session_state["selection"]
    assert other.session_state["awaited"] == app.session_state["awaited"]
    assert _job(other) is _job(app) and sum(k[0] == str(data) for k in background_jobs()[0]) == 1
    gate.set()
    assert _job(app).done.wait(120)
    for at in (app, other):
        at.run()
        assert at.session_state["selection"].backbone == RECIPE.backbone and "awaited" not in at.session_state


def test_stay_on_the_quick_recipe_ends_the_wait(app: AppTest, gate) -> None:
    from studio.preview import background_jobs

    preview = app.session_state["selection"]
    app.button(key="preview_stay").click().run()
    assert not app.exception and "awaited" not in app.session_state
    assert not any("Showing the quick recipe" in c.value for c in app.caption)
    gate.set()
    for job in list(background_jobs()[0].values()):  # the job itself goes on: its answers are kept for later
        assert job.done.wait(120)
    app.run()
    assert app.session_state["selection"] == preview  # and no switch
