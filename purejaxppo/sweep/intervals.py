"""A static group's population trained interval by interval, its state kept on the device.

The adaptive strategies (PBT, successive halving) train every member of a static group
together for a number of updates (an *interval*), look at the results on the host, change
the population (copy states, change hyperparameters, refill slots) and go on. This module
is the training half: `IntervalRunner` wraps a `GroupRunner`'s two compiled programs, so
nothing recompiles between intervals (hyperparameters are arguments; the population's
shape never changes).

The population of P members runs in chunks of `runner.chunk_size` rows (one width-wide
group per device), the last chunk padded with copies of its last member, exactly as a grid
sweep's chunks; the per-device program depends on the width only, so the numbers do not
depend on the device count. `gather` puts the P real rows on one device (`[P, ...]`, the
form a strategy step and a checkpoint take) and `scatter` splits them back into chunks;
both are copies, so a round trip keeps the bits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.config import HParams
from purejaxppo.sharding import local_rows, population_sharding
from purejaxppo.sweep.runner import GroupRunner, chunk_bounds, seed_key_data
from purejaxppo.train import METRIC_NAMES, TrainState

Chunks = list[TrainState]  # one TrainState [chunk_size, ...] per chunk, sharded over the mesh


class IntervalRunner:
    """Trains P members of one static group in intervals (module docstring).

    Args:
      runner: the group's `GroupRunner` (its width and mesh fix the chunk layout).
      size: P, the number of members.
    """

    def __init__(self, runner: GroupRunner, size: int) -> None:
        if jax.process_count() > 1:
            raise ValueError("adaptive strategies run in one process (several devices are fine)")
        if size < 1:
            raise ValueError(f"population: expected at least one member, got {size}")
        self.runner = runner
        self.size = int(size)
        self.bounds = chunk_bounds(self.size, runner.chunk_size)
        self.device = runner.mesh.devices.flat[0]

    # ------------------------------------------------------------------ inputs
    def _padded(self, lo: int, hi: int) -> list[int]:
        """Rows `lo .. hi - 1` then copies of `hi - 1` up to the chunk size."""
        return [*range(lo, hi), *[hi - 1] * (self.runner.chunk_size - (hi - lo))]

    def _hparams_rows(self, hparams: Sequence[HParams], rows: Sequence[int]) -> Any:
        """Stacked float32 `HParams` `[chunk_size]` of `rows`, sharded over the mesh."""
        for hp in hparams:
            hp.validate()
        picked = [hparams[i] for i in rows]
        stacked = jax.tree.map(lambda *xs: np.asarray(xs, np.float32), *picked)
        sharding = population_sharding(self.runner.mesh)
        return jax.tree.map(lambda x: jax.device_put(x, sharding), stacked)

    def _check(self, what: str, n: int) -> None:
        if n != self.size:
            raise ValueError(f"{what}: expected one per member ({self.size}), got {n}")

    # ------------------------------------------------------------------ training
    def init(self, seeds: Sequence[int], hparams: Sequence[HParams]) -> Chunks:
        """The members' initial states (member i: `jax.random.key(seeds[i])`, `hparams[i]`)."""
        self._check("seeds", len(seeds))
        self._check("hparams", len(hparams))
        init, _ = self.runner.programs()
        sharding = population_sharding(self.runner.mesh)
        keys = seed_key_data(seeds)
        chunks = []
        for lo, hi in self.bounds:
            rows = self._padded(lo, hi)
            key_rows = jax.device_put(keys[rows], sharding)
            chunks.append(init(key_rows, self._hparams_rows(hparams, rows)))
        return chunks

    def advance(
        self,
        chunks: Chunks,
        hparams: Sequence[HParams],
        updates: int,
        on_updates: Callable[[int], None] | None = None,
    ) -> tuple[Chunks, dict[str, np.ndarray]]:
        """`updates` PPO updates of every member (member i with `hparams[i]`).

        The chunks' buffers are donated: use the returned ones. Runs each chunk in
        `runner.segment`-long pieces; `on_updates(done)` after each piece of the last
        chunk. Returns the chunks and metrics name -> `[P, updates]` float32.
        """
        self._check("hparams", len(hparams))
        _, advance = self.runner.programs()
        segment = self.runner.segment
        out: Chunks = []
        pieces: dict[str, list[np.ndarray]] = {name: [] for name in METRIC_NAMES}
        for c, (lo, hi) in enumerate(self.bounds):
            hps = self._hparams_rows(hparams, self._padded(lo, hi))
            state, done = chunks[c], 0
            rows: dict[str, list[np.ndarray]] = {name: [] for name in METRIC_NAMES}
            while done < updates:
                valid = min(segment, updates - done)
                state, metrics = advance(state, hps, np.int32(valid))
                for name in METRIC_NAMES:
                    rows[name].append(local_rows(metrics[name])[1][:, :valid])
                done += valid
                if on_updates is not None and c == len(self.bounds) - 1:
                    on_updates(done)
            out.append(state)
            for name in METRIC_NAMES:
                pieces[name].append(np.concatenate(rows[name], axis=1)[: hi - lo])
        jax.block_until_ready(out)
        return out, {name: np.concatenate(pieces[name]) for name in METRIC_NAMES}

    # ------------------------------------------------------------------ layout
    def gather(self, chunks: Chunks) -> TrainState:
        """The P real members as one `TrainState [P, ...]` on the mesh's first device."""

        def join(*leaves: jax.Array) -> jax.Array:
            parts = [
                jax.device_put(leaf, self.device)[: hi - lo]
                for leaf, (lo, hi) in zip(leaves, self.bounds, strict=True)
            ]
            return parts[0] if len(parts) == 1 else jnp.concatenate(parts)

        return jax.tree.map(join, *chunks)

    def scatter(self, state: TrainState) -> Chunks:
        """`gather`'s inverse: chunks `[chunk_size, ...]` (padded) sharded over the mesh."""
        sharding = population_sharding(self.runner.mesh)
        chunks = []
        for lo, hi in self.bounds:
            rows = jnp.asarray(self._padded(lo, hi), jnp.int32)
            chunks.append(jax.tree.map(lambda x, r=rows: jax.device_put(x[r], sharding), state))
        return chunks
