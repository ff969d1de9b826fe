"""Failures: validation lefts whose truth fell outside the top 2, worst first, with what beat it."""
import streamlit as st

from studio.entry import enter
from studio.state import open_in_ranked, scores_or_stop, selection
from studio.widgets import md, show_image
from tll_core.analysis import failures, misses, ranked_task

enter()  # run directly (a deep link on a fresh server): app.py runs instead

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
missed = len(misses(tasks, scores))
st.write(f"**{missed}** of {len(tasks)} lefts miss the top 2 ({missed / len(tasks):.1%}) "
         f"under {md(selection().label)}; **{len(found)}** match the filters.")
PAGE = 8
pages = max(1, (len(found) + PAGE - 1) // PAGE)
page = st.number_input("Page", 1, pages, 1, key="fail_page") if pages > 1 else 1
for f in found[(page - 1) * PAGE : page * PAGE]:
    st.divider()
    head, link = st.columns([5, 1])
    head.markdown(f"**{md(f.left)}** — truth rank **{f.truth_rank}**, beaten by {len(f.beaten_by)} candidate(s), margin {f.margin:.3f}")
    link.button("open in Ranked", key=f"open_{f.index}", on_click=open_in_ranked, args=(f.left,), width="stretch")
    task = ranked_task(tasks, scores, f.index)
    cols = st.columns(7)
    show_image(cols[0], eng, task.left_id, caption="left", width="stretch")
    show_image(cols[1], eng, task.truth.image_id, caption=f"truth · {task.truth.score:.3f}", width="stretch")
    for col, cand in zip(cols[2:], task.beating_truth[:5]):
        show_image(col, eng, cand.image_id, caption=f"{md(cand.name)} · {cand.score:.3f}", width="stretch")
