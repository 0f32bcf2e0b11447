"""Compiled populations of seeds for the benchmark: build, cache, and size their chunks.

A population is `size` members (seeds) of one config, vmapped on each device and
sharded over the largest number of devices that divides it
(`purejaxppo.sharding`). Its two programs, `init` and a chunk of
`updates_per_call` updates, are compiled on their own (`lower + compile`,
persistent cache not used) so that compilation is timed apart from running.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.config import HParams, PPOConfig
from purejaxppo.sharding import population_map, population_mesh, shard_rows
from purejaxppo.train import Trainer, make_trainer

ASSUMED_EFFICIENCY = 0.3  # of the matmul peak, only to size chunks before measuring
MAX_UPDATES_PER_CALL = 64


def _largest_divisor(n: int, at_most: int) -> int:
    """The largest divisor of `n` that is <= `at_most` (at least 1)."""
    return max(d for d in range(1, max(1, min(n, at_most)) + 1) if n % d == 0)


def _key_data(seeds: Sequence[int]) -> np.ndarray:
    """Raw key data `[P, 2]` uint32 of `jax.random.key(seed)` per seed."""
    return np.stack([np.asarray(jax.random.key_data(jax.random.key(s))) for s in seeds])


@dataclasses.dataclass
class Population:
    """A compiled population of `size` members of one config, sharded over `devices` devices.

    `call()` advances every member by `updates_per_call` updates; `reset()`
    starts the members again from `init` (same seeds), without recompiling.
    """

    trainer: Trainer
    size: int
    devices: int
    updates_per_call: int
    init_compile_s: float
    run_compile_s: float
    key_data: jax.Array
    hparams: Any
    init: Callable[[jax.Array, Any], Any]
    run: Callable[[Any, Any], tuple[Any, dict[str, jax.Array]]]
    state: Any = None

    @property
    def compile_s(self) -> float:
        """Lowering + compiling `init` and the chunk of updates."""
        return self.init_compile_s + self.run_compile_s

    @property
    def steps_per_call(self) -> int:
        """Env steps of all members in one call."""
        return self.size * self.updates_per_call * self.trainer.config.batch_size

    def reset(self) -> None:
        """Fresh initial states for every member (waited for)."""
        self.state = jax.block_until_ready(self.init(self.key_data, self.hparams))

    def call(self) -> tuple[float, dict[str, jax.Array]]:
        """One call, waited for; returns its wall time and metrics `[P, k]`."""
        start = time.perf_counter()
        self.state, metrics = self.run(self.state, self.hparams)
        jax.block_until_ready((self.state, metrics))
        return time.perf_counter() - start, metrics


def build_population(
    trainer: Trainer, hparams: HParams, seeds: Sequence[int], updates_per_call: int
) -> Population:
    """Compile `init` and a chunk of `updates_per_call` updates for `len(seeds)` members.

    Members are spread over the largest number of devices that divides the
    population. Compile times cover lowering and compiling, not running `init`;
    the returned population holds its initial state.
    """
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    size = len(seeds)
    devices = jax.devices()
    used = _largest_divisor(size, len(devices))
    mesh = population_mesh(devices[:used])
    hp = jax.device_put(
        jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), hparams), NamedSharding(mesh, P())
    )
    key_data = shard_rows(mesh, _key_data(seeds))

    def init_member(kd: jax.Array, h: HParams) -> Any:
        return trainer.init(jax.random.wrap_key_data(kd), h)

    def run_member(state: Any, h: HParams) -> tuple[Any, dict[str, jax.Array]]:
        return trainer.run(state, h, updates_per_call)

    start = time.perf_counter()
    init = population_map(init_member, mesh, (True, False)).lower(key_data, hp).compile()
    init_s = time.perf_counter() - start
    state = jax.block_until_ready(init(key_data, hp))
    start = time.perf_counter()
    run = population_map(run_member, mesh, (True, False), donate_argnums=(0,))
    run = run.lower(state, hp).compile()
    run_s = time.perf_counter() - start
    return Population(
        trainer, size, used, updates_per_call, init_s, run_s, key_data, hp, init, run, state
    )


class PopulationCache:
    """Compiled populations by (config, hparams, members, updates per call): compile once."""

    def __init__(self) -> None:
        self._cache: dict[tuple[Any, ...], Population] = {}

    def get(
        self, config: PPOConfig, hparams: HParams, members: int, updates: int
    ) -> tuple[Population, bool]:
        """`(population, cached)`; a cached population is `reset()` before it is returned."""
        key = (config, tuple(float(x) for x in jax.tree.leaves(hparams)), members, updates)
        if key in self._cache:
            pop = self._cache[key]
            pop.reset()
            return pop, True
        pop = build_population(make_trainer(config), hparams, list(range(members)), updates)
        self._cache[key] = pop
        return pop, False


def chunk_updates(
    config: PPOConfig, members: int, flops_per_step: int, peak_gflops: float, seconds: float
) -> int:
    """Updates per compiled call: the largest divisor of `num_updates` whose call should
    take at most about `seconds` (a FLOP-based guess, before anything is measured)."""
    update_flops = members * config.batch_size * flops_per_step
    guess_s = update_flops / (ASSUMED_EFFICIENCY * peak_gflops * 1e9)
    want = int(min(MAX_UPDATES_PER_CALL, max(1, math.floor(seconds / max(guess_s, 1e-12)))))
    return _largest_divisor(config.num_updates, want)
