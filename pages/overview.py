"""Overview: the dataset, a leaderboard of every computed method (validation tasks and full gallery), the cache."""
import html
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from studio import session
from studio.entry import enter
from studio.folder import engine
from studio.memo import fingerprint, leaderboard_rows
from studio.progress import progress_bar
from studio.session import data_folder, device, selection
from studio.widgets import md, show_error
from tll_core.errors import TLLError
from tll_core.results import ResultRow
from tll_core.selection import leaderboard_selections

enter()  # run directly (a deep link on a fresh server): app.py runs instead

FIGURES = ("top1", "top2", "top5", "mrr", "recall@1", "recall@5", "recall@10", "gallery mrr")
COLUMNS = ("selection", "top1", "top2", "top2 CI", "top5", "mrr", "mean rank",  # the 20-candidate tasks
           "recall@1", "recall@5", "recall@10", "median rank", "gallery mrr", "gallery")  # the full gallery
NARROW = 56  # px: the whole table fits a 1400 px wide window beside the sidebar


def line(label: str, on_tasks: ResultRow, on_gallery: ResultRow) -> dict[str, Any]:
    """One leaderboard line: the tasks row's figures, then the gallery row's (its MRR as ``gallery mrr``)."""
    tasks, gallery = on_tasks.as_dict(), on_gallery.as_dict()
    low, high = tasks["top2_ci"] or (None, None)
    return {"selection": label, **{k: tasks[k] for k in ("top1", "top2", "top5", "mrr", "n")},
            "mean rank": tasks["mean_rank"], "ci_low": low, "ci_high": high,
            "top2 CI": "" if low is None or high is None else f"[{low:.3f}, {high:.3f}]",
            **{k: gallery[k] for k in ("recall@1", "recall@5", "recall@10", "gallery")},
            "median rank": gallery["median_rank"], "gallery mrr": gallery["mrr"]}


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

computed = session.LEADERBOARD.setdefault()  # label → selection, every one computed this session
for candidate in leaderboard_selections(selection()):
    computed.setdefault(candidate.label, candidate)
try:
    content = fingerprint(data_folder(), device())
except TLLError as exc:
    show_error(exc)
    st.stop()
lines = []
for label, candidate in list(computed.items()):
    try:
        with st.spinner(f"Evaluating {label}…"), progress_bar(f"{label}: embedding") as bar:
            lines.append(line(label, *leaderboard_rows(candidate, content, bar)))
    except TLLError as exc:
        show_error(f"{label}: {exc}")
        del computed[label]  # tried again when it is next chosen, not on every run

st.subheader("Leaderboard — validation (top-2 on 20-candidate tasks is the competition metric)")
st.caption("Left: the 20-candidate tasks, with the top-2 bootstrap CI. Right: the full-gallery protocol — each "
           "left ranked against every validation right (recall@k, median rank, MRR; gallery: how many rights).")
if lines:
    table = pd.DataFrame(lines).sort_values("top2", ascending=False)
    st.dataframe(table, hide_index=True, column_order=COLUMNS, column_config={
        **{c: st.column_config.NumberColumn(format="%.3f", width=NARROW) for c in FIGURES},
        **{c: st.column_config.NumberColumn(format="%.4g", width=NARROW) for c in ("mean rank", "median rank")},
        "gallery": st.column_config.NumberColumn(width=NARROW, help="rights each left is ranked against"),
        "top2 CI": st.column_config.TextColumn(width=100, help="95 % bootstrap interval of top-2"),
        "selection": st.column_config.TextColumn(width=190)})
    figure = go.Figure(go.Bar(
        x=[html.escape(label) for label in table["selection"]], y=table["top2"],  # plotly reads tags in labels
        error_y=dict(type="data", symmetric=False, array=table["ci_high"] - table["top2"], arrayminus=table["top2"] - table["ci_low"]),
    ))
    figure.add_hline(y=0.1, line_dash="dot", annotation_text="chance (0.10)")
    figure.update_layout(yaxis_title="top-2 (95 % bootstrap CI)", yaxis_range=[0, 1], height=380, margin=dict(t=10))
    st.plotly_chart(figure, key="leaderboard_chart")

st.subheader("Cache")
if eng.cache is not None:
    st.write(f"{md(eng.cache.directory)}: {len(eng.cache)} embeddings ({eng.cache.volume() / 2**20:.1f} MiB), "
             f"{len(eng.store)} trained matchers. Clear with `.venv/bin/python -m tll_core cache --clear`.")
