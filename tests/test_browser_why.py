"""The Why page in a real browser (chromium via playwright, as in test_browser.py, whose studio and page
fixtures it reuses): the overlays render for a descriptor backbone and for the default recipe's deep part, with
no exception shown; screenshots why-combined.png and why.png."""
from __future__ import annotations

import pytest

from test_browser import WAIT_S, settle, shots, page, studio  # noqa: F401  (module fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PANEL_IMAGES = 6  # two panels: the left's and the candidate's overlays and a colour bar each


def _why(page, url: str) -> None:  # noqa: F811
    page.goto(url)
    page.get_by_role("heading", name="Why this match?").wait_for(timeout=WAIT_S * 1000)
    page.wait_for_function(
        "n => document.querySelectorAll(\"[data-testid='stImage']\").length >= n"
        " || document.querySelector(\"[data-testid='stException']\")", arg=PANEL_IMAGES, timeout=WAIT_S * 1000)
    settle(page)  # no exception, no traceback
    assert page.locator("[data-testid='stImage']").count() == PANEL_IMAGES
    assert page.locator("[data-testid='stImage'] img").evaluate_all(
        "imgs => imgs.every(i => i.complete && i.naturalWidth > 0)")  # every overlay decoded in the browser


def test_why_page_draws_descriptor_overlays(studio: str, page) -> None:  # noqa: F811
    _why(page, f"{studio}/why?backbone=combined&method=zero-shot&options=[]&rerank=none")
    body = page.inner_text("body")
    assert "Left vs its truth" in body and "combined cosine" in body and "sum to the score" in body
    assert "the map explains that very score: combined's centred cosine" in body  # zero-shot cosine, not re-ranked
    page.screenshot(path=str(shots() / "why-combined.png"), full_page=True)


def test_why_page_draws_the_default_recipes_deep_maps(studio: str, page) -> None:  # noqa: F811
    """The studio's default recipe (lite0+lite2+combined where the lite packages are installed): its first deep
    part is explained, its cells against the other image's embedding."""
    from tll_core.recipes import default_recipe
    from tll_core.why import explainable_members

    _why(page, f"{studio}/why")
    member = explainable_members(default_recipe().backbone)[0]
    assert f"{member} cosine" in page.inner_text("body")
    page.screenshot(path=str(shots() / "why.png"), full_page=True)
