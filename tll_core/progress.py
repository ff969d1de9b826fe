"""Honest progress for long calls: one display for the whole job — its stages, each with its count, and the time
left for all of it.

The engine reports ``(done, total)`` per batch of images (:data:`tll_core.embeddings.Progress`) and each
epoch of training (:class:`tll_core.matchers.EpochReport`). A job's stages are known before it starts
(:meth:`tll_core.engine.Engine.stages`: one embedding pass per image view, every part of an ensemble in the same
pass, then training); a :class:`ProgressMeter` given that plan follows the reports through it and turns them into
one line for a progress bar. Images taken from the cache arrive at once, at the start of a pass or in the middle
of it (a submission's pass holds the train images, cached, before the test images): the rate is measured over
the last :data:`RATE_WINDOW` seconds of reports, so a burst from the cache leaves it soon and the rate is the
backbone's, not the cache's. A later embedding pass of the
same job runs the same backbones, so its time is estimated at the rate measured; training's time is estimated
from an earlier training of the same kind in this process, and until one is known the line says what follows
instead of guessing.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from .matchers import EpochReport

StageKind = Literal["embedding", "training"]
EPOCH_SECONDS: dict[str, float] = {}  # seconds per epoch last measured, by stage label (this process)


class Reporter(Protocol):
    """What long calls tell of their progress: images embedded, epochs trained (a meter, a studio bar)."""

    def images(self, done: int, total: int) -> None: ...

    def epoch(self, report: EpochReport) -> None: ...

    def expect(self, plan: tuple[Stage, ...]) -> None: ...


RATE_WINDOW = 20.0  # seconds of reports the embedding rate is measured over


@dataclass(frozen=True)
class Stage:
    """One stage of a job: an embedding pass over ``total`` images, or training for at most ``total`` epochs."""

    kind: StageKind
    label: str  # what it works on: the backbones of a pass, the matcher trained
    total: int


@dataclass
class ProgressMeter:
    """What a progress bar says: ``fraction`` (0..1, of the whole plan) and ``text`` after each report."""

    what: str = "embedding"
    clock: Callable[[], float] = time.monotonic
    plan: tuple[Stage, ...] = ()
    fraction: float = 0.0
    text: str = ""
    _stage: int = field(default=-1, repr=False)  # index into the plan (-1: before the first report)
    _first: tuple[float, int] | None = field(default=None, repr=False)  # (time, done) at the stage's first report
    _recent: list[tuple[float, int]] = field(default_factory=list, repr=False)  # this pass's (time, done), windowed
    _last: tuple[int, int] = field(default=(0, 0), repr=False)  # (done, total) at the last image report
    _rate: float | None = field(default=None, repr=False)  # images/s measured in this job
    _epoch_first: tuple[float, int] | None = field(default=None, repr=False)  # (time, epoch) at training's first report
    _unplanned: StageKind | None = field(default=None, repr=False)  # the kind of a stage the plan did not foresee

    def expect(self, plan: tuple[Stage, ...]) -> None:
        """The stages of the job about to start (``Engine.stages``): reports from now on are placed in it."""
        self.plan, self._stage, self._first, self._epoch_first, self._unplanned = tuple(plan), -1, None, None, None

    def images(self, done: int, total: int) -> None:
        """An embedding report: ``done`` of ``total`` images have their vectors."""
        now = self.clock()
        new_pass = self._first is None or done < self._last[0] or total != self._last[1] or self._kind() != "embedding"
        if new_pass and self._first is not None and done == total:
            return  # vectors already in memory, all at once: no stage to show (the job's line stays)
        if new_pass:
            self._enter("embedding")  # a new pass (the next view, the gallery's images)
            self._first = (now, done)
            self._recent = []
        self._last = (done, total)
        self._recent = self._window([*self._recent, (now, done)], now)
        start_time, start_done = self._recent[0]
        elapsed, fresh = now - start_time, done - start_done
        if fresh > 0 and elapsed > 0:
            self._rate = fresh / elapsed
        line = f"{self._name()}: {done:,} / {total:,} images"
        left = None
        if fresh > 0 and elapsed > 0 and done < total:
            line += f" · {self._rate:,.1f} img/s"
            left = (total - done) / self._rate
        self._show(done / total if total else 1.0, line, left)

    @staticmethod
    def _window(points: list[tuple[float, int]], now: float) -> list[tuple[float, int]]:
        """The reports of the last RATE_WINDOW seconds, and the last one before them (the rate's start)."""
        older = [k for k, (t, _) in enumerate(points) if t < now - RATE_WINDOW]
        return points[older[-1]:] if older else points

    def epoch(self, report: EpochReport) -> None:
        """A training report: one more epoch done (early stopping may end before the last)."""
        now = self.clock()
        if self._kind() != "training" or self._epoch_first is None or report.epoch <= self._epoch_first[1]:
            if self._kind() != "training":
                self._enter("training")
            self._epoch_first = (now, report.epoch)
        line = (f"{self._name('training')}: epoch {report.epoch} of at most {report.epochs} · loss "
                f"{report.train_loss:.4f} · held-back top-2 {report.holdout_top2:.3f}")
        first_time, first_epoch = self._epoch_first
        per_epoch = (now - first_time) / (report.epoch - first_epoch) if report.epoch > first_epoch else 0.0
        if per_epoch > 0:
            EPOCH_SECONDS[self._label()] = per_epoch
        self._show(report.epoch / report.epochs, line, per_epoch * (report.epochs - report.epoch) if per_epoch else None)

    # ------------------------------------------------------------ the plan

    def _kind(self) -> StageKind | None:
        if 0 <= self._stage < len(self.plan):
            return self.plan[self._stage].kind
        return None if self._stage < 0 else self._unplanned

    def _enter(self, kind: StageKind) -> None:
        """Move to the plan's next stage of ``kind`` (a report the plan did not foresee: an unplanned stage)."""
        for k in range(self._stage + 1, len(self.plan)):
            if self.plan[k].kind == kind:
                self._stage = k
                return
        self._stage, self._unplanned = len(self.plan), kind

    def _label(self) -> str:
        return self.plan[self._stage].label if 0 <= self._stage < len(self.plan) else self.what

    def _name(self, kind: str = "") -> str:
        """``JOB: stage 2 of 3 · training (adaptation)`` (``what``: the job), or the job alone past the plan."""
        if 0 <= self._stage < len(self.plan):
            stage = self.plan[self._stage]
            return f"{self.what}: stage {self._stage + 1} of {len(self.plan)} · {stage.kind} ({stage.label})"
        return kind or self.what

    def _show(self, stage_fraction: float, line: str, left: float | None) -> None:
        """The line, the job's fraction, and the time left for the whole plan when every stage after this one
        can be estimated (else what follows)."""
        planned = 0 <= self._stage < len(self.plan)
        self.fraction = (self._stage + stage_fraction) / len(self.plan) if planned else stage_fraction
        later = self.plan[self._stage + 1:] if planned else ()
        estimates = [self._estimate(s) for s in later]
        unknown = next((k for k, e in enumerate(estimates) if e is None), None)  # the first stage not estimable
        if left is not None:  # this stage and every estimable one before the first that is not
            line += f" · about {_duration(left + sum(estimates[:unknown]))} left"
            line += " in all" if later and unknown is None else ""
        if unknown is not None:
            line += f"{', ' if left is not None else ' · '}then {later[unknown].kind} ({later[unknown].label})"
        self.text = line

    def _estimate(self, stage: Stage) -> float | None:
        if stage.kind == "embedding":
            return stage.total / self._rate if self._rate else None
        per_epoch = EPOCH_SECONDS.get(stage.label)
        return per_epoch * stage.total if per_epoch else None


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds} s" if seconds < 90 else f"{seconds // 60} min {seconds % 60:02d} s"
