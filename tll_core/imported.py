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
import tempfile
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
from .register import REGISTER, Part, Score
from .submission import HEADER, score_problem, write_atomically

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


def scores_by_left(path: str | Path) -> dict[str, tuple[int, list[float]]]:
    """A ``left,c0..c19`` CSV's rows by left: (line, 20 finite scores). One line naming the file and row on a
    wrong header or width, a score that is not a finite number, a left listed twice or no rows."""
    path = Path(path)
    where = path.name
    rows, problems = read_csv_rows(path, HEADER, confined=False)
    if problems:
        raise TLLError(problems[0] + (f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""))
    if not rows:
        raise TLLError(f"{where}: no rows (expected one per left of the tasks it scores)")
    by_left: dict[str, tuple[int, list[float]]] = {}
    for line, (left, *cells) in rows:
        if left in by_left:
            raise TLLError(f"{where} line {line}: left {quoted(left)} is listed twice (first at line {by_left[left][0]})")
        for column, value in zip(HEADER[1:], cells):
            problem = score_problem(value) or (None if np.isfinite(np.float32(float(value))) else
                                                f"{value.strip()} is beyond float32's range")
            if problem:
                raise TLLError(f"{where} line {line} ({column}): {problem}")
        by_left[left] = line, [float(v) for v in cells]
    return by_left


def read_scores(path: str | Path, tasks: TaskSet, name: str = "") -> np.ndarray:
    """``[n, 20]`` scores of ``tasks`` from a ``left,c0..c19`` CSV: column ``cK`` scores the task's candidate K
    (as ``tasks`` exports them). One line naming the file and row on any problem (:func:`scores_by_left`); a
    file whose lefts are not these tasks' lefts is named as made for other tasks."""
    path = Path(path)
    where = path.name
    by_left = scores_by_left(path)
    at = {left: i for i, left in enumerate(tasks.left_names)}
    unknown = [(line, left) for left, (line, _) in by_left.items() if left not in at]
    absent = len(set(at) - set(by_left))
    if len(unknown) + absent > 1:  # more than a stray or a lost row: another split, fraction or seed
        raise TLLError(f"{where}: made for other tasks: {len(unknown)} of its {len(by_left)} lefts are not among the "
                       f"{len(tasks)} lefts of these tasks ({tasks.name}) and {absent} of those have no row; "
                       "export the tasks you score with `python -m tll_core tasks` and the same "
                       "--split/--val-fraction/--seed/--foils")
    if unknown:
        raise TLLError(f"{where} line {unknown[0][0]}: left {quoted(unknown[0][1])} is not a left of these tasks")
    missing = [left for left in tasks.left_names if left not in by_left]
    if missing:
        raise TLLError(f"{where}: no row for left {quoted(missing[0])}"
                       + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
                       + f" (one row per left of the {len(tasks)} tasks)")
    scores = np.empty(tasks.candidates.shape, dtype=np.float32)
    for left, (_, values) in by_left.items():
        scores[at[left]] = values
    return scores


@dataclass(frozen=True)
class ImportedScores(Fixed):
    """A matcher made of a scores file: it scores the tasks the file was made for, by their lefts' names."""

    name: str
    path: str
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
    """Enter a scores file as the matcher NAME (``NAME=FILE`` or ``FILE``); returns NAME. Here the file is
    read and checked as a ``left,c0..c19`` CSV; when scored, against the tasks."""
    name, path = named_file(text) if isinstance(text, str) else (checked_name(text[0]), Path(text[1]))
    if path.suffix.lower() not in SCORES_SUFFIXES:
        raise TLLError(f"{shown_path(path)}: scores must be a .csv file (left,c0..c19)")
    digest = file_digest(path, MAX_CSV_BYTES)
    scores_by_left(path)  # a file that does not read is not entered (which tasks it scores is told when scored)
    scores = ImportedScores(name, str(path.absolute()), digest)
    REGISTER.add(Part("matcher", name, lambda: scores, help=f"scores imported from {path.name}",
                      metric=IMPORTED_METRIC, score=Score(f"the score in {path.name}, as computed elsewhere")),
                 replace=True)
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


def methods_folder(folder: str | Path) -> Path:
    """``<folder>/methods/``, refused in one line where it is a link or lies outside the data folder (nothing
    is read from there or written there)."""
    root = Path(folder) / METHODS_FOLDER
    if root.is_symlink() or (root.exists() and not root.resolve().is_relative_to(Path(folder).resolve())):
        raise TLLError(f"{shown_path(root)}: is a link out of the data folder; make it a plain folder")
    return root


def methods_in(folder: str | Path) -> tuple[list[Path], list[Path]]:
    """The scores files and the embeddings files in ``<folder>/methods/`` (regular files, by name)."""
    root = methods_folder(folder)
    if not root.is_dir():
        return [], []
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.is_symlink() and not p.name.startswith("."))
    return ([p for p in files if p.suffix.lower() in SCORES_SUFFIXES],
            [p for p in files if p.suffix.lower() in EMBEDDING_SUFFIXES])


def imported_names(kind: str) -> tuple[str, ...]:
    """The imported methods (``matcher``) or backbones (``backbone``) entered so far."""
    if kind == "matcher":
        return tuple(p.name for p in REGISTER.parts("matcher") if p.metric == IMPORTED_METRIC)
    return tuple(name for name, cfg in BACKBONES.items() if cfg.family == "imported")


def entry(kind: str, name: str) -> tuple[str, str] | None:
    """The file an imported method (``matcher``) or backbone (``backbone``) NAME was entered from and its
    content digest, as entered; None for a built-in or unknown name."""
    if kind == "matcher":
        if ("matcher", name) not in REGISTER or name not in imported_names("matcher"):
            return None
        scores = REGISTER.get("matcher", name).create()
        return scores.path, scores.digest
    cfg = BACKBONES.get(name)
    return (cfg.model_id, cfg.weights_tag) if cfg is not None and cfg.family == "imported" else None


def forget_imports() -> None:
    """Take every imported method and backbone out of the register and the table (another data folder, a test)."""
    for kind in ("matcher", "backbone"):
        for name in imported_names(kind):
            remove_entry(kind, name)


def remove_entry(kind: str, name: str) -> None:
    """Take an imported method or backbone out again (its file is gone); a built-in is never removed."""
    if entry(kind, name) is None:
        return
    if kind == "matcher":
        REGISTER.remove("matcher", name)
    else:
        remove_backbone(name)


# ---------------------------------------------------------------- an upload (the studio's sidebar)

MAX_SCORES_UPLOAD = MAX_CSV_BYTES  # 32 MiB: what a scores CSV may be (the reader's own cap)
MAX_EMBEDDINGS_UPLOAD = 200 * 2**20  # 200 MiB: the studio's upload cap; larger files go into <data>/methods/ by hand
UPLOAD_SUFFIXES = (*SCORES_SUFFIXES, *EMBEDDING_SUFFIXES)


def upload_kind(filename: str) -> str:
    """``matcher`` (a scores CSV) or ``backbone`` (embeddings) by the file's suffix; one line otherwise."""
    suffix = Path(filename).suffix.lower()
    if suffix in SCORES_SUFFIXES:
        return "matcher"
    if suffix in EMBEDDING_SUFFIXES:
        return "backbone"
    raise TLLError(f"{quoted(Path(filename).name)}: add a .csv (scores: left,c0..c19) or an .npz / .parquet "
                   "(embeddings) file")


def save_upload(data_folder: str | Path, filename: str, data: bytes, tasks: TaskSet) -> tuple[str, str, Path]:
    """An uploaded scores or embeddings file: checked (a scores CSV against ``tasks``, an embeddings file read
    whole), then written atomically to ``<data_folder>/methods/NAME.<suffix>`` (NAME: the file's stem; a file
    of that name is replaced) and entered; ``(kind, NAME, the file written)``. A problem is one line naming the
    file, and nothing is written or entered."""
    shown_name = Path(filename).name
    kind = upload_kind(shown_name)
    name, _ = named_file(shown_name)
    cap = MAX_SCORES_UPLOAD if kind == "matcher" else MAX_EMBEDDINGS_UPLOAD
    if len(data) > cap:
        raise TLLError(f"{quoted(shown_name)}: {len(data) / 2**20:.1f} MB, more than the {cap // 2**20} MB an upload "
                       f"of {'scores' if kind == 'matcher' else 'embeddings'} may be; put it in "
                       f"{shown_path(Path(data_folder) / METHODS_FOLDER)} yourself")
    target = methods_folder(data_folder) / f"{name}{Path(shown_name).suffix.lower()}"
    with tempfile.TemporaryDirectory(prefix="tll-upload-") as folder:  # read as the file it will be, named so
        trial = Path(folder) / target.name
        trial.write_bytes(data)
        try:
            if kind == "matcher":
                read_scores(trial, tasks, name)
            else:
                read_embeddings(trial)
        except TLLError as exc:
            raise TLLError(str(exc).replace(shown_path(trial), target.name)) from None
    write_atomically(target, data)
    (add_scores if kind == "matcher" else add_embeddings)((name, target))
    return kind, name, target
