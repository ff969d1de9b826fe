"""The studio's links: the URL (the selection, the data folder and the pages' views in its query params) and
the ways one page opens another — a left in Ranked, a pair in Why, the lefts picked on the embedding map.
"""
from __future__ import annotations

import streamlit as st

from tll_core.analysis import MAP_COLOURINGS
from tll_core.selection import Selection

from . import session
from .session import data_folder, default_data, selection

# the pages' views carried in the URL, with their defaults: ?left=NAME (Ranked), ?projection=umap&colour=…&space=…,
# ?candidate=NAME (the right the Why page explains beside the truth), ?query=IMAGE_ID (the image Search starts from)
MAP_SPACES = ("matcher", "backbone")  # the embedding map: the space the chosen matcher scores in, or the raw one
VIEW_DEFAULTS = {"left": "", "projection": "pca", "colour": MAP_COLOURINGS[0], "space": MAP_SPACES[0],
                 "candidate": "", "query": ""}
# the pages (url paths) each view applies to: elsewhere the URL leaves it out (the session keeps it)
VIEW_PAGES = {"left": ("ranked", "why"), "projection": ("embedding_map",), "colour": ("embedding_map",),
              "space": ("embedding_map",), "candidate": ("why",), "query": ("search",)}


def set_selection(sel: Selection) -> None:
    """Make ``sel`` the selection on every page (the sidebar, another page's choice such as a trained
    matcher) and write it into the URL."""
    session.SELECTION.set(sel)
    _write_url()


def _write_url() -> None:
    """The URL holds the selection's changes from the defaults (those that apply to it), the data folder and
    the views of the page shown (the left shown in Ranked, the map's projection and colouring) where they
    differ from their defaults: nothing that does not apply where the link opens."""
    sel, shown, awaited = selection(), session.PAGE.get(), session.AWAITED.get()
    if awaited is not None and sel == awaited.preview:  # a reload opens the default (its preview again, if not ready)
        sel = awaited.default
    views = {k: v for k, v in session.VIEWS.get().items()
             if v and v != VIEW_DEFAULTS.get(k) and shown in VIEW_PAGES.get(k, ())}
    wanted = {**sel.to_query(), **({"data": data_folder()} if data_folder() != default_data() else {}), **views}
    if st.query_params.to_dict() != wanted:  # only on change: writing the URL is not free
        st.query_params.from_dict(wanted)


def views_from(params: dict[str, str]) -> dict[str, str]:
    """The views named in a URL's params (a first visit)."""
    return {k: params[k] for k in VIEW_DEFAULTS if params.get(k)}


def view(name: str, choices: tuple[str, ...] | list[str] = ()) -> str:
    """A page's view setting: from the URL or the last change; its default when not one of ``choices``."""
    value = session.VIEWS.get().get(name) or VIEW_DEFAULTS[name]
    return value if not choices or value in choices else VIEW_DEFAULTS[name]


def set_view(name: str, value: str) -> None:
    """Remember a page's view setting and write it into the URL (a link reopens it)."""
    views = session.VIEWS.setdefault()
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
    """The right the Why page explains: one handed over by another page in ``session.WHY_CANDIDATE`` (a
    right's name; taken once, then remembered and written into the URL), else ``?candidate=NAME``."""
    handed = session.WHY_CANDIDATE.pop()
    if handed:
        set_view("candidate", str(handed))
    return view("candidate") or None


def _show_left_next(name: str) -> None:
    """The left the next page shows (Ranked, Why): remembered as the view and written into the URL at once
    (else :func:`follow_links` would take the URL's older ``?left=`` for a change and show that); Ranked finds
    its index."""
    session.VIEWS.setdefault()["left"] = name
    session.LEFT_INDEX.clear()
    _write_url()


def _open_left(name: str) -> None:
    """Ranked shows ``name`` next, even outside the map's focus (it was asked for by name)."""
    _show_left_next(name)
    session.OPENED_LEFT.set(name)


def opened_left() -> str | None:
    """The left last opened by name (a button, a click on the map, a link) since the map's focus was set."""
    return session.OPENED_LEFT.get()


def open_in_ranked(name: str) -> None:
    """Open a left in Ranked candidates (a button's callback on any page)."""
    _open_left(name)
    session.SWITCH_TO.set("pages/ranked.py")


def open_why(left: str, candidate: str) -> None:
    """Open the Why view on a left and one of its candidates (a button's callback on any page)."""
    _show_left_next(left)
    session.WHY_CANDIDATE.set(candidate)
    session.SWITCH_TO.set("pages/why.py")


def open_search(image_id: str) -> None:
    """Search from an image of the folder (a button's callback on any page): the Search page starts from it."""
    session.VIEWS.setdefault()["query"] = image_id
    session.SEARCH_IMAGE.clear()
    session.SEARCH_FROM.clear()  # its first choice: an image of the split
    session.SWITCH_TO.set("pages/search.py")


def follow_links(page: str = "") -> None:
    """Called by app.py before the page runs (``page``: its url path, whose views the URL carries): a left
    opened from another page switches to the page asked for; a ``?left=`` that changed under a running
    session (the map's click, the browser's back button) is shown."""
    session.PAGE.set(page)
    left = st.query_params.get("left")
    if left and session.VIEWS.held() and left != view("left"):
        _open_left(left)
    target = session.SWITCH_TO.pop()
    if target:
        st.switch_page(target)


def run_app_if_leaving() -> None:
    """In a fragment (a dialog): once a callback asked for another page (``open_why``, ``open_in_ranked``), run
    the whole app, where :func:`follow_links` switches; a button in a fragment reruns only the fragment."""
    if session.SWITCH_TO.held():
        st.rerun()


def map_focus() -> tuple[str, ...]:
    """The lefts picked on the embedding map that Failures and Ranked are narrowed to; () when none."""
    return tuple(session.MAP_FOCUS.get())


def set_map_focus(lefts: list[str] | tuple[str, ...]) -> None:
    """Narrow Failures and Ranked to these lefts (the embedding map's selection); () shows every left again."""
    session.MAP_FOCUS.set(tuple(dict.fromkeys(lefts)))
    session.OPENED_LEFT.clear()


def focus_notice(where=st) -> tuple[str, ...]:  # where: st or a container
    """On a page that honours the map's focus: a one-line notice with a button that clears it; the focus."""
    focus = map_focus()
    if focus:
        text, clear = where.columns([5, 1])
        text.info(f"Narrowed to the {len(focus)} left(s) picked on the embedding map.")
        clear.button("show every left", key="clear_map_focus", on_click=set_map_focus, args=((),), width="stretch")
    return focus
