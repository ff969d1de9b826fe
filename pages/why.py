"""Why this match? Where a left and its candidates look alike, as heatmaps over both images: the left against
its truth, and against the candidate that beat it (or any candidate picked; another page may hand one over in
the session's ``studio.session.WHY_CANDIDATE``, a link in ``?candidate=NAME``)."""
import streamlit as st

from studio.entry import enter
from studio.links import set_view, show_left, shown_left, why_candidate
from studio.memo import scores_or_stop, why_view
from studio.session import selection
from studio.widgets import md, show_error
from tll_core.analysis import Candidate, RankedTask, ranked_task
from tll_core.errors import TLLError
from tll_core.scores import score_help, why_relation
from tll_core.why import NoSpatialMap, colour_bar, explainable_members, no_features_message, no_map_message

enter()  # run directly (a deep link on a fresh server): app.py runs instead

eng, tasks, scores = scores_or_stop()
sel = selection()
st.title("Why this match?")
if not sel.uses_backbone:  # imported scores: the sidebar's backbone does not score them
    st.info(md(no_features_message(sel.label)))
    st.stop()
members = explainable_members(sel.backbone)
if not members:
    st.info(md(no_map_message(sel.backbone)))
    st.stop()

names = list(tasks.left_names)
bar = st.columns([3, 2, 1.2])
i = bar[0].selectbox("Left (type to search)", range(len(names)), format_func=lambda k: names[k],
                     index=names.index(shown_left()) if shown_left() in names else 0)
show_left(names[i])
member = bar[1].selectbox("Explain with", members, disabled=len(members) == 1,
                          help="The part of the backbone whose map is drawn: deep parts first, then HOG / thumbnail ones.")
centred = bar[2].toggle("Centre", value=True, key="why_centre",
                        help="Subtract the mean embedding of the scored images first, as the zero-shot matcher does.")
task = ranked_task(tasks, scores, i)
method = sel.to_method()


def _default_candidate(task: RankedTask) -> int:
    """Rank index of the candidate to explain: the one handed over, else the best that beat the truth, else
    the runner-up (the truth came first), else the first (test tasks)."""
    by_name = [c.name for c in task.candidates]
    handed = why_candidate()
    if handed in by_name:
        return by_name.index(handed)
    return 1 if task.truth_rank == 1 else 0


def _panel(where, cand: Candidate, heading: str = "") -> None:
    """One pair: both overlays, the score, how to read them."""
    if heading:
        where.subheader(heading)
    try:
        with where, st.spinner(f"Mapping {task.left} and {cand.name} with {member}…"):
            pair, shown = why_view(sel, task.left_id, cand.image_id, member, centred)
    except NoSpatialMap as exc:
        where.info(md(exc))
        return
    except TLLError as exc:
        show_error(exc, where)
        return
    a, b = where.columns(2)
    a.image(shown.left, caption=f"left {md(task.left)}", width="stretch")
    b.image(shown.candidate, caption=md(f"#{cand.rank} {cand.name}" + (" · TRUTH" if cand.is_truth else "")), width="stretch")
    figures = where.columns(2)
    figures[0].metric(md(f"{pair.member} cosine"), f"{pair.score:.3f}",
                      help="The explained part's own cosine of the two embeddings (centred when Centre is on): "
                      "the zero-shot similarity that the map shows")
    figures[1].metric("selection's score", f"{cand.score:.3f}", delta=f"rank {cand.rank} of 20 · share {cand.share:.0%}",
                      delta_color="off", delta_arrow="off", help=md(f"under {sel.label}. {score_help(method)}"))
    where.markdown(md(why_relation(method, sel.backbone, pair.member, pair.score, centred, cand.score, cand.rank,
                                   cand.share)))
    where.image(colour_bar(), width="stretch",
                caption=md(f"low {shown.low:.3f} … high {shown.high:.3f}"
                           + (f" · colour histogram (no place) {pair.unmapped:+.3f}" if pair.unmapped else "")))
    where.caption(md(pair.reading))
    if pair.note:
        where.caption(md(pair.note))


left_panel, right_panel = st.columns(2, gap="large")
truth = task.truth
if truth is not None:
    _panel(left_panel, truth, f"Left vs its truth (rank {task.truth_rank})")
else:
    left_panel.info("Test task: the truth is unknown; pick any candidate on the right.")
right_panel.subheader("Left vs a candidate")
k = right_panel.selectbox("Candidate (by rank; by default the best one that beat the truth, else the runner-up)",
                          range(len(task.candidates)), index=_default_candidate(task),
                          format_func=lambda r: f"#{task.candidates[r].rank} {task.candidates[r].name} "  # plain text
                          f"({task.candidates[r].score:.3f} · {task.candidates[r].share:.0%})"
                          + (" · TRUTH" if task.candidates[r].is_truth else ""))
picked = task.candidates[k]
set_view("candidate", picked.name)
_panel(right_panel, picked)
