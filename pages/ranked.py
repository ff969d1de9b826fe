"""Ranked candidates: a left beside its truth and its 20 candidates in score order, the truth framed.

Keys: ← / → previous / next left, F next failure, D a random left; a candidate's caption opens it full size.
"""
import numpy as np
import streamlit as st

from studio import session
from studio.entry import enter
from studio.links import focus_notice, open_search, open_why, opened_left, run_app_if_leaving, show_left, shown_left
from studio.memo import scores_or_stop
from studio.session import selection
from studio.widgets import md, show_image
from tll_core.analysis import Candidate, RankedTask, next_miss, ranked_task
from tll_core.scores import reading, score_help, shown_score

enter()  # run directly (a deep link on a fresh server): app.py runs instead

TRUTH = "#009E73"  # Okabe-Ito green: the truth's frame, told apart with any colour vision
# a container keyed "truth_…" gets the class st-key-truth_…: the truth's cell in the grid is framed by it
st.html(f"<style>div[class*='st-key-truth_'] {{outline: 4px solid {TRUTH}; outline-offset: 2px; border-radius: 4px}}</style>")

eng, tasks, scores = scores_or_stop()
sel = selection()
st.title("Ranked candidates")
names = list(tasks.left_names)
focus = focus_notice()  # the map's picks, and a left opened by name since (a click, a link) among them
order = [k for k, name in enumerate(names) if name in {*focus, opened_left()}] if focus else list(range(len(names)))
if not session.LEFT_INDEX.held() and shown_left() in names:  # ?left=NAME, or opened from another page
    session.LEFT_INDEX.set(names.index(shown_left()))
if session.LEFT_INDEX.get() not in order:
    session.LEFT_INDEX.set(order[0])


def _go(index: int) -> None:
    session.LEFT_INDEX.set(index)


def _step(delta: int) -> int:
    """The left ``delta`` places from the current one in the lefts stepped through (wrapping round)."""
    return order[(order.index(session.LEFT_INDEX.get()) + delta) % len(order)]


i = session.LEFT_INDEX.get()
show_left(names[i])
bar = st.columns([2.2, 1.3, 1, 1, 1.4])  # each button's label whole at 1280 px
bar[0].selectbox("Left (type to search)", order, format_func=lambda k: names[k], key=session.LEFT_INDEX.key)
bar[1].button("◀ previous", on_click=_go, args=(_step(-1),), width="stretch", shortcut="Left")
bar[2].button("next ▶", on_click=_go, args=(_step(1),), width="stretch", shortcut="Right")
bar[3].button("random", on_click=_go, args=(order[int(np.random.default_rng().integers(len(order)))],),
              width="stretch", shortcut="D")
if tasks.has_truth:
    failure = next_miss(tasks, scores, after=i, among=order)
    bar[4].button("next failure", on_click=_go, args=(i if failure is None else failure,), disabled=failure is None,
                  width="stretch", shortcut="F")


@st.dialog("Candidate", width="large")
def full_size(task: RankedTask, cand: Candidate) -> None:
    """A candidate at full size beside its left, with what its rank rests on."""
    a, b = st.columns(2)
    show_image(a, eng, task.left_id, caption=f"left {md(task.left)}", width="stretch")
    show_image(b, eng, cand.image_id, caption=f"candidate {md(cand.name)}", width="stretch")
    truth = task.truth
    versus = "" if truth is None or cand.is_truth else f" · the truth scores {truth.score:.3f} (rank {truth.rank})"
    st.write(f"rank **{cand.rank}** of 20 · score **{cand.score:.3f}** · share **{cand.share:.0%}** · column "
             f"c{cand.position}{' · **the truth**' if cand.is_truth else ''}{versus}")
    st.caption(md(shown_score(sel.to_method())), help=md(score_help(sel.to_method())))
    st.button("Why this match?", on_click=open_why, args=(task.left, cand.name), type="primary")
    st.button("Search from this candidate", on_click=open_search, args=(cand.image_id,))
    run_app_if_leaving()


def candidate_cell(where, task: RankedTask, cand: Candidate) -> None:
    """One candidate: its image (framed when it is the truth) and a caption that opens it full size."""
    cell = where.container(key=f"{'truth' if cand.is_truth else 'cand'}_{cand.position}")
    show_image(cell, eng, cand.image_id, width="stretch")
    label = f"#{cand.rank} · {cand.score:.3f} · {cand.share:.0%}" + (" · TRUTH" if cand.is_truth else "")
    if cell.button(label, key=f"full_{cand.position}", type="tertiary",
                   help=f"{md(cand.name)} (c{cand.position}): full size. Score {md(reading(cand.score, cand.rank, cand.share))}"):
        full_size(task, cand)


task = ranked_task(tasks, scores, i)
options = st.columns([1.5, 1.3, 3])  # the toggles' labels whole at 1280 px
original = options[0].toggle("Original c0..c19 order", key="original_order")
compact = options[1].toggle("Compact grid", value=True, key="compact_grid", help="all 20 candidates in two rows of 10")
options[2].caption("Keys: ← → previous / next · F next failure · D random. Click a caption for the full-size view.")
shown = task.in_original_order() if original else list(task.candidates)
st.caption(f"Captions: #rank · score · share of the 20. Score = {md(shown_score(sel.to_method()))}.",
           help=md(score_help(sel.to_method())))
side, grid = st.columns([1, 4])
show_image(side, eng, task.left_id, caption=f"left {md(task.left)}", width="stretch")
truth = task.truth
if truth is not None:
    verdict = "hit" if task.truth_rank <= 2 else "miss"
    side.markdown(f"truth rank **{task.truth_rank}** of 20 · score **{truth.score:.3f}** · share **{truth.share:.0%}**"
                  f" · top-2 **{verdict}**", help="rank: 1 + candidates scoring ≥ the truth (ties count against it). "
                  + md(score_help(sel.to_method())))
    show_image(side, eng, truth.image_id, caption=f"truth {md(truth.name)}", width="stretch")
else:
    side.write("test task (truth unknown)")
side.caption(md(sel.label))
side.button("search from this left", on_click=open_search, args=(task.left_id,), type="tertiary", key="search_from_left")
per_row = 10 if compact else 5
for row in range(0, len(shown), per_row):
    for col, cand in zip(grid.columns(per_row), shown[row : row + per_row]):
        candidate_cell(col, task, cand)
