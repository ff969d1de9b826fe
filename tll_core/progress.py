"""Honest progress for long calls: images done of all, the rate they are being done at, and the time left.

The engine reports ``(done, total)`` per batch of images (:data:`tll_core.embeddings.Progress`) and each
epoch of training (:class:`tll_core.matchers.EpochReport`); a :class:`ProgressMeter` turns those reports into
one line for a progress bar. Images taken from the cache arrive at once at the start: the rate is measured
from the first report on, so it is the backbone's rate, not the cache's.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from .matchers import EpochReport


class Reporter(Protocol):
    """What long calls tell of their progress: images embedded, epochs trained (a meter, a studio bar)."""

    def images(self, done: int, total: int) -> None: ...

    def epoch(self, report: EpochReport) -> None: ...


@dataclass
class ProgressMeter:
    """What a progress bar says: ``fraction`` (0..1) and ``text`` after each report."""

    what: str = "embedding"
    clock: Callable[[], float] = time.monotonic
    fraction: float = 0.0
    text: str = ""
    _first: tuple[float, int] | None = field(default=None, repr=False)  # (time, done) at the stage's first report
    _last: int = field(default=0, repr=False)  # done at the last report

    def images(self, done: int, total: int) -> None:
        """An embedding report: ``done`` of ``total`` images have their vectors."""
        now = self.clock()
        if self._first is None or done < self._last:  # a new stage (e.g. the next member of an ensemble)
            self._first = (now, done)
        self._last = done
        self.fraction = done / total if total else 1.0
        self.text = f"{self.what}: {done:,} / {total:,} images"
        start_time, start_done = self._first
        elapsed, fresh = now - start_time, done - start_done
        if fresh > 0 and elapsed > 0 and done < total:
            rate = fresh / elapsed
            self.text += f" · {rate:,.1f} img/s · about {_duration((total - done) / rate)} left"

    def epoch(self, report: EpochReport) -> None:
        """A training report: one more epoch done (early stopping may end before the last)."""
        self.fraction = report.epoch / report.epochs
        self.text = (f"training: epoch {report.epoch} of at most {report.epochs} · loss {report.train_loss:.4f}"
                     f" · held-back top-2 {report.holdout_top2:.3f}")


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds} s" if seconds < 90 else f"{seconds // 60} min {seconds % 60:02d} s"
