"""Compare: several methods on the same validation lefts — figures with CIs, McNemar tests, disagreements."""
import pandas as pd
import streamlit as st

from studio.entry import enter
from studio.state import scores_or_stop, selection
from studio.widgets import md, show_image
from tll_core.analysis import compare, ranked_task
from tll_core.metrics import evaluate_scores
from tll_core.selection import comparison_choices

enter()  # run directly (a deep link on a fresh server): app.py runs instead

st.title("Compare methods")
choices = {s.label: s for s in comparison_choices(selection())}
picked = st.multiselect("Methods (the first is the reference)", list(choices), default=list(choices)[:2], key="compare_methods")
if len(picked) < 2:
    st.info("Pick at least two methods.")
    st.stop()
results = {}
for label in picked:
    eng, tasks, scores = scores_or_stop(choices[label])
    results[label] = scores
rows = []
reference = picked[0]
for label, scores in results.items():
    r = evaluate_scores(scores, tasks.truth, seed=choices[label].seed)
    c = compare(tasks, results[reference], scores) if label != reference else None
    rows.append({"method": label, "top1": r.top1, "top2": r.top2, "top5": r.top5, "mrr": r.mrr,
                 "top2 CI": f"[{r.top2_ci[0]:.3f}, {r.top2_ci[1]:.3f}]",
                 "vs reference: McNemar p": None if c is None else c.p_value})
st.dataframe(pd.DataFrame(rows), hide_index=True, column_config={
    c: st.column_config.NumberColumn(format="%.3f") for c in ("top1", "top2", "top5", "mrr", "vs reference: McNemar p")})

a, b = picked[0], picked[1]
st.subheader("Disagreements (top-2 hits)")
st.caption(f"A = {md(a)}  ·  B = {md(b)}")
comparison = compare(tasks, results[a], results[b])
slices = comparison.slices
counts = st.columns(len(slices))
for col, (name, members) in zip(counts, slices.items()):
    col.metric(name, len(members))
st.caption(f"Exact McNemar test on the discordant lefts: p = {comparison.p_value:.4f}")
slice_name = st.radio("Slice", list(slices), horizontal=True, key="compare_slice")
members = slices[slice_name]
if not members:
    st.info("No left in this slice.")
    st.stop()
i = st.selectbox("Left", members, format_func=lambda k: tasks.left_names[k], key="compare_left")
left_col, *method_cols = st.columns(1 + len(picked))
show_image(left_col, eng, tasks.left_ids[i], caption=f"left {md(tasks.left_names[i])}", width="stretch")
for col, label in zip(method_cols, picked):
    task = ranked_task(tasks, results[label], i)
    col.markdown(f"**{md(label)}** — truth rank {task.truth_rank}")
    for cand in task.candidates[:5]:
        show_image(col, eng, cand.image_id, width=110,
                   caption=md(f"#{cand.rank} {cand.name} {cand.score:.3f}" + (" · TRUTH" if cand.is_truth else "")))
