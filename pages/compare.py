"""Compare: any methods on the same validation lefts — figures with CIs, McNemar tests, disagreements."""
import pandas as pd
import streamlit as st

from studio import session
from studio.entry import enter
from studio.folder import engine
from studio.links import open_in_ranked
from studio.memo import figures, report_html, scored
from studio.progress import progress_bar
from studio.session import selection
from studio.sidebar import backbone_choices, backbone_label
from studio.widgets import md, show_error, show_image
from tll_core.analysis import compare, ranked_task
from tll_core.errors import TLLError
from tll_core.evaluation.figures import figures_of
from tll_core.evaluation.metrics import metric_names
from tll_core.register import REGISTER
from tll_core.scores import score_help
from tll_core.selection import chosen_method, comparison_choices

enter()  # run directly (a deep link on a fresh server): app.py runs instead

st.title("Compare methods")
eng = engine()
if eng is None:
    st.stop()
added = session.COMPARE_ADDED.setdefault()  # the methods built below, kept for the session
added[:] = [s for s in added if s.known]  # (an imported method or backbone whose file was taken away goes)
choices = {s.label: s for s in [*comparison_choices(selection()), *added]}


def _add(sel) -> None:
    added.append(sel)
    picked = session.COMPARE_METHODS.setdefault()
    if sel.label not in picked:
        session.COMPARE_METHODS.set([*picked, sel.label])


with st.expander("Add any method: backbone × matcher × metric × re-ranking"):
    with st.form("compare_add", border=False):
        cols = st.columns(4)
        backbone = cols[0].selectbox("Backbone", backbone_choices(), format_func=backbone_label)
        method = cols[1].selectbox("Matcher", REGISTER.names("matcher"))
        metric = cols[2].selectbox("Metric (zero-shot)", metric_names())
        rerank = cols[3].selectbox("Re-ranking", REGISTER.names("rerank"))
        if st.form_submit_button("Add"):
            try:
                new = chosen_method(selection(), backbone, method, metric, rerank)
            except TLLError as exc:
                show_error(exc)
            else:
                _add(new)
                choices[new.label] = new
session.COMPARE_METHODS.set([label for label in session.COMPARE_METHODS.get(list(choices)[:2]) if label in choices])
picked = st.multiselect("Methods (the first is the reference)", list(choices), key=session.COMPARE_METHODS.key)
if len(picked) < 2:
    st.info("Pick at least two methods.")
    st.stop()

results = {}
for k, label in enumerate(picked, start=1):
    try:
        with progress_bar(f"method {k} of {len(picked)} ({label}): embedding") as bar:
            tasks, results[label] = scored(choices[label], bar)
    except TLLError as exc:
        show_error(f"{label}: {exc}")
picked = [label for label in picked if label in results]
if len(picked) < 2:
    st.stop()
rows = []
reference = picked[0]
for label in picked:
    scores = results[label]
    r = figures(choices[label])
    c = compare(tasks, results[reference], scores) if label != reference else None
    rows.append({"method": label, **{f.label: r.values[f.name] for f in figures_of("tasks")}, "top2 CI": f"[{r.top2_ci[0]:.3f}, {r.top2_ci[1]:.3f}]",
                 "vs reference: McNemar p": None if c is None else c.p_value})
st.dataframe(pd.DataFrame(rows), hide_index=True, column_config={
    **{f.label: st.column_config.NumberColumn(format=f"%{f.format}", help=f.help) for f in figures_of("tasks")},
    "vs reference: McNemar p": st.column_config.NumberColumn(format="%.3f")})

st.subheader("Disagreements (top-2 hits)")
pair = st.columns(2)
a = pair[0].selectbox("A", picked, index=0, key="compare_a")
b = pair[1].selectbox("B", picked, index=1, key="compare_b")
comparison = compare(tasks, results[a], results[b])
slices = comparison.slices
for col, (name, members) in zip(st.columns(len(slices)), slices.items()):
    col.metric(name, len(members))
st.caption(f"Exact McNemar test on the discordant lefts: p = {comparison.p_value:.4f}")
try:
    report = report_html(tuple(choices[label] for label in picked), (a, b) if a != b else None)
except TLLError as exc:
    show_error(exc)
else:
    st.download_button("Download the report (HTML)", report, file_name="tll-report.html", mime="text/html",
                       on_click="ignore", help="every method picked here: figures, McNemar tests, the first "
                       "one's worst failures, A against B; one file that opens offline")
slice_name = st.radio("Slice", list(slices), horizontal=True, key="compare_slice")
members = slices[slice_name]
if not members:
    st.info("No left in this slice.")
    st.stop()
view = st.columns([3, 1, 1])
i = view[0].selectbox("Left", members, format_func=lambda k: tasks.left_names[k], key="compare_left")
top_k = view[1].number_input("Top-k shown", 1, 20, 5, key="compare_top_k")
size = view[2].slider("Thumbnail size (px)", 80, 320, 180, step=20, key="compare_size")
st.button(md(f"open {tasks.left_names[i]} in Ranked"), on_click=open_in_ranked, args=(tasks.left_names[i],))
shown = [a] if a == b else [a, b]
left_col, *method_cols = st.columns(1 + len(shown))
show_image(left_col, eng, tasks.left_ids[i], caption=f"left {md(tasks.left_names[i])}", width=max(size, 200))
for col, label in zip(method_cols, shown):
    task = ranked_task(tasks, results[label], i)
    col.markdown(f"**{md(label)}** — truth rank {task.truth_rank}", help=md(score_help(choices[label].to_method())))
    for cand in task.candidates[:top_k]:
        show_image(col, eng, cand.image_id, width=size, caption=md(f"#{cand.rank} {cand.name} {cand.score:.3f} · "
                                                                   f"{cand.share:.0%}" + (" · TRUTH" if cand.is_truth else "")))
