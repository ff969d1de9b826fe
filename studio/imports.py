"""Your own models in the studio: scores and embeddings files entered as methods and backbones.

At the start of every run (``studio.sidebar``), before any choice is drawn, the studio enters each file of the
chosen folder's ``methods/`` (``NAME.csv``: scores; ``NAME.npz`` / ``NAME.parquet``: embeddings) and each file
the CLI's ``studio`` command handed over in ``$TLL_IMPORTS`` (a JSON list of ``["scores" | "embeddings", NAME,
"/abs/path"]``), with ``tll_core.imported``. A file is read again only when its (size, mtime, inode) changed, or
when the register no longer holds it (another folder's file of the same name was entered meanwhile). A file
that does not read is one warning naming it, and is not entered; a file taken out of ``methods/`` (or the
files of a folder no longer chosen) takes its method or backbone away again. The sidebar's upload goes through
``tll_core.imported.save_upload``: checked, written atomically into ``methods/``, entered.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from tll_core.api import IMPORTS_ENV  # set by `python -m tll_core studio --scores/--embeddings` (run_studio)
from tll_core.dataset import allowed_data_folder
from tll_core.errors import TLLError, quoted, shown_path
from tll_core.imported import (METHODS_FOLDER, add_embeddings, add_scores, checked_name, entry, methods_in,
                               remove_entry, save_upload)

from .session import DEMO_DIR

KINDS = {"scores": "matcher", "embeddings": "backbone"}  # $TLL_IMPORTS's words → the register's kinds


@dataclass(frozen=True)
class Source:
    """One file to enter: the kind of part (``matcher`` or ``backbone``), its name and the file."""

    kind: str
    name: str
    path: Path


@dataclass(frozen=True)
class _Entered:
    stamp: tuple[int, int, int]  # (size, mtime_ns, inode) of the file when it was entered
    problem: str | None  # None: entered


_lock = threading.Lock()  # the register is the process's: sessions enter files one at a time
_entered: dict[Source, _Entered] = {}
_from_folders: dict[tuple[str, str], Source] = {}  # (kind, name) → the methods/ file the studio entered it from


def enter_imports(data: str) -> list[str]:
    """Enter the files of ``$TLL_IMPORTS`` and of ``<data>/methods/`` (cheaply when none changed); take away
    what the studio entered from a methods file that is gone, or from another folder. One line per file that
    does not read, naming it."""
    handed, problems = handed_over(os.environ.get(IMPORTS_ENV, ""))
    in_folder, skipped = _folder_sources(data, {(s.kind, s.name) for s in handed})
    problems += skipped
    with _lock:
        problems += [p for s in handed if (p := _enter(s))]
        problems += [p for s in in_folder if (p := _enter(s))]
        kept = {(s.kind, s.name): s for s in in_folder}
        for key, source in list(_from_folders.items()):
            if kept.get(key) != source:
                if _holds(source):
                    remove_entry(*key)
                del _from_folders[key]
        _from_folders.update(kept)
    return problems


def handed_over(text: str) -> tuple[list[Source], list[str]]:
    """The files of ``$TLL_IMPORTS`` (a JSON list of ``[kind, NAME, path]``), and one line for each entry
    that is not one."""
    if not text.strip():
        return [], []
    try:
        items = json.loads(text)
    except (ValueError, RecursionError):
        return [], [f"${IMPORTS_ENV}: not a JSON list of [\"scores\" or \"embeddings\", NAME, path]"]
    if not isinstance(items, list):
        return [], [f"${IMPORTS_ENV}: not a JSON list of [\"scores\" or \"embeddings\", NAME, path]"]
    sources, problems = [], []
    for i, item in enumerate(items, start=1):
        if not (isinstance(item, list) and len(item) == 3 and all(isinstance(x, str) for x in item)
                and item[0] in KINDS):
            problems.append(f"${IMPORTS_ENV} entry {i}: not [\"scores\" or \"embeddings\", NAME, path]")
            continue
        try:
            sources.append(Source(KINDS[item[0]], checked_name(item[1]), Path(item[2])))
        except TLLError as exc:
            problems.append(f"${IMPORTS_ENV} entry {i}: {exc}")
    return sources, problems


def _folder_sources(data: str, taken: set[tuple[str, str]]) -> tuple[list[Source], list[str]]:
    """The files of ``<data>/methods/`` as sources (none for a folder the studio may not open), and one line
    for each that cannot be entered by its name."""
    try:
        if Path(data) != DEMO_DIR:
            allowed_data_folder(data)  # confined to $TLL_DATA_ROOTS when set, as the folder's engine is
    except TLLError:
        return [], []  # the page says so
    try:
        scores, embeddings = methods_in(Path(data).expanduser())
    except TLLError as exc:
        return [], [str(exc)]
    except OSError:
        return [], []  # an unreadable folder: the page says what is wrong with it
    sources, problems = [], []
    for kind, paths in (("matcher", scores), ("backbone", embeddings)):
        for path in paths:
            try:
                name = checked_name(path.stem)
            except TLLError as exc:
                problems.append(f"{shown_path(path)}: {exc}")
                continue
            if (kind, name) in taken:
                what = "method" if kind == "matcher" else "backbone"
                problems.append(f"{shown_path(path)}: the {what} {quoted(name)} is taken already (by a file handed to "
                                f"the studio, or another file of {METHODS_FOLDER}/ with that name); rename it")
                continue
            taken.add((kind, name))
            sources.append(Source(kind, name, path))
    return sources, problems


def _enter(source: Source) -> str | None:
    """Enter one file unless it is entered as it is now; its problem (it is then not entered), or None."""
    try:
        now = os.stat(source.path)
    except OSError as exc:
        problem = f"{shown_path(source.path)}: cannot read ({exc.strerror or exc})"
        _entered.pop(source, None)
        return problem
    stamp = (now.st_size, now.st_mtime_ns, now.st_ino)
    known = _entered.get(source)
    if known is not None and known.stamp == stamp and (known.problem is not None or _holds(source)):
        return known.problem
    try:
        (add_scores if source.kind == "matcher" else add_embeddings)((source.name, source.path))
        problem = None
    except TLLError as exc:
        problem = str(exc)
        if _holds(source):  # the file was good and is not now: its old entry goes
            remove_entry(source.kind, source.name)
    _entered[source] = _Entered(stamp, problem)
    return problem


def _holds(source: Source) -> bool:
    """Whether the register holds ``source``'s name as entered from its file."""
    found = entry(source.kind, source.name)  # (the file as entered: made absolute, or resolved)
    return found is not None and Path(found[0]).resolve() == source.path.resolve()


def save_uploaded(data: str, filename: str, content: bytes, tasks) -> tuple[str, str, Path]:  # tasks: TaskSet
    """An upload checked, saved into ``<data>/methods/`` and entered (``tll_core.imported.save_upload``), and
    remembered as entered, so the next run does not read it again; ``(kind, NAME, file)``."""
    with _lock:
        kind, name, path = save_upload(Path(data).expanduser(), filename, content, tasks)
        source = Source(kind, name, path)
        now = os.stat(path)
        _entered[source] = _Entered((now.st_size, now.st_mtime_ns, now.st_ino), None)
        _from_folders[kind, name] = source
    return kind, name, path
