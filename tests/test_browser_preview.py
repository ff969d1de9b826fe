"""The first view on a folder where the default recipe is not computed yet, in a real browser: the studio opens on
the preview recipe with a banner, computes the default in the background and switches to it by itself — a timer
in the page (a fragment's ``run_every``), which AppTest cannot run."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from test_browser import CHROMIUM, WAIT_S, browser_page, offsite, settle, shots, start_studio  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _sidebar_backbone(page) -> str:
    """The value the sidebar's Backbone box shows."""
    return page.locator("[data-testid='stSidebar'] input[aria-label='Backbone']").input_value()


def test_a_cold_folder_opens_on_the_preview_and_switches_to_the_default_by_itself(
        tmp_path_factory: pytest.TempPathFactory, warm_demo_master: Path) -> None:
    from tll_core.recipes import default_recipe

    recipe = default_recipe()
    if recipe.preview is None:
        pytest.skip("the default recipe has no preview here (its weights are not installed)")
    url, proc = start_studio(tmp_path_factory, warm=warm_demo_master)  # weight-free vectors only: the recipes cold
    try:
        with browser_page() as page:
            page.goto(url)
            page.get_by_role("heading", name="Totally-Looks-Like matching studio").wait_for(timeout=WAIT_S * 1000)
            banner = page.get_by_text("Showing the quick recipe")
            banner.wait_for(timeout=WAIT_S * 1000)
            assert recipe.preview.backbone in _sidebar_backbone(page)
            assert "backbone" not in page.url  # the link is the default's: a reload waits for it again
            page.get_by_role("heading", name="Cache").wait_for(timeout=WAIT_S * 1000)  # the preview's leaderboard
            page.screenshot(path=str(shots() / "preview-banner.png"), full_page=True)
            deadline = time.monotonic() + WAIT_S  # nothing is clicked: the page's own timer switches
            while time.monotonic() < deadline and recipe.backbone not in _sidebar_backbone(page):
                page.wait_for_timeout(500)
            assert recipe.backbone in _sidebar_backbone(page), _sidebar_backbone(page)
            settle(page)
            assert banner.count() == 0
            assert "backbone" not in page.url  # the default: nothing to carry in the URL
            grid = page.locator("[data-testid='stDataFrame']").first
            grid.locator("td").first.wait_for(state="attached", timeout=WAIT_S * 1000)
            cells = grid.locator("td").all_text_contents()
            assert any(c.startswith(recipe.backbone + " ·") for c in cells), cells  # its row, computed
            assert any(c.startswith(recipe.preview.backbone + " ·") for c in cells), cells  # the preview's, kept
            page.screenshot(path=str(shots() / "preview-switched.png"), full_page=True)
            assert offsite(page) == []
    finally:
        proc.terminate()
        proc.wait(timeout=20)
