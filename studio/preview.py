"""The first view on a folder where the default recipe is not computed yet: shown at once with its faster preview.

The default recipe can take minutes on a new folder (today four lite0 passes per image); ``Recipe.preview`` in
``tll_core/recipes.py`` names a faster one. A session that opens on the default selection while the images it
reads are not embedded yet (``preview_while_computing``) opens on the preview instead — the whole studio usable
— and, once that first view is drawn, the default is computed in a thread of its own (its leaderboard rows and
scores, kept in the memo as the pages ask for them). A banner above every page says how far it is, and the
studio switches to the default by itself when it is ready, unless the user chose another selection meanwhile
(it is then one click away, and costs nothing: its answers are kept). One job per folder content, selection
and device in the whole process: a second session opening the same folder (a reload) waits on the same job.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import streamlit as st

from tll_core.errors import TLLError
from tll_core.progress import ProgressMeter, Reporter
from tll_core.selection import Selection, preview_while_computing

from .folder import engine_for
from .links import set_selection
from .memo import computed_elsewhere, fingerprint
from .session import AWAITED, Awaited, data_folder, device, selection
from .widgets import md

POLL_SECONDS = 2.0  # how often the banner looks at the job
log = logging.getLogger(__name__)


@dataclass
class Job:
    """The default recipe computed in a thread: its progress (the engine's reports), then done, or a one-line error."""

    meter: ProgressMeter
    done: threading.Event = field(default_factory=threading.Event)
    error: str | None = None


@st.cache_resource
def background_jobs() -> tuple[dict[tuple, Job], threading.Lock]:
    """Every job of this process by :func:`job_key`, and the lock that starts each once."""
    return {}, threading.Lock()


def open_on_preview(sel: Selection) -> Selection:
    """A session's first selection: ``sel``, or its preview when ``sel`` has one and is not computed yet on the
    chosen folder (then awaited). A folder that cannot be opened is the pages' to report: ``sel`` as it is."""
    data, device_name = data_folder(), device()
    try:
        eng = engine_for(data, device_name)
        preview = preview_while_computing(eng, sel)
        content = fingerprint(data, device_name) if preview is not None else ""
    except TLLError:
        return sel
    if preview is None:
        return sel
    AWAITED.set(Awaited(sel, preview, (data, content, device_name)))
    return preview


def start_awaited() -> None:
    """After a run has drawn its page: the awaited default's job, started once (in the process) per key."""
    awaited = AWAITED.get()
    if awaited is None:
        return
    jobs, lock = background_jobs()
    with lock:
        if job_key(awaited) in jobs:
            return
        work = computed_elsewhere(awaited.default, awaited.key[1])
        job = jobs[job_key(awaited)] = Job(ProgressMeter(f"computing {awaited.default.backbone}"))
    threading.Thread(target=_run, args=(job, work), name="tll-preview", daemon=True).start()


def job_key(awaited: Awaited) -> tuple:
    """(folder, content, device, default selection): sessions that wait for the same answers share one job."""
    return (*awaited.key, awaited.default)


def _run(job: Job, work: Callable[[Reporter], None]) -> None:
    try:
        work(job.meter)
    except TLLError as exc:
        job.error = (str(exc).splitlines() or [type(exc).__name__])[0]
    except Exception as exc:  # noqa: BLE001 — shown as one line; the traceback goes to the server's log
        log.exception("computing the default recipe in the background failed")
        job.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        job.done.set()


def awaited_job() -> Job | None:
    awaited = AWAITED.get()
    return None if awaited is None else background_jobs()[0].get(job_key(awaited))


def preview_banner() -> None:
    """Above every page while the session shows a preview: how far the default is (a fragment that looks again
    every ``POLL_SECONDS`` and switches when it is ready), or why it could not be computed. Nothing, and no
    timer, once the user chose another selection."""
    awaited = AWAITED.get()
    if awaited is None:
        return
    if selection() != awaited.preview:  # another choice: no switch (the default's answers stay kept)
        AWAITED.clear()
    elif awaited.error is not None:
        st.warning(md(f"The default recipe ({awaited.default.label}) could not be computed: {awaited.error}. "
                      f"Showing {awaited.preview.backbone}."))
    else:
        _banner()


@st.fragment(run_every=POLL_SECONDS)
def _banner() -> None:
    awaited, job = AWAITED.get(), awaited_job()
    if awaited is None or selection() != awaited.preview:  # changed since the page was drawn
        st.rerun(scope="app")
    if job is not None and job.done.is_set():
        if job.error is None:
            AWAITED.clear()
            set_selection(awaited.default)
        else:
            AWAITED.set(replace(awaited, error=job.error))
        st.rerun(scope="app")  # the whole studio on the default (or the one-line problem: no timer)
    fraction, text = (job.meter.fraction, job.meter.text or "starting") if job else (0.0, "starting")
    with st.container(border=True):
        st.caption(md(f"Showing the quick recipe ({awaited.preview.backbone}) while the default recipe "
                      f"({awaited.default.backbone}) is computed in the background; the studio switches to it by "
                      "itself when it is ready."))
        st.progress(min(1.0, fraction), text=md(text))
        if st.button("Stay on the quick recipe", key="preview_stay"):
            AWAITED.clear()
            st.rerun(scope="app")
