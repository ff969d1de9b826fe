"""Runs that persist: every method evaluated on a folder (the CLI's ``evaluate``, the API's ``evaluate``, the
studio's leaderboard) is kept as a :class:`Run`, so a later session lists it, reopens it and can tell whether
the folder changed since.

A run holds its selection (every field, as :meth:`Selection.to_query` spells it, so
:meth:`Selection.from_query` reopens it), its label, its figures under each protocol evaluated (the
:class:`ResultRow`'s JSON: top-1/2/5, MRR, the top-2 CI; recall@k and the gallery's size), the seconds each
protocol took, when it ran, the folder's content fingerprint (:meth:`Dataset.fingerprint`) and its cache keys
(the embedding cache's backbone identities and the trained-matcher store's key: a stored key means the matcher
is not trained again).

A :class:`RunStore` belongs to one data folder and lives in the cache folder, never in the data folder:
``<cache>/runs/<sha1 of the folder's resolved path>.json`` (as the tags do). A run's id is the digest of its
selection, imported files and content: the same selection on the same content replaces its run (the
protocols evaluated before are kept), the same selection on changed content is a new run, and the old one shows
as stale. Every change re-reads the file under a lock and writes it whole, atomically; at most
:data:`MAX_RUNS` are kept (the oldest go first). A damaged file is moved aside (kept, ``….damaged-<time>``)
with a one-line notice and an empty store started; one that cannot be read at all is an error and nothing is
written over it. JSON only, never a pickle.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .backbones.registry import Ensemble
from .files import move_aside
from .cache import DAMAGED, CacheNotice, default_cache_dir
from .embeddings import view_identity
from .engine import Engine, Method
from .errors import DataError, TLLError, one_line
from .evaluation.results import ResultRow
from .files import read_regular
from .submission import write_atomically

MAX_RUNS = 500  # per folder; the oldest runs go first beyond it
MAX_FILE_BYTES = 16 * 2**20  # a run is ~1 KB: far beyond MAX_RUNS of them; a larger file is not read
VERSION = 1
_LOCK = threading.Lock()  # the studio's sessions are threads of one process; flock serves between processes


class RunsError(TLLError):
    """A runs file that cannot be read, or a run that cannot be stored or found."""


@dataclass(frozen=True)
class Run:
    """One selection evaluated on one folder content."""

    id: str
    label: str
    query: dict[str, str]  # every field of the selection (Selection.from_query reopens it)
    content: str  # the folder's content fingerprint when it ran
    when: float  # seconds since the epoch, when it (last) ran
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)  # protocol → ResultRow.as_dict()
    seconds: dict[str, float] = field(default_factory=dict)  # protocol → seconds it took
    embeddings: tuple[str, ...] = ()  # the embedding cache's identities of its backbone's parts
    matcher: str | None = None  # the trained-matcher store's key (None: nothing trained)
    sources: tuple[tuple[str, str], ...] = ()  # imported files it reads (file, content digest)

    def figure(self, name: str, protocol: str = "tasks") -> float | None:
        value = self.figures.get(protocol, {}).get(name)
        return value if isinstance(value, (int, float)) and math.isfinite(value) else None

    @property
    def ci(self) -> tuple[float, float] | None:
        found = self.figures.get("tasks", {}).get("top2_ci")
        return tuple(found) if isinstance(found, list) and len(found) == 2 and None not in found else None

    @property
    def took(self) -> float:
        """Seconds every protocol evaluated took together."""
        return float(sum(self.seconds.values()))

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "query": self.query, "content": self.content, "when": self.when,
                "figures": self.figures, "seconds": self.seconds, "embeddings": list(self.embeddings),
                "matcher": self.matcher, "sources": [list(s) for s in self.sources]}

    @classmethod
    def from_json(cls, data: Any) -> Run:
        """A run from its JSON; ValueError saying what is wrong otherwise."""
        if not isinstance(data, dict):
            raise ValueError("a run is not a JSON object")
        try:
            run = cls(str(data["id"]), str(data["label"]), _strings(data["query"]), str(data["content"]),
                      float(data["when"]), _figures(data.get("figures", {})), _seconds(data.get("seconds", {})),
                      tuple(str(e) for e in data.get("embeddings", [])),
                      None if data.get("matcher") is None else str(data["matcher"]),
                      tuple((str(f), str(d)) for f, d in data.get("sources", [])))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"a run lacks or mistypes {one_line(str(exc))[:60]}") from None
        if not math.isfinite(run.when):
            raise ValueError(f"run {one_line(run.id)[:20]}: its time is not a number")
        return run


def run_id(query: dict[str, str], sources: Sequence[tuple[str, str]], content: str) -> str:
    """The same selection (every field, and the imported files it reads) on the same content: the same id."""
    material = json.dumps([query, [list(s) for s in sources], content], sort_keys=True)
    return hashlib.sha1(material.encode()).hexdigest()[:16]


def store_path(data_folder: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where a data folder's runs live: one JSON file per folder, named by the SHA-1 of its resolved path."""
    folder_id = hashlib.sha1(os.fsencode(Path(data_folder).resolve())).hexdigest()
    return (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "runs" / f"{folder_id}.json"


@dataclass
class RunStore:
    """One data folder's runs, newest first. Open it with :meth:`open`."""

    path: Path
    runs: list[Run] = field(default_factory=list)
    notice: str | None = None  # one line when a damaged file was moved aside

    @classmethod
    def open(cls, data_folder: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> RunStore:
        store = cls(store_path(data_folder, cache_dir))
        store.reload()
        return store

    def reload(self) -> None:
        """Read the file again (another session or process may have recorded a run)."""
        self.runs, notice = _read(self.path)
        self.notice = notice or self.notice

    def list(self) -> list[Run]:
        """Every run, newest first."""
        return list(self.runs)

    def get(self, run_id_: str) -> Run | None:
        return next((r for r in self.runs if r.id == run_id_), None)

    def record(self, run: Run) -> Run:
        """Store ``run``; a run of the same id is replaced, keeping the protocols ``run`` does not carry (and
        their seconds). The run as stored."""
        with self._locked():
            old = self.get(run.id)
            if old is not None:
                run = replace(run, figures={**old.figures, **run.figures}, seconds={**old.seconds, **run.seconds})
            kept = [r for r in self.runs if r.id != run.id]
            self._write(sorted([run, *kept], key=lambda r: -r.when)[:MAX_RUNS])
        return run

    def delete(self, run_id_: str) -> Run:
        """Remove a run by id (a unique prefix will do); the run removed. An unknown id is a one-line error."""
        with self._locked():
            found = [r for r in self.runs if r.id.startswith(run_id_)] if run_id_ else []
            if len(found) != 1:
                what = "no run" if not found else f"{len(found)} runs"
                raise RunsError(f"{what} with id {one_line(run_id_)[:40]!r} in {self.path.name}; see `runs` for the ids")
            self._write([r for r in self.runs if r is not found[0]])
        return found[0]

    def damaged(self) -> list[Path]:
        """The damaged copies of this folder's runs file kept beside it."""
        return sorted(self.path.parent.glob(f"{self.path.name}{DAMAGED}*"))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the folder's lock (threads and processes), with the runs read afresh."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunsError(f"runs file {self.path}: cannot write ({exc.strerror or exc})") from None
        try:
            with _LOCK:
                fcntl.flock(lock, fcntl.LOCK_EX)
                self.reload()
                yield
        finally:
            os.close(lock)  # releases the flock

    def _write(self, runs: list[Run]) -> None:
        text = json.dumps({"version": VERSION, "runs": [r.as_json() for r in runs]}, ensure_ascii=False, indent=1,
                          allow_nan=False)
        write_atomically(self.path, text.encode("utf-8"))
        self.runs = runs


def _read(path: Path) -> tuple[list[Run], str | None]:
    """(the runs in ``path``, newest first; a notice if it was damaged and moved aside); ([], None) when none."""
    if not os.path.lexists(path):
        return [], None
    try:
        raw = read_regular(path, str(path), MAX_FILE_BYTES, root=path.parent.resolve())
    except DataError as exc:
        raise RunsError(f"runs file {exc}; nothing was changed (fix or remove it)") from None
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
            raise ValueError("not a runs file (an object with a list of runs)")
        runs = [Run.from_json(r) for r in data["runs"]]
        return sorted(runs, key=lambda r: -r.when), None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return [], _move_aside(path, str(exc))


def _move_aside(path: Path, why: str) -> str:
    return move_aside(path, "runs file", why, RunsError, DAMAGED)


def _strings(data: Any) -> dict[str, str]:
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValueError("a run's selection is not a map of names to text")
    return dict(data)


def _figures(data: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError("a run's figures are not a map of protocols to figures")
    return {str(k): dict(v) for k, v in data.items()}


def _seconds(data: Any) -> dict[str, float]:
    if not isinstance(data, dict):
        raise ValueError("a run's seconds are not a map of protocols to seconds")
    out = {str(k): float(v) for k, v in data.items()}
    if not all(math.isfinite(v) and v >= 0 for v in out.values()):
        raise ValueError("a run's seconds are not finite")
    return out


# ------------------------------------------------------------------ what the evaluations call


@dataclass(frozen=True)
class Evaluated:
    """A selection's rows, as ``tll_core.selection.evaluated`` describes it (this module never imports the
    selection module, which records through it)."""

    query: dict[str, str]  # Selection.to_query(every=True)
    label: str
    backbone: str
    method: Method
    uses_backbone: bool
    sources: tuple[tuple[str, str], ...]
    val_fraction: float
    seed: int
    rows: tuple[ResultRow, ...]


def run_of(eng: Engine, chosen: Evaluated, content: str) -> Run:
    """The run of ``chosen`` on the engine's folder as fingerprinted (``content``)."""
    rows = chosen.rows
    embeddings, matcher = (), None
    if chosen.uses_backbone:
        embeddings = tuple(view_identity(eng.backbone(part), "") for part in Ensemble.parse(chosen.backbone).parts)
        tasks, fit = eng.tasks_for("validation", chosen.val_fraction, chosen.seed)
        matcher = eng.matcher_key(chosen.method, chosen.backbone, fit, tasks)  # a transductive fit's key covers them
    return Run(run_id(chosen.query, chosen.sources, content), chosen.label, dict(chosen.query), content, time.time(),
               {r.protocol: r.as_dict() for r in rows},
               {r.protocol: r.seconds for r in rows if math.isfinite(r.seconds)}, embeddings, matcher, chosen.sources)


def record_rows(eng: Engine, evaluated: Sequence[Evaluated], cache_dir: str | os.PathLike[str] | None = None) -> int:
    """Record each selection's rows of an evaluation on the engine's folder (a row that did not run, or an engine
    without a cache: not recorded). Never fails the evaluation: a store that cannot take them is one warning
    (:class:`CacheNotice`). How many were recorded."""
    if eng.cache is None and cache_dir is None:  # no cache: nothing is stored, runs included
        return 0
    chosen = [replace(e, rows=tuple(r for r in e.rows if not r.skipped)) for e in evaluated]
    chosen = [e for e in chosen if e.rows]
    if not chosen:
        return 0
    try:
        content = eng.dataset.fingerprint()
        store = RunStore.open(eng.dataset.root, cache_dir if cache_dir is not None else eng.cache.directory)
        for e in chosen:
            store.record(run_of(eng, e, content))
    except TLLError as exc:
        warnings.warn(CacheNotice(f"runs not recorded: {one_line(str(exc))}"), stacklevel=2)
        return 0
    if store.notice:
        warnings.warn(CacheNotice(store.notice), stacklevel=2)
    return len(chosen)
