"""Ranked candidates: a left beside its 20 candidates in score order, the truth marked."""
import numpy as np
import streamlit as st

from studio.entry import enter
from studio.state import scores_or_stop, selection, show_left, shown_left
from studio.widgets import md, show_image
from tll_core.analysis import next_miss, ranked_task

enter()  # run directly (a deep link on a fresh server): app.py runs instead

eng, tasks, scores = scores_or_stop()
sel = selection()
st.title("Ranked candidates")
n = len(tasks)
names = list(tasks.left_names)
if "left_index" not in st.session_state and shown_left() in names:  # ?left=NAME, or opened from another page
    st.session_state["left_index"] = names.index(shown_left())
if st.session_state.get("left_index", 0) >= n:
    st.session_state["left_index"] = 0


def _go(index: int) -> None:
    st.session_state["left_index"] = index % n


st.session_state.setdefault("left_index", 0)
i = st.session_state["left_index"]
show_left(names[i])
bar = st.columns([3, 1, 1, 1, 1.4])
bar[0].selectbox("Left (type to search)", range(n), format_func=lambda k: names[k], key="left_index")
bar[1].button("◀ previous", on_click=_go, args=(i - 1,), width="stretch")
bar[2].button("next ▶", on_click=_go, args=(i + 1,), width="stretch")
bar[3].button("random", on_click=_go, args=(int(np.random.default_rng().integers(n)),), width="stretch")
if tasks.has_truth:
    failure = next_miss(tasks, scores, after=i)
    bar[4].button("next failure", on_click=_go, args=(i if failure is None else failure,), disabled=failure is None,
                  width="stretch")

task = ranked_task(tasks, scores, i)
original = st.toggle("Original c0..c19 order", key="original_order")
shown = task.in_original_order() if original else list(task.candidates)
left_col, grid = st.columns([1, 3])
with left_col:
    show_image(st, eng, task.left_id, caption=f"left {md(task.left)}", width="stretch")
    if task.truth_rank is not None:
        verdict = "hit" if task.truth_rank <= 2 else "miss"
        st.metric("truth rank", task.truth_rank, help="1 + candidates scoring ≥ the truth (ties count against it)")
        st.write(f"top-2 **{verdict}** · {md(sel.label)}")
    else:
        st.write(f"test task (truth unknown) · {md(sel.label)}")
for row in range(0, len(shown), 5):
    cols = grid.columns(5)
    for col, cand in zip(cols, shown[row : row + 5]):
        mark = " · :green[**TRUTH**]" if cand.is_truth else ""
        show_image(col, eng, cand.image_id, width="stretch")
        col.caption(f"**#{cand.rank}** · {cand.score:.3f} · {md(cand.name)} (c{cand.position}){mark}")
