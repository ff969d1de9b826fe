"""Your own model as a first-class method: scores and embeddings computed elsewhere, entered as parts.

- **Scores** (``--scores [NAME=]FILE``, or ``<data>/methods/NAME.csv``): a CSV in the submission format,
  ``left,c0..c19``, one finite score per candidate (higher = more alike), for the tasks ``tasks`` exports (the
  same split, fraction, seed and foils). NAME is entered in the register as a matcher that scores by the
  lefts' names (:class:`ImportedScores`), so every front end lists, evaluates and compares it like any other
  method; it uses no backbone.
- **Embeddings** (``--embeddings [NAME=]FILE``, or ``<data>/methods/NAME.npz|.parquet``): NAME enters the
  backbone table (family ``imported``, ``tll_core/backbones/imported.py``), so every metric, matcher,
  re-ranker, ensemble (``NAME+combined``), the map and ``submit`` take it.

A changed file is entered again under its content digest; a problem is one line naming the file and the row
or name, and nothing is entered.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from .backbones.imported import EMBEDDING_SUFFIXES, imported_cfg, read_embeddings
from .backbones.registry import BACKBONES, add_backbone, remove_backbone
from .dataset import MAX_CSV_BYTES, Dataset, read_csv_rows
from .errors import TLLError, quoted, shown_path
from .evaluation.tasks import TaskSet
from .files import read_regular
from .matchers.base import Embedded, Fixed, GallerySearch, NoGallery
from .register import REGISTER, Part
from .submission import HEADER, score_problem

SCORES_SUFFIXES = (".csv",)
METHODS_FOLDER = "methods"  # <data folder>/methods/: files there are the studio's imported methods
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
IMPORTED_METRIC = "own"  # what an imported-scores row shows in its metric column


def named_file(text: str) -> tuple[str, Path]:
    """``NAME=FILE`` or ``FILE`` (the name is then the file's stem): the name checked, the path as given."""
    name, sep, file = text.partition("=")
    path = Path(file if sep else text)
    return checked_name(name if sep else path.stem), path


def checked_name(name: str) -> str:
    """A name for an imported method or backbone: 1-64 letters, digits, '.', '_' or '-', and no built-in part's
    or backbone's name (of any kind: a row named 'combined' or 'zero-shot' would read as the built-in one)."""
    if not NAME.fullmatch(name):
        raise TLLError(f"name {quoted(name)}: use 1-64 letters, digits, '.', '_' or '-' (starting with a letter "
                       "or digit) for an imported method or backbone")
    built_in = {p.name for kind in ("family", "matcher", "rerank", "metric", "figure") for p in REGISTER.parts(kind)
                if p.metric != IMPORTED_METRIC} | {n for n, cfg in BACKBONES.items() if cfg.family != "imported"}
    if name in built_in:
        raise TLLError(f"{name}: already the name of a built-in part or backbone; import it under another name "
                       "(NAME=FILE)")
    return name


def distinct(named: list[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """Refuse one NAME given twice in one command (the second file would silently replace the first)."""
    seen: dict[str, Path] = {}
    for name, path in named:
        if name in seen:
            raise TLLError(f"{name}: named twice ({shown_path(seen[name])} and {shown_path(path)}); give each file its "
                           "own NAME=")
        seen[name] = path
    return named


def file_digest(path: Path, cap: int) -> str:
    return hashlib.sha1(read_regular(path, shown_path(path), cap)).hexdigest()


# ---------------------------------------------------------------- scores


def read_scores(path: str | Path, tasks: TaskSet, name: str = "") -> np.ndarray:
    """``[n, 20]`` scores of ``tasks`` from a ``left,c0..c19`` CSV: column ``cK`` scores the task's candidate K
    (as ``tasks`` exports them). One line naming the file and row on any problem; a file whose lefts are not
    these tasks' lefts is named as made for other tasks."""
    path = Path(path)
    where = path.name
    rows, problems = read_csv_rows(path, HEADER, confined=False)
    if problems:
        raise TLLError(problems[0] + (f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""))
    if not rows:
        raise TLLError(f"{where}: no rows (expected one per left of the {len(tasks)} tasks)")
    at = {left: i for i, left in enumerate(tasks.left_names)}
    first: dict[str, int] = {}
    scores = np.empty(tasks.candidates.shape, dtype=np.float64)
    unknown = [(line, left) for line, (left, *_) in rows if left not in at]
    absent = len(set(at) - {left for _, (left, *_) in rows})
    if len(unknown) + absent > 1:  # more than a stray or a lost row: another split, fraction or seed
        raise TLLError(f"{where}: made for other tasks: {len(unknown)} of its {len(rows)} lefts are not among the "
                       f"{len(tasks)} lefts of these tasks ({tasks.name}) and {absent} of those have no row; "
                       "export the tasks you score with `python -m tll_core tasks` and the same "
                       "--split/--val-fraction/--seed/--foils")
    if unknown:
        raise TLLError(f"{where} line {unknown[0][0]}: left {quoted(unknown[0][1])} is not a left of these tasks")
    for line, (left, *cells) in rows:
        if left in first:
            raise TLLError(f"{where} line {line}: left {quoted(left)} is listed twice (first at line {first[left]})")
        first[left] = line
        for column, value in zip(HEADER[1:], cells):
            problem = score_problem(value) or (None if np.isfinite(np.float32(float(value))) else
                                                f"{value.strip()} is beyond float32's range")
            if problem:
                raise TLLError(f"{where} line {line} ({column}): {problem}")
        scores[at[left]] = [float(v) for v in cells]
    missing = [left for left in tasks.left_names if left not in first]
    if missing:
        raise TLLError(f"{where}: no row for left {quoted(missing[0])}"
                       + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
                       + f" (one row per left of the {len(tasks)} tasks)")
    return scores.astype(np.float32)


@dataclass(frozen=True)
class ImportedScores(Fixed):
    """A matcher made of a scores file: it scores the tasks the file was made for, by their lefts' names."""

    name: str
    path: str  # as given (messages name the file the user named)
    digest: str
    uses_embeddings: ClassVar[bool] = False

    def score_tasks(self, tasks: TaskSet, embedded: Embedded, flip_tta: bool) -> np.ndarray:
        if file_digest(Path(self.path), MAX_CSV_BYTES) != self.digest:
            raise TLLError(f"{shown_path(self.path)}: changed since it was added as method {self.name}; add it again")
        return read_scores(self.path, tasks, self.name)

    def score(self, left: np.ndarray, right: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        raise TLLError(f"{self.name}: imported scores are read by the lefts' names; they score the tasks they were "
                       "made for, not embeddings")

    def gallery(self, left: np.ndarray, gallery: np.ndarray) -> GallerySearch:
        raise NoGallery(f"{self.name}: imported scores cover 20 candidates per left; the full-gallery protocol "
                       "needs a score for every left and right (import embeddings instead)")


# ---------------------------------------------------------------- entering parts


def add_scores(text: str | tuple[str, Path]) -> str:
    """Enter a scores file as the matcher NAME (``NAME=FILE`` or ``FILE``); returns NAME. The file is read
    whole when scored (checked against the tasks then); here only that it can be read."""
    name, path = named_file(text) if isinstance(text, str) else (checked_name(text[0]), Path(text[1]))
    if path.suffix.lower() not in SCORES_SUFFIXES:
        raise TLLError(f"{shown_path(path)}: scores must be a .csv file (left,c0..c19)")
    digest = file_digest(path, MAX_CSV_BYTES)
    scores = ImportedScores(name, str(path.absolute()), digest)
    REGISTER.add(Part("matcher", name, lambda: scores, help=f"scores imported from {path.name}",
                      metric=IMPORTED_METRIC), replace=True)
    return name


def add_embeddings(text: str | tuple[str, Path]) -> str:
    """Enter an embeddings file as the backbone NAME (``NAME=FILE`` or ``FILE``), read and checked now;
    returns NAME."""
    name, path = named_file(text) if isinstance(text, str) else (checked_name(text[0]), Path(text[1]))
    add_backbone(imported_cfg(name, path, read_embeddings(path)))
    return name


def check_images(dataset: Dataset) -> None:
    """Every imported backbone names only images of ``dataset`` (a name of another folder is a wrong file)."""
    images = dataset.image_ids()
    for name in imported_names("backbone"):
        cfg = BACKBONES[name]
        foreign = [n for n in read_embeddings(cfg.model_id).names if n not in images]
        if foreign:
            raise TLLError(f"{shown_path(cfg.model_id)}: {quoted(foreign[0])}"
                           + (f" and {len(foreign) - 1} more name(s) are" if len(foreign) > 1 else " is")
                           + f" not an image of {shown_path(dataset.root)} (names are paths relative to it, e.g. "
                           "train/left/abc.jpg)")


def methods_in(folder: str | Path) -> tuple[list[Path], list[Path]]:
    """The scores files and the embeddings files in ``<folder>/methods/`` (regular files, by name)."""
    root = Path(folder) / METHODS_FOLDER
    if not root.is_dir():
        return [], []
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.is_symlink() and not p.name.startswith("."))
    return ([p for p in files if p.suffix.lower() in SCORES_SUFFIXES],
            [p for p in files if p.suffix.lower() in EMBEDDING_SUFFIXES])


def forget_imports() -> None:
    """Take every imported method and backbone out of the register and the table (another data folder, a test)."""
    for name in imported_names("matcher"):
        REGISTER.remove("matcher", name)
    for name in imported_names("backbone"):
        remove_backbone(name)


def imported_names(kind: str) -> tuple[str, ...]:
    """The imported methods (``matcher``) or backbones (``backbone``) entered so far."""
    if kind == "matcher":
        return tuple(p.name for p in REGISTER.parts("matcher") if p.metric == IMPORTED_METRIC)
    return tuple(name for name, cfg in BACKBONES.items() if cfg.family == "imported")
