"""Overview: the dataset, a leaderboard of every computed method (validation tasks and full gallery), the cache."""
import html
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from studio import session
from studio.entry import enter
from studio.folder import engine
from studio.memo import fingerprint, kept_leaderboard_rows, leaderboard_rows
from studio.progress import progress_bar
from studio.runs import runs_section
from studio.session import data_folder, device, selection
from studio.widgets import chart_label, md, show_error
from tll_core.errors import TLLError
from tll_core.evaluation.figures import Figure, Protocol, figures_of
from tll_core.evaluation.results import ResultRow
from tll_core.selection import leaderboard_now_and_later

enter()  # run directly (a deep link on a fresh server): app.py runs instead

NARROW = 48  # px: a figure ("0.584") under its short header ("R@10"); the table fits 1280 px beside the sidebar
NAME_WIDTH = 172  # px: the selection's name (the default recipe's is 79 characters), wrapped onto four lines
LINES_HIGH = 80  # px: a row this high lets Streamlit wrap text (it wraps above 64 px): four 13 px lines


def figure_column(figure: Figure, protocol: Protocol) -> str:
    """A registered figure's leaderboard column: its name (``mean rank``), ``gallery mrr`` where the tasks
    protocol has a figure of that name too."""
    name = figure.label
    clash = protocol == "gallery" and figure.name in {f.name for f in figures_of("tasks")}
    return f"gallery {name}" if clash else name


def figure_header(figure: Figure, protocol: Protocol) -> str:
    """A figure's short header (the register's: ``R@1``, ``medR``); ``gMRR`` where its column is ``gallery mrr``."""
    return "g" + figure.header if figure_column(figure, protocol) != figure.label else figure.header


def header_width(header: str) -> int:
    """Px that a header of the grid's 14 px font takes, with the cell's padding (the browser test measures it)."""
    return max(NARROW, 7 * len(header) + 18)


def figure_config(figure: Figure, protocol: Protocol) -> Any:
    """A figure's column: its short header and the full name with its meaning on hover."""
    header = figure_header(figure, protocol)
    return st.column_config.NumberColumn(header, format=f"%{figure.format}", width=header_width(header),
                                         help=f"**{figure_column(figure, protocol)}**: {figure.help}")


def line(label: str, on_tasks: ResultRow, on_gallery: ResultRow) -> dict[str, Any]:
    """One leaderboard line: the tasks row's figures and top-2 CI, then the gallery row's."""
    low, high = on_tasks.as_dict()["top2_ci"] or (None, None)
    figures = {figure_column(f, p): row.as_dict()[f.name] for p, row in (("tasks", on_tasks), ("gallery", on_gallery))
               for f in figures_of(p)}  # a row that could not run (imported scores' gallery): None, shown blank
    return {"selection": label, "n": on_tasks.n, **figures, "gallery": None if on_gallery.skipped else on_gallery.gallery,
            "ci_low": low, "ci_high": high,
            "top2 CI": "" if low is None or high is None else f"[{low:.3f}, {high:.3f}]"}


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

computed = session.LEADERBOARD.setdefault()  # label → selection, every one computed or asked for this session
for label in [label for label, candidate in computed.items() if not candidate.known]:
    del computed[label]  # an imported method or backbone whose file was taken away
try:
    content = fingerprint(data_folder(), device())
except TLLError as exc:
    show_error(exc)
    st.stop()
now, later = leaderboard_now_and_later(selection(), lambda c: kept_leaderboard_rows(c, content) is not None)
for candidate in now:
    computed.setdefault(candidate.label, candidate)
waiting = [c for c in later if c.label not in computed]  # on the button below
lines, not_run = [], []
for label, candidate in list(computed.items()):
    try:
        with progress_bar(f"evaluating {label}") as bar:
            on_tasks, on_gallery = leaderboard_rows(candidate, content, bar)
            lines.append(line(label, on_tasks, on_gallery))
            if on_gallery.skipped:
                not_run.append(f"Not run under the full gallery — {on_gallery.skipped}")
    except TLLError as exc:
        show_error(f"{label}: {exc}")
        del computed[label]  # tried again when it is next chosen, not on every run

st.subheader("Leaderboard — validation (top-2 on 20-candidate tasks is the competition metric)")
st.caption("Left: the 20-candidate tasks, with the top-2 bootstrap CI. Right: the full-gallery protocol — each "
           "left ranked against every validation right (recall@k, median rank, MRR; gallery: how many rights).")
if lines:
    table = pd.DataFrame(lines).sort_values("top2", ascending=False)
    shown = [(figure_column(f, p), figure_config(f, p)) for p in ("tasks", "gallery") for f in figures_of(p)]
    order = [c for name, _ in shown for c in ((name, "top2 CI") if name == "top2" else (name,))]
    st.dataframe(table, hide_index=True, row_height=LINES_HIGH, column_order=("selection", *order, "gallery"),
                 column_config={
        **dict(shown),
        "gallery": st.column_config.NumberColumn(width=header_width("gallery"), help="rights each left is ranked against"),
        "top2 CI": st.column_config.TextColumn(width=96, help="95 % bootstrap interval of top-2"),
        "selection": st.column_config.TextColumn(width=NAME_WIDTH, help="backbone · method · metric")})
    figure = go.Figure(go.Bar(
        x=[chart_label(label) for label in table["selection"]], y=table["top2"],  # wrapped: inside the figure
        hovertext=[html.escape(label) for label in table["selection"]], hoverinfo="text+y",  # the whole name
        error_y=dict(type="data", symmetric=False, array=table["ci_high"] - table["top2"], arrayminus=table["top2"] - table["ci_low"]),
    ))
    for note in not_run:
        st.caption(md(note))
    figure.add_hline(y=0.1, line_dash="dot", annotation_text="chance (0.10)")
    figure.update_layout(yaxis_title="top-2 (95 % bootstrap CI)", yaxis_range=[0, 1], height=420, margin=dict(t=10),
                         xaxis_automargin=True, yaxis_automargin=True)
    st.plotly_chart(figure, key="leaderboard_chart")

if waiting:
    names = ", ".join(c.label for c in waiting)
    st.caption(md(f"Not evaluated yet (each embeds every validation image): {names}."))
    if st.button(f"Evaluate {len(waiting)} more", key="leaderboard_more",
                 help="Zero-shot baselines for comparison; they are kept, so this is done once per folder content."):
        for candidate in waiting:
            computed.setdefault(candidate.label, candidate)
        st.rerun()

runs_section()  # every method evaluated on this folder, kept across sessions (studio/runs.py)

st.subheader("Cache")
if eng.cache is not None:
    st.write(f"{md(eng.cache.directory)}: {len(eng.cache)} embeddings ({eng.cache.volume() / 2**20:.1f} MiB), "
             f"{len(eng.store)} trained matchers. Clear with `.venv/bin/python -m tll_core cache --clear`.")
