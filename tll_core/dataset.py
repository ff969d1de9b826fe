"""Loading a TLL data folder (Kaggle layout or the original release layout), validated up front.

Images are addressed by *image ids*: POSIX paths relative to the data root (``train/left/ace.jpg``).
Every id is built from a directory listing, and every file (CSVs too) is opened through
:func:`tll_core.files.open_regular`, which re-resolves the path at that moment and refuses anything outside
the root, anything but a regular file and anything over a size cap: nothing outside the data folder is
ever opened, whatever a CSV says or a symlink swapped in later points to.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import DataError, quoted, shown, shown_path
from .files import cannot_read, read_regular
from .image_index import ImageIndex
from .images import IMAGE_SUFFIXES, ImageBytes, check_header, read_image_bytes

N_CANDIDATES = 20
TRAIN_CSV = "train.csv"
TEST_CSV = "test_candidates.csv"
SAMPLE_CSV = "sample-submission.csv"
CANDIDATE_COLUMNS = tuple(f"c{i}" for i in range(N_CANDIDATES))
MAX_CSV_BYTES = 32 * 2**20
"""Larger CSVs are refused unread (the TLL ones are ~100 KB)."""
MAX_CSV_ROWS = 100_000
"""More rows are refused (the TLL CSVs have a few thousand): 32 MiB of ``a,b`` lines would otherwise hold GBs."""
MAX_PROBLEMS = 1_000
"""A folder's problems are collected up to this many, then the rest of its CSV is not checked."""


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
    warnings: tuple[str, ...] = ()  # one-line notes on valid but suspicious data, for the front ends to show
    _hashes: dict[str, tuple[tuple[int, ...], str]] = field(default_factory=dict, repr=False, compare=False)
    index: ImageIndex = field(default_factory=lambda: ImageIndex(None), repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.root.name

    def path(self, image_id: str) -> Path:
        """The file behind an image id as it resolves now, refused if that is outside the data root.
        For showing and stat-ing; read through :meth:`read_image`, which checks again as it opens."""
        return confined_path(self._resolved_root, image_id)

    def read_image(self, image_id: str) -> ImageBytes:
        """An image's bytes, read through the confined open (inside the root now, a regular file, capped)."""
        return read_image_bytes(self._resolved_root / image_id, image_id, root=self._resolved_root)

    def check_image(self, image_id: str) -> str | None:
        """Header-only check of one image through the confined open: a one-line problem, or None."""
        return check_header(self._resolved_root / image_id, image_id, root=self._resolved_root)

    def stat_signature(self, image_id: str) -> tuple[int, int, int, int]:
        """(size, mtime, ctime, inode) of an image now: any rewrite, even one that restores size and
        mtime, changes the ctime. A change detector only (stat follows links: a retargeted link shows as
        another inode), so the path is not resolved here — every read is confined, by :meth:`read_image`;
        resolving each of thousands of paths on every page rerun took most of the studio's rerun time."""
        try:
            st = os.stat(os.path.join(self._resolved_root, image_id))
        except OSError as exc:
            raise cannot_read(image_id, exc) from None
        return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino

    def known_sha1(self, image_id: str, signature: tuple[int, ...]) -> str | None:
        """An image's content SHA-1 where it is known without reading it: hashed by this process or recorded
        in the folder's image index with this same stat signature (unchanged since); else None."""
        held = self._hashes.get(image_id)
        if held is not None and held[0] == signature:
            return held[1]
        return self.index.sha1(image_id, signature)

    def fingerprint(self) -> str:
        """A hex digest of the data as it is now: the CSVs' bytes and every image's content SHA-1 in id
        order. Images are re-hashed only when their stat signature changed since the last call: the usual
        call is one ``stat`` per image, in this thread (a pool's hand-offs cost more than the stats)."""
        digest = hashlib.sha1(f"{self.layout}\n".encode())
        for name in (TRAIN_CSV, TEST_CSV):
            if os.path.lexists(self.root / name):
                digest.update(f"{name}\n".encode())
                digest.update(hashlib.sha1(self._read_csv_bytes(name)).digest())
        ids = sorted(self.image_ids())
        signatures = {image_id: self.stat_signature(image_id) for image_id in ids}  # taken before any reading
        stale = [i for i in ids if self._hashes.get(i, (None, ""))[0] != signatures[i]]
        for image_id in stale:  # known from an earlier process, unchanged since (the folder's image index)
            known = self.index.sha1(image_id, signatures[image_id])
            if known is not None:
                self._hashes[image_id] = (signatures[image_id], known)
        stale = [i for i in stale if self._hashes.get(i, (None, ""))[0] != signatures[i]]
        with ThreadPoolExecutor(max_workers=4) as pool:
            for image_id, sha1 in zip(stale, pool.map(lambda i: self.read_image(i).sha1, stale)):
                self._hashes[image_id] = (signatures[image_id], sha1)  # a change meanwhile shows next time
                self.index.record(image_id, signatures[image_id], sha1=sha1)
        self.index.save()
        for image_id in ids:
            digest.update(f"{image_id}\0{self._hashes[image_id][1]}\n".encode())
        return digest.hexdigest()

    def _read_csv_bytes(self, name: str) -> bytes:
        return read_regular(self.root / name, name, MAX_CSV_BYTES, self._resolved_root)

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
    """``root / image_id`` resolved now (symlink loops left unresolved, to fail when opened), refused outside ``root``."""
    path = Path(os.path.realpath(root / image_id))
    if not path.is_relative_to(root):
        raise DataError(f"{shown_path(image_id)}: resolves outside the data folder {shown_path(root)}")
    return path


def name_problem(name: str) -> str | None:
    """Why a CSV name cannot be an image code (path tricks, separators, NUL), or None."""
    if not name:
        return "empty name"
    if "\x00" in name:
        return "name contains a NUL byte"
    if "/" in name or "\\" in name or ":" in name:
        return f"name {quoted(name)} contains a path separator"
    if name in (".", "..") or name.startswith(".."):
        return f"name {quoted(name)} would escape the data folder"
    return None


DATA_ROOTS_ENV = "TLL_DATA_ROOTS"


def allowed_data_folder(folder: str | os.PathLike[str], roots: str | None = None) -> Path:
    """The folder, resolved, if it lies inside one of the allowed roots (``$TLL_DATA_ROOTS``, a
    ``os.pathsep``-separated list); any folder when none is set. For folders typed in by others (the studio)."""
    roots = os.environ.get(DATA_ROOTS_ENV, "") if roots is None else roots
    path = Path(folder).expanduser().resolve()
    allowed = [Path(r).expanduser().resolve() for r in roots.split(os.pathsep) if r.strip()]
    if allowed and not any(path == r or path.is_relative_to(r) for r in allowed):
        raise DataError(f"{shown_path(folder)}: outside the allowed data folders (${DATA_ROOTS_ENV})")
    return path


def load_dataset(root: str | os.PathLike[str], *, check_images: bool = True,
                 index_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """Load and validate a data folder. Raises DataError listing every problem found.

    ``index_dir``: where the folder's :class:`ImageIndex` is kept (the cache directory): images unchanged since
    an earlier load are not checked or hashed again. With ``$TLL_DATA_ROOTS`` set, a folder outside those roots
    is refused (for every front end)."""
    allowed_data_folder(root)
    root = Path(root).expanduser()
    try:
        dataset = _load(root)
        if index_dir is not None:
            dataset = replace(dataset, index=ImageIndex.for_folder(Path(index_dir), root))
        if check_images:
            _check_images(dataset)
    except OSError as exc:  # a folder that cannot be listed or stat-ed
        raise cannot_read(str(exc.filename or root), exc) from None
    return dataset


def _load(root: Path) -> Dataset:
    if not root.exists():
        raise DataError(f"{shown_path(root)}: no such data folder")
    if not root.is_dir():
        raise DataError(f"{shown_path(root)}: is a file, not a data folder")
    os.listdir(root)  # an unreadable folder fails here, by name
    resolved = Path(os.path.realpath(root))
    if os.path.lexists(root / TRAIN_CSV) or os.path.lexists(root / TEST_CSV):
        return _load_kaggle(root, resolved)
    if (root / "left").is_dir() and (root / "right").is_dir():
        return _load_release(root, resolved)
    raise DataError(
        f"{root}: no TLL data found (expected {TRAIN_CSV} and/or {TEST_CSV} with train/ and test/ "
        "image folders, or left/ and right/ folders whose files pair by name)"
    )


# ---------------------------------------------------------------- folders of images


class _Folder:
    """The images of one folder, by full file name and by code (file stem)."""

    def __init__(self, root: Path, rel: str) -> None:
        self.rel = rel
        self.names: set[str] = set()
        self.by_stem: dict[str, list[str]] = {}
        self.problem: str | None = None
        folder = root / rel
        self.exists = folder.is_dir()
        if not self.exists:
            return
        if not folder.resolve().is_relative_to(root.resolve()):  # a symlink out: never listed, so no message
            self.problem = f"{rel}/: resolves outside the data folder {shown_path(root)}"
            return
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            self.problem = str(cannot_read(f"{rel}/", exc))
            return
        for entry in entries:
            if entry.name.lower().endswith(IMAGE_SUFFIXES) and not entry.name.startswith(".") and not entry.is_dir():
                self.names.add(entry.name)
                self.by_stem.setdefault(entry.name.rsplit(".", 1)[0], []).append(entry.name)

    def image_id(self, code: str) -> str | None:
        """The id of the file named ``code``, or of the one file whose stem it is (None: no such file, or
        several: see :meth:`ambiguity`)."""
        if code in self.names:
            return f"{self.rel}/{code}"
        names = self.by_stem.get(code, [])
        return f"{self.rel}/{names[0]}" if len(names) == 1 else None

    def file_key(self, code: str) -> str:
        """What duplicates are judged by: the file ``code`` names (``ace`` and ``ace.jpg`` are one), or the name
        itself where it names none."""
        return self.image_id(code) or code

    def ambiguity(self, code: str) -> str | None:
        names = self.by_stem.get(code, [])
        if code in self.names or len(names) < 2:
            return None
        return " and ".join(f"{self.rel}/{n}" for n in names)


# ---------------------------------------------------------------- CSV reading


def read_csv_rows(path: Path, expected: tuple[str, ...], *, confined: bool = True,
                  every_row: bool = False) -> tuple[list[tuple[int, list[str]]], list[str]]:
    """Rows of a CSV with an exact expected header: ([(line number, cells)], problems).

    The file must be a regular file of at most MAX_CSV_BYTES and, when ``confined`` (a data folder's CSV),
    resolve inside its own folder; ``confined=False`` is for a file the user names (a submission).
    Tolerates a UTF-8 BOM, CRLF line ends and spaces around header names; cells are kept as written
    (a name with spaces names a file with spaces). Reports a wrong header, wrong column counts and
    undecodable text with the file and line.

    A row's line number is the line it *starts* on (a quoted cell may run over several lines; csv's own
    ``line_num`` is the line a row ends on). A row of the wrong width is reported once, for itself; it is
    left out of the rows unless ``every_row`` (for a caller that matches rows by position: the submission
    validator, whose later rows must still meet their own rows of test_candidates.csv).
    """
    problems: list[str] = []
    root = Path(os.path.realpath(path.parent)) if confined else None
    try:
        text = read_regular(path, path.name, MAX_CSV_BYTES, root).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [f"{path.name}: not UTF-8 text ({exc.reason} at byte {exc.start})"]
    except DataError as exc:
        return [], exc.problems
    reader = csv.reader(io.StringIO(text, newline=""))
    start = 1  # the line the next row starts on: the one after the last line of the previous row
    try:
        header = next(reader, None)
        if header is None:
            return [], [f"{path.name}: empty file (expected the header {','.join(expected)})"]
        header = [h.strip() for h in header]
        if header != list(expected):
            return [], [header_problem(path.name, header, expected)]
        rows, counted = [], 0
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not cells or all(not c.strip() for c in cells):
                continue
            counted += 1
            if counted > MAX_CSV_ROWS:
                return [], [f"{path.name}: more than {MAX_CSV_ROWS:,} rows (a TLL CSV has a few thousand)"]
            if len(cells) != len(expected):
                problems.append(f"{path.name} line {line}{_through(line, reader.line_num)}: expected "
                                f"{len(expected)} columns, found {len(cells)}")
                if not every_row:
                    continue
            rows.append((line, cells))
    except csv.Error as exc:
        problems.append(f"{path.name} line {start}{_through(start, reader.line_num)}: not valid CSV ({exc})")
        return [], problems
    return rows, problems


def _through(start: int, end: int) -> str:
    """`` (through line 9)`` for a row whose quoted cell runs on past the line it starts on, else ``""``."""
    return f" (through line {end})" if end > start else ""


def header_problem(name: str, header: list[str], expected: tuple[str, ...]) -> str:
    """What is wrong with a CSV's header, in the expected names and column positions only: never a cell of
    it (a file that is no CSV of ours — ``/etc/passwd``, ``/proc/self/environ`` — would be quoted)."""
    missing = [c for c in expected if c not in header]
    extra = [i for i, c in enumerate(header, 1) if c not in expected]
    detail = []
    if missing:
        detail.append("missing column" + ("s " if len(missing) > 1 else " ") + ", ".join(missing))
    if extra:
        listed = ", ".join(map(str, extra[:5])) + (f" and {len(extra) - 5:,} more" if len(extra) > 5 else "")
        detail.append(f"unexpected column{'s' if len(extra) > 1 else ''} at position{'s' if len(extra) > 1 else ''} {listed}")
    if len(header) != len(expected):
        detail.append(f"found {len(header):,} column{'s' if len(header) != 1 else ''}")
    if not detail:
        at = next(i for i, (got, want) in enumerate(zip(header, expected)) if got != want)
        detail.append(f"columns out of order: column {at + 1} should be {expected[at]}")
    return f"{shown(name)}: bad header ({'; '.join(detail)}; expected {','.join(expected)})"


def _resolve(folder: _Folder, code: str, where: str, problems: list[str]) -> str | None:
    bad = name_problem(code)
    if bad:
        problems.append(f"{where}: {bad}")
        return None
    image_id = folder.image_id(code)
    ambiguous = folder.ambiguity(code)
    if ambiguous:
        problems.append(f"{where}: {quoted(code)} could be {ambiguous} (rename one, or write the file name)")
    elif image_id is None:
        hint = " (the name has leading or trailing spaces)" if code != code.strip() else ""
        problems.append(f"{where}: missing image {shown(f'{folder.rel}/{code}.jpg')}{hint}")
    return image_id


# ---------------------------------------------------------------- layouts


def _load_kaggle(root: Path, resolved: Path) -> Dataset:
    problems: list[str] = []
    notes: list[str] = []
    pairs = _kaggle_pairs(root, problems, notes) if os.path.lexists(root / TRAIN_CSV) else []
    test = _kaggle_test(root, problems) if os.path.lexists(root / TEST_CSV) else []
    if problems:
        raise DataError(problems)
    if not pairs and not test:
        raise DataError(f"{root}: {TRAIN_CSV} and {TEST_CSV} hold no rows")
    return Dataset(root, "kaggle", tuple(pairs), tuple(test), (root / SAMPLE_CSV).exists(), resolved,
                   warnings=tuple(notes))


def _read_part(root: Path, csv_name: str, columns: tuple[str, ...], split: str,
               problems: list[str]) -> Iterator[tuple[str, list[str], _Folder, _Folder]]:
    """The rows of one part's CSV as (where, cells, left folder, right folder), skipping (and reporting)
    duplicate lefts; nothing when the part's image folders are missing."""
    rows, found = read_csv_rows(root / csv_name, columns)
    problems.extend(found)
    lefts, rights = _Folder(root, f"{split}/left"), _Folder(root, f"{split}/right")
    missing = [f"{folder.rel}/: folder missing (needed by {csv_name})" for folder in (lefts, rights) if not folder.exists]
    missing += [folder.problem for folder in (lefts, rights) if folder.problem]
    if rows and missing:
        problems.extend(missing)
        return
    seen: dict[str, tuple[int, str]] = {}  # a left's file (its name where it names none) → (line, name)
    for line, cells in rows:
        where = f"{csv_name} line {line}"
        if len(problems) >= MAX_PROBLEMS:
            problems.append(f"{csv_name}: not checked past line {line} (over {MAX_PROBLEMS:,} problems)")
            return
        key = lefts.file_key(cells[0])
        if key in seen:
            first, name = seen[key]
            problems.append(f"{where}: duplicate left '{shown(cells[0])}' (first on line {first}{_as(name, cells[0], key)})")
            continue
        seen[key] = line, cells[0]
        yield where, cells, lefts, rights


def _as(first: str, again: str, image_id: str) -> str:
    """How a name written again differs from its first writing: nothing when it is the same text, else the
    first name and the one file both resolve to (``ace`` and ``ace.jpg``)."""
    return "" if first == again else f" as '{shown(first)}': both are {shown(image_id)}"


def _kaggle_pairs(root: Path, problems: list[str], notes: list[str]) -> list[Pair]:
    pairs = []
    right_lines: dict[str, tuple[str, str]] = {}  # a right's file → (the line it is first on, its name there)
    for where, (left, right), lefts, rights in _read_part(root, TRAIN_CSV, ("left", "right"), "train", problems):
        left_id = _resolve(lefts, left, where, problems)
        right_id = _resolve(rights, right, where, problems)
        if left_id and right_id:
            pairs.append(Pair(left, right, left_id, right_id))
            if right_id in right_lines:
                line, name = right_lines[right_id]
                notes.append(f"{where}: right '{shown(right)}' is also the right of {line}{_as(name, right, right_id)}")
            right_lines.setdefault(right_id, (where.removeprefix(f"{TRAIN_CSV} "), right))
    return pairs


def _kaggle_test(root: Path, problems: list[str]) -> list[TestRow]:
    out = []
    for where, (left, *candidates), lefts, rights in _read_part(root, TEST_CSV, ("left", *CANDIDATE_COLUMNS), "test", problems):
        twice = _listed_twice(rights, candidates)
        if twice:
            problems.append(f"{where}: a candidate is listed twice ({twice})")
        left_id = _resolve(lefts, left, where, problems)
        cand_ids = [_resolve(rights, c, f"{where} ({col})", problems) for c, col in zip(candidates, CANDIDATE_COLUMNS)]
        if left_id and all(cand_ids):
            out.append(TestRow(left, tuple(candidates), left_id, tuple(cand_ids)))  # type: ignore[arg-type]
    return out


def _listed_twice(rights: _Folder, candidates: list[str]) -> str | None:
    """The first two columns of a test row that name one file (``x`` and ``x.jpg`` do: duplicates go by the
    file a name resolves to, or by the name where it resolves to none), as ``c3 and c7 'x'`` or ``c3 and c7:
    'x' and 'x.jpg' are both test/right/x.jpg``; None when no two do."""
    first: dict[str, tuple[str, str]] = {}
    for name, col in zip(candidates, CANDIDATE_COLUMNS):
        key = rights.file_key(name)
        if key in first:
            col0, name0 = first[key]
            return f"{col0} and {col}" + (f" '{shown(name)}'" if name == name0 else
                                          f": '{shown(name0)}' and '{shown(name)}' are both {shown(key)}")
        first[key] = col, name
    return None


def _load_release(root: Path, resolved: Path) -> Dataset:
    lefts, rights = _Folder(root, "left"), _Folder(root, "right")
    problems = [f.problem for f in (lefts, rights) if f.problem]
    problems += [" and ".join(f"{f.rel}/{n}" for n in names) + f": two images named {quoted(stem)} (pairs go by name; keep one)"
                 for f in (lefts, rights) for stem, names in sorted(f.by_stem.items()) if len(names) > 1]
    if problems:
        raise DataError(problems)
    left_files = {stem: names[0] for stem, names in lefts.by_stem.items()}
    right_files = {stem: names[0] for stem, names in rights.by_stem.items()}
    problems = [f"left/{left_files[c]}: no right image with the same name" for c in sorted(left_files.keys() - right_files.keys())]
    problems += [f"right/{right_files[c]}: no left image with the same name" for c in sorted(right_files.keys() - left_files.keys())]
    if problems:
        raise DataError(problems)
    if not left_files:
        raise DataError(f"{root}: left/ and right/ hold no images")
    pairs = tuple(Pair(c, c, f"left/{left_files[c]}", f"right/{right_files[c]}") for c in sorted(left_files))
    return Dataset(root, "release", pairs, (), False, resolved)


def _signature_or_none(dataset: Dataset, image_id: str) -> tuple[int, int, int, int] | None:
    try:
        return dataset.stat_signature(image_id)
    except DataError:  # missing or unreadable: its header check says so
        return None


def _check_images(dataset: Dataset) -> None:
    """Open every image's header (no decode): empty, non-image and oversized files are reported now."""
    ids = sorted(dataset.image_ids())
    signatures = {i: _signature_or_none(dataset, i) for i in ids}
    unknown = [i for i in ids if signatures[i] is None or not dataset.index.checked(i, signatures[i])]
    with ThreadPoolExecutor(max_workers=8) as pool:
        found = list(pool.map(dataset.check_image, unknown))
    problems = [p for p in found if p]
    for image_id, problem in zip(unknown, found):  # unchanged since checked: not checked again next time
        if problem is None and signatures[image_id] is not None:
            dataset.index.record(image_id, signatures[image_id], checked=True)
    dataset.index.save()
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
