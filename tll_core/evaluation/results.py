"""One result type for every figure a front end shows: :class:`ResultRow`.

The CLI's ``evaluate --json`` (both protocols), ``reproduce`` and the studio's leaderboard all print or lay
out these rows. A row is one backbone x method under one protocol, with every registered figure of that
protocol (``tll_core/evaluation/figures.py``; ``row.top2``, ``row["recall@1"]``) and its headline figure's
bootstrap interval:

- ``tasks`` (the competition's): top-1/2/5, MRR and mean rank of the truth among 20 candidates, with a
  bootstrap interval of top-2;
- ``gallery`` (the TLL paper's): recall@1/5/10, median rank and MRR of the truth among all ``gallery`` rights.

A ``reproduce`` row also names its ``experiment``; one that could not run says why in ``skipped`` and carries
no figure (``None`` in JSON, never NaN).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .figures import PROTOCOLS, Evaluation, Protocol, figure_attribute, figures_of

__all__ = ["PROTOCOLS", "Protocol", "ResultRow"]
_NAN = float("nan")


@dataclass(frozen=True)
class ResultRow:
    backbone: str
    metric: str
    method: str
    protocol: Protocol = "tasks"
    n: int = 0
    values: tuple[tuple[str, float], ...] = ()  # (figure name, value), in register order
    ci: tuple[float, float] = (_NAN, _NAN)  # the headline figure's (top2, recall@1) seeded bootstrap 95 % interval
    gallery: int = 0  # gallery protocol: the gallery's size
    versus_first: float = _NAN  # exact McNemar p of its top-2 hits against the first row's (tasks protocol)
    experiment: str = ""  # reproduce
    skipped: str = ""  # why the row could not run (then it has no figures)
    seconds: float = field(default=_NAN, compare=False)  # how long computing it took (the engine's evaluations)

    @classmethod
    def of(cls, backbone: str, metric: str, method: str, r: Evaluation, experiment: str = "") -> ResultRow:
        """The row of an evaluation under either protocol."""
        return cls(backbone, metric, method, r.protocol, r.n, tuple(r.values.items()), r.ci,
                   r.pool if r.protocol == "gallery" else 0, experiment=experiment)

    @classmethod
    def not_run(cls, backbone: str, metric: str, method: str, reason: str, experiment: str = "",
                protocol: Protocol = "tasks") -> ResultRow:
        return cls(backbone, metric, method, protocol, experiment=experiment, skipped=reason)

    def __getattr__(self, attr: str) -> Any:  # row.top2, row.recall_at_1, row.top2_ci: a registered figure
        return figure_attribute(self, attr)

    def __getitem__(self, name: str) -> float:
        """A figure by its name (``row["recall@1"]``); NaN where the row has none (skipped)."""
        return self.figures.get(name, _NAN)

    @property
    def figures(self) -> dict[str, float]:
        """The protocol's figures by their JSON names (empty for a skipped row)."""
        return {} if self.skipped else dict(self.values)

    def as_dict(self) -> dict[str, Any]:
        """The JSON row: identity, the protocol's figures, ``n`` (and ``gallery`` or ``top2_ci``); a reproduce row
        adds ``experiment`` and ``skipped``, a skipped row has ``None`` for every figure."""
        row: dict[str, Any] = {"backbone": self.backbone, "metric": self.metric, "method": self.method}
        if self.experiment:
            row["experiment"] = self.experiment
        figures = self.figures
        row.update({f.name: _finite(figures.get(f.name)) for f in figures_of(self.protocol)})
        row["n"] = self.n
        if self.protocol == "gallery":
            row["gallery"] = self.gallery
        else:
            row["top2_ci"] = None if self.skipped else [_finite(v) for v in self.ci]
            if math.isfinite(self.versus_first):
                row["mcnemar_p_vs_first"] = self.versus_first
        if self.experiment or self.skipped:
            row["skipped"] = self.skipped
        return row


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
