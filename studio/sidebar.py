"""The shared sidebar, drawn once per run by ``app.py`` before the page that ``st.navigation`` picks.

The selection persists in ``st.session_state["selection"]`` (first run: from the URL's query params); the
widgets are re-seeded from it on every run and write back through ``on_change``, so their values survive
page switches. Its choices come from the register and the backbone registry: a new part needs no edit here.
"""
from __future__ import annotations

from dataclasses import replace

import streamlit as st

from tll_core.backbones.registry import BACKBONES, weights_available
from tll_core.errors import TLLError
from tll_core.evaluation.metrics import metric_names
from tll_core.recipes import fallback_notice
from tll_core.register import REGISTER
from tll_core.selection import SPLITS, Selection, default_options

from .state import data_folder, default_data, device, device_choices, selection, set_selection, views_from
from .widgets import md, option_input, show_error


def sidebar() -> None:
    """Data folder, split, backbone, method, metric, re-ranking, device, validation fraction and seed."""
    if "selection" not in st.session_state:
        params = st.query_params.to_dict()
        st.session_state["selection"] = Selection.from_query(params)
        st.session_state["data_folder"] = params.get("data") or default_data()
        st.session_state["views"] = views_from(params)
    sel = selection()
    _seed_widgets(sel)
    st.session_state["w_data"] = data_folder()
    st.session_state["w_device"] = device() if device() in device_choices() else "auto"
    with st.sidebar:
        st.text_input("Data folder (Kaggle or release layout)", key="w_data", on_change=_data_changed,
                      help="The demo by default; or set TLL_DATA before starting the studio.")
        st.segmented_control("Split", SPLITS, key="w_split", required=True, on_change=_widgets_changed)
        st.selectbox("Backbone", backbone_choices(), key="w_backbone", format_func=backbone_label,
                     on_change=_widgets_changed)
        st.selectbox("Method", REGISTER.names("matcher"), key="w_method", on_change=_widgets_changed,
                     help=REGISTER.get("matcher", sel.method).help or None)
        st.selectbox("Metric", metric_names(), key="w_metric", disabled=not sel.uses_metric, on_change=_widgets_changed)
        st.checkbox("Centre the embeddings", key="w_centre", disabled=not sel.uses_metric, on_change=_widgets_changed,
                    help="Subtract the mean embedding of the scored images before the metric (zero-shot; no labels "
                         "used). Descriptors such as HOG share a large common component that swamps cosine.")
        st.selectbox("Re-ranking", REGISTER.names("rerank"), key="w_rerank", on_change=_widgets_changed,
                     help=REGISTER.get("rerank", sel.rerank).help or None)
        sel = _rerank_options(sel)
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


def _rerank_options(sel: Selection) -> Selection:
    """The chosen re-ranker's options, a widget each from its register entry, applied together (one line on a
    bad value); the selection with them."""
    part = REGISTER.get("rerank", sel.rerank)
    if not part.options:
        return sel
    current = dict(sel.rerank_options)
    with st.expander(f"{part.name} options"), st.form(f"rerank_options_{part.name}", border=False):
        values = {spec.name: option_input(st, spec, current.get(spec.name, spec.default), f"rr_{part.name}_{spec.name}")
                  for spec in part.options}
        if not st.form_submit_button("Apply"):
            return sel
        try:
            checked = part.checked_options(values)
        except TLLError as exc:
            show_error(exc)
            return sel
    changed = tuple(sorted((k, v) for k, v in checked.items() if v != part.option(k).default))
    return replace(sel, rerank_options=changed)


def _data_changed() -> None:
    st.session_state["data_folder"] = st.session_state["w_data"].strip() or default_data()
    st.session_state.pop("leaderboard", None)


def _device_changed() -> None:
    st.session_state["device"] = st.session_state["w_device"]
    st.session_state.pop("leaderboard", None)


def _widgets_changed() -> None:
    old = selection()
    get = st.session_state.get
    method, rerank = get("w_method", old.method), get("w_rerank", old.rerank)
    st.session_state["selection"] = Selection(
        get("w_backbone", old.backbone), method, get("w_metric", old.metric), rerank,
        old.options if method == old.method else default_options(method), get("w_split") or old.split,
        float(get("w_fraction", old.val_fraction)), int(get("w_seed", old.seed)),
        old.rerank_options if rerank == old.rerank else (), bool(get("w_centre", old.centre)))


def _seed_widgets(sel: Selection) -> None:
    st.session_state.update(w_split=sel.split, w_backbone=sel.backbone, w_method=sel.method, w_metric=sel.metric,
                            w_rerank=sel.rerank, w_fraction=sel.val_fraction, w_seed=sel.seed, w_centre=sel.centre)


def backbone_choices() -> list[str]:
    """Every registered backbone, and the current one when it is an ensemble (``a+b``, e.g. the default recipe)."""
    current = st.session_state.get("w_backbone") or selection().backbone
    return list(BACKBONES) + ([current] if current and current not in BACKBONES else [])


@st.cache_data(show_spinner=False)
def _fallback_notice() -> str | None:
    return fallback_notice()


@st.cache_data(show_spinner=False)
def _available(name: str) -> bool:
    return weights_available(name) if name in BACKBONES else True


def backbone_label(name: str) -> str:
    return name if _available(name) else f"{name} (no weights here)"
