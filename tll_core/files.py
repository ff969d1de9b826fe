"""Opening the user's files safely: regular files only, never blocking, size-capped, optionally confined.

Every file the tool reads from a data folder goes through :func:`open_regular`: the path is resolved *at
open time* (a symlink swapped in after the folder was loaded is seen), must lie inside the resolved data
root, is opened without following a final symlink and without blocking (a FIFO never hangs), and must be
a regular file no larger than the caller's cap. Refusals name the file and never quote its content.
"""
from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import DataError
from .errors import shown_path as short  # the parameter `shown` is the name as given; this shortens it

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def cannot_read(shown: str, exc: OSError) -> DataError:
    return DataError(f"{short(shown)}: cannot read ({exc.strerror or type(exc).__name__})")


def inside(path: str | Path, root: Path) -> bool:
    return Path(path) == root or Path(path).is_relative_to(root)


@contextmanager
def open_regular(path: Path, shown: str, cap: int, root: Path | None = None) -> Iterator[BinaryIO]:
    """A binary file object on ``path`` once it is known to be a regular file of at most ``cap`` bytes
    (and, with ``root``, to resolve inside that already-resolved folder). Raises DataError naming ``shown``."""
    try:
        if root is not None:
            real = os.path.realpath(path, strict=True)  # OSError for a missing target or a symlink loop
            if not inside(real, root):
                raise DataError(f"{short(shown)}: resolves outside the data folder {short(root)}")
            fd = os.open(real, _FLAGS | _NOFOLLOW)  # swapped for a symlink since? ELOOP, refused
        else:
            fd = os.open(path, _FLAGS)
    except OSError as exc:
        raise cannot_read(shown, exc) from None
    try:
        _check_open(fd, shown, cap, root)
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        yield fh


def _check_open(fd: int, shown: str, cap: int, root: Path | None) -> None:
    try:
        info = os.fstat(fd)
    except OSError as exc:
        raise cannot_read(shown, exc) from None
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"{short(shown)}: not a regular file")
    if info.st_size > cap:
        raise DataError(f"{short(shown)}: {info.st_size:,} bytes exceeds the {cap:,}-byte limit")
    opened = _opened_path(fd)
    if root is not None and opened is not None and not inside(opened, root):  # a parent folder swapped meanwhile
        raise DataError(f"{short(shown)}: resolves outside the data folder {short(root)}")


def _opened_path(fd: int) -> str | None:
    """The path the kernel actually opened (Linux), or None where that cannot be asked."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def read_regular(path: Path, shown: str, cap: int, root: Path | None = None) -> bytes:
    """The bytes of a regular file (see :func:`open_regular`); at most ``cap`` bytes are ever read."""
    with open_regular(path, shown, cap, root) as fh:
        try:
            data = fh.read(cap + 1)
        except OSError as exc:
            raise cannot_read(shown, exc) from None
    if len(data) > cap:  # grew after the size check
        raise DataError(f"{short(shown)}: larger than the {cap:,}-byte limit")
    return data


def move_aside(path: Path, kind: str, why: str, error: type[Exception], mark: str) -> str:
    """Rename a damaged ``kind`` file (e.g. "tags file") out of the way, kept beside it as ``NAME{mark}TIME-PID``;
    the one line that says so. One that cannot be moved raises ``error`` and nothing is changed."""
    import time

    from .errors import one_line

    aside = path.with_name(f"{path.name}{mark}{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    try:
        os.replace(path, aside)
    except OSError as exc:
        raise error(f"{kind} {path} is damaged ({one_line(why)[:120]}) and cannot be moved aside "
                    f"({exc.strerror or exc}); nothing was changed") from None
    return f"{kind} {path} was damaged ({one_line(why)[:120]}): moved aside to {aside.name}; starting empty"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: a temporary file beside it, renamed over it."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
