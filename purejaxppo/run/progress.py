"""Progress display between chunks: a rich progress bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO


def _fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = round(seconds)
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def count(n: int, noun: str, plural: str | None = None) -> str:
    """`1 seed`, `2 seeds`, `1 entry` / `3 entries` (pass `plural` when it is not noun + s)."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def _fmt_return(mean: float, std: float) -> str:
    if not math.isfinite(mean):
        return "n/a"
    return f"{mean:.1f} ± {std:.1f}" if math.isfinite(std) and std > 0 else f"{mean:.1f}"


class Progress:
    """Reports `updates done / total`, env steps, steps/s, mean return and ETA.

    On a terminal a rich progress bar is redrawn after every chunk; otherwise a
    line is printed for the first chunk, then at most every 5% of the run or
    every 10 s, and for the last chunk.

    Args:
      total_updates: updates in the whole run.
      batch_size: env steps per update and seed.
      num_seeds: S; steps/s counts the steps of all seeds.
      start_update: where this session started (resume), for the rate and ETA.
      bar: a rich progress bar (True), plain lines (False), or auto (None: bar on a TTY).
      stream: where plain lines go.
    """

    def __init__(
        self,
        total_updates: int,
        batch_size: int,
        num_seeds: int,
        start_update: int = 0,
        bar: bool | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.total = total_updates
        self.batch_size = batch_size
        self.num_seeds = num_seeds
        self.start_update = start_update
        self.stream = stream or sys.stdout
        self.bar = self.stream.isatty() if bar is None else bar
        self._rich = None
        self._task = None
        self._last_line_time = -math.inf
        self._last_line_update = start_update

    def __enter__(self) -> Progress:
        if self.bar:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(
                TextColumn("[bold]updates"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._rich.start()
            self._task = self._rich.add_task(
                "train", total=self.total, completed=self.start_update, info=""
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()

    def update(self, done: int, train_time_s: float, mean_return: float, std: float) -> None:
        """Report progress after a chunk (`train_time_s`: this session's training time)."""
        session_updates = done - self.start_update
        rate = session_updates * self.batch_size * self.num_seeds / max(train_time_s, 1e-9)
        eta = (self.total - done) * train_time_s / max(session_updates, 1)
        steps = done * self.batch_size
        info = f"steps {steps:,}  {rate:,.0f} steps/s  return {_fmt_return(mean_return, std)}"
        if self._rich is not None:
            self._rich.update(self._task, completed=done, info=info)
            return
        # Plain lines: the first, then at most one per 5% of the run or 10 s, and the last.
        now = time.monotonic()
        due = (
            self._last_line_time == -math.inf
            or done >= self.total
            or done - self._last_line_update >= self.total / 20
            or now - self._last_line_time >= 10.0
        )
        if not due:
            return
        self._last_line_time, self._last_line_update = now, done
        width = len(str(self.total))
        print(
            f"  update {done:{width}d}/{self.total}  {info}  ETA {_fmt_duration(eta)}",
            file=self.stream,
            flush=True,
        )
