"""The shared sidebar, drawn once per run by ``app.py`` before the page that ``st.navigation`` picks.

The selection persists in the session (``studio.session.SELECTION``; first run: from the URL's query params); the
widgets are re-seeded from it on every run and write back through ``on_change``, so their values survive
page switches. Its choices come from the register and the backbone registry: a new part needs no edit here.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import streamlit as st

from tll_core.backbones.registry import BACKBONES, weights_available
from tll_core.errors import TLLError
from tll_core.imported import MAX_EMBEDDINGS_UPLOAD, MAX_SCORES_UPLOAD, METHODS_FOLDER, UPLOAD_SUFFIXES
from tll_core.evaluation.metrics import metric_names
from tll_core.recipes import fallback_notice
from tll_core.register import REGISTER
from tll_core.selection import SPLITS, Selection, default_options

from . import session
from .folder import device_choices, engine_for
from .imports import enter_imports, save_uploaded
from .links import set_selection, views_from
from .preview import open_on_preview
from .session import data_folder, default_data, device, selection
from .widgets import md, option_input, show_error


def sidebar() -> None:
    """Data folder, split, backbone, method, metric, re-ranking, device, validation fraction and seed; your own
    model (files in the folder's methods/, and an upload), entered first so that every choice offers it."""
    first = not session.SELECTION.held()
    params = st.query_params.to_dict() if first else {}
    if first:
        session.DATA_FOLDER.set(params.get("data") or default_data())
    for problem in enter_imports(data_folder()):
        st.warning(md(problem))
    if first:
        session.SELECTION.set(open_on_preview(Selection.from_query(params)))
        session.VIEWS.set(views_from(params))
    elif not selection().known:  # its imported method or backbone was taken away
        session.SELECTION.set(selection().with_known_parts())
    sel = selection()
    _seed_widgets(sel)
    session.W_DATA.set(data_folder())
    session.W_DEVICE.set(device() if device() in device_choices() else "auto")
    with st.sidebar:
        st.text_input("Data folder (Kaggle or release layout)", key=session.W_DATA.key, on_change=_data_changed,
                      help=f"The demo by default; or start the studio with `-- --data FOLDER` or TLL_DATA. A "
                           f"relative path is taken from {Path.cwd()}, where the studio was started.")
        st.segmented_control("Split", SPLITS, key=session.W_SPLIT.key, required=True, on_change=_widgets_changed)
        st.selectbox("Backbone", backbone_choices(), key=session.W_BACKBONE.key, format_func=backbone_label,
                     on_change=_widgets_changed)
        st.selectbox("Method", REGISTER.names("matcher"), key=session.W_METHOD.key, on_change=_widgets_changed,
                     help=REGISTER.get("matcher", sel.method).help or None)
        st.selectbox("Metric", metric_names(), key=session.W_METRIC.key, disabled=not sel.uses_metric,
                     on_change=_widgets_changed)
        st.checkbox("Centre the embeddings", key=session.W_CENTRE.key, disabled=not sel.uses_metric,
                    on_change=_widgets_changed,
                    help="Subtract the mean embedding of the scored images before the metric (zero-shot; no labels "
                         "used). Descriptors such as HOG share a large common component that swamps cosine.")
        st.selectbox("Re-ranking", REGISTER.names("rerank"), key=session.W_RERANK.key, on_change=_widgets_changed,
                     help=REGISTER.get("rerank", sel.rerank).help or None)
        sel = _rerank_options(sel)
        st.selectbox("Device", device_choices(), key=session.W_DEVICE.key, on_change=_device_changed,
                     help="Where deep backbones and learned matchers run; auto: the accelerator when there is one.")
        with st.expander("Validation split"):
            st.number_input("Validation fraction", 0.05, 1.0, key=session.W_FRACTION.key, step=0.05,
                            on_change=_widgets_changed)
            st.number_input("Seed", 0, 10_000, key=session.W_SEED.key, step=1, on_change=_widgets_changed)
        _own_model()
        notice = _fallback_notice()
        if notice:
            st.info(md(notice.removeprefix("notice: ")))
        if sel.options:
            st.caption(md("options: " + ", ".join(f"{k}={v}" for k, v in sel.options) + " (set on the Train page)"))
    set_selection(sel)


def _own_model() -> None:
    """The upload of a scores or embeddings file into the folder's methods/, and what became of the last one."""
    note = session.UPLOAD_NOTE.get()
    with st.expander("Your own model", expanded=note is not None):
        folder = Path(data_folder()).expanduser() / METHODS_FOLDER
        st.caption(md(f"Scores (.csv: left,c0..c19 for the validation tasks that python -m tll_core tasks writes; "
                      f"at most {MAX_SCORES_UPLOAD // 2**20} MB) become a method, embeddings (.npz: names, embeddings; "
                      f".parquet: name, embedding; by image id, e.g. train/left/abc.jpg; at most "
                      f"{MAX_EMBEDDINGS_UPLOAD // 2**20} MB) a backbone, named by the file. Saved into {folder}; "
                      "files put there yourself appear too."))
        widget = session.upload_widget(session.UPLOAD_ROUND.get())
        st.file_uploader("Add a scores or embeddings file", type=[s.lstrip(".") for s in UPLOAD_SUFFIXES],
                         key=widget.key, on_change=_uploaded, args=(widget,))
        if note is not None:
            (st.success if note[0] else st.error)(md(note[1]))


def _uploaded(widget) -> None:  # widget: Slot of an UploadedFile
    """A file given to the uploader: checked against the selection's tasks, saved, entered; then a fresh
    uploader (the file is not kept in the session)."""
    upload = widget.get()
    if upload is None:
        return
    data, sel = data_folder(), selection()
    try:
        tasks, _ = engine_for(data, device()).tasks_for(sel.split, sel.val_fraction, sel.seed)
        kind, name, path = save_uploaded(data, upload.name, upload.getvalue(), tasks)
    except TLLError as exc:
        session.UPLOAD_NOTE.set((False, str(exc)))
    else:
        what = "method" if kind == "matcher" else "backbone"
        session.UPLOAD_NOTE.set((True, f"Added the {what} {name}, saved as {path}"))
    session.UPLOAD_ROUND.set(session.UPLOAD_ROUND.get() + 1)


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
    typed = session.W_DATA.get().strip()
    session.DATA_FOLDER.set(session.absolute_folder(typed) if typed else default_data())
    session.LEADERBOARD.clear()


def _device_changed() -> None:
    session.DEVICE.set(session.W_DEVICE.get())
    session.LEADERBOARD.clear()


def _widgets_changed() -> None:
    old = selection()
    method, rerank = session.W_METHOD.get(old.method), session.W_RERANK.get(old.rerank)
    session.SELECTION.set(Selection(
        session.W_BACKBONE.get(old.backbone), method, session.W_METRIC.get(old.metric), rerank,
        old.options if method == old.method else default_options(method), session.W_SPLIT.get() or old.split,
        float(session.W_FRACTION.get(old.val_fraction)), int(session.W_SEED.get(old.seed)),
        old.rerank_options if rerank == old.rerank else (), bool(session.W_CENTRE.get(old.centre))))


def _seed_widgets(sel: Selection) -> None:
    for slot, value in ((session.W_SPLIT, sel.split), (session.W_BACKBONE, sel.backbone),
                        (session.W_METHOD, sel.method), (session.W_METRIC, sel.metric), (session.W_RERANK, sel.rerank),
                        (session.W_FRACTION, sel.val_fraction), (session.W_SEED, sel.seed),
                        (session.W_CENTRE, sel.centre)):
        slot.set(value)


def backbone_choices() -> list[str]:
    """Every registered backbone, and the current one when it is an ensemble (``a+b``, e.g. the default recipe)."""
    current = session.W_BACKBONE.get() or selection().backbone
    return list(BACKBONES) + ([current] if current and current not in BACKBONES else [])


@st.cache_data(show_spinner=False)
def _fallback_notice() -> str | None:
    return fallback_notice()


@st.cache_data(show_spinner=False)
def _available(name: str) -> bool:
    return weights_available(name) if name in BACKBONES else True


def backbone_label(name: str) -> str:
    return name if _available(name) else f"{name} (no weights here)"
