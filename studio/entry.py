"""How a page knows it runs inside ``app.py``, and what it does when it does not.

``app.py`` is the studio's one entry: page config, ``st.navigation``, the sidebar drawn once, then the page,
run inside :func:`page_run`. Streamlit runs a page file *directly* in one case: a ``pages/`` folder beside the
entry file is also its old automatic multipage app, and until some session on the server has called
``st.navigation``, a deep link such as ``/ranked`` (or AppTest's ``switch_page``) runs ``pages/ranked.py``
instead of ``app.py`` — no sidebar, no page config, the automatic page list. So every page begins with
:func:`enter`: inside ``app.py`` it returns at once; run directly, it runs ``app.py`` (whose navigation picks
this same page from the URL, draws the sidebar and runs the page) and then stops the direct run.
"""
from __future__ import annotations

import contextlib
import runpy
import threading
from collections.abc import Iterator
from pathlib import Path

import streamlit as st

APP = Path(__file__).resolve().parent.parent / "app.py"
_running = threading.local()  # each session's script runs in its own thread


@contextlib.contextmanager
def page_run() -> Iterator[None]:
    """Mark the page that ``app.py`` runs: its :func:`enter` goes on."""
    _running.depth = getattr(_running, "depth", 0) + 1
    try:
        yield
    finally:
        _running.depth -= 1


def enter() -> None:
    """The first line of every page: nothing inside ``app.py``; run directly, run ``app.py`` instead and stop."""
    if getattr(_running, "depth", 0) > 0:
        return
    runpy.run_path(str(APP), run_name="__main__")
    st.stop()
