"""The Overview's runs: every method evaluated on the chosen folder, kept across sessions and restarts
(``tll_core/runs.py``; the CLI's ``evaluate``, the API and the leaderboard record them). Each is a line — its
selection, top-2 and its CI, when it ran, how long it took, whether the folder's content changed since, whether
its trained matcher is kept — with a button that reopens it (the studio's selection, shown on Ranked) and one
that deletes it, after a confirmation.
"""
from __future__ import annotations

import time

import streamlit as st

from tll_core.errors import TLLError
from tll_core.runs import Run, RunStore
from tll_core.selection import run_selection

from . import session
from .folder import engine
from .links import set_selection
from .memo import fingerprint
from .session import data_folder, device
from .widgets import md, show_error

SCROLL_AFTER = 10  # more runs than this: the list scrolls in a box of its own
WIDTHS = [3.6, 0.8, 1.6, 1.3, 0.9, 0.8, 1, 1.2, 1.6]


def _store() -> RunStore | None:
    """The chosen folder's runs, read afresh; None after showing why they cannot be read."""
    try:
        return RunStore.open(data_folder())
    except TLLError as exc:
        show_error(exc)
        return None


def reopen(run_id: str) -> None:
    """A run's button: its selection becomes the studio's, shown on Ranked candidates."""
    store = _store()
    run = store.get(run_id) if store is not None else None
    sel = run_selection(run) if run is not None else None
    if sel is not None:
        set_selection(sel)
        session.SWITCH_TO.set("pages/ranked.py")


def delete(run_id: str) -> None:
    """A run's confirmed delete."""
    store = _store()
    if store is not None:
        try:
            store.delete(run_id)
        except TLLError as exc:
            show_error(exc)


def runs_section() -> None:
    """The folder's runs, newest first (the Overview's section)."""
    st.subheader("Runs — every method evaluated on this folder, kept across sessions")
    store = _store()
    if store is None:
        return
    if store.notice:
        st.warning(md(store.notice))
    runs = store.list()
    st.caption(md(f"Kept in {store.path} (also python -m tll_core runs --data FOLDER). Stale: the folder's images "
                  "or CSVs changed since it ran. Kept: its trained matcher is stored, so it is not trained "
                  "again.") + (f" {len(store.damaged())} damaged copies kept beside it." if store.damaged() else ""))
    if not runs:
        st.caption("None yet: the leaderboard above, python -m tll_core evaluate and the API record them.")
        return
    try:
        content: str | None = fingerprint(data_folder(), device())
    except TLLError:
        content = None
    eng = engine()
    kept = set(eng.store.keys()) if eng is not None and eng.cache is not None else set()
    head = st.columns(WIDTHS)
    for column, name in zip(head, ("selection", "top-2", "top-2 CI", "when", "took", "stale?", "kept")):
        column.markdown(f"**{name}**")
    box = st.container(height=440) if len(runs) > SCROLL_AFTER else st.container()
    with box:
        for run in runs:
            _line(run, content, kept)


def _line(run: Run, content: str | None, kept: set[str]) -> None:
    """One run: its figures and state, then Open and Delete."""
    cells = st.columns(WIDTHS, vertical_alignment="center")
    top2, ci = run.figure("top2"), run.ci
    cells[0].markdown(md(run.label))
    cells[1].markdown("–" if top2 is None else f"{top2:.3f}")
    cells[2].markdown("–" if ci is None else f"\\[{ci[0]:.3f}, {ci[1]:.3f}\\]")
    cells[3].markdown(time.strftime("%b %d %H:%M", time.localtime(run.when)))
    cells[4].markdown(f"{run.took:.1f} s")
    cells[5].markdown("?" if content is None else ("yes" if run.content != content else "no"))
    cells[6].markdown("–" if run.matcher is None else ("yes" if run.matcher in kept else "no"))
    reopens = run_selection(run) is not None
    cells[7].button("Open", key=f"run_open_{run.id}", on_click=reopen, args=(run.id,), disabled=not reopens,
                    width="stretch",
                    help="Make it the selection and show it on Ranked candidates" if reopens
                    else "Its method or backbone is not here now (an imported file taken away)")
    with cells[8].popover("Delete", key=f"run_delete_{run.id}"):
        st.markdown(md(f"Delete the run {run.label}? Its figures go; cached embeddings and matchers stay."))
        st.button("Delete this run", key=f"run_confirm_{run.id}", on_click=delete, args=(run.id,), type="primary")
