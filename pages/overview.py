"""Overview: the dataset, a leaderboard of every computed method (validation tasks), what is cached."""
from dataclasses import replace

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from pages.common import data_folder, device, engine, md, scored, selection, show_error, sidebar
from tll_core.backbones.registry import REGISTRY
from tll_core.errors import TLLError
from tll_core.metrics import evaluate_scores

sidebar()
st.title("Totally-Looks-Like matching studio")
eng = engine()
if eng is None:
    st.stop()
summary = eng.dataset.summary()
cols = st.columns(4)
for column, key in zip(cols, ("layout", "train_pairs", "test_lefts", "images")):
    column.metric(key.replace("_", " "), summary[key])
st.caption(f"Data: {md(summary['root'])}. No problems found (every CSV row and image header checked on load).")
for note in [*eng.dataset.warnings, *(eng.cache.notices if eng.cache is not None else [])]:
    st.warning(md(note))

sel = replace(selection(), split="validation")
baseline = [replace(sel, backbone=name, method="zero-shot", metric="cosine", rerank="none", options=())
            for name, cfg in REGISTRY.items() if not cfg.needs_weights]
computed = st.session_state.setdefault("leaderboard", {})
for candidate in [sel, *baseline]:
    if candidate.label in computed:
        continue
    try:
        with st.spinner(f"Evaluating {candidate.label}…"):
            tasks, scores = scored(data_folder(), candidate, device())
    except TLLError as exc:
        show_error(f"{candidate.label}: {exc}")
        continue
    result = evaluate_scores(scores, tasks.truth, seed=candidate.seed)
    computed[candidate.label] = {"method": candidate.label, "top1": result.top1, "top2": result.top2,
                                 "top5": result.top5, "mrr": result.mrr, "mean rank": result.mean_rank,
                                 "n": result.n, "ci_low": result.top2_ci[0], "ci_high": result.top2_ci[1]}

st.subheader("Leaderboard — validation tasks (top-2 is the competition metric)")
table = pd.DataFrame(computed.values()).sort_values("top2", ascending=False)
st.dataframe(table, hide_index=True, column_config={
    c: st.column_config.NumberColumn(format="%.3f") for c in ("top1", "top2", "top5", "mrr", "ci_low", "ci_high")})
figure = go.Figure(go.Bar(
    x=table["method"], y=table["top2"],
    error_y=dict(type="data", symmetric=False, array=table["ci_high"] - table["top2"], arrayminus=table["top2"] - table["ci_low"]),
))
figure.add_hline(y=0.1, line_dash="dot", annotation_text="chance (0.10)")
figure.update_layout(yaxis_title="top-2 (95 % bootstrap CI)", yaxis_range=[0, 1], height=380, margin=dict(t=10))
st.plotly_chart(figure, key="leaderboard_chart")

st.subheader("Cache")
if eng.cache is not None:
    st.write(f"{md(eng.cache.directory)}: {len(eng.cache)} embeddings ({eng.cache.volume() / 2**20:.1f} MiB), "
             f"{len(eng.store)} trained matchers. Clear with `python -m tll_core cache --clear`.")
