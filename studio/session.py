"""Every key the studio keeps in ``st.session_state``, in one place: a :class:`Slot` per key, with its type and
its value when the session has none.

No other module indexes ``st.session_state`` with a key of its own (``tests/test_studio_structure.py``): it
reads and writes a slot here, and a widget whose value the studio reads or seeds takes its ``key=`` from one
(``key=W_DATA.key``). Widgets whose value is only read from their return value keep their own literal keys.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import streamlit as st

from tll_core.analysis import MAP_COLOURINGS
from tll_core.cache import default_cache_dir
from tll_core.selection import Selection
from tll_core.tags import BulkTagging

T = TypeVar("T")
_UNSET: Any = object()

DEMO_DIR = default_cache_dir() / "demo"


def launch_data(argv: list[str] | None = None) -> str | None:
    """The folder given on the command line, ``streamlit run app.py -- --data D`` (Streamlit hands the script
    what follows ``--``), as an absolute path; None when none was given."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--data")
    known, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return absolute_folder(known.data) if known.data else None


def absolute_folder(text: str) -> str:
    """A typed folder as an absolute path: ``~`` expanded, a relative one taken from the server's working
    directory (the folder ``streamlit run`` started in), which the sidebar says."""
    return str(Path(text.strip()).expanduser().absolute())


def default_data() -> str:
    """The data folder of a session that has not chosen one: ``--data``, else ``$TLL_DATA``, else the demo."""
    return launch_data() or os.environ.get("TLL_DATA") or str(DEMO_DIR)


@dataclass(frozen=True)
class Slot(Generic[T]):
    """One session key; ``empty()`` makes its value when the session holds none (a fresh one each time)."""

    key: str
    empty: Callable[[], T]

    def get(self, otherwise: T = _UNSET) -> T:
        """The session's value; else ``otherwise`` when given, else ``empty()`` (not stored)."""
        state = st.session_state
        if self.key in state:
            return state[self.key]
        return self.empty() if otherwise is _UNSET else otherwise

    def set(self, value: T) -> None:
        st.session_state[self.key] = value

    def setdefault(self, value: T = _UNSET) -> T:
        """The session's value, after storing ``value`` (else ``empty()``) when it holds none."""
        state = st.session_state
        if self.key not in state:
            state[self.key] = self.empty() if value is _UNSET else value
        return state[self.key]

    def pop(self) -> T:
        """The session's value, removed; ``empty()`` when it held none."""
        return st.session_state.pop(self.key, self.empty())

    def clear(self) -> None:
        st.session_state.pop(self.key, None)

    def held(self) -> bool:
        return self.key in st.session_state


def _none() -> None:
    return None


@dataclass(frozen=True)
class Awaited:
    """What a session opened on a preview waits for (``studio.preview``): the default selection, the preview shown
    meanwhile, its job's key (the folder, its content then, the device), and why the job failed, once it has."""

    default: Selection
    preview: Selection
    key: tuple[str, str, str]
    error: str | None = None


# ------------------------------------------------------------ the choices every page shares (the sidebar's)
SELECTION: Slot[Selection] = Slot("selection", Selection)  # first run: from the URL's query params
AWAITED: Slot[Awaited | None] = Slot("awaited", _none)  # the default computed in the background, if it is
DATA_FOLDER: Slot[str] = Slot("data_folder", default_data)
DEVICE: Slot[str] = Slot("device", lambda: "auto")  # part of every engine's cache key
# the pages' views carried in the URL (studio.links.VIEW_DEFAULTS): left, projection, colour, space, candidate
VIEWS: Slot[dict[str, str]] = Slot("views", dict)
PAGE: Slot[str] = Slot("page", str)  # the url path of the page this run shows (the URL carries its views only)

# the sidebar's widgets, re-seeded from the selection on every run
W_DATA: Slot[str] = Slot("w_data", str)
W_DEVICE: Slot[str] = Slot("w_device", lambda: "auto")
W_SPLIT: Slot[str | None] = Slot("w_split", _none)
W_BACKBONE: Slot[str | None] = Slot("w_backbone", _none)
W_METHOD: Slot[str | None] = Slot("w_method", _none)
W_METRIC: Slot[str | None] = Slot("w_metric", _none)
W_RERANK: Slot[str | None] = Slot("w_rerank", _none)
W_CENTRE: Slot[bool | None] = Slot("w_centre", _none)
W_FRACTION: Slot[float | None] = Slot("w_fraction", _none)
W_SEED: Slot[int | None] = Slot("w_seed", _none)

# the sidebar's upload of your own model (studio.imports): a fresh widget after each file, and what became of it
UPLOAD_ROUND: Slot[int] = Slot("upload_round", int)
UPLOAD_NOTE: Slot[tuple[bool, str] | None] = Slot("upload_note", _none)  # (saved?, one line)

# ------------------------------------------------------------ links between pages (studio.links)
SWITCH_TO: Slot[str | None] = Slot("switch_to", _none)  # the page a callback asked for (app.py switches)
WHY_CANDIDATE: Slot[str | None] = Slot("why_candidate", _none)  # a right handed to the Why page, taken once
OPENED_LEFT: Slot[str | None] = Slot("opened_left", _none)  # the left last opened by name since the map's focus
MAP_FOCUS: Slot[tuple[str, ...]] = Slot("map_focus", tuple)  # the lefts picked on the embedding map

# ------------------------------------------------------------ the memo's per-run and per-session records (studio.memo)
RUN_FINGERPRINTS: Slot[dict[tuple[str, str], str]] = Slot("_run_fingerprints", dict)  # taken once per run
LEADERBOARD: Slot[dict[str, Selection]] = Slot("leaderboard", dict)  # label → selection computed this session
TRAINED: Slot[set[tuple]] = Slot("trained", set)  # the training memo's keys of the matchers trained here
TRAIN_FRESH: Slot[bool] = Slot("train_fresh", lambda: True)  # False: the last Train click was answered, not trained
SUBMISSION_PATH: Slot[str | None] = Slot("submission_path", _none)  # the CSV the Submission page last wrote

# ------------------------------------------------------------ pages' own state
LEFT_INDEX: Slot[int | None] = Slot("left_index", _none)  # Ranked: the left shown (its selectbox)
COMPARE_ADDED: Slot[list[Selection]] = Slot("compare_added", list)  # Compare: the methods added by hand
COMPARE_METHODS: Slot[list[str]] = Slot("compare_methods", list)  # Compare: the methods picked (multiselect)
MAP_METHOD: Slot[str] = Slot("map_method", lambda: "pca")  # the map's projection (segmented control)
MAP_COLOUR: Slot[str] = Slot("map_colour", lambda: MAP_COLOURINGS[0])  # the map's colouring (segmented control)
FAIL_TAG: Slot[str | None] = Slot("fail_tag", _none)  # Failures: the tag filter (selectbox)
FAIL_PAGE: Slot[int] = Slot("fail_page", lambda: 1)  # Failures: the page of failures (number input)
FAIL_MARGIN: Slot[tuple[float, float]] = Slot("fail_margin", lambda: (0.0, 0.0))  # Failures: the margin range
FAIL_MARGIN_BOUNDS: Slot[tuple[float, float] | None] = Slot("fail_margin_bounds", _none)  # the span it was set for
FAIL_TRUTH: Slot[tuple[float, float]] = Slot("fail_truth", lambda: (0.0, 0.0))  # Failures: the truth-score range
FAIL_TRUTH_BOUNDS: Slot[tuple[float, float] | None] = Slot("fail_truth_bounds", _none)
SEARCH_FROM: Slot[str | None] = Slot("search_from", _none)  # Search: an image of the split or an upload (radio)
SEARCH_IMAGE: Slot[str | None] = Slot("search_image", _none)  # Search: the image searched from (its selectbox)
TAG_PROBLEM: Slot[tuple[str, str] | None] = Slot("tag_problem", _none)  # Failures: (tag widget's key, one line)
MAP_SPACE: Slot[str] = Slot("map_space", lambda: "matcher")  # the map's space: the matcher's or the backbone's
BULK_UNDO: Slot[BulkTagging | None] = Slot("bulk_undo", _none)  # the last bulk tagging (the map's, Failures'): undo
BULK_NOTE: Slot[tuple[str, bool, str] | None] = Slot("bulk_note", _none)  # (form, done?, one line) after a bulk action


def tags_widget(index: int) -> Slot[list[str]]:
    """Failures: the tag box of the failure of task ``index``."""
    return Slot(f"tags_{index}", list)


def bulk_tag_widget(form: str) -> Slot[str]:
    """The tag typed into a bulk tagging form (``form``: map or failures)."""
    return Slot(f"bulk_tag_{form}", str)


def upload_widget(round_: int) -> Slot[Any]:
    """The sidebar's file uploader of round ``round_`` (an UploadedFile or None)."""
    return Slot(f"upload_{round_}", _none)


def selection() -> Selection:
    return SELECTION.get()


def data_folder() -> str:
    return DATA_FOLDER.get()


def device() -> str:
    """The sidebar's device choice (part of every engine's cache key)."""
    return DEVICE.get()


def slots() -> dict[str, Slot[Any]]:
    """Every fixed slot by key (the structure test checks that no other file spells one)."""
    return {v.key: v for v in globals().values() if isinstance(v, Slot)}
