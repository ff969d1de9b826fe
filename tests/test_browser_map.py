"""The embedding map as an instrument in a real browser (chromium via playwright, as ``test_browser.py``):
hovering a point shows its thumbnail beside it with a line to its partner, a lasso selection lists the
images and offers to narrow Failures and Ranked to their lefts, and a single click opens a left in Ranked."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from test_browser import WAIT_S, settle, shots, page, studio  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
MAP = "/embedding_map?backbone=combined&method=zero-shot&options=[]"
HOVER_IMG = "#tll-map-hover-img"

# every point's position on the page, from plotly's own axes (the graph div's _fullLayout), trace and name
POINTS_JS = """() => {
  const gd = document.querySelector('.stPlotlyChart .js-plotly-plot');
  const fl = gd._fullLayout, r = gd.getBoundingClientRect(), out = [];
  gd._fullData.forEach((d, c) => Array.from(d.x).forEach((x, i) => out.push({curve: c, name: d.text[i],
    x: r.left + fl.xaxis._offset + fl.xaxis.l2p(x), y: r.top + fl.yaxis._offset + fl.yaxis.l2p(d.y[i])})));
  return out;
}"""


def _open_map(studio: str, page) -> None:
    page.goto(studio + MAP)
    page.get_by_role("heading", name="Embedding map").wait_for(timeout=WAIT_S * 1000)
    settle(page)
    page.locator(".stPlotlyChart .js-plotly-plot #tll-map-overlay").wait_for(state="attached",
                                                                              timeout=WAIT_S * 1000)


def _lonely_point(page, curve: int) -> dict:
    """A point of trace ``curve`` whose nearest neighbour on screen is farthest away (hovering or clicking
    it cannot land on another)."""
    points = page.evaluate(POINTS_JS)

    def room(p: dict) -> float:
        return min((p["x"] - q["x"]) ** 2 + (p["y"] - q["y"]) ** 2 for q in points if q is not p)

    return max((p for p in points if p["curve"] == curve), key=room)


def test_hovering_a_point_shows_its_thumbnail_beside_it(studio: str, page) -> None:
    _open_map(studio, page)
    assert page.locator(HOVER_IMG).is_hidden()
    point = _lonely_point(page, 0)  # a left (coloured by side: trace 0 holds the lefts)
    page.mouse.move(point["x"] - 40, point["y"] - 40)
    page.mouse.move(point["x"], point["y"], steps=6)
    page.locator(HOVER_IMG).wait_for(state="visible", timeout=30_000)
    src = page.locator(HOVER_IMG).get_attribute("src")
    assert src.startswith("data:image/jpeg;base64,") and len(src) > 500
    box = page.locator(HOVER_IMG).bounding_box()
    assert box["width"] > 30 and box["height"] > 30
    near_x = min(abs(box["x"] - point["x"]), abs(box["x"] + box["width"] - point["x"]))
    assert near_x < 200 and box["y"] - 5 <= point["y"] <= box["y"] + box["height"] + 5  # beside the point
    assert page.locator("#tll-map-overlay line").count() == 1  # the hovered left's line to its truth
    page.screenshot(path=str(shots() / "map-hover.png"))
    page.mouse.move(5, 5)  # off the chart: the thumbnail and the line go
    page.locator(HOVER_IMG).wait_for(state="hidden", timeout=30_000)
    assert page.locator("#tll-map-overlay line").count() == 0


def test_a_lasso_lists_the_images_and_narrows_failures_and_ranked(studio: str, page) -> None:
    _open_map(studio, page)
    page.locator(".modebar-btn[data-val='lasso']").first.click()
    area = page.locator(".nsewdrag").first.bounding_box()
    before = page.locator("[data-testid='stImage']").count()
    x, y, w, h = area["x"], area["y"], area["width"], area["height"]
    page.mouse.move(x + 0.2 * w, y + 0.2 * h)  # a polygon over the middle of the plot
    page.mouse.down()
    for fx, fy in ((0.8, 0.2), (0.9, 0.6), (0.5, 0.9), (0.1, 0.7), (0.2, 0.25)):
        page.mouse.move(x + fx * w, y + fy * h, steps=6)
    page.mouse.up()
    page.locator("[data-testid='stImage'], [data-testid='stException']").nth(before).wait_for(timeout=WAIT_S * 1000)
    settle(page)  # no exception shown
    assert page.locator("[data-testid='stImage']").count() > before
    assert page.locator("#tll-map-overlay line").count() >= 1  # the selected points' lines to their partners
    page.screenshot(path=str(shots() / "map-lasso.png"), full_page=True)
    focus = page.get_by_role("button", name=re.compile(r"^Show only these \d+ lefts in Failures and Ranked$"))
    n = int(re.search(r"\d+", focus.inner_text()).group(0))
    assert n >= 1
    focus.click()
    page.get_by_text(f"Narrowed to the {n} left(s) picked on the embedding map.").wait_for(timeout=WAIT_S * 1000)
    for title in ("Failures", "Ranked candidates"):  # both narrowed, in the same session
        page.locator("[data-testid='stSidebarNav']").get_by_text(title, exact=True).click()
        page.get_by_role("heading", name=title).wait_for(timeout=WAIT_S * 1000)
        page.get_by_text(f"Narrowed to the {n} left(s) picked on the embedding map.").wait_for(timeout=WAIT_S * 1000)
        settle(page)


def test_a_click_on_a_point_opens_its_left_in_ranked(studio: str, page) -> None:
    """In the same session (no page load: what the session holds, such as the map's focus, stays), also for a
    left outside the focus; the back button returns to the map."""
    _open_map(studio, page)
    area = page.locator(".nsewdrag").first.bounding_box()  # a focus first: the lefts of a box in one corner
    page.mouse.move(area["x"] + 2, area["y"] + 2)
    page.mouse.down()
    page.mouse.move(area["x"] + area["width"] / 2, area["y"] + area["height"] / 2, steps=8)
    page.mouse.up()
    focus = page.get_by_role("button", name=re.compile(r"^Show only these \d+ lefts in Failures and Ranked$"))
    focus.wait_for(timeout=WAIT_S * 1000)
    focus.click()
    page.get_by_text("picked on the embedding map").wait_for(timeout=WAIT_S * 1000)
    settle(page)
    page.evaluate("() => { window.tllSameDocument = true; }")  # gone if the page were loaded again
    point = _lonely_point(page, 0)
    page.mouse.move(point["x"], point["y"], steps=4)
    page.locator(HOVER_IMG).wait_for(state="visible", timeout=30_000)
    page.mouse.click(point["x"], point["y"])
    page.get_by_role("heading", name="Ranked candidates").wait_for(timeout=WAIT_S * 1000)
    settle(page)
    assert f"left={point['name']}" in page.url
    page.get_by_text(f"left {point['name']}", exact=True).wait_for(timeout=WAIT_S * 1000)
    assert page.evaluate("() => window.tllSameDocument === true")  # the same session, no reload
    assert page.get_by_text("picked on the embedding map").count() == 1  # its focus kept
    assert page.locator(HOVER_IMG).count() == 0  # the map's hover layer went with the map
    page.go_back()
    page.get_by_role("heading", name="Embedding map").wait_for(timeout=WAIT_S * 1000)
    settle(page)


def test_a_box_selection_is_tagged_in_one_action_and_undone(studio: str, page) -> None:
    """The modebar (box and lasso) is in sight without hovering; a box drag (the default tool) picks points,
    "Tag N lefts" tags their lefts at once, and undo takes the tag off exactly those: tagging again finds
    none of them carrying it (the counts are the store's, read back from its file)."""
    _open_map(studio, page)
    page.mouse.move(5, 5)  # off the chart
    for tool in ("select", "lasso"):
        button = page.locator(f".modebar-btn[data-val='{tool}']").first
        assert button.is_visible() and page.evaluate(
            "el => getComputedStyle(el.closest('.modebar')).opacity", button.element_handle()) == "1"
    area = page.locator(".nsewdrag").first.bounding_box()
    page.mouse.move(area["x"] + 0.1 * area["width"], area["y"] + 0.1 * area["height"])
    page.mouse.down()
    page.mouse.move(area["x"] + 0.9 * area["width"], area["y"] + 0.9 * area["height"], steps=8)
    page.mouse.up()
    tag_button = page.get_by_role("button", name=re.compile(r"^Tag \d+ lefts?$"))
    tag_button.wait_for(timeout=WAIT_S * 1000)
    settle(page)
    n = int(re.search(r"\d+", tag_button.inner_text()).group(0))
    assert n >= 2
    page.get_by_label(re.compile(r"^A tag for these \d+ lefts?")).fill("boxed")
    page.keyboard.press("Tab")
    settle(page)
    tag_button.click()
    page.get_by_text(f"Tagged {n} lefts with 'boxed'.", exact=True).wait_for(timeout=WAIT_S * 1000)
    page.screenshot(path=str(shots() / "map-bulk-tag.png"), full_page=True)
    page.get_by_role("button", name=f"Undo: take 'boxed' off the {n} lefts it was put on").click()
    page.get_by_text(f"Undone: 'boxed' taken off {n} lefts.", exact=True).wait_for(timeout=WAIT_S * 1000)
    settle(page)
    page.get_by_role("button", name=f"Tag {n} lefts").click()  # again: none of them carries it now
    page.get_by_text(f"Tagged {n} lefts with 'boxed'.", exact=True).wait_for(timeout=WAIT_S * 1000)
    page.get_by_role("button", name=re.compile(r"^Undo: take 'boxed'")).click()
    page.get_by_text(f"Undone: 'boxed' taken off {n} lefts.", exact=True).wait_for(timeout=WAIT_S * 1000)
    settle(page)
