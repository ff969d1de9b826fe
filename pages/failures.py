"""Failures: validation lefts whose truth fell outside the top 2, sorted and filtered, with every candidate that
beat the truth; the user's tags on each, and a table and CSV of them per tag."""
from __future__ import annotations

from dataclasses import asdict

import pandas as pd
import streamlit as st

from studio import session
from studio.bulk_tags import bulk_tag_form
from studio.entry import enter
from studio.folder import tag_store
from studio.links import focus_notice, open_in_ranked
from studio.memo import scores_or_stop
from studio.session import Slot, selection
from studio.widgets import md, show_error, show_image
from tll_core.analysis import FAILURE_SORTS, failure_ranges, failures, misses, ranked_task
from tll_core.errors import TLLError
from tll_core.scores import score_help, shown_score
from tll_core.tags import TagStore, tag_table, tags_csv, with_tag

enter()  # run directly (a deep link on a fresh server): app.py runs instead

PAGE = 6  # failures per page (each shows every candidate that beat its truth)
GRID = 8  # images per row: the left, the truth, then what beat it, wrapped


def range_slider(where, label: str, bounds: tuple[float, float], slot: Slot[tuple[float, float]],
                 spanned: Slot[tuple[float, float] | None]) -> tuple[float | None, float | None]:
    """A float range slider over ``bounds``, reset to the whole span when the bounds change (another selection:
    ``spanned`` holds the span it was set for); an end left at its bound is no limit (None), so no failure is
    lost to the slider's rounding."""
    lo, hi = bounds
    hi = hi if hi > lo else lo + 1e-6  # a slider needs a span
    if spanned.get() != (lo, hi) or not slot.held():  # (a widget's state goes when a run does not draw it:
        # on another page)
        spanned.set((lo, hi))
        slot.set((lo, hi))
    low, high = where.slider(label, lo, hi, step=(hi - lo) / 200, format="%.3f", key=slot.key)
    return (None if low <= lo else low), (None if high >= hi else high)


def retag(store: TagStore, left: str, shown: tuple[str, ...], box: Slot[list[str]]) -> None:
    """A tag widget's change, stored at once; a refused tag is a one-line message under that widget."""
    try:
        store.retag(left, shown, box.get())
    except TLLError as exc:
        session.TAG_PROBLEM.set((box.key, str(exc)))


def tag_label(tag: str | None) -> str:
    """The tag filter's choices; a user's tag always reads ``tag: …``, so none can pass for the other two."""
    return "every failure" if tag is None else "untagged" if tag == "" else f"tag: {tag}"


eng, tasks, scores = scores_or_stop()
st.title("Failures")
if not tasks.has_truth:
    st.info("The test split has no truth: choose the validation split in the sidebar.")
    st.stop()
focus = focus_notice()
store = tag_store()
if store is None:
    st.stop()
problem = session.TAG_PROBLEM.pop()  # (the widget's key, one line)
every = failures(tasks, scores, lefts=focus or None)
ranges = failure_ranges(every)

filters = st.columns(3)
low, high = filters[0].slider("Truth rank", 3, 20, (3, 20), key="fail_ranks")
margins = range_slider(filters[1], "Score margin (best − truth)", ranges.margin, session.FAIL_MARGIN,
                       session.FAIL_MARGIN_BOUNDS)
truths = range_slider(filters[2], "Truth score", ranges.truth_score, session.FAIL_TRUTH, session.FAIL_TRUTH_BOUNDS)
order, by_tag = st.columns(2)
sort = order.selectbox("Sort", FAILURE_SORTS, key="fail_sort")
tag_choices = [None, "", *store.names()]
if session.FAIL_TAG.get() not in tag_choices:  # its tag was removed from every left
    session.FAIL_TAG.set(None)
wanted = by_tag.selectbox("Tag", tag_choices, format_func=tag_label, key=session.FAIL_TAG.key)
found = failures(tasks, scores, min_rank=low, max_rank=high, min_margin=margins[0], max_margin=margins[1],
                 min_truth_score=truths[0], max_truth_score=truths[1], lefts=focus or None, sort=sort)
found = with_tag(found, store, wanted)
missed = len(misses(tasks, scores))
st.write(f"**{missed}** of {len(tasks)} lefts miss the top 2 ({missed / len(tasks):.1%}) "
         f"under {md(selection().label)}; **{len(found)}** match the filters.")
st.caption(f"Captions: #rank · score · share of the 20. Score = {md(shown_score(selection().to_method()))}.",
           help=md(score_help(selection().to_method())))

with st.expander("Tag every failure listed at once"):
    bulk_tag_form("failures", [f.left for f in found])

listed, tagged = st.tabs(["Failures", "Tags"])
with tagged:
    rows = tag_table(store, tasks, scores)
    if rows:
        st.dataframe(pd.DataFrame([asdict(r) for r in rows]), hide_index=True, width="stretch",
                     column_config={"top2": st.column_config.NumberColumn("top-2", format="%.2f"),
                                    "mean_rank": st.column_config.NumberColumn("mean rank", format="%.2f"),
                                    "top2_hits": "top-2 hits", "elsewhere": st.column_config.NumberColumn(
                                        help="tagged lefts that are not in these tasks (another split or seed)")})
    else:
        st.info("No tags yet: tag a failure in the list (type a new tag and press Enter).")
    st.download_button("Download the tags as CSV", tags_csv(store, tasks, scores), file_name="tll-tags.csv",
                       mime="text/csv", disabled=not rows, key="tags_download")

with listed:
    pages = max(1, (len(found) + PAGE - 1) // PAGE)
    if session.FAIL_PAGE.get() > pages:
        session.FAIL_PAGE.set(pages)
    page = st.columns([1, 5])[0].number_input("Page", 1, pages, 1, key=session.FAIL_PAGE.key) if pages > 1 else 1
    if not found:
        st.info("No failure matches the filters." if missed else "Every truth is in the top 2: nothing to list.")
    names = list(store.names())
    for f in found[(page - 1) * PAGE : page * PAGE]:
        st.divider()
        head, tags, link = st.columns([3, 2, 1])
        head.markdown(f"**{md(f.left)}** — truth rank **{f.truth_rank}**, beaten by {len(f.beaten_by)} "
                      f"candidate(s), margin {f.margin:.3f}, truth score {f.truth_score:.3f}")
        box, shown = session.tags_widget(f.index), store.tags_of(f.left)
        box.set(list(shown))  # the store wins over what the widget held
        tags.multiselect("Tags", names, key=box.key, accept_new_options=True, on_change=retag,
                         args=(store, f.left, shown, box), placeholder="add a tag…", label_visibility="collapsed")
        if problem and problem[0] == box.key:
            show_error(problem[1], tags)
        link.button("open in Ranked", key=f"open_{f.index}", on_click=open_in_ranked, args=(f.left,), width="stretch")
        task = ranked_task(tasks, scores, f.index)
        truth = task.truth
        shown_images = [(task.left_id, "left"), (truth.image_id, f"truth · #{truth.rank} · {truth.score:.3f} · {truth.share:.0%}")]
        shown_images += [(c.image_id, f"#{c.rank} · {c.score:.3f} · {c.share:.0%} · {md(c.name)}") for c in task.beating_truth]
        for row in range(0, len(shown_images), GRID):
            for col, (image_id, caption) in zip(st.columns(GRID), shown_images[row : row + GRID]):
                show_image(col, eng, image_id, caption=caption, width="stretch")
