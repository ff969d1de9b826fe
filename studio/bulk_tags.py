"""Act on many lefts at once: a tag typed once and put on every left of a map selection or a Failures filter
(``TagStore.tag_many``, one write), and an undo of the last such action (``TagStore.undo``: exactly the
lefts it tagged; tags that existed before, and edits made since, stay)."""
from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from tll_core.errors import TLLError
from tll_core.tags import BulkTagging, TagStore

from . import session
from .folder import tag_store
from .widgets import md, show_error


def plural(n: int, word: str = "left") -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def bulk_tag_form(form: str, lefts: Sequence[str]) -> None:
    """A text input for a tag and a button "Tag N lefts" for ``lefts`` (none: no form); under it what the last bulk action
    did (or why it was refused, in one line) and a button that undoes it. ``form``: which page's form."""
    store = tag_store()
    if store is None:
        return
    if lefts:
        box = session.bulk_tag_widget(form)
        text, button = st.columns([3, 1], vertical_alignment="bottom")
        text.text_input(f"A tag for these {plural(len(lefts))}", key=box.key, max_chars=80, placeholder="e.g. label noise",
                        help="Put this tag on every one of them in one action (undoable).")
        button.button(f"Tag {plural(len(lefts))}", key=f"bulk_tag_button_{form}", on_click=_tag_many,
                      args=(store, tuple(lefts), form, box), width="stretch")
    note = session.BULK_NOTE.pop()  # shown once, after the action
    if note is not None and note[0] == form:
        if note[1]:
            st.success(md(note[2]))
        else:
            show_error(note[2])
    last = session.BULK_UNDO.get()
    if last is not None and last.path == store.path and last.added:
        st.button(md(f"Undo: take '{last.tag}' off the {plural(len(last.added))} it was put on"),
                  key=f"bulk_undo_{form}", on_click=_undo, args=(store, last, form))


def _tag_many(store: TagStore, lefts: tuple[str, ...], form: str, box: session.Slot[str]) -> None:
    try:
        action = store.tag_many(lefts, box.get())
    except TLLError as exc:
        session.BULK_NOTE.set((form, False, str(exc)))
        return
    session.BULK_UNDO.set(action)
    session.BULK_NOTE.set((form, True, _done(action)))


def _done(action: BulkTagging) -> str:
    carried = f" ({action.carried} of the {action.asked} carried it already)" if action.carried else ""
    return f"Tagged {plural(len(action.added))} with '{action.tag}'{carried}."


def _undo(store: TagStore, action: BulkTagging, form: str) -> None:
    try:
        removed = store.undo(action)
    except TLLError as exc:
        session.BULK_NOTE.set((form, False, str(exc)))
        return
    session.BULK_UNDO.clear()
    session.BULK_NOTE.set((form, True, f"Undone: '{action.tag}' taken off {plural(removed)}."))
