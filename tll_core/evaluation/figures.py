"""Figures: registered parts (``tll_core.register``, kind ``figure``) computed from the truth's ranks.

A figure has a name (its JSON key and table column), the protocols it applies to (``tasks``: the truth among
20 candidates; ``gallery``: among every validation right), a ``compute(ranks, pool)`` (ranks 1 best, ``pool``
the candidates per left), one line of help and a format. Its function returns one value per left (the figure
is their mean, and can have a bootstrap interval) or a single number (e.g. a median). Every front end asks the
register: ``evaluate``'s JSON and tables, ``reproduce``, the studio's leaderboard and Compare. Adding one: a
decorated function in a module that ``tll_core.evaluation.figures`` imports (or this one).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..register import REGISTER, Part
from .significance import bootstrap_ci

Protocol = Literal["tasks", "gallery"]
PROTOCOLS: tuple[Protocol, ...] = ("tasks", "gallery")
HEADLINE: dict[Protocol, str] = {"tasks": "top2", "gallery": "recall@1"}  # the figure each protocol's CI is of
Compute = Callable[[np.ndarray, int], Any]  # (ranks, pool) -> per-left values, or one number


@dataclass(frozen=True)
class Figure:
    """A registered figure; ``Part.create()`` gives it back (it is its own builder)."""

    name: str
    protocols: tuple[Protocol, ...]
    compute: Compute
    help: str = ""
    format: str = ".3f"
    header: str = ""  # a short table header ("" = the name)

    def __call__(self) -> Figure:
        return self

    @property
    def label(self) -> str:
        """The name as a table column shows it (``mean_rank`` → ``mean rank``)."""
        return self.name.replace("_", " ")

    @property
    def attribute(self) -> str:
        """The name as a Python attribute (``recall@1`` → ``recall_at_1``): ``row.recall_at_1``."""
        return attribute_name(self.name)

    def value(self, ranks: np.ndarray, pool: int) -> float:
        return float(np.mean(self.compute(ranks, pool)))

    def shown(self, value: float | None) -> str:
        return "-" if value is None or not np.isfinite(value) else format(value, self.format)


def attribute_name(name: str) -> str:
    return name.replace("@", "_at_")


def figure(name: str, *, protocols: tuple[Protocol, ...], help: str, format: str = ".3f",  # noqa: A002
           header: str = "") -> Callable[[Compute], Compute]:
    """Decorator: enter ``compute(ranks, pool)`` as the figure ``name``."""

    def enter(compute: Compute) -> Compute:
        REGISTER.add(Part("figure", name, Figure(name, protocols, compute, help, format, header or name), help=help))
        return compute

    return enter


def figures_of(protocol: Protocol) -> tuple[Figure, ...]:
    """The registered figures of a protocol, in register order (the order of every table and JSON row)."""
    return tuple(f for f in (p.create() for p in REGISTER.parts("figure")) if protocol in f.protocols)


@dataclass(frozen=True)
class Evaluation:
    """Every figure of a protocol from the truth's ranks, and the headline figure's bootstrap interval.
    ``evaluation.top2`` / ``evaluation.recall_at_1``: a figure by its attribute name."""

    protocol: Protocol
    ranks: np.ndarray  # per left, 1 best
    pool: int  # candidates per left: 20, or the gallery's size
    values: dict[str, float] = field(default_factory=dict)
    ci: tuple[float, float] = (float("nan"), float("nan"))

    @property
    def n(self) -> int:
        return len(self.ranks)

    def __getattr__(self, attr: str) -> Any:
        return figure_attribute(self, attr)


def figure_attribute(holder: Any, attr: str) -> Any:
    """``holder.<figure attribute>`` (``top2``, ``recall_at_1``) and ``holder.<headline>_ci``, from its
    ``values`` and ``ci``: a new figure needs no new field anywhere."""
    if attr.startswith("_"):
        raise AttributeError(attr)
    values = dict(object.__getattribute__(holder, "values"))
    for name in REGISTER.names("figure"):
        if attribute_name(name) == attr:
            return values.get(name, float("nan"))  # not computed for this protocol (or a skipped row): no figure
    if attr == attribute_name(HEADLINE[object.__getattribute__(holder, "protocol")]) + "_ci":
        return object.__getattribute__(holder, "ci")
    raise AttributeError(f"{type(holder).__name__} has no figure {attr}")


def evaluate_ranks(ranks: np.ndarray, protocol: Protocol, pool: int, *, n_boot: int = 1000,
                   seed: int = 0) -> Evaluation:
    """Every registered figure of ``protocol``, and the seeded bootstrap interval of its headline figure."""
    ranks = np.asarray(ranks, dtype=np.int64)
    figures = figures_of(protocol)
    values = {f.name: f.value(ranks, pool) for f in figures}
    headline = next(f for f in figures if f.name == HEADLINE[protocol])
    ci = bootstrap_ci(np.asarray(headline.compute(ranks, pool)), n_boot=n_boot, seed=seed)
    return Evaluation(protocol, ranks, pool, values, ci)


# ---------------------------------------------------------------- the figures (register order: the columns' order)


def _top(k: int) -> Compute:
    return lambda ranks, pool: ranks <= k


for _k in (1, 2, 5):
    figure(f"top{_k}", protocols=("tasks",),
           help=f"share of lefts whose truth ranks in the first {_k}" + (" (the competition's metric)" if _k == 2 else ""))(_top(_k))
for _k in (1, 5, 10):
    figure(f"recall@{_k}", protocols=("gallery",), help=f"share of lefts whose truth ranks in the first {_k} of the gallery",
           header=f"R@{_k}")(_top(_k))


@figure("median_rank", protocols=("gallery",), help="median rank of the truth in the gallery", format=".1f", header="medR")
def median_rank(ranks: np.ndarray, pool: int) -> float:
    return float(np.median(ranks))


@figure("mrr", protocols=("tasks", "gallery"), help="mean reciprocal rank of the truth", header="MRR")
def mrr(ranks: np.ndarray, pool: int) -> np.ndarray:
    return 1.0 / ranks


@figure("mean_rank", protocols=("tasks",), help="mean rank of the truth (1 best, 20 worst)", format=".2f", header="rank")
def mean_rank(ranks: np.ndarray, pool: int) -> np.ndarray:
    return ranks
