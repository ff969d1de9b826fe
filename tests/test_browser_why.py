"""The Why page in a real browser (chromium via playwright, as in test_browser.py, whose studio and page
fixtures it reuses): the overlays render for a descriptor backbone and for the default recipe's deep part, with
no exception shown; screenshots why-combined.png and why.png. And, on the same studio, runs that persist: a
method evaluated in one session is listed on the Overview of another, reopens in one click and is deleted after
a confirmation (runs.png)."""
from __future__ import annotations

import contextlib

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
    """The studio's default recipe (lite0-stages-views+combined where the lite packages are installed): its first deep
    part is explained, its cells against the other image's embedding."""
    from tll_core.recipes import default_recipe
    from tll_core.why import explainable_members

    _why(page, f"{studio}/why")
    member = explainable_members(default_recipe().backbone)[0]
    assert f"{member} cosine" in page.inner_text("body")
    page.screenshot(path=str(shots() / "why.png"), full_page=True)


RUN = "hog · zero-shot · euclidean"  # a selection no other test's leaderboard evaluates


def _run_line(page):  # the Overview's line of RUN among the runs
    return page.locator("[data-testid='stHorizontalBlock']").filter(has_text=RUN).filter(
        has=page.locator("[class*='st-key-run_open_']"))


@contextlib.contextmanager
def _another_session(page):  # noqa: F811
    """A second tab of the module's browser: its own websocket, so its own Streamlit session (a second
    sync_playwright may not be started while the module's page holds one)."""
    tab = page.context.new_page()
    try:
        yield tab
    finally:
        tab.close()


def test_a_run_evaluated_in_one_session_reopens_from_another_and_is_deleted(studio: str, page) -> None:  # noqa: F811
    with _another_session(page) as first:  # one session evaluates it: the leaderboard records it
        first.goto(f"{studio}/?backbone=hog&method=zero-shot&options=[]&rerank=none&metric=euclidean")
        first.get_by_role("heading", name="Runs — every method evaluated on this folder, kept across sessions").wait_for(
            timeout=WAIT_S * 1000)
        settle(first)
    with _another_session(page) as later:  # another session, on another selection, lists it
        later.goto(f"{studio}/?backbone=combined&method=zero-shot&options=[]&rerank=none")
        line = _run_line(later)
        line.first.wait_for(timeout=WAIT_S * 1000)
        settle(later)
        assert line.count() == 1 and "no" in line.inner_text()  # not stale: the demo has not changed
        line.scroll_into_view_if_needed()
        later.screenshot(path=str(shots() / "runs.png"), full_page=True)
        run_id = line.locator("[class*='st-key-run_open_']").get_attribute("class").split("st-key-run_open_")[1].split()[0]
        line.get_by_role("button", name="Open").click()  # one click: the selection, shown on Ranked
        later.get_by_role("heading", name="Ranked candidates").wait_for(timeout=WAIT_S * 1000)
        settle(later)
        assert "backbone=hog" in later.url and "metric=euclidean" in later.url
        later.get_by_role("link", name="Overview").click()
        line.first.wait_for(timeout=WAIT_S * 1000)
        settle(later)
        later.locator(f".st-key-run_delete_{run_id} button").click()
        later.get_by_role("button", name="Delete this run").click()  # the confirmation
        later.wait_for_function("k => !document.querySelector('.st-key-run_open_' + k)", arg=run_id,
                                timeout=WAIT_S * 1000)
        settle(later)
        assert _run_line(later).count() == 0
