"""Guards of a running job: SIGINT/SIGTERM handling and NaN/inf detection (host side)."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from purejaxppo.train import METRIC_NAMES

# Metrics that must stay finite: all but the episode statistics (NaN when no episode
# ended), explained variance (NaN when the returns have zero variance or, in `group`
# mode, there is no critic) and `kl` (measured by the KL objectives only, NaN for `clip`).
CHECKED_METRICS = tuple(
    name
    for name in METRIC_NAMES
    if name not in ("episode_return", "episode_length", "explained_variance", "kl")
)
EXIT_INTERRUPTED = {signal.SIGINT: 130, signal.SIGTERM: 143}
EXIT_NONFINITE = 1


# --------------------------------------------------------------------------- signals
class StopRequest:
    """SIGINT/SIGTERM handling: the first signal asks to stop after the current chunk,
    a second one abandons it (raises `KeyboardInterrupt`)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        del frame
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived (`interrupts_raise`); `exit_code` is 130 or 143."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.exit_code = EXIT_INTERRUPTED.get(signum, 130)
        self.name = signal.Signals(signum).name


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """SIGINT and SIGTERM raise `Interrupted` inside the block, also when the process was
    started with them ignored (a background job) or SIGTERM would kill it silently; the
    previous handlers come back after it. Commands catch it and say what was kept."""

    def handle(signum: int, frame: Any) -> None:
        del frame
        _received.append(signum)  # kept: C++ code calling Python may swallow the raise below
        raise Interrupted(signum)

    def quiet_excepthook(kind: type, value: BaseException, tb: Any) -> None:
        if not isinstance(value, Interrupted):  # a swallowed raise: `raise_if_interrupted`
            hooks[0](kind, value, tb)

    def quiet_unraisablehook(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, Interrupted):
            hooks[1](unraisable)

    hooks = (sys.excepthook, sys.unraisablehook)
    sys.excepthook, sys.unraisablehook = quiet_excepthook, quiet_unraisablehook
    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sys.excepthook, sys.unraisablehook = hooks
        _received.clear()


_received: list[int] = []


def raise_if_interrupted() -> None:
    """Raise `Interrupted` if a signal arrived inside `interrupts_raise` whose exception
    was swallowed (a handler that ran inside a callback from compiled code): long commands
    call it at safe points (between chunks, after compiling, while waiting)."""
    if _received:
        raise Interrupted(_received[-1])


def wait_ready(tree: Any) -> None:
    """Block until `tree` is computed, in short sleeps so signals are handled promptly."""
    leaves = [x for x in jax.tree.leaves(tree) if hasattr(x, "is_ready")]  # not typed keys
    while not all(x.is_ready() for x in leaves):
        raise_if_interrupted()
        time.sleep(0.01)
    raise_if_interrupted()


# --------------------------------------------------------------------------- NaN checks
class NonFinite(NamedTuple):
    """Where training blew up: 1-based update number, seed, and what was not finite."""

    update: int
    seed: int
    what: str


def find_nonfinite(
    first_update: int,
    seeds: Sequence[int],
    metrics: dict[str, np.ndarray],
    params: Any,
) -> NonFinite | None:
    """The first update (and seed) of a chunk with a NaN/inf loss metric or parameter.

    Args:
      first_update: update number of the chunk's first row.
      seeds: the seed of each member.
      metrics: `{name: [S, K]}` host arrays.
      params: parameters after the chunk, leaves `[S, ...]`.
    """
    first: NonFinite | None = None
    for name in CHECKED_METRICS:
        bad = ~np.isfinite(metrics[name])  # [S, K]
        if bad.any():
            s, k = np.argwhere(bad)[np.argmin(np.argwhere(bad)[:, 1])]
            hit = NonFinite(first_update + int(k), int(seeds[s]), name)
            if first is None or hit.update < first.update:
                first = hit
    if first is not None:
        return first
    num_updates = next(iter(metrics.values())).shape[1]
    for leaf in jax.tree.leaves(jax.device_get(params)):
        bad_seeds = ~np.isfinite(np.reshape(leaf, (leaf.shape[0], -1))).all(axis=1)
        if bad_seeds.any():
            s = int(np.argmax(bad_seeds))
            return NonFinite(first_update + num_updates - 1, int(seeds[s]), "parameters")
    return None
