"""Piecewise-constant schedules of the traced hyperparameters (pure core).

A schedule is data, not code: `K` segments, segment `k` starting at update index
`boundaries[k]` (counted from the start of the run, `TrainState.update_step`) and
using the hyperparameters `values[k]`. Both are arrays, so changing the values or
the boundaries never recompiles; only the number of segments `K` is a shape.

    sched = HParamSchedule.from_segments([(0, HParams()), (50, HParams(learning_rate=1e-4))])
    state, metrics = trainer.run(state, sched, 100)      # or trainer.train(key, sched)

The trainer reads `hparams_at(schedule, update_step)` at the start of every update, so a
schedule gives the same bits as running each segment with its plain `HParams` in chunks.
Every field can be scheduled. `kl_coef` is the *initial* beta of the KL objectives: the
trainer reads it once, at `init` (the state then carries the adapted beta), so its later
segments change nothing.

A segment may also refold the PRNG key where it starts (`key_folds[k] != 0`: the state's
key becomes `jax.random.fold_in(key, key_folds[k])` before update `boundaries[k]`). That is
what population-based training does to a member that copies another's state, so the
schedule of a PBT member replays its run bit for bit (`purejaxppo.sweep.pbt`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from purejaxppo.config import HParams, stack_hparams


class HParamSchedule(struct.PyTreeNode):
    """`K` segments of hyperparameters; stack P schedules (leaves `[P, K]`) to vmap members.

    Attributes:
      boundaries: int32 `[K]`, the update index where each segment starts; strictly
        increasing, `boundaries[0] == 0`.
      values: `HParams` whose leaves are float32 `[K]`: segment k's hyperparameters.
      key_folds: uint32 `[K]` or None: a nonzero `key_folds[k]` folds into the PRNG key
        where segment k starts (None: no folds, as all zeros).
    """

    boundaries: jax.Array
    values: HParams
    key_folds: jax.Array | None = None

    @classmethod
    def from_segments(
        cls, segments: Sequence[tuple[int, HParams]], key_folds: Sequence[int] | None = None
    ) -> HParamSchedule:
        """A schedule from `(start update, HParams)` pairs; the first must start at 0.

        `key_folds`: one uint32 per segment (0: none), or None for no folds at all."""
        segments = list(segments)
        if not segments:
            raise ValueError("schedule: expected at least one (start update, HParams) segment")
        starts = [start for start, _ in segments]
        for start in starts:
            if isinstance(start, bool) or not isinstance(start, (int, np.integer)):
                raise ValueError(f"schedule: a segment start must be an integer, got {start!r}")
        check_boundaries(np.asarray(starts))
        values = stack_hparams([hp for _, hp in segments])
        folds = None
        if key_folds is not None:
            folds_np = np.asarray(list(key_folds))
            if folds_np.shape != (len(segments),) or not all(
                isinstance(f, (int, np.integer)) and 0 <= int(f) < 2**32 for f in key_folds
            ):
                raise ValueError(
                    f"schedule: key_folds: expected {len(segments)} integers in [0, 2**32), "
                    f"got {list(key_folds)!r}"
                )
            folds = jnp.asarray(folds_np.astype(np.uint32))
        return cls(boundaries=jnp.asarray(starts, jnp.int32), values=values, key_folds=folds)

    @classmethod
    def constant(cls, hparams: HParams) -> HParamSchedule:
        """One segment holding `hparams` for the whole run."""
        return cls.from_segments([(0, hparams)])

    @property
    def num_segments(self) -> int:
        """K, the number of segments (the last axis of `boundaries`)."""
        return int(jnp.shape(self.boundaries)[-1])


def check_boundaries(boundaries: Any) -> None:
    """Raise `ValueError` unless concrete `boundaries` `[K]` start at 0 and strictly increase.

    Tracers pass (they are checked where the schedule was built)."""
    if isinstance(boundaries, jax.core.Tracer):
        return
    b = np.asarray(boundaries)
    if b.ndim != 1 or b.size == 0:
        raise ValueError(f"schedule: boundaries must be a non-empty [K] vector, got {b.shape}")
    if int(b[0]) != 0:
        raise ValueError(f"schedule: the first segment must start at update 0, got {int(b[0])}")
    if np.any(np.diff(b) <= 0):
        raise ValueError(f"schedule: segment starts must strictly increase, got {b.tolist()}")


def segment_index(boundaries: jax.Array, update: jax.Array) -> jax.Array:
    """The int32 index of the segment holding `update`: the last k with `boundaries[k] <= update`.

    `boundaries` `[K]`, `update` a scalar; an update before `boundaries[0]` maps to 0."""
    index = jnp.searchsorted(boundaries, jnp.asarray(update, boundaries.dtype), side="right") - 1
    return jnp.clip(index, 0, boundaries.shape[0] - 1).astype(jnp.int32)


def hparams_at(schedule: HParamSchedule, update: jax.Array) -> HParams:
    """One member's `HParams` (scalar leaves) in force at update index `update` (a scalar).

    Raises `ValueError` at trace time for a stacked schedule (`boundaries` `[P, K]`) that
    was not vmapped."""
    shape = jnp.shape(schedule.boundaries)
    if len(shape) != 1:
        raise ValueError(
            f"schedule.boundaries: expected one member's [K] segment starts, got shape {shape}; "
            "a stacked schedule (leaves [P, K]) must be vmapped over its leading axis"
        )
    index = segment_index(schedule.boundaries, update)
    return jax.tree.map(lambda v: jnp.take(v, index, axis=0), schedule.values)


def fold_key_at(schedule: HParamSchedule, update: jax.Array, key: jax.Array) -> jax.Array:
    """`key` refolded when update index `update` starts a segment with a nonzero key fold;
    else `key` itself (bit for bit). One member (`boundaries` `[K]`)."""
    if schedule.key_folds is None:
        return key
    index = segment_index(schedule.boundaries, update)
    fold = jnp.take(schedule.key_folds, index)
    starts = jnp.take(schedule.boundaries, index) == jnp.asarray(update, jnp.int32)
    return jnp.where(starts & (fold != 0), jax.random.fold_in(key, fold), key)


def resolve_hparams(hparams: HParams | HParamSchedule, update: jax.Array) -> HParams:
    """`hparams` itself when it is a plain `HParams`, else the schedule's value at `update`.

    A plain `HParams` passes through untouched, so runs without a schedule keep their bits.
    """
    if isinstance(hparams, HParamSchedule):
        return hparams_at(hparams, update)
    return hparams
