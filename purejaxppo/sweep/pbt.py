"""Population-based training's exploit/explore step, pure JAX over a stacked population.

Importable on its own for embedding (it needs only the core): a researcher's loop trains
P members for an interval (`jax.vmap(trainer.run, (0, 0, None))`), scores them, and calls

    states, hparams, parents, key_folds = jax.jit(pbt_step, static_argnames="config")(
        key, states, hparams, fitness, config)

between intervals. `states` is a `TrainState` whose leaves have a leading member axis
`[P, ...]`, `hparams` an `HParams` with `[P]` leaves, `fitness` `[P]` (higher is better;
NaN ranks last). The step works on the whole gathered population: under `jit`, sharded
inputs are gathered by XLA, so the result does not depend on how members are spread over
devices (do not call it inside `shard_map` on a per-device slice).

Exploit: members are ranked by fitness (ties: the lower member index ranks higher); each
of the bottom `n = max(1, floor(truncation * P))` members copies the *whole* train state
of a member drawn uniformly from the top `n`: parameters, optimizer state (Adam moments
and step count), normaliser statistics, adapted beta, environment states, running
episode counters and update counter. Environment states are copied, not reset: the
child continues its parent's episodes, so its observation statistics, episode counters
and bootstrapped values stay consistent with the states it steps, and no partial
episodes are thrown away (a reset would bias the next interval's returns towards short
episodes). Only the PRNG key is not copied as is: the child gets the parent's key folded
with a fresh nonzero draw (`key_folds`), otherwise child and parent would sample the same
actions in the same env states until their hyperparameters pulled the policies apart. The
draw is returned, so a member's schedule (`member_schedule`) replays its run exactly.

Explore: each copied member's explored fields (`PBTConfig.explore`) are resampled from
their bounds with probability `resample_probability`, else multiplied by one of
`perturb_factors` drawn uniformly, then clipped to the bounds. Other fields are the
parent's. Members that are not replaced are returned untouched, bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.config import HParams, PPOConfig
from purejaxppo.schedule import HParamSchedule
from purejaxppo.state import TrainState

_HPARAM_FIELDS = tuple(f.name for f in dataclasses.fields(HParams))
_STATIC_FIELDS = frozenset(f.name for f in dataclasses.fields(PPOConfig))


@dataclasses.dataclass(frozen=True)
class Bounds:
    """Where exploration may take one traced `HParams` field: `[low, high]`.

    `log`: resample log-uniformly (learning rates, coefficients spanning decades);
    else uniformly. Perturbed values are clipped to the bounds either way.
    """

    name: str
    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if self.name not in _HPARAM_FIELDS:
            if self.name in _STATIC_FIELDS:
                raise ValueError(
                    f"explore.{self.name}: a static PPOConfig field (it changes a shape, a loop "
                    "or control flow, so changing it recompiles) cannot be perturbed; explore "
                    f"traced HParams fields: {', '.join(_HPARAM_FIELDS)}"
                )
            raise ValueError(
                f"explore.{self.name}: not an HParams field; expected one of "
                f"{', '.join(_HPARAM_FIELDS)}"
            )
        for end in ("low", "high"):
            value = getattr(self, end)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"explore.{self.name}: {end} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"explore.{self.name}: {end} must be finite, got {value}")
            try:
                HParams().replace(**{self.name: value})
            except ValueError as err:
                raise ValueError(f"explore.{self.name}: {end} out of range: {err}") from None
        if not self.low < self.high:
            raise ValueError(
                f"explore.{self.name}: expected low < high, got [{self.low:g}, {self.high:g}]"
            )
        if self.log and self.low <= 0:
            raise ValueError(f"explore.{self.name}: log bounds need low > 0, got {self.low:g}")


@dataclasses.dataclass(frozen=True)
class PBTConfig:
    """Static settings of the exploit/explore step (hashable: a `jit` static argument).

    Attributes:
      explore: the traced fields to perturb, each with its `Bounds` (may be empty:
        exploit only). A field may appear once.
      truncation: the fraction of members replaced (and the fraction they copy from),
        in (0, 0.5]; at least one member is replaced once P >= 2.
      perturb_factors: the factors a copied value is multiplied by, one drawn uniformly.
      resample_probability: the chance a copied value is redrawn from its bounds instead.
    """

    explore: tuple[Bounds, ...]
    truncation: float = 0.25
    perturb_factors: tuple[float, ...] = (0.8, 1.2)
    resample_probability: float = 0.25

    def __post_init__(self) -> None:
        explore = tuple(self.explore)
        object.__setattr__(self, "explore", explore)
        object.__setattr__(self, "perturb_factors", tuple(self.perturb_factors))
        for bound in explore:
            if not isinstance(bound, Bounds):
                raise ValueError(f"explore: expected Bounds(...), got {type(bound).__name__}")
        names = [b.name for b in explore]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"explore: each field once, got {', '.join(repeated)} twice")
        if not isinstance(self.truncation, (int, float)) or not 0 < self.truncation <= 0.5:
            raise ValueError(f"truncation: expected a number in (0, 0.5], got {self.truncation!r}")
        if not self.perturb_factors or not all(
            isinstance(f, (int, float)) and math.isfinite(f) and f > 0 for f in self.perturb_factors
        ):
            raise ValueError(
                f"perturb_factors: expected positive finite numbers, got {self.perturb_factors!r}"
            )
        p = self.resample_probability
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ValueError(f"resample_probability: expected a number in [0, 1], got {p!r}")


class PBTStep(NamedTuple):
    """What `pbt_step` returns (unpacks as `states, hparams, parents, key_folds`).

    Attributes:
      states: `TrainState` `[P, ...]` after exploit.
      hparams: `HParams` `[P]` after explore.
      parents: int32 `[P]`: the member each one now descends from (itself if kept).
      key_folds: uint32 `[P]`: what a replaced member's copied key was folded with
        (nonzero), 0 for a kept member.
    """

    states: TrainState
    hparams: HParams
    parents: jax.Array
    key_folds: jax.Array


def num_replaced(population: int, truncation: float) -> int:
    """How many members the step replaces: `max(1, floor(truncation * P))`, 0 when P < 2."""
    if population < 2:
        return 0
    return max(1, math.floor(truncation * population))


def rank_members(fitness: jax.Array) -> jax.Array:
    """Member indices best first, int32 `[P]`: by fitness `[P]` descending, NaN last (after
    -inf), ties by ascending index (a stable sort)."""
    f = jnp.asarray(fitness, jnp.float32)
    missing = jnp.isnan(f)
    score = -jnp.where(missing, 0.0, f) + 0.0  # + 0.0: -0.0 ties with 0.0
    return jnp.lexsort((score, missing)).astype(jnp.int32)  # lexsort is stable


def _select(mask: jax.Array, new: jax.Array, old: jax.Array) -> jax.Array:
    """`new` where `mask` `[P]` else `old`, for arrays `[P, ...]` (typed PRNG keys too)."""
    shaped = mask.reshape(mask.shape + (1,) * (jnp.ndim(old) - 1))
    return jnp.where(shaped, new, old)


def _explore_field(
    key: jax.Array, values: jax.Array, bound: Bounds, config: PBTConfig
) -> jax.Array:
    """Perturbed or resampled values `[P]` (for every member; the caller masks), clipped."""
    factor_key, resample_key, sample_key = jax.random.split(key, 3)
    factors = jnp.asarray(config.perturb_factors, jnp.float32)
    picks = jax.random.randint(factor_key, values.shape, 0, factors.shape[0])
    perturbed = values * factors[picks]
    u = jax.random.uniform(sample_key, values.shape, jnp.float32)
    low, high = jnp.float32(bound.low), jnp.float32(bound.high)
    if bound.log:
        sampled = jnp.exp(jnp.log(low) + u * (jnp.log(high) - jnp.log(low)))
    else:
        sampled = low + u * (high - low)
    resample = jax.random.uniform(resample_key, values.shape) < config.resample_probability
    return jnp.clip(jnp.where(resample, sampled, perturbed), low, high)


def _check_population(states: TrainState, hparams: HParams, fitness: jax.Array) -> int:
    """P, after checking that every input has the same leading member axis."""
    if jnp.ndim(fitness) != 1:
        raise ValueError(f"fitness: expected one number per member [P], got {jnp.shape(fitness)}")
    size = jnp.shape(fitness)[0]
    for name, tree in (("hparams", hparams), ("states", states)):
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
            if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != size:
                raise ValueError(
                    f"{name}{jax.tree_util.keystr(path)}: expected a leading member axis of "
                    f"{size} (as fitness), got shape {jnp.shape(leaf)}"
                )
    return size


def pbt_step(
    key: jax.Array,
    states: TrainState,
    hparams: HParams,
    fitness: jax.Array,
    config: PBTConfig,
) -> PBTStep:
    """One exploit/explore step over a population of P members (module docstring).

    Args:
      key: PRNG key; the same key and inputs give the same result.
      states: `TrainState`, leaves `[P, ...]`.
      hparams: `HParams`, leaves `[P]`.
      fitness: `[P]`, higher is better; NaN ranks last.
      config: `PBTConfig` (static).

    Returns:
      `PBTStep(states, hparams, parents, key_folds)`; `parents` int32 `[P]`, `key_folds`
      uint32 `[P]`.
    """
    size = _check_population(states, hparams, fitness)
    n = num_replaced(size, config.truncation)
    members = jnp.arange(size, dtype=jnp.int32)
    if n == 0:
        return PBTStep(states, hparams, members, jnp.zeros((size,), jnp.uint32))
    parent_key, salt_key, explore_key = jax.random.split(key, 3)
    order = rank_members(fitness)
    top, bottom = order[:n], order[size - n :]
    chosen = top[jax.random.randint(parent_key, (n,), 0, n)]
    parents = members.at[bottom].set(chosen)
    replaced = jnp.zeros((size,), jnp.bool_).at[bottom].set(True)

    copied = jax.tree.map(lambda x: x[parents], states)
    salts = jnp.maximum(jax.random.bits(salt_key, (size,), jnp.uint32), jnp.uint32(1))
    child_keys = jax.vmap(jax.random.fold_in)(copied.key, salts)
    copied = copied.replace(key=_select(replaced, child_keys, states.key))

    new_hparams = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32)[parents], hparams)
    changes: dict[str, Any] = {}
    for bound in config.explore:
        field_key = jax.random.fold_in(explore_key, _HPARAM_FIELDS.index(bound.name))
        values = getattr(new_hparams, bound.name)
        explored = _explore_field(field_key, values, bound, config)
        changes[bound.name] = _select(replaced, explored, values)
    key_folds = jnp.where(replaced, salts, jnp.uint32(0))
    return PBTStep(copied, dataclasses.replace(new_hparams, **changes), parents, key_folds)


def interval_fitness(episode_return: jax.Array) -> jax.Array:
    """Each member's mean episode return over an interval: `[P, K]` -> `[P]`.

    `episode_return` is `metrics["episode_return"]` of a vmapped `trainer.run` over K
    updates: per update, the mean return of the episodes that finished in it (NaN where
    none did). The fitness is the mean over the updates that saw an episode end, NaN for
    a member where none did (`pbt_step` ranks it last). No NaN warnings, jit-safe.
    """
    returns = jnp.asarray(episode_return, jnp.float32)
    seen = ~jnp.isnan(returns)
    count = jnp.sum(seen, axis=-1)
    total = jnp.sum(jnp.where(seen, returns, 0.0), axis=-1)
    return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan)


def member_schedule(
    hparams_history: Sequence[HParams],
    parents_history: Sequence[Any],
    member: int,
    interval: int,
    key_folds_history: Sequence[Any] | None = None,
) -> HParamSchedule:
    """The hyperparameters member `member` and its ancestors trained with, as a schedule.

    Args:
      hparams_history: J stacked `HParams` (leaves `[P]`), those interval j trained with.
      parents_history: J - 1 int `[P]` arrays, the `parents` of the `pbt_step` after
        interval j (interval j + 1's member i continued interval j's member `parents[i]`).
      member: the member (after the last interval) whose lineage to follow.
      interval: updates per interval; interval j starts at update `j * interval`.
      key_folds_history: J - 1 uint32 `[P]` arrays, the steps' `key_folds`; with them the
        schedule refolds the key where the member copied another, so
        `trainer.train(jax.random.key(seed of ancestors[0]), schedule)` replays the member's
        run (to float rounding: the population ran vmapped). Without them (None) the
        schedule has the same hyperparameters but not the same keys.

    Returns:
      An `HParamSchedule` of J segments, one per interval, for `trainer.run`/`train`.
    """
    if len(parents_history) != len(hparams_history) - 1:
        raise ValueError(
            f"member_schedule: {len(hparams_history)} intervals need "
            f"{len(hparams_history) - 1} parents arrays, got {len(parents_history)}"
        )
    if key_folds_history is not None and len(key_folds_history) != len(parents_history):
        raise ValueError(
            f"member_schedule: expected one key_folds array per parents array "
            f"({len(parents_history)}), got {len(key_folds_history)}"
        )
    ancestors = lineage(parents_history, member)
    segments = [
        (j * interval, jax.tree.map(lambda x, a=a: np.asarray(x)[a], hp))
        for j, (hp, a) in enumerate(zip(hparams_history, ancestors, strict=True))
    ]
    folds = None
    if key_folds_history is not None:  # segment j + 1 starts with step j's fold of a_{j+1}
        folds = [0] + [
            int(np.asarray(f)[a]) for f, a in zip(key_folds_history, ancestors[1:], strict=True)
        ]
    return HParamSchedule.from_segments(segments, folds)


def lineage(parents_history: Sequence[Any], member: int) -> list[int]:
    """The member index that `member` (after the last step) was in each interval `[J]`:
    `ancestors[j]` trained interval j; `ancestors[-1] == member`."""
    ancestors = [int(member)]
    for parents in reversed(parents_history):
        ancestors.append(int(np.asarray(parents)[ancestors[-1]]))
    ancestors.reverse()
    return ancestors
