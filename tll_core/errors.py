"""Errors a user sees. Each renders as one line that names the file or row at fault."""
from __future__ import annotations

import re
from collections.abc import Sequence

SHOWN_PROBLEMS = 5


class TLLError(Exception):
    """A problem with the user's input or environment, told in one line (never a traceback)."""


class DataError(TLLError):
    """The data folder (or a file in it) is not usable. Carries every problem found, not just the first."""

    def __init__(self, problems: Sequence[str] | str, *, what: str = "data problem") -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        super().__init__(summarise(self.problems, what=what))


class WeightsUnavailable(TLLError):
    """Pretrained weights were asked for and cannot be had here. ``studio``: the same problem in the words of
    a studio user (who has no ``--weights`` flag: the running studio reads ``$TLL_WEIGHTS_DIR``)."""

    def __init__(self, message: str, studio: str | None = None) -> None:
        super().__init__(message)
        self.studio = studio or message


class SubmissionError(TLLError):
    """A submission CSV does not match its test_candidates.csv."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(summarise(self.problems, what="submission problem"))


def summarise(problems: Sequence[str], *, what: str) -> str:
    """`3 data problems: a; b; c` — the first few listed, then a count of the rest, on one line."""
    problems = [p.replace("\n", " ") for p in problems]
    if len(problems) == 1:
        return problems[0]
    head = "; ".join(problems[:SHOWN_PROBLEMS])
    rest = len(problems) - SHOWN_PROBLEMS
    tail = f"; … and {rest} more" if rest > 0 else ""
    return f"{len(problems)} {what}s: {head}{tail}"


_BREAKS = re.compile(r"\r\n|[\n\r\t\v\f\x1c-\x1e\x85\u2028\u2029]")


def one_line(text: str) -> str:
    """``text`` as one printable line: line breaks and tabs become spaces, other control and invisible
    characters (ESC, NUL, bidi overrides) are escaped, so a name from a file can neither split the line
    nor drive the terminal."""
    text = _BREAKS.sub(" ", text)
    return "".join(c if c.isprintable() or c == " " else ascii(c)[1:-1] for c in text)


MAX_NAME_CHARS = 80
"""A name quoted in a message (a file, a row's cell, an option) is cut to this many characters."""
MAX_PATH_CHARS = 300
"""A path quoted in a message is cut to this many characters (real absolute paths run past 80)."""
MAX_LINE_CHARS = 2000
"""A whole message line is cut to this many characters (a long list of problems is summarised before that)."""


def shown(name: object, limit: int = MAX_NAME_CHARS) -> str:
    """A name from the user's input as a message quotes it: one printable line (:func:`one_line`), and at most
    ``limit`` characters — a longer one keeps its start and end around ``…`` and says how long it was, so a
    100,000-character cell neither floods the terminal nor hides which one it was."""
    text = one_line(str(name))
    if len(text) <= limit:
        return text
    head = max(1, (limit - 24) * 2 // 3)
    tail = max(1, limit - 24 - head)
    return f"{text[:head]}…{text[-tail:]} ({len(text):,} characters)"


def shown_path(path: object) -> str:
    """A path as a message quotes it: :func:`shown` at :data:`MAX_PATH_CHARS`."""
    return shown(path, MAX_PATH_CHARS)


def quoted(name: object, limit: int = MAX_NAME_CHARS) -> str:
    """``'name'`` as a message quotes a user's name: :func:`shown` between single quotes (never ``repr``, which
    neither shortens nor keeps to one readable line)."""
    return f"'{shown(name, limit)}'"


def bounded_line(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """``text`` as one printable line of at most ``limit`` characters (the end cut, and said to be)."""
    line = one_line(text)
    return line if len(line) <= limit else line[: limit - 20] + f"… ({len(line):,} characters)"


def os_problem(exc: OSError) -> str:
    """An OSError in one line naming its file: ``/x/cache.db: No space left on device``."""
    where = shown_path(exc.filename) if exc.filename is not None else "a file"
    other = f" → {shown_path(exc.filename2)}" if exc.filename2 is not None else ""
    return f"{where}{other}: {exc.strerror or exc}".replace("\n", " ")
