"""Your own model in a real browser (issue 20, item 4): a studio started on a copy of the demo whose methods/
holds an embeddings file and a scores file shows them in the leaderboard, Failures and the embedding map, and
takes an upload through the sidebar's file input (Debian's chromium driven by playwright, as test_browser.py)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from test_browser import WAIT_S, browser_page, offsite, settle, shots, start_studio
from test_studio_imports import embeddings_npz, scores_csv, validation_tasks

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ZERO_SHOT = "method=zero-shot&options=[]&rerank=none"  # the weight-free side of the demo: no deep backbone embedded


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory, demo_dir: Path, warm_demo_master: Path):
    """(studio url, the demo copy) — methods/ holds myemb.npz (the demo's combined vectors) and mine.csv (the
    truth at rank 1 for the first 5 lefts, rank 3 for the rest)."""
    data = Path(shutil.copytree(demo_dir, tmp_path_factory.mktemp("own") / "demo"))
    cache = tmp_path_factory.mktemp("own-cache") / "cache"
    shutil.copytree(warm_demo_master, cache)
    (data / "methods").mkdir()
    (data / "methods" / "myemb.npz").write_bytes(embeddings_npz(data, cache))
    (data / "methods" / "mine.csv").write_bytes(scores_csv(validation_tasks(data), hits=5))
    url, proc = start_studio(tmp_path_factory, warm=warm_demo_master, data=data)
    yield url, data
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def page(own):
    with browser_page() as opened:
        yield opened


def _open(page, url: str, heading: str) -> None:
    page.goto(url)
    page.get_by_role("heading", name=heading).wait_for(timeout=WAIT_S * 1000)
    settle(page)


def _grid_cells(page) -> list[str]:
    grid = page.locator("[data-testid='stDataFrame']").first
    grid.locator("td").first.wait_for(state="attached", timeout=WAIT_S * 1000)
    return grid.locator("td").all_text_contents()


def test_your_own_embeddings_and_scores_are_in_the_leaderboard(own, page) -> None:
    url, data = own
    _open(page, f"{url}/?backbone=combined&{ZERO_SHOT}", "Totally-Looks-Like matching studio")
    page.get_by_role("heading", name="Cache").wait_for(timeout=WAIT_S * 1000)  # drawn after the leaderboard
    cells = _grid_cells(page)
    assert "myemb · zero-shot · cosine" in cells and "mine · own" in cells, cells
    n = len(validation_tasks(data))
    mine = cells[cells.index("mine · own") + 1: cells.index("mine · own") + 4]
    assert f"{5 / n:.3f}" in mine, mine  # its top-2, as the table formats it
    page.get_by_text(re.compile("full gallery — mine: imported scores cover 20 candidates")).wait_for(timeout=WAIT_S * 1000)
    page.screenshot(path=str(shots() / "imports-overview.png"), full_page=True)


def test_failures_of_your_own_backbone(own, page) -> None:
    url, _ = own
    _open(page, f"{url}/failures?backbone=myemb&{ZERO_SHOT}", "Failures")
    page.get_by_text(re.compile(r"lefts miss the top 2 \(.*\) under myemb · zero-shot · cosine")).wait_for(
        timeout=WAIT_S * 1000)
    page.locator("[data-testid='stMarkdownContainer']").filter(has_text=re.compile(r" — truth rank \d+")).first.wait_for(
        timeout=WAIT_S * 1000)  # a failure listed, with its images
    assert page.locator("[data-testid='stImage']").count() >= 3  # the left, its truth and what beat it
    page.screenshot(path=str(shots() / "imports-failures.png"), full_page=True)


def test_the_map_of_your_own_backbone(own, page) -> None:
    url, _ = own
    _open(page, f"{url}/embedding_map?backbone=myemb&{ZERO_SHOT}", "Embedding map")
    page.locator(".nsewdrag").first.wait_for(timeout=WAIT_S * 1000)  # plotly drew the plotting area
    page.get_by_text(re.compile(r"points \(PCA of the vectors .+ scores with, from myemb\)")).wait_for(timeout=WAIT_S * 1000)
    assert page.locator(".js-plotly-plot .scatterlayer, .js-plotly-plot canvas").count() >= 1
    page.screenshot(path=str(shots() / "imports-map.png"), full_page=True)


def test_an_upload_through_the_sidebar(own, page, tmp_path: Path) -> None:
    url, data = own
    _open(page, f"{url}/?backbone=combined&{ZERO_SHOT}", "Totally-Looks-Like matching studio")
    sidebar = page.locator("[data-testid='stSidebar']")
    sidebar.get_by_text("Your own model").click()
    upload = tmp_path / "upped.csv"
    upload.write_bytes(scores_csv(validation_tasks(data), hits=7))
    sidebar.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(upload))
    note = sidebar.locator("[data-testid='stAlert']")  # what became of the file: saved, or why not
    note.wait_for(timeout=WAIT_S * 1000)
    settle(page)
    assert "Added the method upped" in note.inner_text(), note.inner_text()
    assert (data / "methods" / "upped.csv").read_bytes() == upload.read_bytes()
    page.get_by_role("heading", name="Cache").wait_for(timeout=WAIT_S * 1000)
    cells = _grid_cells(page)
    assert "upped · own" in cells, cells
    page.screenshot(path=str(shots() / "imports-upload.png"), full_page=True)
    sidebar.locator("[data-testid='stExpander']", has_text="Your own model").screenshot(
        path=str(shots() / "imports-upload-sidebar.png"))
    assert offsite(page) == []  # the upload, and every page before it, asked no other host
