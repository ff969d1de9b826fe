"""Failures: validation lefts whose truth fell outside the top 2, worst first, with what beat it."""
import streamlit as st

from pages.common import md, scores_or_stop, selection, show_image, sidebar
from tll_core.analysis import failures
from tll_core.metrics import truth_ranks

sidebar()
eng, tasks, scores = scores_or_stop()
st.title("Failures")
if not tasks.has_truth:
    st.info("The test split has no truth: choose the validation split in the sidebar.")
    st.stop()
filters = st.columns(2)
widest = float(max(1e-6, (scores.max(1) - scores.min(1)).max()))
low, high = filters[0].slider("Truth rank", 3, 20, (3, 20), key="fail_ranks")
margin_cap = filters[1].slider("Max score margin (best − truth)", 0.0, widest, widest, key="fail_margin")
found = failures(tasks, scores, min_rank=low, max_rank=high, max_margin=margin_cap)
misses = int((truth_ranks(scores, tasks.truth) > 2).sum())
st.write(f"**{misses}** of {len(tasks)} lefts miss the top 2 ({misses / len(tasks):.1%}) "
         f"under {md(selection().label)}; **{len(found)}** match the filters.")
PAGE = 8
pages = max(1, (len(found) + PAGE - 1) // PAGE)
page = st.number_input("Page", 1, pages, 1, key="fail_page") if pages > 1 else 1
for f in found[(page - 1) * PAGE : page * PAGE]:
    st.divider()
    st.markdown(f"**{md(f.left)}** — truth rank **{f.truth_rank}**, beaten by {len(f.beaten_by)} candidate(s), margin {f.margin:.3f}")
    cols = st.columns(7)
    show_image(cols[0], eng, tasks.left_ids[f.index], caption="left", width="stretch")
    truth_pos = int(tasks.truth[f.index])
    truth_id = tasks.right_ids[tasks.candidates[f.index, truth_pos]]
    show_image(cols[1], eng, truth_id, caption=f"truth · {scores[f.index, truth_pos]:.3f}", width="stretch")
    for col, pos in zip(cols[2:], f.beaten_by[:5]):
        j = tasks.candidates[f.index, pos]
        show_image(col, eng, tasks.right_ids[j], caption=f"{md(tasks.right_names[j])} · {scores[f.index, pos]:.3f}", width="stretch")
