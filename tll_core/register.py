"""One register of self-describing parts: backbone families, matchers and re-rankers.

Like timm's ``@register_model`` + ``create_model`` and open_clip's table of configs, every part is entered
once, where it is defined, with everything the front ends need to offer it:

- its ``name`` and one line of ``help``;
- its config dataclass, whose fields are its options: each field's type, default, range and help come from
  :func:`option` (``OptionSpec`` reads them back), so the CLI's ``--option`` help and checks, the studio's
  widgets and the URL's option parsing all follow a new field with no other edit;
- what it scores with (``metric``: a matcher's label in result rows; ``None``: its ``metric`` option);
- its ``version``: bump it when the same config starts to produce a different fitted state (it is part of a
  stored matcher's key);
- what its score means (``score``, a :class:`Score`: one line and the range its values lie in), for matchers,
  re-rankers and metrics: every page that shows a score explains it from here, so a new part explains its own.

A leaf module: it imports nothing from ``tll_core`` but the error type, so every part's module can import it
without a cycle. Parts enter the register when their module is imported: ``tll_core.matchers`` imports each
matcher module, ``tll_core.rerank`` holds the re-rankers, ``tll_core.backbones.registry`` the families.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_type_hints

from .errors import TLLError, quoted, shown
from .numbers import RULES, WHOLE, parse_decimal, parse_whole

Kind = Literal["family", "matcher", "rerank", "metric", "figure"]
KINDS: tuple[Kind, ...] = ("family", "matcher", "rerank", "metric", "figure")
_NOUN = {"family": "backbone family", "matcher": "method", "rerank": "rerank", "metric": "metric", "figure": "figure"}


def option(default: Any, *, help: str = "", lo: float | None = None, hi: float | None = None,  # noqa: A002
           above: float | None = None, below: float | None = None, choices: tuple[str, ...] | Kind = ()) -> Any:
    """A config field with its help and valid range: ``lo <= v <= hi``, ``above < v < below``, or one of ``choices``
    (a kind of part, e.g. ``"metric"``: the names registered at the time the option is read)."""
    return field(default=default, metadata={"help": help, "lo": lo, "hi": hi, "above": above, "below": below,
                                            "choices": choices if isinstance(choices, str) else tuple(choices)})


@dataclass(frozen=True)
class OptionSpec:
    """One option of a part, read from its config field: what the CLI, the studio and URL parsing offer."""

    name: str
    kind: type  # bool, int, float or str
    default: Any
    help: str = ""
    lo: float | None = None
    hi: float | None = None
    above: float | None = None
    below: float | None = None
    choices: tuple[str, ...] = ()

    @property
    def minimum(self) -> float | None:
        """The lowest allowed value, for a widget (``above`` is exclusive: the widget may show it, the check refuses it)."""
        return self.lo if self.lo is not None else self.above

    @property
    def maximum(self) -> float | None:
        return self.hi if self.hi is not None else self.below

    def describe(self) -> str:
        """``epochs (int, 1..100000, default 60): help`` — one line of CLI help."""
        if self.choices:
            what = "|".join(self.choices)
        else:
            what = self.kind.__name__
            low = _num(self.lo) if self.lo is not None else (f">{_num(self.above)}" if self.above is not None else "")
            high = _num(self.hi) if self.hi is not None else (f"<{_num(self.below)}" if self.below is not None else "")
            if low or high:
                what += f", {low}..{high}"
        default = self.default if isinstance(self.default, str) else (
            json.dumps(self.default) if isinstance(self.default, bool) else _num(self.default))
        return f"{self.name} ({what}, default {default})" + (f": {self.help}" if self.help else "")

    def parse(self, text: str) -> Any:
        """A value from text (``--option``, a URL), checked; one line naming the option, as the user wrote it,
        when it is not valid."""
        text = text.strip(" \t")  # ASCII blanks only, as for every number (tll_core/numbers.py)
        try:
            if self.kind is bool:  # only the words: "1" is as likely a slip for another option as a yes
                if text.lower() not in ("true", "false"):
                    raise TLLError("expected true or false")
                return text.lower() == "true"
            if self.kind in (int, float):
                try:
                    value: Any = (parse_whole(text) if self.kind is int and WHOLE.fullmatch(text)
                                  else parse_decimal(text, non_finite=True))
                except (ValueError, OverflowError):
                    raise TLLError(f"expected {_EXPECTED[self.kind]} ({RULES[self.kind]})") from None
                return self.check(value, quiet=True)
            return self.check(text, quiet=True)
        except TLLError as exc:
            raise TLLError(f"option {self.name}={shown(text)}: {exc}") from None

    def check(self, value: Any, *, quiet: bool = False) -> Any:
        """``value`` (a whole float made an int for an int option), or one line naming the option and the
        problem (``quiet``: the problem alone, for :meth:`parse` to name the text)."""
        if self.kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        problem = self._type_problem(value) or self._range_problem(value)
        if problem:
            raise TLLError(problem if quiet else f"option {self.name}={quoted(value) if isinstance(value, str) else shown(value)}: {problem}")
        return value

    def _type_problem(self, value: Any) -> str | None:
        if self.kind is bool:
            return None if isinstance(value, bool) else "expected true or false"
        if self.kind is int:
            return None if isinstance(value, int) and not isinstance(value, bool) else "expected a whole number"
        if self.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return "expected a number"
            return None if isinstance(value, int) or math.isfinite(value) else "expected a finite number"
        if self.kind is str:
            return None if isinstance(value, str) else "expected text"
        return None

    def _range_problem(self, value: Any) -> str | None:
        if self.choices and value not in self.choices:
            return f"choose from {', '.join(self.choices)}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if (self.lo is not None and value < self.lo) or (self.above is not None and value <= self.above):
            return f"must be {'at least ' + format(self.lo, 'g') if self.lo is not None else 'above ' + format(self.above, 'g')}"
        if (self.hi is not None and value > self.hi) or (self.below is not None and value >= self.below):
            return f"must be {'at most ' + format(self.hi, 'g') if self.hi is not None else 'below ' + format(self.below, 'g')}"
        return None


_EXPECTED = {int: "a whole number", float: "a number"}


def _num(value: float) -> str:
    """A bound or default as people write it: ``100000``, ``0.0667``, ``1e-4``."""
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e7):
        return str(int(value))
    return format(value, ".3g")



def options_of(cfg: type | None) -> tuple[OptionSpec, ...]:
    """The options of a config dataclass, in field order (a field without :func:`option` still has a type and default)."""
    if cfg is None:
        return ()
    hints = get_type_hints(cfg)
    out = []
    for f in dataclasses.fields(cfg):
        meta = f.metadata
        choices = meta.get("choices", ())
        out.append(OptionSpec(f.name, hints[f.name], f.default, meta.get("help", ""), meta.get("lo"), meta.get("hi"),
                              meta.get("above"), meta.get("below"),
                              REGISTER.names(choices) if isinstance(choices, str) else tuple(choices)))
    return tuple(out)


def checked(cfg: Any) -> None:
    """Refuse a config whose fields have the wrong type or lie out of range: one line naming the option.

    Call it from a config's ``__post_init__``: ``epochs=2.5`` would train a float range, ``temperature=0``
    divide by zero into NaN scores, ``holdout=2`` silently hold back every pair; each is an error before any work.
    """
    for spec in options_of(type(cfg)):
        spec.check(getattr(cfg, spec.name))


@dataclass(frozen=True)
class Score:
    """What a part's score means, as its register entry declares it: one line a person can read and the closed
    range its values lie in (``None``: unbounded on that side). Higher is always the better match."""

    meaning: str
    lo: float | None = None
    hi: float | None = None

    @property
    def range_text(self) -> str:
        """``from -1 to 1``, ``at most 0``, ``at least 0`` or ``no fixed range``."""
        if self.lo is not None and self.hi is not None:
            return f"from {_num(self.lo)} to {_num(self.hi)}"
        if self.hi is not None:
            return f"at most {_num(self.hi)}"
        if self.lo is not None:
            return f"at least {_num(self.lo)}"
        return "no fixed range"

    def describe(self) -> str:
        """``cosine of the two embeddings (from -1 to 1; higher = better match)``."""
        return f"{self.meaning} ({self.range_text}; higher = better match)"


@dataclass(frozen=True)
class Part:
    """A registered part: its name, config and builder, and what the front ends show of it."""

    kind: Kind
    name: str
    build: Callable[..., Any]  # build(cfg) for a configured part, build() without a config
    cfg: type | None = None  # the config dataclass: its fields are the options
    help: str = ""
    metric: str | None = None  # matchers: what they score with; None: their ``metric`` option
    version: int = 1  # bump when the same config starts to give a different fitted state
    score: Score | None = None  # matchers, re-rankers, metrics: what their score means (tests check each has one)

    @property
    def options(self) -> tuple[OptionSpec, ...]:
        return options_of(self.cfg)

    def option(self, name: str) -> OptionSpec:
        for spec in self.options:
            if spec.name == name:
                return spec
        raise TLLError(f"{self.name}: unknown option {shown(name)}; "
                       f"settable: {', '.join(s.name for s in self.options) or 'none'}")

    def checked_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` each checked against its field (type, range; whole floats made ints): one line on a bad one."""
        out = {name: self.option(name).check(value) for name, value in options.items()}
        if self.cfg is not None:
            self.cfg(**out)  # cross-field checks in the config's __post_init__, if any
        return out

    def config(self, **options: Any) -> Any:
        return self.cfg(**self.checked_options(options)) if self.cfg is not None else None

    def create(self, **options: Any) -> Any:
        """The part built from its options (checked first); a dataclass part is its own config."""
        if self.cfg is None:
            return self.build()
        config = self.config(**options)
        return config if self.build is self.cfg else self.build(config)

    def metric_label(self, options: dict[str, Any] | None = None) -> str:
        """What this matcher scores with, as a result row shows it."""
        if self.metric is not None:
            return self.metric
        return str((options or {}).get("metric", self.option("metric").default))

    def score_of(self, options: dict[str, Any] | None = None) -> Score | None:
        """What this part's score means with ``options``: a matcher that scores with its ``metric`` option takes
        that metric's range, its own line first (``None``: the part declares nothing)."""
        if self.score is None or self.kind != "matcher" or self.metric is not None:
            return self.score
        name = self.metric_label(options)
        used = REGISTER.get("metric", name).score if ("metric", name) in REGISTER else None
        if used is None:
            return self.score
        return Score(f"{self.score.meaning}, {name}: {used.meaning}", used.lo, used.hi)


class Register:
    """Parts by kind, then name, in the order they were entered (the order every front end lists them in)."""

    def __init__(self) -> None:
        self._parts: dict[str, dict[str, Part]] = {kind: {} for kind in KINDS}

    def add(self, part: Part, *, replace: bool = False) -> Part:
        """Enter ``part``; a second part of the same kind and name is an error unless ``replace`` (an imported
        file entered again after it changed)."""
        entries = self._parts[part.kind]
        if part.name in entries and entries[part.name].build is not part.build and not replace:
            raise ValueError(f"{part.kind} {part.name!r} is registered twice")
        entries[part.name] = part
        return part

    def get(self, kind: Kind, name: str) -> Part:
        try:
            return self._parts[kind][name]
        except KeyError:
            raise TLLError(f"unknown {_NOUN[kind]} {quoted(name)}; choose from: {', '.join(self.names(kind))}") from None

    def names(self, kind: Kind) -> tuple[str, ...]:
        return tuple(self._parts[kind])

    def parts(self, kind: Kind) -> tuple[Part, ...]:
        return tuple(self._parts[kind].values())

    def __contains__(self, item: tuple[Kind, str]) -> bool:
        kind, name = item
        return name in self._parts[kind]

    def remove(self, kind: Kind, name: str) -> None:
        """Take a part out again (a test's or a notebook's own part)."""
        self._parts[kind].pop(name, None)


REGISTER = Register()


def register(kind: Kind, name: str, *, cfg: type | None = None, help: str = "",  # noqa: A002
             metric: str | None = None, version: int = 1,
             score: Score | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: enter a class or function as a part (``@register("matcher", "adaptation", cfg=AdaptationCfg, …)``).

    A dataclass entered without ``cfg`` is its own config: its fields are its options (the re-rankers, zero-shot).
    A matcher or re-ranker declares what its ``score`` means (a :class:`Score`)."""

    def enter(build: Callable[..., Any]) -> Callable[..., Any]:
        own = build if cfg is None and isinstance(build, type) and dataclasses.is_dataclass(build) else cfg
        REGISTER.add(Part(kind, name, build, own, help, metric, version, score))
        return build

    return enter
