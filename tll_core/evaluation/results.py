"""One result type for every figure a front end shows: :class:`ResultRow`.

The CLI's ``evaluate --json`` (both protocols), ``reproduce`` and the studio's leaderboard all print or lay
out these rows. A row is one backbone x method under one protocol:

- ``tasks`` (the competition's): top-1/2/5, MRR and mean rank of the truth among 20 candidates, with a
  bootstrap interval of top-2;
- ``gallery`` (the TLL paper's): recall@1/5/10, median rank and MRR of the truth among all ``gallery`` rights.

A ``reproduce`` row also names its ``experiment``; one that could not run says why in ``skipped`` and carries
no figure (``None`` in JSON, never NaN).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .gallery import GalleryMetrics
    from .metrics import Evaluation

Protocol = Literal["tasks", "gallery"]
PROTOCOLS: tuple[Protocol, ...] = ("tasks", "gallery")
_NAN = float("nan")


@dataclass(frozen=True)
class ResultRow:
    backbone: str
    metric: str
    method: str
    protocol: Protocol = "tasks"
    n: int = 0
    mrr: float = _NAN
    # tasks protocol
    top1: float = _NAN
    top2: float = _NAN
    top5: float = _NAN
    mean_rank: float = _NAN
    top2_ci: tuple[float, float] = (_NAN, _NAN)
    # gallery protocol
    recall_at_1: float = _NAN
    recall_at_5: float = _NAN
    recall_at_10: float = _NAN
    median_rank: float = _NAN
    gallery: int = 0
    # reproduce
    experiment: str = ""
    skipped: str = ""  # why the row could not run (then it has no figures)

    @classmethod
    def of_tasks(cls, backbone: str, metric: str, method: str, r: Evaluation, experiment: str = "") -> ResultRow:
        return cls(backbone, metric, method, "tasks", r.n, r.mrr, r.top1, r.top2, r.top5, r.mean_rank, r.top2_ci,
                   experiment=experiment)

    @classmethod
    def of_gallery(cls, backbone: str, metric: str, method: str, g: GalleryMetrics) -> ResultRow:
        return cls(backbone, metric, method, "gallery", g.n, g.mrr, recall_at_1=g.recall_at_1,
                   recall_at_5=g.recall_at_5, recall_at_10=g.recall_at_10, median_rank=g.median_rank, gallery=g.gallery)

    @classmethod
    def not_run(cls, backbone: str, metric: str, method: str, reason: str, experiment: str = "") -> ResultRow:
        return cls(backbone, metric, method, experiment=experiment, skipped=reason)

    @property
    def figures(self) -> dict[str, float]:
        """The protocol's figures by their JSON names (empty for a skipped row)."""
        if self.skipped:
            return {}
        if self.protocol == "gallery":
            return {"recall@1": self.recall_at_1, "recall@5": self.recall_at_5, "recall@10": self.recall_at_10,
                    "median_rank": self.median_rank, "mrr": self.mrr}
        return {"top1": self.top1, "top2": self.top2, "top5": self.top5, "mrr": self.mrr, "mean_rank": self.mean_rank}

    def as_dict(self) -> dict[str, Any]:
        """The JSON row: identity, the protocol's figures, ``n`` (and ``gallery`` or ``top2_ci``); a reproduce row
        adds ``experiment`` and ``skipped``, a skipped row has ``None`` for every figure."""
        row: dict[str, Any] = {"backbone": self.backbone, "metric": self.metric, "method": self.method}
        if self.experiment:
            row["experiment"] = self.experiment
        names = ("recall@1", "recall@5", "recall@10", "median_rank", "mrr") if self.protocol == "gallery" else (
            "top1", "top2", "top5", "mrr", "mean_rank")
        figures = self.figures
        row.update({name: _finite(figures.get(name)) for name in names})
        row["n"] = self.n
        if self.protocol == "gallery":
            row["gallery"] = self.gallery
        else:
            row["top2_ci"] = None if self.skipped else [_finite(v) for v in self.top2_ci]
        if self.experiment:
            row["skipped"] = self.skipped
        return row


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
