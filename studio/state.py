"""The studio's state: the selection, the engine of the chosen folder, and cached calls into ``tll_core``.

Everything computed here comes from ``tll_core``; pages only lay it out. ``st.cache_resource`` holds one
engine per data folder and state of its CSVs (its in-memory embedding memo and disk caches make reruns
cheap); figures are kept per (folder, content fingerprint, selection), so replacing a folder's images or
CSVs is never answered with the old figures. Scores and map coordinates are kept in a :class:`Memo`, not
``st.cache_data``: computing them moves a progress bar drawn by the page, which a cached function may not do
(its elements are recorded to be replayed, and a bar drawn outside it cannot be).
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from tll_core import selection as selections
from tll_core.analysis import MAP_COLOURINGS
from tll_core.cache import default_cache_dir
from tll_core.dataset import allowed_data_folder, dataset_stamp
from tll_core.demo import write_demo
from tll_core.device import available_devices
from tll_core.engine import Engine
from tll_core.errors import TLLError
from tll_core.matchers import TrainingCurve
from tll_core.evaluation.results import ResultRow
from tll_core.selection import Selection
from tll_core.tags import TagStore
from tll_core.evaluation.tasks import TaskSet
from tll_core.thumbnails import THUMBNAIL_SIDE, thumbnail_urls
from tll_core.why import Rendered, WhyPair, centre_of, render, why

from .progress import ProgressBar, progress_bar
from .widgets import md, show_error

DEMO_DIR = default_cache_dir() / "demo"


def default_data() -> str:
    return os.environ.get("TLL_DATA") or str(DEMO_DIR)


@st.cache_resource(show_spinner="Loading and checking the data folder…", max_entries=4)
def _engine(data: str, device: str, stamp: tuple) -> Engine:
    if Path(data) == DEMO_DIR:
        write_demo(data)
    return Engine.open(data, device=device)


def engine_for(data: str, device: str = "auto") -> Engine:
    """The engine of ``data`` as its CSVs and image folders are *now* (``dataset_stamp``): an edited CSV or an
    added, removed or renamed image loads the folder again."""
    if Path(data) != DEMO_DIR:
        allowed_data_folder(data)  # confined to $TLL_DATA_ROOTS when it is set (serving the studio to others)
    return _engine(data, device, dataset_stamp(data))


@st.cache_data(show_spinner=False)
def device_choices() -> list[str]:
    """auto, then each device usable here (cuda / mps when present, cpu)."""
    return ["auto", *available_devices()]


def device() -> str:
    """The sidebar's device choice (part of every engine's cache key)."""
    return st.session_state.get("device", "auto")


def selection() -> Selection:
    return st.session_state.get("selection", Selection())


def data_folder() -> str:
    return st.session_state.get("data_folder", default_data())


def set_selection(sel: Selection) -> None:
    st.session_state["selection"] = sel
    _write_url()


def _write_url() -> None:
    """The URL holds the selection's changes from the defaults, the data folder and the pages' views (the left
    shown in Ranked, the map's projection and colouring) where they differ from their defaults."""
    sel = selection()
    views = {k: v for k, v in st.session_state.get("views", {}).items() if v and v != VIEW_DEFAULTS.get(k)}
    wanted = {**sel.to_query(), **({"data": data_folder()} if data_folder() != default_data() else {}), **views}
    if st.query_params.to_dict() != wanted:  # only on change: writing the URL is not free
        st.query_params.from_dict(wanted)


# the pages' views carried in the URL, with their defaults: ?left=NAME (Ranked), ?projection=umap&colour=…,
# ?candidate=NAME (the right the Why page explains beside the truth)
VIEW_DEFAULTS = {"left": "", "projection": "pca", "colour": MAP_COLOURINGS[0], "candidate": ""}


def views_from(params: dict[str, str]) -> dict[str, str]:
    """The views named in a URL's params (a first visit)."""
    return {k: params[k] for k in VIEW_DEFAULTS if params.get(k)}


def view(name: str, choices: tuple[str, ...] | list[str] = ()) -> str:
    """A page's view setting: from the URL or the last change; its default when not one of ``choices``."""
    value = st.session_state.get("views", {}).get(name) or VIEW_DEFAULTS[name]
    return value if not choices or value in choices else VIEW_DEFAULTS[name]


def set_view(name: str, value: str) -> None:
    """Remember a page's view setting and write it into the URL (a link reopens it)."""
    views = st.session_state.setdefault("views", {})
    if views.get(name) != value:
        views[name] = value
        _write_url()


def shown_left() -> str | None:
    """The name of the left Ranked candidates shows (from ``?left=`` on a first visit)."""
    return view("left") or None


def show_left(name: str) -> None:
    """Ranked candidates now shows ``name``: remembered and written into the URL."""
    set_view("left", name)


def why_candidate() -> str | None:
    """The right the Why page explains: one handed over by another page in ``st.session_state["why_candidate"]``
    (a right's name; taken once, then remembered and written into the URL), else ``?candidate=NAME``."""
    handed = st.session_state.pop("why_candidate", None)
    if handed:
        set_view("candidate", str(handed))
    return view("candidate") or None


def _show_left_next(name: str) -> None:
    """The left the next page shows (Ranked, Why): remembered as the view; Ranked finds its index."""
    st.session_state.setdefault("views", {})["left"] = name
    st.session_state.pop("left_index", None)


def _open_left(name: str) -> None:
    """Ranked shows ``name`` next, even outside the map's focus (it was asked for by name)."""
    _show_left_next(name)
    st.session_state["opened_left"] = name


def opened_left() -> str | None:
    """The left last opened by name (a button, a click on the map, a link) since the map's focus was set."""
    return st.session_state.get("opened_left")


def open_in_ranked(name: str) -> None:
    """Open a left in Ranked candidates (a button's callback on any page)."""
    _open_left(name)
    st.session_state["switch_to"] = "pages/ranked.py"


def open_why(left: str, candidate: str) -> None:
    """Open the Why view on a left and one of its candidates (a button's callback on any page)."""
    _show_left_next(left)
    st.session_state["why_candidate"] = candidate
    st.session_state["switch_to"] = "pages/why.py"


def follow_links() -> None:
    """Called by app.py before the page runs: a left opened from another page switches to the page asked for;
    a ``?left=`` that changed under a running session (the map's click, the browser's back button) is shown."""
    left = st.query_params.get("left")
    if left and "views" in st.session_state and left != view("left"):
        _open_left(left)
    target = st.session_state.pop("switch_to", None)
    if target:
        st.switch_page(target)


def run_app_if_leaving() -> None:
    """In a fragment (a dialog): once a callback asked for another page (``open_why``, ``open_in_ranked``), run
    the whole app, where :func:`follow_links` switches; a button in a fragment reruns only the fragment."""
    if "switch_to" in st.session_state:
        st.rerun()


def map_focus() -> tuple[str, ...]:
    """The lefts picked on the embedding map that Failures and Ranked are narrowed to; () when none."""
    return tuple(st.session_state.get("map_focus", ()))


def set_map_focus(lefts: list[str] | tuple[str, ...]) -> None:
    """Narrow Failures and Ranked to these lefts (the embedding map's selection); () shows every left again."""
    st.session_state["map_focus"] = tuple(dict.fromkeys(lefts))
    st.session_state.pop("opened_left", None)


def focus_notice(where=st) -> tuple[str, ...]:  # where: st or a container
    """On a page that honours the map's focus: a one-line notice with a button that clears it; the focus."""
    focus = map_focus()
    if focus:
        text, clear = where.columns([5, 1])
        text.info(f"Narrowed to the {len(focus)} left(s) picked on the embedding map.")
        clear.button("show every left", key="clear_map_focus", on_click=set_map_focus, args=((),), width="stretch")
    return focus


def apply(sel: Selection) -> None:
    """Make another page's choice (e.g. a trained matcher) the current selection everywhere."""
    set_selection(sel)


def engine() -> Engine | None:
    """The engine of the chosen folder, or None after showing the problem on the page."""
    try:
        return engine_for(data_folder(), device())
    except TLLError as exc:
        show_error(exc)
        return None


def fingerprint(data: str, device_name: str = "auto") -> str:
    """The folder's content as it is now: part of every cached figure's key. Taken once per run (it stats
    every image, ~50 ms for tll-dev's 6000, and a page asks for it once per cached figure)."""
    memo = st.session_state.setdefault(_FINGERPRINTS, {})
    if (data, device_name) not in memo:
        memo[data, device_name] = engine_for(data, device_name).dataset.fingerprint()
    return memo[data, device_name]


_FINGERPRINTS = "_run_fingerprints"


@contextlib.contextmanager
def one_run() -> Iterator[None]:
    """Around each run of app.py: the folder's fingerprint is taken afresh in every run (and callbacks, which
    run before it, take their own)."""
    st.session_state.pop(_FINGERPRINTS, None)
    try:
        yield
    finally:
        st.session_state.pop(_FINGERPRINTS, None)


class Memo:
    """The last ``size`` answers by key, shared by every session of the process (one per kind of answer).
    Answers are shared, not copied: their arrays are made read-only. Two sessions asking for the same key at
    once both compute it (the engine's caches make the second cheap)."""

    def __init__(self, size: int) -> None:
        self.size, self._answers, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._answers:
                self._answers.move_to_end(key)
                return self._answers[key]
        answer = compute()
        for value in answer if isinstance(answer, tuple) else (answer,):
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
        with self._lock:
            self._answers[key] = answer
            while len(self._answers) > self.size:
                self._answers.popitem(last=False)
        return answer


@st.cache_resource
def memo(kind: str, size: int) -> Memo:
    return Memo(size)


def scored(data: str, sel: Selection, device_name: str = "auto",
           bar: ProgressBar | None = None) -> tuple[TaskSet, np.ndarray]:
    """The task set of the selection's split and its [n, 20] scores, for the folder's content as it is now;
    ``bar`` shows the embedding and training it takes when the answer is not kept yet."""
    def compute() -> tuple[TaskSet, np.ndarray]:
        eng = engine_for(data, device_name)
        tasks, fit = eng.tasks_for(sel.split, sel.val_fraction, sel.seed)
        images, epochs = (bar.images, bar.epoch) if bar else (None, None)
        return tasks, eng.score(tasks, sel.backbone, sel.to_method(), fit, progress=images, callback=epochs)

    return memo("scores", 64).get((data, fingerprint(data, device_name), sel, device_name), compute)


def scores_or_stop(sel: Selection | None = None) -> tuple[Engine, TaskSet, np.ndarray]:
    """Engine, tasks and scores of a selection; a clear message and a stop on any failure."""
    eng = engine()
    if eng is None:
        st.stop()
    sel = sel or selection()
    try:
        with st.spinner(f"Scoring with {sel.label}…"), progress_bar() as bar:
            tasks, scores = scored(data_folder(), sel, device(), bar)
    except TLLError as exc:
        show_error(exc)
        st.stop()
    return eng, tasks, scores


def leaderboard_rows(sel: Selection, content: str, bar: ProgressBar | None = None) -> tuple[ResultRow, ResultRow]:
    """The selection's tasks and full-gallery rows on its validation split (``content``: the folder's
    :func:`fingerprint`, taken once per run for the whole leaderboard)."""
    data, device_name = data_folder(), device()
    return memo("leaderboard rows", 64).get(
        (data, content, sel, device_name),
        lambda: selections.leaderboard_rows(engine_for(data, device_name), sel, bar))


def map_coordinates(sel: Selection, projection: str, bar: ProgressBar | None = None) -> np.ndarray:
    """2-D coordinates of the selection's task set (lefts, then rights), by ``pca`` or ``umap``."""
    data, device_name = data_folder(), device()

    def compute() -> np.ndarray:
        eng = engine_for(data, device_name)
        tasks, _ = eng.tasks_for(sel.split, sel.val_fraction, sel.seed)
        return eng.embedding_map(tasks, sel.backbone, projection, sel.seed, progress=bar.images if bar else None)

    key = (data, fingerprint(data, device_name), sel.backbone, sel.split, sel.val_fraction, sel.seed, projection,
           device_name)
    return memo("map coordinates", 16).get(key, compute)


def map_thumbnails(image_ids: tuple[str, ...]) -> tuple[str, ...]:
    """A data-URL thumbnail of each image (``""`` where it cannot be read), made once per folder content
    and ids through the dataset's confined reader."""
    data, device_name = data_folder(), device()
    return _map_thumbnails(data, fingerprint(data, device_name), image_ids, THUMBNAIL_SIDE, device_name)


@st.cache_data(show_spinner=False, max_entries=8)
def _map_thumbnails(data: str, content: str, image_ids: tuple[str, ...], side: int,
                    device_name: str) -> tuple[str, ...]:
    return thumbnail_urls(engine_for(data, device_name).dataset, image_ids, side)


def remember_curve(sel: Selection, curve: TrainingCurve) -> None:
    """Keep the training curve of the matcher just fitted for ``sel`` (the matcher hands it back: it is
    never fitted again to read it), for the folder's content as it is now."""
    st.session_state.setdefault("train_curves", {})[_curve_key(sel)] = curve


def trained_curve(sel: Selection) -> TrainingCurve | None:
    """The curve of ``sel``'s matcher if it was trained (or taken from the store) in this session."""
    return st.session_state.get("train_curves", {}).get(_curve_key(sel))


def _curve_key(sel: Selection) -> tuple[str, str, str, Selection]:
    data = data_folder()
    return data, device(), fingerprint(data, device()), sel


def why_view(sel: Selection, left_id: str, candidate_id: str, member: str, centred: bool) -> tuple[WhyPair, Rendered]:
    """Where a left and a candidate match under ``member`` (a part of the selection's backbone), and the two
    overlays; ``centred``: after subtracting the mean embedding of the selection's task set, as zero-shot does."""
    data, device_name = data_folder(), device()
    return _why_view(data, fingerprint(data, device_name), sel.backbone, sel.split, sel.val_fraction, sel.seed,
                     member, left_id, candidate_id, centred, device_name)


@st.cache_data(show_spinner=False, max_entries=64)
def _why_view(data: str, content: str, backbone: str, split: str, fraction: float, seed: int, member: str,
              left_id: str, candidate_id: str, centred: bool, device_name: str) -> tuple[WhyPair, Rendered]:
    eng = engine_for(data, device_name)
    centre = centre_of(eng, eng.tasks_for(split, fraction, seed)[0], member) if centred else None
    pair = why(eng, backbone, left_id, candidate_id, member=member, centre=centre)
    return pair, render(eng, pair)


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
