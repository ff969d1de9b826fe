"""Tags on the Failures page in a real browser: type a new tag on a failure, see it counted in the tag table,
download the tags CSV (the studio of test_browser.py: Debian's chromium driven by playwright)."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from test_browser import WAIT_S, settle, shots, page, studio  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TAG = "face ↔ cartoon"


def test_a_tag_typed_on_a_failure_is_counted_and_exported(studio: str, page, tmp_path: Path) -> None:  # noqa: F811
    # without re-ranking: on the demo, Sinkhorn puts every truth in the top 2 and there would be no failure
    page.goto(f"{studio}/failures?backbone=combined&method=zero-shot&options=[]&rerank=none")
    page.get_by_role("heading", name="Failures").wait_for(timeout=WAIT_S * 1000)
    settle(page)
    head = page.locator("[data-testid='stMarkdownContainer']").filter(has_text=re.compile(r" — truth rank \d+")).first
    left = head.inner_text().split(" — ", 1)[0].strip()
    tags = page.locator("[data-testid='stMultiSelect']").first
    tags.locator("input").click()
    page.keyboard.type(TAG)  # a tag no left carries yet: offered as a new option
    page.get_by_role("option", name=f"Add: {TAG}").click(timeout=WAIT_S * 1000)  # not Enter: it may beat the filter
    settle(page)
    page.keyboard.press("Escape")
    tags.get_by_text(TAG).wait_for(timeout=WAIT_S * 1000)  # kept on the failure after the rerun that stored it
    page.get_by_role("tab", name="Tags").click()
    grid = page.locator("[data-testid='stDataFrame']").first
    grid.locator("td", has_text=TAG).first.wait_for(state="attached", timeout=WAIT_S * 1000)
    cells = grid.locator("td").all_text_contents()
    assert cells[cells.index(TAG) + 1] == "1", cells  # one left carries it
    page.screenshot(path=str(shots() / "tags.png"), full_page=True)
    with page.expect_download() as info:
        page.get_by_role("button", name="Download the tags as CSV").click()
    target = tmp_path / "tags.csv"
    info.value.save_as(target)
    with target.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["left", "tags", "truth rank", "margin", "truth score", "top-2 hit"]
    assert [row[:2] for row in rows[1:]] == [[left, TAG]] and int(rows[1][2]) >= 3 and rows[1][5] == "no"
    settle(page)
