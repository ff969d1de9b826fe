"""Loading a TLL data folder (Kaggle layout or the original release layout), validated up front.

Images are addressed by *image ids*: POSIX paths relative to the data root (``train/left/ace.jpg``).
Every id is built from a directory listing and checked to resolve inside the root, so nothing
outside the data folder is ever opened, whatever a CSV says.
"""
from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataError
from .images import IMAGE_SUFFIXES, check_header

N_CANDIDATES = 20
TRAIN_CSV = "train.csv"
TEST_CSV = "test_candidates.csv"
SAMPLE_CSV = "sample-submission.csv"
CANDIDATE_COLUMNS = tuple(f"c{i}" for i in range(N_CANDIDATES))


@dataclass(frozen=True)
class Pair:
    """A true pair: a left image and the right image people found alike."""

    left: str  # code, as named in the CSV
    right: str
    left_id: str  # image id (path relative to the root)
    right_id: str


@dataclass(frozen=True)
class TestRow:
    """A test left and its 20 candidate rights, in the order of test_candidates.csv."""

    left: str
    candidates: tuple[str, ...]
    left_id: str
    candidate_ids: tuple[str, ...]


@dataclass(frozen=True)
class Dataset:
    root: Path
    layout: str  # "kaggle" or "release"
    train_pairs: tuple[Pair, ...] = ()
    test_rows: tuple[TestRow, ...] = ()
    has_sample_submission: bool = False
    _resolved_root: Path = field(default=Path(), repr=False, compare=False)
    _paths: dict[str, Path] = field(default_factory=dict, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.root.name

    def path(self, image_id: str) -> Path:
        """The file behind an image id, refused if it would resolve outside the data root."""
        path = self._paths.get(image_id)
        if path is None:
            path = self._paths[image_id] = confined_path(self._resolved_root, image_id)
        return path

    def summary(self) -> dict[str, int | str]:
        return {
            "root": str(self.root),
            "layout": self.layout,
            "train_pairs": len(self.train_pairs),
            "test_lefts": len(self.test_rows),
            "images": len(self.image_ids()),
        }

    def image_ids(self) -> set[str]:
        ids = {i for p in self.train_pairs for i in (p.left_id, p.right_id)}
        for row in self.test_rows:
            ids.add(row.left_id)
            ids.update(row.candidate_ids)
        return ids


def confined_path(root: Path, image_id: str) -> Path:
    path = (root / image_id).resolve()
    if not path.is_relative_to(root):
        raise DataError(f"{image_id}: resolves outside the data folder {root}")
    return path


def name_problem(name: str) -> str | None:
    """Why a CSV name cannot be an image code (path tricks, separators, NUL), or None."""
    if not name:
        return "empty name"
    if "\x00" in name:
        return "name contains a NUL byte"
    if "/" in name or "\\" in name or ":" in name:
        return f"name {name!r} contains a path separator"
    if name in (".", "..") or name.startswith(".."):
        return f"name {name!r} would escape the data folder"
    return None


DATA_ROOTS_ENV = "TLL_DATA_ROOTS"


def allowed_data_folder(folder: str | os.PathLike[str], roots: str | None = None) -> Path:
    """The folder, resolved, if it lies inside one of the allowed roots (``$TLL_DATA_ROOTS``, a
    ``os.pathsep``-separated list); any folder when none is set. For folders typed in by others (the studio)."""
    roots = os.environ.get(DATA_ROOTS_ENV, "") if roots is None else roots
    path = Path(folder).expanduser().resolve()
    allowed = [Path(r).expanduser().resolve() for r in roots.split(os.pathsep) if r.strip()]
    if allowed and not any(path == r or path.is_relative_to(r) for r in allowed):
        raise DataError(f"{folder}: outside the allowed data folders (${DATA_ROOTS_ENV})")
    return path


def load_dataset(root: str | os.PathLike[str], *, check_images: bool = True) -> Dataset:
    """Load and validate a data folder. Raises DataError listing every problem found."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root}: no such data folder")
    if not root.is_dir():
        raise DataError(f"{root}: is a file, not a data folder")
    resolved = root.resolve()
    if (root / TRAIN_CSV).exists() or (root / TEST_CSV).exists():
        dataset = _load_kaggle(root, resolved)
    elif (root / "left").is_dir() and (root / "right").is_dir():
        dataset = _load_release(root, resolved)
    else:
        raise DataError(
            f"{root}: no TLL data found (expected {TRAIN_CSV} and/or {TEST_CSV} with train/ and test/ "
            "image folders, or left/ and right/ folders whose files pair by name)"
        )
    if check_images:
        _check_images(dataset)
    return dataset


# ---------------------------------------------------------------- folders of images


class _Folder:
    """The images of one folder, by code (file stem) and by full file name."""

    def __init__(self, root: Path, rel: str) -> None:
        self.rel = rel
        self.by_code: dict[str, str] = {}
        folder = root / rel
        if not folder.is_dir():
            self.exists = False
            return
        self.exists = True
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name.lower().endswith(IMAGE_SUFFIXES) and not entry.name.startswith(".") and not entry.is_dir():
                stem = entry.name.rsplit(".", 1)[0]
                self.by_code.setdefault(stem, entry.name)
                self.by_code.setdefault(entry.name, entry.name)

    def image_id(self, code: str) -> str | None:
        name = self.by_code.get(code)
        return f"{self.rel}/{name}" if name else None


# ---------------------------------------------------------------- CSV reading


def read_csv_rows(path: Path, expected: tuple[str, ...]) -> tuple[list[tuple[int, list[str]]], list[str]]:
    """Rows of a CSV with an exact expected header: ([(line number, cells)], problems).

    Tolerates a UTF-8 BOM and CRLF line ends; reports a wrong header, wrong column counts and
    undecodable text with the file and line.
    """
    problems: list[str] = []
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [f"{path.name}: not UTF-8 text ({exc.reason} at byte {exc.start})"]
    except OSError as exc:
        return [], [f"{path.name}: cannot read ({exc.strerror or exc})"]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return [], [f"{path.name}: empty file (expected the header {','.join(expected)})"]
        header = [h.strip() for h in header]
        if header != list(expected):
            missing = [c for c in expected if c not in header]
            extra = [c for c in header if c not in expected]
            detail = []
            if missing:
                detail.append("missing column" + ("s " if len(missing) > 1 else " ") + ", ".join(missing))
            if extra:
                detail.append("unexpected column" + ("s " if len(extra) > 1 else " ") + ", ".join(extra))
            if not detail:
                detail.append("columns out of order")
            return [], [f"{path.name}: bad header ({'; '.join(detail)}; expected {','.join(expected)})"]
        rows = []
        for cells in reader:
            line = reader.line_num
            if not cells or all(not c.strip() for c in cells):
                continue
            cells = [c.strip() for c in cells]
            if len(cells) != len(expected):
                problems.append(f"{path.name} line {line}: expected {len(expected)} columns, found {len(cells)}")
                continue
            rows.append((line, cells))
    except csv.Error as exc:
        problems.append(f"{path.name} line {reader.line_num}: not valid CSV ({exc})")
        return [], problems
    return rows, problems


def _resolve(folder: _Folder, code: str, where: str, problems: list[str]) -> str | None:
    bad = name_problem(code)
    if bad:
        problems.append(f"{where}: {bad}")
        return None
    image_id = folder.image_id(code)
    if image_id is None:
        problems.append(f"{where}: missing image {folder.rel}/{code}.jpg")
    return image_id


# ---------------------------------------------------------------- layouts


def _load_kaggle(root: Path, resolved: Path) -> Dataset:
    problems: list[str] = []
    pairs = _kaggle_pairs(root, problems) if (root / TRAIN_CSV).exists() else []
    test = _kaggle_test(root, problems) if (root / TEST_CSV).exists() else []
    if problems:
        raise DataError(problems)
    if not pairs and not test:
        raise DataError(f"{root}: {TRAIN_CSV} and {TEST_CSV} hold no rows")
    return Dataset(root, "kaggle", tuple(pairs), tuple(test), (root / SAMPLE_CSV).exists(), resolved)


def _read_part(root: Path, csv_name: str, columns: tuple[str, ...], split: str,
               problems: list[str]) -> Iterator[tuple[str, list[str], _Folder, _Folder]]:
    """The rows of one part's CSV as (where, cells, left folder, right folder), skipping (and reporting)
    duplicate lefts; nothing when the part's image folders are missing."""
    rows, found = read_csv_rows(root / csv_name, columns)
    problems.extend(found)
    lefts, rights = _Folder(root, f"{split}/left"), _Folder(root, f"{split}/right")
    missing = [f"{folder.rel}/: folder missing (needed by {csv_name})" for folder in (lefts, rights) if not folder.exists]
    if rows and missing:
        problems.extend(missing)
        return
    seen: dict[str, int] = {}
    for line, cells in rows:
        where = f"{csv_name} line {line}"
        if cells[0] in seen:
            problems.append(f"{where}: duplicate left {cells[0]!r} (first on line {seen[cells[0]]})")
            continue
        seen[cells[0]] = line
        yield where, cells, lefts, rights


def _kaggle_pairs(root: Path, problems: list[str]) -> list[Pair]:
    pairs = []
    for where, (left, right), lefts, rights in _read_part(root, TRAIN_CSV, ("left", "right"), "train", problems):
        left_id = _resolve(lefts, left, where, problems)
        right_id = _resolve(rights, right, where, problems)
        if left_id and right_id:
            pairs.append(Pair(left, right, left_id, right_id))
    return pairs


def _kaggle_test(root: Path, problems: list[str]) -> list[TestRow]:
    out = []
    for where, (left, *candidates), lefts, rights in _read_part(root, TEST_CSV, ("left", *CANDIDATE_COLUMNS), "test", problems):
        if len(set(candidates)) != len(candidates):
            problems.append(f"{where}: a candidate is listed twice")
        left_id = _resolve(lefts, left, where, problems)
        cand_ids = [_resolve(rights, c, f"{where} ({col})", problems) for c, col in zip(candidates, CANDIDATE_COLUMNS)]
        if left_id and all(cand_ids):
            out.append(TestRow(left, tuple(candidates), left_id, tuple(cand_ids)))  # type: ignore[arg-type]
    return out


def _load_release(root: Path, resolved: Path) -> Dataset:
    lefts, rights = _Folder(root, "left"), _Folder(root, "right")
    left_files = {n.rsplit(".", 1)[0]: n for n in set(lefts.by_code.values())}
    right_files = {n.rsplit(".", 1)[0]: n for n in set(rights.by_code.values())}
    problems = [f"left/{left_files[c]}: no right image with the same name" for c in sorted(left_files.keys() - right_files.keys())]
    problems += [f"right/{right_files[c]}: no left image with the same name" for c in sorted(right_files.keys() - left_files.keys())]
    if problems:
        raise DataError(problems)
    if not left_files:
        raise DataError(f"{root}: left/ and right/ hold no images")
    pairs = tuple(Pair(c, c, f"left/{left_files[c]}", f"right/{right_files[c]}") for c in sorted(left_files))
    return Dataset(root, "release", pairs, (), False, resolved)


def _check_images(dataset: Dataset) -> None:
    """Open every image's header (no decode): empty, non-image and oversized files are reported now."""
    ids = sorted(dataset.image_ids())
    paths = [dataset.path(i) for i in ids]
    with ThreadPoolExecutor(max_workers=8) as pool:
        problems = [p for p in pool.map(check_header, paths, ids) if p]
    if problems:
        raise DataError(problems)



_STAMPED = (TRAIN_CSV, TEST_CSV, SAMPLE_CSV, "left", "right", "train/left", "train/right", "test/left", "test/right")


def dataset_stamp(root: str | os.PathLike[str]) -> tuple:
    """A cheap stamp of what :func:`load_dataset` reads: the CSVs and image folders' stat (size, mtime, ctime,
    inode). An edited CSV, or an image added, removed or renamed (its folder's mtime changes), changes it;
    a long-lived front end (the studio) reloads the folder when it does. Image *content* is the job of
    :meth:`Dataset.fingerprint`."""
    root = Path(root).expanduser()
    out = []
    for name in _STAMPED:
        try:
            st = os.stat(root / name)
        except OSError:
            out.append((name, None))
            continue
        out.append((name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
    return tuple(out)
