"""The studio's memo: every figure a page shows is computed here, by ``tll_core``, once per key; pages only lay
it out.

Each answer is kept per (folder, content fingerprint, selection, device) — the parts of the selection it
depends on — so replacing a folder's images or CSVs, or changing the selection, computes it again, and a rerun
with neither changed does not. Scores, map coordinates, training and the other answers that move a progress
bar are kept in a :class:`Memo`, not ``st.cache_data``: computing them moves a bar drawn by the page, which a
cached function may not do (its elements are recorded to be replayed, and a bar drawn outside it cannot be).
"""
from __future__ import annotations

import contextlib
import io
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from tll_core import search
from tll_core import selection as selections
from tll_core.engine import Engine, Method
from tll_core.errors import TLLError
from tll_core.matchers import EpochReport, TrainingCurve
from tll_core.progress import Reporter
from tll_core.evaluation.figures import Evaluation
from tll_core.evaluation.metrics import evaluate_scores
from tll_core.evaluation.results import ResultRow
from tll_core.report import ScoredMethod, build_report, headline, render_html
from tll_core.selection import Selection, backbone_sources
from tll_core.submission import check_output_path, submission_problems, write_submission
from tll_core.evaluation.tasks import DEFAULT_SEED, DEFAULT_VAL_FRACTION, TaskSet
from tll_core.thumbnails import THUMBNAIL_SIDE, thumbnail_urls
from tll_core.why import Rendered, WhyPair, centre_of, render, why

from . import session
from .folder import engine, engine_for, tag_store
from .progress import ProgressBar, progress_bar
from .session import data_folder, device, selection
from .widgets import show_error


class Memo:
    """The last ``size`` answers by key, shared by every session of the process (one per kind of answer).
    Answers are shared, not copied: their arrays are made read-only. Two sessions asking for the same key at
    once both compute it (the engine's caches make the second cheap)."""

    def __init__(self, size: int) -> None:
        self.size, self._answers, self._lock = size, OrderedDict(), threading.Lock()

    def peek(self, key: Hashable) -> Any | None:
        """The answer kept for ``key``, or None (nothing is computed)."""
        with self._lock:
            return self._answers.get(key)

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


def fingerprint(data: str, device_name: str = "auto") -> str:
    """The folder's content as it is now: part of every cached figure's key. Taken once per run (it stats
    every image, ~50 ms for tll-dev's 6000, and a page asks for it once per cached figure)."""
    taken = session.RUN_FINGERPRINTS.setdefault()
    if (data, device_name) not in taken:
        taken[data, device_name] = engine_for(data, device_name).dataset.fingerprint()
    return taken[data, device_name]


@contextlib.contextmanager
def one_run() -> Iterator[None]:
    """Around each run of app.py: the folder's fingerprint is taken afresh in every run (and callbacks, which
    run before it, take their own)."""
    session.RUN_FINGERPRINTS.clear()
    try:
        yield
    finally:
        session.RUN_FINGERPRINTS.clear()


def _chosen(sel: Selection, content: str | None = None) -> tuple[str, str, Selection, str, tuple]:
    """The key of an answer about ``sel`` on the chosen folder as it is now (``content``: its :func:`fingerprint`
    when the caller took it), on the chosen device (and the imported files it reads, as entered: a replaced
    one is scored again)."""
    data, device_name = data_folder(), device()
    return data, fingerprint(data, device_name) if content is None else content, sel, device_name, sel.sources


# ------------------------------------------------------------ scores and their figures


def scored(sel: Selection, bar: ProgressBar | None = None) -> tuple[TaskSet, np.ndarray]:
    """The task set of the selection's split and its [n, 20] scores, for the chosen folder's content as it is
    now; ``bar`` shows the embedding and training it takes when the answer is not kept yet."""
    key = _chosen(sel)
    return _scored(memo("scores", 64), lambda: engine_for(key[0], key[3]), key, bar)


def _scored(kept: Memo, opened: Callable[[], Engine], key: tuple[str, str, Selection, str, tuple],
            bar: Reporter | None) -> tuple[TaskSet, np.ndarray]:
    sel = key[2]

    def compute() -> tuple[TaskSet, np.ndarray]:
        eng = opened()
        tasks, fit = eng.tasks_for(sel.split, sel.val_fraction, sel.seed)
        images, epochs = (bar.images, bar.epoch) if bar else (None, None)
        if bar:
            bar.expect(eng.stages(tasks, sel.backbone, sel.to_method(), fit))
        return tasks, eng.score(tasks, sel.backbone, sel.to_method(), fit, progress=images, callback=epochs)

    return kept.get(key, compute)


def scores_or_stop(sel: Selection | None = None) -> tuple[Engine, TaskSet, np.ndarray]:
    """Engine, tasks and scores of a selection; a clear message and a stop on any failure."""
    eng = engine()
    if eng is None:
        st.stop()
    sel = sel or selection()
    try:
        with progress_bar(f"scoring {sel.label}") as bar:
            tasks, scores = scored(sel, bar)
    except TLLError as exc:
        show_error(exc)
        st.stop()
    return eng, tasks, scores


def figures(sel: Selection, bar: ProgressBar | None = None) -> Evaluation:
    """The selection's figures on its tasks: top-1/2/5, MRR and the top-2 bootstrap CI (seeded by its seed)."""
    def compute() -> Evaluation:
        tasks, scores = scored(sel, bar)
        return evaluate_scores(scores, tasks.truth, seed=sel.seed)

    return memo("figures", 64).get(_chosen(sel), compute)


def leaderboard_rows(sel: Selection, content: str, bar: ProgressBar | None = None) -> tuple[ResultRow, ResultRow]:
    """The selection's tasks and full-gallery rows on its validation split (``content``: the folder's
    :func:`fingerprint`, taken once per run for the whole leaderboard)."""
    data, _, _, device_name, _ = key = _chosen(sel, content)
    return memo("leaderboard rows", 64).get(
        key, lambda: selections.leaderboard_rows(engine_for(data, device_name), sel, bar))


def computed_elsewhere(sel: Selection, content: str) -> Callable[[Reporter], None]:
    """The work that leaves ``sel``'s leaderboard rows and scores kept (as the Overview and Ranked ask for them),
    runnable in a thread of its own: the session, the folder's engine and the memos are read here, in the
    script's thread, since Streamlit's state is out of reach from any other."""
    data, _, _, device_name, _ = key = _chosen(sel, content)
    eng = engine_for(data, device_name)
    rows, scores = memo("leaderboard rows", 64), memo("scores", 64)

    def work(bar: Reporter) -> None:
        rows.get(key, lambda: selections.leaderboard_rows(eng, sel, bar))
        _scored(scores, lambda: eng, key, None)  # the matcher the rows trained, from the engine's store

    return work


def kept_leaderboard_rows(sel: Selection, content: str) -> tuple[ResultRow, ResultRow] | None:
    """The selection's leaderboard rows if they were computed (by any session) for this content, else None."""
    return memo("leaderboard rows", 64).peek(_chosen(sel, content))


def report_html(sels: tuple[Selection, ...], compare: tuple[str, str] | None) -> bytes:
    """The HTML report (``tll_core.report``) of ``sels`` on their validation tasks — figures, McNemar tests, the
    first one's worst failures, the disagreements of ``compare`` (two labels; None: the first two) and the
    folder's tags — once per folder content, methods, pair and tags."""
    data, device_name = data_folder(), device()
    store = tag_store()
    tags = tuple(sorted(store.tags.items())) if store is not None else ()

    def compute() -> bytes:
        eng = engine_for(data, device_name)
        methods = []
        for sel in sels:
            tasks, scores = scored(sel)
            methods.append(ScoredMethod(sel.label, scores))
        _, fit = eng.tasks_for("validation", sels[0].val_fraction, sels[0].seed)
        title, summary = headline(eng.dataset, tasks, val_fraction=sels[0].val_fraction, seed=sels[0].seed,
                                  fit_pairs=len(fit))
        report = build_report(eng.dataset, tasks, methods, tags=store, compare=compare, seed=sels[0].seed,
                              title=title, summary=summary)
        return render_html(report).encode("utf-8")

    key = (data, fingerprint(data, device_name), sels, compare, tags, device_name)
    return memo("reports", 8).get(key, compute)


# ------------------------------------------------------------ the embedding map and the Why view


def map_space(sel: Selection, space: str) -> Method | None:
    """The method whose scoring space the map shows (``space`` "matcher"; re-ranking plays no part in it), or
    None for the backbone's own embeddings ("backbone", or a method that scores no embeddings)."""
    if space != "matcher" or not sel.uses_backbone:
        return None
    return replace(sel.to_method(), rerank="none", rerank_options=())


def map_coordinates(sel: Selection, projection: str, space: str = "matcher",
                    bar: ProgressBar | None = None) -> np.ndarray:
    """2-D coordinates of the selection's task set (lefts, then rights), by ``pca`` or ``umap``, of the vectors
    its matcher scores with (``space`` "matcher": after a learned matcher's map, fitted on the split's fit
    part) or of the backbone's embeddings ("backbone")."""
    data, device_name = data_folder(), device()
    matcher = map_space(sel, space)

    def compute() -> np.ndarray:
        eng = engine_for(data, device_name)
        tasks, fit = eng.tasks_for(sel.split, sel.val_fraction, sel.seed)
        return eng.embedding_map(tasks, sel.backbone, projection, sel.seed, progress=bar.images if bar else None,
                                 matcher=matcher, fit_pairs=fit, callback=bar.epoch if bar else None)

    key = (data, fingerprint(data, device_name), sel.backbone, sel.split, sel.val_fraction, sel.seed, projection,
           device_name, backbone_sources(sel.backbone), matcher)
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


# ------------------------------------------------------------ training (the Train page)


def train(sel: Selection, bar: ProgressBar | None = None,
          on_epoch: Callable[[EpochReport], None] | None = None) -> TrainingCurve:
    """Fit the learned matcher of ``sel`` on its validation split's fit part (from the trained-matcher store
    when it was trained before) and hand back its training curve; once per folder content and selection
    (``on_epoch`` hears each epoch only when it trains). This session remembers that it trained it."""
    key = _chosen(sel)
    curve = _training(key, bar, on_epoch)
    session.TRAINED.setdefault().add(key)
    return curve


def trained_curve(sel: Selection) -> TrainingCurve | None:
    """The curve of ``sel``'s matcher if it was trained (or taken from the store) in this session."""
    key = _chosen(sel)
    return _training(key) if key in session.TRAINED.get() else None


def _training(key: tuple[str, str, Selection, str, tuple], bar: ProgressBar | None = None,
              on_epoch: Callable[[EpochReport], None] | None = None) -> TrainingCurve:
    data, _, sel, device_name, _ = key

    def compute() -> TrainingCurve:
        eng = engine_for(data, device_name)
        tasks, fit = eng.tasks_for("validation", sel.val_fraction, sel.seed)
        return eng.fit(sel.to_method(), sel.backbone, fit, tasks=tasks, callback=on_epoch,
                       progress=bar.images if bar else None).curve

    return memo("training", 16).get(key, compute)


# ------------------------------------------------------------ the submission (the Submission page)


def submission(sel: Selection, out: Path, bar: ProgressBar | None = None) -> Path:
    """Write the Kaggle CSV of ``sel`` to ``out`` (refused before any scoring when ``out`` cannot take it):
    the test tasks scored as ``Engine.submit`` scores them (a learned matcher fitted on all train pairs),
    once per folder content and method; the file is written at every call."""
    data, device_name = data_folder(), device()
    check_output_path(out, engine_for(data, device_name).dataset)  # before the scoring: never the data's files
    tasks, scores = scored(replace(sel, split="test", val_fraction=DEFAULT_VAL_FRACTION, seed=DEFAULT_SEED), bar)
    return write_submission(out, tasks, scores)


@dataclass(frozen=True)
class CheckedSubmission:
    """A written submission as checked: its problems (none: valid), its first rows and its bytes."""

    problems: tuple[str, ...]
    preview: pd.DataFrame
    content: bytes


def checked_submission(path: str) -> CheckedSubmission:
    """The CSV at ``path`` as it is now, checked against the chosen folder's test_candidates.csv; checked again
    once the file or the folder changes. A file that is gone or unreadable raises a ``TLLError``."""
    data, device_name = data_folder(), device()
    try:
        now = os.stat(path)
        stamp: tuple[int, ...] | None = (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns)
    except OSError:
        stamp = None

    def compute() -> CheckedSubmission:
        problems = submission_problems(path, engine_for(data, device_name).dataset.root)
        with open(path, "rb") as fh:
            content = fh.read()
        return CheckedSubmission(tuple(problems), pd.read_csv(io.BytesIO(content), nrows=5), content)

    if stamp is None:  # gone: the check says so in one line, and nothing is kept
        return compute()
    return memo("submission checks", 16).get((path, stamp, data, fingerprint(data, device_name), device_name),
                                              compute)


# ------------------------------------------------------------ search by example (the Search page)


def uploaded_query(sel: Selection, name: str, data: bytes) -> tuple[search.Query, str]:
    """An uploaded image (bytes in memory, never written anywhere) checked and embedded under every view the
    selection's matcher scores, once per content and backbone, and the key that names it to :func:`nearest`;
    a bad file raises a one-line ``TLLError``."""
    image = search.read_upload(name, data)
    data_dir, device_name = data_folder(), device()
    method = sel.to_method()
    key = (image.sha1, str(image.path), sel.backbone, backbone_sources(sel.backbone),
           method.matcher().score_views(method.flip_tta), device_name)
    query = memo("search uploads", 16).get(
        key, lambda: search.upload_query(engine_for(data_dir, device_name), sel, image))
    return query, f"{search.UPLOAD_PREFIX}{image.sha1}"


def nearest(sel: Selection, query: search.Query, query_key: str, side: str, k: int,
            bar: ProgressBar | None = None) -> search.Nearest:
    """The ``k`` nearest of ``side`` to a query (``query_key``: what identifies it, an image id or an upload's
    digest), once per folder content, selection and query; the split made ready to search once per selection."""
    chosen = _chosen(sel)
    data_dir, _, _, device_name, _ = chosen

    def ready() -> search.Searcher:
        images, epochs = (bar.images, bar.epoch) if bar else (None, None)
        return search.searcher(engine_for(data_dir, device_name), sel, progress=images, callback=epochs)

    return memo("search", 32).get((*chosen, query_key, side, k),
                                  lambda: memo("searchers", 4).get(chosen, ready).nearest(query, side, k))
