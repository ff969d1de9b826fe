"""The user's own labels on lefts ("colour match", "face ↔ cartoon", "label noise"): stored, counted, exported.

A :class:`TagStore` belongs to one data folder and lives in the cache folder as JSON,
``<cache>/tags/<sha1 of the folder's resolved path>.json``, mapping a left's name to its sorted tags. Every
change re-reads the file, applies itself and writes the whole file atomically (a private temporary file, then
``os.replace``): two studio tabs adding tags never lose each other's work, and a crash mid-write leaves the old
file whole.

A tag is free text, trimmed, at most :data:`MAX_TAG_CHARS` characters, with no control or invisible character
and no ``;`` (the CSV export joins a left's tags with it); anything else is refused with one line.

A damaged file (not JSON, or not a map of names to lists of valid tags) is never written over: it is moved
aside, renamed ``<id>.json.damaged-<time>`` (kept, as the embedding cache keeps a damaged database), the store
starts empty and says so in :attr:`TagStore.notice`. A file that cannot be read at all (permissions, a folder
in its place) is an error: nothing is moved or written until it is readable.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .analysis import Failure
from .files import move_aside
from .cache import DAMAGED, default_cache_dir  # a damaged file is named as the cache names its own
from .errors import DataError, TLLError, one_line
from .files import read_regular
from .evaluation.metrics import truth_ranks
from .submission import write_atomically
from .evaluation.tasks import TaskSet

MAX_TAG_CHARS = 40
MAX_FILE_BYTES = 16 * 2**20  # far beyond any hand-made labelling; a larger file is not read
SEPARATOR = ";"  # between a left's tags in the CSV export, so never inside a tag
CSV_HEADER = ("left", "tags", "truth rank", "margin", "truth score", "top-2 hit")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class TagError(TLLError):
    """A tag that cannot be stored, or a tags file that cannot be read."""


def clean_tag(text: str) -> str:
    """``text`` trimmed, if it is a usable tag; a one-line :class:`TagError` saying why not otherwise."""
    if not isinstance(text, str):
        raise TagError(f"a tag must be text, not {type(text).__name__}")
    tag = text.strip()
    if not tag:
        raise TagError("a tag cannot be empty")
    shown = one_line(tag[:MAX_TAG_CHARS])
    if len(tag) > MAX_TAG_CHARS:
        raise TagError(f"tag '{shown}…' is {len(tag)} characters long; a tag may have at most {MAX_TAG_CHARS}")
    if any(not c.isprintable() and c != " " for c in tag):
        raise TagError(f"tag '{shown}' holds a control or invisible character; use plain text")
    if SEPARATOR in tag:
        raise TagError(f"tag '{shown}' holds '{SEPARATOR}', which separates tags in the CSV export")
    return tag


def store_path(data_folder: str | os.PathLike[str], cache_dir: Path | None = None) -> Path:
    """Where a data folder's tags live: one JSON file per folder, named by the SHA-1 of its resolved path
    (stable across runs, and never a name taken from the folder)."""
    folder_id = hashlib.sha1(os.fsencode(Path(data_folder).resolve())).hexdigest()
    return (cache_dir or default_cache_dir()) / "tags" / f"{folder_id}.json"


@dataclass
class TagStore:
    """One data folder's tags: left name → sorted tags. Open it with :meth:`open`."""

    path: Path
    tags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    notice: str | None = None  # one line when a damaged file was moved aside on opening

    @classmethod
    def open(cls, data_folder: str | os.PathLike[str], cache_dir: Path | None = None) -> TagStore:
        store = cls(store_path(data_folder, cache_dir))
        store.reload()
        return store

    def reload(self) -> None:
        """Read the file again (another tab or process may have changed it)."""
        self.tags, notice = _read(self.path)
        self.notice = notice or self.notice

    def tags_of(self, left: str) -> tuple[str, ...]:
        return self.tags.get(left, ())

    def names(self) -> tuple[str, ...]:
        """Every tag in use, sorted."""
        return tuple(sorted({t for tags in self.tags.values() for t in tags}))

    def add(self, left: str, tag: str) -> str:
        """Tag ``left`` (stored at once); the tag as stored (trimmed)."""
        tag = clean_tag(tag)
        self._change(left, lambda tags: tags | {tag})
        return tag

    def remove(self, left: str, tag: str) -> None:
        """Untag ``left`` (stored at once); a tag it does not carry is no change."""
        self._change(left, lambda tags: tags - {tag.strip() if isinstance(tag, str) else tag})

    def retag(self, left: str, shown: Iterable[str], wanted: Iterable[str]) -> tuple[str, ...]:
        """Apply one edit of a tag widget: the tags in ``wanted`` but not ``shown`` are added, those in
        ``shown`` but not ``wanted`` removed, in one write; tags added meanwhile by someone else stay. Each
        new tag is checked first: a bad one changes nothing. The left's tags now."""
        shown, wanted = set(shown), set(wanted)
        added = {clean_tag(t) for t in wanted - shown}
        removed = shown - wanted
        self._change(left, lambda tags: (tags - removed) | added)
        return self.tags_of(left)

    def tag_many(self, lefts: Iterable[str], tag: str) -> BulkTagging:
        """Tag every one of ``lefts`` in one write (a map selection, a Failures filter); the record that
        :meth:`undo` reverses: the lefts that did not carry the tag yet. A bad tag, or no lefts, changes
        nothing (one line)."""
        tag = clean_tag(tag)
        asked = tuple(dict.fromkeys(lefts))
        if not asked:
            raise TagError(f"no lefts to tag with '{tag}': select some first")
        if not all(isinstance(left, str) and left for left in asked):
            raise TagError("a left to tag must be named by non-empty text")
        self.reload()
        added = tuple(left for left in asked if tag not in self.tags_of(left))
        self._change_many({left: (lambda tags: tags | {tag}) for left in added})
        return BulkTagging(self.path, tag, added, len(asked))

    def undo(self, action: BulkTagging) -> int:
        """Reverse a bulk action exactly, on the file as it is now: its tag comes off the lefts it was added
        to, and only there; the lefts that carried it before keep it, and every other tag (one added since,
        in another tab) stays. How many lefts it came off (fewer when someone removed some meanwhile)."""
        if action.path != self.path:
            raise TagError("that bulk tagging was made on another data folder's tags; nothing was changed")
        self.reload()
        carrying = [left for left in action.added if action.tag in self.tags_of(left)]
        self._change_many({left: (lambda tags: tags - {action.tag}) for left in carrying})
        return len(carrying)

    def _change(self, left: str, change: Callable[[set[str]], set[str]]) -> None:
        """Re-read the file, change ``left``'s tags, and write the file again if they changed."""
        self.reload()
        self._change_many({left: change})

    def _change_many(self, changes: dict[str, Callable[[set[str]], set[str]]]) -> None:
        """Change the tags of each left in ``changes`` (of the tags as last read) and write the file once, if
        any changed."""
        tags = dict(self.tags)
        for left, change in changes.items():
            new = tuple(sorted(change(set(self.tags_of(left)))))
            tags.pop(left, None)
            if new:
                tags[left] = new
        if tags == self.tags:
            return
        text = json.dumps(dict(sorted(tags.items())), ensure_ascii=False, indent=1)
        write_atomically(self.path, text.encode("utf-8"))
        self.tags = tags


@dataclass(frozen=True)
class BulkTagging:
    """One bulk tagging, as :meth:`TagStore.undo` needs it: the store's file, the tag, and exactly the lefts it
    was added to (not those that carried it already: undoing leaves theirs alone)."""

    path: Path
    tag: str
    added: tuple[str, ...]
    asked: int  # how many lefts were asked: those added, and those that carried the tag already

    @property
    def carried(self) -> int:
        """How many of the lefts asked carried the tag already."""
        return self.asked - len(self.added)


def _read(path: Path) -> tuple[dict[str, tuple[str, ...]], str | None]:
    """(the tags in ``path``, a notice if it was damaged and moved aside); ({}, None) when there is none."""
    if not os.path.lexists(path):
        return {}, None
    try:
        raw = read_regular(path, str(path), MAX_FILE_BYTES, root=path.parent.resolve())
    except DataError as exc:
        raise TagError(f"tags file {exc}; nothing was changed (fix or remove it)") from None
    try:
        return _parse(json.loads(raw.decode("utf-8"))), None
    except (UnicodeDecodeError, ValueError, RecursionError, TagError) as exc:
        return {}, _move_aside(path, str(exc))


def _parse(data: object) -> dict[str, tuple[str, ...]]:
    if not isinstance(data, dict):
        raise ValueError("not a map of left names to tags")
    out = {}
    for left, tags in data.items():
        if not isinstance(tags, list):
            raise ValueError(f"the tags of '{one_line(left)[:80]}' are not a list")
        cleaned = tuple(sorted({clean_tag(t) for t in tags}))
        if cleaned:
            out[left] = cleaned
    return out


def _move_aside(path: Path, why: str) -> str:
    return move_aside(path, "tags file", why, TagError, DAMAGED)


# ------------------------------------------------------------------ figures per tag


@dataclass(frozen=True)
class TagRow:
    """One tag's figures over the lefts of a task set that carry it."""

    tag: str
    lefts: int  # tagged lefts in these tasks
    top2_hits: int  # of them, how many have their truth in the top 2 under the scores
    top2: float  # top2_hits / lefts
    mean_rank: float  # mean truth rank of the tagged lefts
    elsewhere: int  # lefts with this tag that are not in these tasks (another split or seed)


def tag_table(store: TagStore, tasks: TaskSet, scores: np.ndarray) -> list[TagRow]:
    """A row per tag in use, in name order: how many of its lefts are in ``tasks``, their top-2 hits and
    mean truth rank under ``scores``. Needs the truth (validation tasks)."""
    ranks = truth_ranks(scores, tasks.truth)
    where = {name: i for i, name in enumerate(tasks.left_names)}
    rows = []
    for tag in store.names():
        tagged = [left for left, tags in store.tags.items() if tag in tags]
        found = np.array([where[left] for left in tagged if left in where], dtype=np.int64)
        tag_ranks = ranks[found]
        hit = int((tag_ranks <= 2).sum())
        rows.append(TagRow(tag, len(found), hit, hit / len(found) if len(found) else float("nan"),
                           float(tag_ranks.mean()) if len(found) else float("nan"), len(tagged) - len(found)))
    return rows


def with_tag(found: Sequence[Failure], store: TagStore, tag: str | None) -> list[Failure]:
    """The failures carrying ``tag``; ``""``: those with no tag; None: all of them."""
    if tag is None:
        return list(found)
    if tag == "":
        return [f for f in found if not store.tags_of(f.left)]
    return [f for f in found if tag in store.tags_of(f.left)]


# ------------------------------------------------------------------ CSV export


def safe_cell(text: str) -> str:
    """A text cell a spreadsheet shows as text: one starting with ``= + - @`` (or a tab or carriage return)
    gets a leading apostrophe, so ``=HYPERLINK(…)`` in a name is never run as a formula (OWASP's CSV
    injection advice). Only for text cells: the export's numbers are written as numbers."""
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


def tags_csv(store: TagStore, tasks: TaskSet, scores: np.ndarray) -> str:
    """Every tagged left of ``tasks`` in task order: left, its tags joined by ``;``, truth rank, margin
    (best − truth score), truth score and whether it is a top-2 hit."""
    ranks = truth_ranks(scores, tasks.truth)
    truth_score = scores[np.arange(len(scores)), tasks.truth]
    margin = scores.max(axis=1) - truth_score
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for i, left in enumerate(tasks.left_names):
        tags = store.tags_of(left)
        if tags:
            writer.writerow([safe_cell(left), safe_cell(SEPARATOR.join(tags)), int(ranks[i]),
                             format(float(margin[i]), ".6g"), format(float(truth_score[i]), ".6g"),
                             "yes" if ranks[i] <= 2 else "no"])
    return text.getvalue()
