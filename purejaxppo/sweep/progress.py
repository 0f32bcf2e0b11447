"""The sweep's progress display: `ProgressBar`, one status line over members and chunks.

On a terminal the line is redrawn in place; in a log file a line per finished
chunk (and, inside a long chunk, one every `LOG_EVERY_S` seconds).
"""

from __future__ import annotations

import math
import time
from typing import TextIO

from purejaxppo.run.progress import count

LOG_EVERY_S = 30.0  # not on a terminal: a progress line at most this often inside a chunk


class ProgressBar:
    """One status line over members, chunks and updates (redrawn on a terminal).

    Not on a terminal (a log file), it prints a line per finished chunk and,
    inside a long chunk, one every `LOG_EVERY_S` seconds.
    """

    def __init__(self, total_members: int, total_chunks: int, stream: TextIO, enabled: bool):
        self.total_members = total_members
        self.total_chunks = total_chunks
        self.stream = stream
        self.enabled = enabled
        self.tty = enabled and stream.isatty()
        self.members = 0
        self.chunks = 0
        self.start = time.perf_counter()
        self.work_done = 0.0  # members x fraction of their updates, this session
        self.work_start = 0
        self.last_line = self.start
        self.excluded = 0.0  # compile seconds, not part of the training rate

    def resume(self, members: int, chunks: int) -> None:
        """Count already finished chunks (they do not enter the rate)."""
        self.members, self.chunks, self.work_start = members, chunks, members

    def exclude(self, seconds: float) -> None:
        """Leave `seconds` (compilation) out of the rate behind the ETA."""
        self.excluded += seconds

    def _line(self, chunk_members: int, frac: float | None, group: str) -> str:
        done = self.members + chunk_members * (frac or 0.0)
        width = 24
        fill = int(width * done / max(1, self.total_members))
        elapsed = time.perf_counter() - self.start
        work = done - self.work_start
        left = self.total_members - done
        eta = max(0.0, elapsed - self.excluded) * left / work if work > 0 else math.nan
        eta_text = "?" if math.isnan(eta) else f"{eta:.0f}s"
        chunk = "" if frac is None else f" | {frac * 100:3.0f}% of chunk"
        return (
            f"[{'#' * fill}{'.' * (width - fill)}] {int(done)}/{self.total_members} members | "
            f"chunk {min(self.chunks + 1, self.total_chunks)}/{self.total_chunks} | "
            f"{group}{chunk} | {elapsed:.0f}s, eta {eta_text}"
        )

    def update(self, chunk_members: int, frac: float, group: str) -> None:
        """Progress inside the running chunk (`frac` of its updates done)."""
        if self.tty:
            self.stream.write("\r" + self._line(chunk_members, frac, group)[:160] + "\x1b[K")
            self.stream.flush()
        elif self.enabled and time.perf_counter() - self.last_line > LOG_EVERY_S:
            self.last_line = time.perf_counter()
            self.stream.write(self._line(chunk_members, frac, group) + "\n")
            self.stream.flush()

    def chunk_done(self, chunk_members: int, group: str, seconds: float) -> None:
        """A chunk finished and was written."""
        self.members += chunk_members
        self.chunks += 1
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r" + self._line(0, None, group)[:160] + "\x1b[K")
            if self.chunks == self.total_chunks:
                self.stream.write("\n")
        else:
            self.stream.write(
                f"chunk {self.chunks}/{self.total_chunks} done ({group}, "
                f"{count(chunk_members, 'member')}, "
                f"{seconds:.1f}s): {self.members}/{self.total_members} members\n"
            )
        self.stream.flush()
