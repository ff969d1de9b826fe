"""The chosen data folder, opened: its engine (one per folder, state of its CSVs and images, and device, held
by ``st.cache_resource``: its in-memory embedding memo and disk caches make reruns cheap) and its tag store.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from tll_core.dataset import allowed_data_folder, dataset_stamp
from tll_core.demo import write_demo
from tll_core.device import available_devices
from tll_core.engine import Engine
from tll_core.errors import TLLError
from tll_core.tags import TagStore

from .session import DEMO_DIR, data_folder, device
from .widgets import md, show_error


@st.cache_resource(show_spinner="Loading and checking the data folder…", max_entries=4)
def open_engine(data: str, device: str, stamp: tuple) -> Engine:
    """The engine of a folder in one state (``stamp``), held across reruns and sessions (``open_engine.clear()``
    forgets them all)."""
    if Path(data) == DEMO_DIR:
        write_demo(data)
    return Engine.open(data, device=device)


def engine_for(data: str, device: str = "auto") -> Engine:
    """The engine of ``data`` as its CSVs and image folders are *now* (``dataset_stamp``): an edited CSV or an
    added, removed or renamed image loads the folder again."""
    if Path(data) != DEMO_DIR:
        allowed_data_folder(data)  # confined to $TLL_DATA_ROOTS when it is set (serving the studio to others)
    return open_engine(data, device, dataset_stamp(data))


@st.cache_data(show_spinner=False)
def device_choices() -> list[str]:
    """auto, then each device usable here (cuda / mps when present, cpu)."""
    return ["auto", *available_devices()]


def engine() -> Engine | None:
    """The engine of the chosen folder, or None after showing the problem on the page."""
    try:
        return engine_for(data_folder(), device())
    except TLLError as exc:
        show_error(exc)
        return None


def tag_store() -> TagStore | None:
    """The chosen data folder's tags, read afresh (another tab may have changed them); None after showing
    why they cannot be read. A damaged file moved aside on opening is a one-line warning."""
    try:
        store = TagStore.open(data_folder())
    except TLLError as exc:
        show_error(exc)
        return None
    if store.notice:
        st.warning(md(store.notice))
    return store
