"""Shared studio plumbing (not a page): the sidebar, the selection, and cached calls into tll_core.

Everything computed here comes from ``tll_core``; pages only lay it out. ``st.cache_resource`` holds one
engine per data folder and state of its CSVs (its in-memory embedding memo and disk caches make reruns
cheap); ``st.cache_data`` holds scores per (folder, content fingerprint, selection), so replacing a
folder's images or CSVs is never answered with the old figures.

Every name or message shown comes from files someone else may have named: it goes through :func:`md`
(literal text, never markdown or HTML), and images are shown from bytes read through the dataset's
confined reader (re-checked at every open), never from a path handed to the browser.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import streamlit as st

from tll_core.backbones.registry import REGISTRY, weights_available
from tll_core.cache import default_cache_dir
from tll_core.dataset import allowed_data_folder, dataset_stamp
from tll_core.demo import write_demo
from tll_core.device import available_devices
from tll_core.engine import Engine
from tll_core.errors import TLLError
from tll_core.metrics import METRICS
from tll_core.recipes import fallback_notice
from tll_core.register import REGISTER
from tll_core.selection import SPLITS, Selection, default_options
from tll_core.tasks import TaskSet

DEMO_DIR = default_cache_dir() / "demo"


def default_data() -> str:
    return os.environ.get("TLL_DATA") or str(DEMO_DIR)


_MARKDOWN = re.compile(r"[!-/:-@\[-`{-~]")  # every ASCII punctuation character: all of them may be escaped


def md(text: object) -> str:
    """``text`` as literal characters in any markdown context (st.markdown, captions, st.error, …).

    A file named ``![p](&#47;&#47;host&#47;b.png)`` must not make the browser fetch a URL, ``[x](…)`` must not
    become a link and ``**E**`` must not turn bold: every ASCII punctuation character is backslash-escaped
    (CommonMark lets each of them be), which also defuses HTML, entities, ``$`` maths and ``:colour[…]``.
    """
    return _MARKDOWN.sub(lambda m: "\\" + m.group(0), " ".join(str(text).splitlines()))


def show_error(problem: object, where=st) -> None:  # where: st or a container
    where.error(md(problem))


def show_image(where, eng: Engine, image_id: str, caption: str = "", **kwargs) -> None:  # where: a container
    """An image from bytes read through the dataset's confined reader (re-resolved and checked now); a
    refused or vanished file is a one-line message in its place."""
    try:
        data = eng.dataset.read_image(image_id).data
    except TLLError as exc:
        show_error(exc, where)
        return
    where.image(data, caption=caption or None, **kwargs)


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


def set_selection(sel: Selection) -> None:
    st.session_state["selection"] = sel
    wanted = {**sel.to_query(), **({"data": data_folder()} if data_folder() != default_data() else {})}
    if st.query_params.to_dict() != wanted:  # only on change: writing the URL is not free
        st.query_params.from_dict(wanted)


def data_folder() -> str:
    return st.session_state.get("data_folder", default_data())


def engine() -> Engine | None:
    """The engine of the chosen folder, or None after showing the problem on the page."""
    try:
        return engine_for(data_folder(), device())
    except TLLError as exc:
        show_error(exc)
        return None


def scored(data: str, sel: Selection, device_name: str = "auto") -> tuple[TaskSet, np.ndarray]:
    """The task set of the selection's split and its [n, 20] scores, for the folder's content as it is now."""
    return _scored(data, engine_for(data, device_name).dataset.fingerprint(), sel, device_name)


@st.cache_data(show_spinner=False, max_entries=64)
def _scored(data: str, fingerprint: str, sel: Selection, device_name: str) -> tuple[TaskSet, np.ndarray]:
    eng = engine_for(data, device_name)
    if sel.split == "test":
        tasks, fit = eng.test(), eng.dataset.train_pairs
    else:
        split = eng.validation(sel.val_fraction, sel.seed)
        tasks, fit = split.tasks, split.fit
    return tasks, eng.score(tasks, sel.backbone, sel.to_method(), fit)


def scores_or_stop(sel: Selection | None = None) -> tuple[Engine, TaskSet, np.ndarray]:
    """Engine, tasks and scores of a selection; a clear message and a stop on any failure."""
    eng = engine()
    if eng is None:
        st.stop()
    sel = sel or selection()
    try:
        with st.spinner(f"Scoring with {sel.label}…"):
            tasks, scores = scored(data_folder(), sel, device())
    except TLLError as exc:
        show_error(exc)
        st.stop()
    return eng, tasks, scores


def sidebar() -> None:
    """The shared sidebar, drawn first by every page.

    The selection persists in ``st.session_state["selection"]`` (first run: from the URL's query params);
    the widgets are re-seeded from it on every run and write back through ``on_change``, so their values
    survive page switches.
    """
    if "selection" not in st.session_state:
        params = st.query_params.to_dict()
        st.session_state["selection"] = Selection.from_query(params)
        st.session_state["data_folder"] = params.get("data") or default_data()
    sel = selection()
    _seed_widgets(sel)
    st.session_state["w_data"] = data_folder()
    st.session_state["w_device"] = device() if device() in device_choices() else "auto"
    with st.sidebar:
        st.text_input("Data folder (Kaggle or release layout)", key="w_data", on_change=_data_changed,
                      help="The demo by default; or set TLL_DATA before starting the studio.")
        st.segmented_control("Split", SPLITS, key="w_split", required=True, on_change=_widgets_changed)
        st.selectbox("Backbone", list(REGISTRY) + _extra_backbones(), key="w_backbone", format_func=_backbone_label,
                     on_change=_widgets_changed)
        st.selectbox("Method", REGISTER.names("matcher"), key="w_method", on_change=_widgets_changed)
        st.selectbox("Metric", METRICS, key="w_metric", disabled=sel.method != "zero-shot", on_change=_widgets_changed)
        st.selectbox("Re-ranking", REGISTER.names("rerank"), key="w_rerank", on_change=_widgets_changed)
        st.selectbox("Device", device_choices(), key="w_device", on_change=_device_changed,
                      help="Where deep backbones and learned matchers run; auto: the accelerator when there is one.")
        with st.expander("Validation split"):
            st.number_input("Validation fraction", 0.05, 1.0, key="w_fraction", step=0.05, on_change=_widgets_changed)
            st.number_input("Seed", 0, 10_000, key="w_seed", step=1, on_change=_widgets_changed)
        notice = _fallback_notice()
        if notice:
            st.info(md(notice.removeprefix("notice: ")))
        if sel.options:
            st.caption(md("options: " + ", ".join(f"{k}={v}" for k, v in sel.options) + " (set on the Train page)"))
    set_selection(sel)


def _data_changed() -> None:
    st.session_state["data_folder"] = st.session_state["w_data"].strip() or default_data()
    st.session_state.pop("leaderboard", None)


def _device_changed() -> None:
    st.session_state["device"] = st.session_state["w_device"]
    st.session_state.pop("leaderboard", None)


def _widgets_changed() -> None:
    old = selection()
    get = st.session_state.get
    method = get("w_method", old.method)
    st.session_state["selection"] = Selection(
        get("w_backbone", old.backbone), method, get("w_metric", old.metric), get("w_rerank", old.rerank),
        old.options if method == old.method else default_options(method), get("w_split") or old.split,
        float(get("w_fraction", old.val_fraction)), int(get("w_seed", old.seed)))


def _seed_widgets(sel: Selection) -> None:
    st.session_state.update(w_split=sel.split, w_backbone=sel.backbone, w_method=sel.method, w_metric=sel.metric,
                            w_rerank=sel.rerank, w_fraction=sel.val_fraction, w_seed=sel.seed)


def apply(sel: Selection) -> None:
    """Make another page's choice (e.g. a trained matcher) the current selection everywhere."""
    set_selection(sel)


def _extra_backbones() -> list[str]:
    current = st.session_state.get("w_backbone")
    return [current] if current and current not in REGISTRY else []


@st.cache_data(show_spinner=False)
def _fallback_notice() -> str | None:
    return fallback_notice()


@st.cache_data(show_spinner=False)
def _available(name: str) -> bool:
    return weights_available(name) if name in REGISTRY else True


def _backbone_label(name: str) -> str:
    return name if _available(name) else f"{name} (no weights here)"


def hits_of(tasks: TaskSet, scores: np.ndarray, k: int = 2) -> np.ndarray:
    from tll_core.metrics import truth_ranks

    return truth_ranks(scores, tasks.truth) <= k
