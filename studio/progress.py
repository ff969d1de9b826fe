"""A progress bar that the engine's reports move: one bar for a whole job — its stages (embedding passes, training)
with their counts and one time left.

Never move one from inside an ``st.cache_data``/``st.cache_resource`` function: Streamlit records what a
cached function draws to replay it, and a bar drawn outside the function cannot be replayed
(``CacheReplayClosureError``). ``studio.memo.Memo`` keeps such answers instead.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import streamlit as st

from tll_core.matchers import EpochReport
from tll_core.progress import ProgressMeter, Stage


class ProgressBar:
    """The engine's ``progress`` (images) and ``callback`` (epochs) in one bar of ``where``."""

    def __init__(self, where: Any, what: str) -> None:  # where: st or a container
        self._slot = where.empty()
        self.meter = ProgressMeter(what)

    def images(self, done: int, total: int) -> None:
        self.meter.images(done, total)
        self._draw()

    def epoch(self, report: EpochReport) -> None:
        self.meter.epoch(report)
        self._draw()

    def expect(self, plan: tuple[Stage, ...]) -> None:
        """The job's stages: the bar then counts the whole job, stage by stage, with one time left."""
        self.meter.expect(plan)

    def _draw(self) -> None:
        self._slot.progress(min(1.0, self.meter.fraction), text=self.meter.text)

    def clear(self) -> None:
        self._slot.empty()


@contextlib.contextmanager
def progress_bar(what: str = "embedding", where: Any = st) -> Iterator[ProgressBar]:
    """A bar for the duration of a call; gone when it returns (or fails)."""
    bar = ProgressBar(where, what)
    try:
        yield bar
    finally:
        bar.clear()
