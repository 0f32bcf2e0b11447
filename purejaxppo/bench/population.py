"""Compiled populations of seeds for the benchmark: `purejaxppo train`'s programs, cached.

A population is `compile_trainer` (`purejaxppo.run.compiled`) of `size` seeds, the
function `purejaxppo train --seeds` compiles: the seeds split into balanced groups
of at most `members_per_device` (train's default unless given), one `vmap`-ped
group per device per call, the groups in rounds over up to `num_devices` devices;
the init and chunk programs compiled in parallel threads and timed as one total
(`compile_s`, as train reports it; the persistent cache is not used). A call is
`Compiled.run_chunk` followed by train's non-finite check, as train's run loop
makes it: every round dispatched, then the metrics (and the parameters, for the
check) read back to the host, the only host sync per call.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any

import jax

from purejaxppo.config import HParams, PPOConfig
from purejaxppo.run.compiled import Compiled, compile_trainer, seed_keys
from purejaxppo.run.guards import NonFinite, find_nonfinite, wait_ready
from purejaxppo.sharding import default_members_per_device, member_groups
from purejaxppo.train import Trainer, TrainState, make_trainer

ASSUMED_EFFICIENCY = 0.3  # of the matmul peak, only to size chunks before measuring
MAX_UPDATES_PER_CALL = 64


def _largest_divisor(n: int, at_most: int) -> int:
    """The largest divisor of `n` that is <= `at_most` (at least 1)."""
    return max(d for d in range(1, max(1, min(n, at_most)) + 1) if n % d == 0)


@dataclasses.dataclass(frozen=True)
class Layout:
    """How `compile_trainer` lays `members` seeds onto devices (`Compiled`'s layout).

    Attributes:
      members: seeds.
      members_per_device: the most members one device runs at once (asked for).
      width: members per group (`member_groups`), <= `members_per_device`.
      groups: groups of `width`.
      devices: devices one call runs on (never more than there are groups).
    """

    members: int
    members_per_device: int
    width: int
    groups: int
    devices: int

    @property
    def rounds(self) -> int:
        """Programs run one after another per call on each device: `ceil(groups / devices)`."""
        return -(-self.groups // self.devices)

    def describe(self) -> str:
        """`8 seeds in 2 groups of 4 on 2 devices, 1 round per call`."""
        return (
            f"{self.members} seed{'s' if self.members != 1 else ''} in {self.groups} "
            f"group{'s' if self.groups != 1 else ''} of {self.width} on {self.devices} "
            f"device{'s' if self.devices != 1 else ''}, {self.rounds} "
            f"round{'s' if self.rounds != 1 else ''} per call"
        )


def plan_layout(
    members: int, num_devices: int | None = None, members_per_device: int | None = None
) -> Layout:
    """The layout `compile_trainer(..., num_devices, members_per_device)` will use."""
    mpd = members_per_device or default_members_per_device("train")
    groups, width = member_groups(members, mpd)
    available = len(jax.local_devices()) if num_devices is None else num_devices
    return Layout(members, mpd, width, groups, min(groups, available))


@dataclasses.dataclass
class Population:
    """`size` seeds of one config compiled by `compile_trainer`, with their current state.

    `call()` advances every member by `updates_per_call` updates (or a given
    compiled size) exactly as `purejaxppo train` runs a chunk; `reset()` starts
    the members again from `init` (same seeds), without recompiling.
    """

    trainer: Trainer
    compiled: Compiled
    keys: jax.Array
    hparams: HParams
    updates_per_call: int
    states: list[TrainState] | None = None
    updates_done: int = 0  # per member, since the last `reset()`
    nonfinite: NonFinite | None = None  # the first non-finite update seen (train would stop)

    @property
    def size(self) -> int:
        return self.compiled.num_members

    @property
    def layout(self) -> Layout:
        c = self.compiled
        return Layout(c.num_members, c.members_per_device, c.width, c.groups, c.devices)

    @property
    def devices(self) -> int:
        return self.compiled.devices

    @property
    def compile_s(self) -> float:
        """Lowering + compiling `init` and the chunk program(s), in parallel threads."""
        return self.compiled.compile_time_s

    def steps_per_call(self, size: int | None = None) -> int:
        """Env steps of all members in one call of `size` (default `updates_per_call`)."""
        k = self.updates_per_call if size is None else size
        return self.size * k * self.trainer.config.batch_size

    def reset(self) -> None:
        """Fresh initial states for every member (waited for)."""
        self.states = self.compiled.init_states(self.keys, self.hparams)
        self.updates_done = 0
        wait_ready(self.states)

    def call(self, size: int | None = None) -> tuple[float, dict[str, Any]]:
        """One chunk as train runs it; its wall time and the metrics `{name: [S, k]}` (host)."""
        assert self.states is not None, "reset() first"
        k = self.updates_per_call if size is None else size
        start = time.perf_counter()
        self.states, metrics = self.compiled.run_chunk(k, self.states, self.hparams)
        seeds = range(self.size)
        bad = find_nonfinite(0, seeds, metrics, self.compiled.member_params(self.states))
        seconds = time.perf_counter() - start
        self.updates_done += k
        if bad is not None and self.nonfinite is None:
            self.nonfinite = bad
        return seconds, metrics

    def timed_call(self) -> float:
        """The wall time of one call of `updates_per_call`; the members first restart from
        `init` (untimed) when the call would run past the learning-rate schedule's end."""
        if self.updates_done + self.updates_per_call > self.trainer.config.num_updates:
            self.reset()
        return self.call()[0]

    def time_calls(self, min_seconds: float) -> list[float]:
        """One warm-up call, then the wall times of calls until `min_seconds` (at least 2)."""
        return time_interleaved([self], min_seconds)[0]


def time_interleaved(pops: Sequence[Population], min_seconds: float) -> list[list[float]]:
    """Per population, the wall times of its calls: one warm-up call each, then one call of
    each in turn until every population has `min_seconds` of timed calls (at least 2), so
    that a busy moment of a shared machine hits them alike."""
    for pop in pops:
        pop.timed_call()
    times: list[list[float]] = [[] for _ in pops]
    while any(len(t) < 2 or sum(t) < min_seconds for t in times):
        for pop, t in zip(pops, times, strict=True):
            t.append(pop.timed_call())
    return times


def build_population(
    trainer: Trainer,
    hparams: HParams,
    seeds: Sequence[int],
    chunk_sizes: Sequence[int],
    num_devices: int | None = None,
    members_per_device: int | None = None,
) -> Population:
    """`compile_trainer` for `len(seeds)` members and every size in `chunk_sizes` (the
    first is `updates_per_call`); the population returned holds its initial state
    (running `init` is not part of `compile_s`)."""
    keys = seed_keys(seeds)
    compiled = compile_trainer(
        trainer,
        hparams,
        keys,
        chunk_sizes,
        num_devices=num_devices,
        members_per_device=members_per_device,
    )
    pop = Population(trainer, compiled, keys, hparams, chunk_sizes[0])
    pop.reset()
    return pop


class PopulationCache:
    """Compiled populations by (config, hparams, layout, chunk sizes): compile once."""

    def __init__(self) -> None:
        self._cache: dict[tuple[Any, ...], Population] = {}

    @staticmethod
    def _key(config: PPOConfig, hparams: HParams, layout: Layout) -> tuple[Any, ...]:
        return (config, tuple(float(x) for x in jax.tree.leaves(hparams)), layout)

    def get(
        self,
        config: PPOConfig,
        hparams: HParams,
        members: int,
        chunk_sizes: int | Sequence[int],
        num_devices: int | None = None,
        any_chunk: bool = False,
    ) -> tuple[Population, bool]:
        """`(population, cached)`; a cached population is `reset()` before it is returned.

        `chunk_sizes`: one size or a train plan's sizes (the first is the call size).
        With `any_chunk`, a population compiled earlier for the same config and layout
        is reused whatever its chunk size (and keeps that size).
        """
        sizes = (chunk_sizes,) if isinstance(chunk_sizes, int) else tuple(chunk_sizes)
        layout = plan_layout(members, num_devices)
        key = self._key(config, hparams, layout)
        pop = self._cache.get((*key, sizes))
        if pop is None and any_chunk:
            pop = next((p for k, p in self._cache.items() if k[:-1] == key), None)
        if pop is not None:
            pop.reset()
            return pop, True
        pop = build_population(
            make_trainer(config), hparams, list(range(members)), sizes, num_devices=num_devices
        )
        self._cache[(*key, sizes)] = pop
        return pop, False


def _update_guess_s(
    config: PPOConfig, members: int, flops_per_step: int, peak_gflops: float
) -> float:
    """Seconds one update of `members` members should take at `ASSUMED_EFFICIENCY` of the peak."""
    update_flops = members * config.batch_size * flops_per_step
    return update_flops / (ASSUMED_EFFICIENCY * peak_gflops * 1e9)


def fit_chunk(
    config: PPOConfig,
    members: int,
    flops_per_step: int,
    peak_gflops: float,
    chunk: int,
    seconds: float,
) -> int:
    """`chunk`, unless one call of it is guessed (FLOP count) to take over `seconds`: then
    the largest divisor of `num_updates` guessed to fit (at least 1)."""
    guess_s = _update_guess_s(config, members, flops_per_step, peak_gflops)
    if chunk * guess_s <= seconds:
        return chunk
    return _largest_divisor(config.num_updates, math.floor(seconds / max(guess_s, 1e-12)))


def chunk_updates(
    config: PPOConfig, members: int, flops_per_step: int, peak_gflops: float, seconds: float
) -> int:
    """Updates per compiled call: the largest divisor of `num_updates` whose call should
    take at most about `seconds` (a FLOP-based guess, before anything is measured)."""
    guess_s = _update_guess_s(config, members, flops_per_step, peak_gflops)
    want = int(min(MAX_UPDATES_PER_CALL, max(1, math.floor(seconds / max(guess_s, 1e-12)))))
    return _largest_divisor(config.num_updates, want)
