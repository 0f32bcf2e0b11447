"""Chunk plans and the compiled, seed-vmapped trainer functions of a run (host side).

The pure trainer is split into `init` (compiled once) and `run(state, hparams,
K)` (compiled once per chunk size K, normally one size). The seeds are split
into balanced groups of a fixed number of members per device, one group per
device per call, the groups in rounds over the local devices (`Compiled`), so
the per-device program, and hence every number, does not depend on how many
devices there are. Chunks give the same bits as one call because the state
carried between chunks is the whole `TrainState`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from purejaxppo.config import HParams
from purejaxppo.run.guards import wait_ready
from purejaxppo.run.progress import count
from purejaxppo.sharding import (
    POP_AXIS,
    default_members_per_device,
    member_groups,
    population_map,
    population_mesh,
    round_rows,
)
from purejaxppo.train import Trainer, TrainState

TARGET_CHUNKS = 25


# --------------------------------------------------------------------------- chunk plan
def default_chunk(num_updates: int, target_chunks: int = TARGET_CHUNKS) -> int:
    """A chunk size near `num_updates / target_chunks` that divides `num_updates` if possible.

    Picks the divisor closest (in ratio) to the target; only when none lies
    within a factor 4 of it (e.g. a large prime) the target itself is returned,
    and the run then needs a second compiled size for the remainder.
    """
    target = max(1, round(num_updates / target_chunks))
    divisors = [d for d in range(1, num_updates + 1) if num_updates % d == 0]
    best = min(divisors, key=lambda d: abs(math.log(d / target)))
    return best if max(best / target, target / best) <= 4 else target


def plan_chunks(start: int, total: int, chunk: int) -> list[int]:
    """Chunk sizes covering updates `start .. total`: full chunks, then the remainder."""
    remaining = total - start
    sizes = [chunk] * (remaining // chunk)
    if remaining % chunk:
        sizes.append(remaining % chunk)
    return sizes


def describe_plan(sizes: Sequence[int]) -> str:
    """`16 x 61 updates` or `25 x 400 + 1 x 7 updates (2 compiled sizes)`."""
    if not sizes:
        return "nothing left to run"
    parts = []
    for size in dict.fromkeys(sizes):
        parts.append(f"{sizes.count(size)} x {size}")
    text = " + ".join(parts) + " updates"
    distinct = len(set(sizes))
    return text + (f" ({distinct} compiled sizes)" if distinct > 1 else " (one compiled size)")


# --------------------------------------------------------------------------- compiled functions
def seed_keys(seeds: Sequence[int]) -> jax.Array:
    """Typed PRNG keys `[S]`: member i is `jax.random.key(seeds[i])`."""
    return jax.vmap(jax.random.key)(jnp.asarray(np.asarray(seeds, np.int64), jnp.uint32))


def population_shape(trainer: Trainer, hparams: HParams, keys: jax.Array) -> TrainState:
    """The abstract `TrainState [S, ...]` of a population of `keys [S]` (nothing compiled):
    the `like` of a checkpoint restore."""
    return jax.eval_shape(jax.vmap(trainer.init, (0, None)), keys, hparams)


@dataclasses.dataclass
class Compiled:
    """Ahead-of-time compiled trainer programs and how the seeds map onto devices.

    The `num_members` seeds are split into `groups` balanced groups of `width`
    members (`member_groups(num_members, members_per_device)`). One call of a
    compiled program runs `devices` groups at once, one per device, each device
    running `vmap` of the trainer over its `width` members (a one-member group
    runs the unvmapped trainer); the groups run in `rounds` calls. The state
    carried between chunks is a list with one `TrainState [devices * width, ...]`
    per round; `gather` gives the whole population `[S, ...]` in member order (what
    checkpoints hold) and `scatter` splits it back, so neither the checkpoint nor
    the numbers depend on the device count.

    Attributes:
      init: `init(keys [devices * width], hparams) -> TrainState` of one round (None
        when compiled for a resume).
      run: chunk size K -> `run(state, hparams) -> (state, metrics {name: [rows, K]})`
        of one round.
      member_shape: the abstract `TrainState [S, ...]` of the whole population
        (default device), the `like` of a checkpoint restore.
      compile_time_s: seconds spent lowering and compiling.
      num_members, members_per_device, width, groups, devices: the layout.
      mesh: the 1-D mesh of `devices` local devices (None for a single seed, which
        runs the unvmapped trainer on the default device).
    """

    init: Callable[[jax.Array, HParams], TrainState] | None
    run: dict[int, Callable[[TrainState, HParams], tuple[TrainState, dict[str, jax.Array]]]]
    member_shape: TrainState
    compile_time_s: float
    num_members: int
    members_per_device: int
    width: int
    groups: int
    devices: int
    mesh: Mesh | None

    @property
    def rounds(self) -> int:
        """Calls of a compiled program per chunk: `ceil(groups / devices)`."""
        return -(-self.groups // self.devices)

    def _rows(self, r: int) -> np.ndarray:
        return round_rows(self.num_members, self.width, self.devices, r)

    def place(self, tree: Any, batched: bool) -> Any:
        """Put arrays where the compiled code expects them: split over the mesh along
        the leading axis when `batched`, replicated otherwise."""
        return _place(self.mesh, tree, batched)

    def init_states(self, keys: jax.Array, hparams: HParams) -> list[TrainState]:
        """The initial state of every round, from the members' keys `[S]`."""
        assert self.init is not None, "compiled without init (for a resume)"
        hp = self.place(hparams, False)
        return [self.init(self.place(keys[self._rows(r)], True), hp) for r in range(self.rounds)]

    def run_chunk(
        self, size: int, states: Sequence[TrainState], hparams: HParams
    ) -> tuple[list[TrainState], dict[str, np.ndarray]]:
        """`size` updates of every round; returns the new states and the members'
        metrics `{name: [S, size]}` on the host (padding rows dropped)."""
        hp = self.place(hparams, False)
        outs = [self.run[size](state, hp) for state in states]  # dispatched, then awaited
        wait_ready(outs)
        metrics = [jax.device_get(m) for _, m in outs]
        joined = {
            name: np.concatenate([np.asarray(m[name]) for m in metrics])[: self.num_members]
            for name in metrics[0]
        }
        return [state for state, _ in outs], joined

    def gather(self, states: Sequence[TrainState]) -> TrainState:
        """The whole population's state `[S, ...]` in member order, on the default device."""
        device = jax.local_devices()[0]

        def join(*leaves: jax.Array) -> jax.Array:
            leaves = tuple(jax.device_put(x, device) for x in leaves)
            whole = jnp.concatenate(leaves) if len(leaves) > 1 else leaves[0]
            return whole[: self.num_members]

        return jax.tree.map(join, *states)

    def member_params(self, states: Sequence[TrainState]) -> Any:
        """The members' parameters `[S, ...]` as host arrays (NaN checks)."""
        return jax.tree.map(
            lambda *xs: np.concatenate([np.asarray(x) for x in xs])[: self.num_members],
            *[state.params for state in states],
        )

    def scatter(self, state: TrainState) -> list[TrainState]:
        """Split a population state `[S, ...]` (a restored checkpoint) into the rounds."""
        rows = [jnp.asarray(self._rows(r)) for r in range(self.rounds)]
        return [self.place(jax.tree.map(lambda x, i=i: x[i], state), True) for i in rows]

    def describe(self) -> str:
        """`4 seeds in 2 groups of 2 (--members-per-device 2) on 2 devices`, "" for one seed."""
        if self.num_members == 1:
            return ""
        text = (
            f"{self.num_members} seeds in {count(self.groups, 'group')} of {self.width} "
            f"(--members-per-device {self.members_per_device}) on "
            f"{count(self.devices, 'device')}"
        )
        return text + (f", {self.rounds} rounds per chunk" if self.rounds > 1 else "")


def _add_axis(tree: Any) -> Any:
    return jax.tree.map(lambda x: x[None], tree)


def _drop_axis(tree: Any) -> Any:
    return jax.tree.map(lambda x: x[0], tree)


def _single_init(trainer: Trainer, keys: jax.Array, hparams: HParams) -> TrainState:
    return _add_axis(trainer.init(keys[0], hparams))


def _single_run(trainer: Trainer, num_updates: int, state: TrainState, hparams: HParams):
    return _add_axis(trainer.run(_drop_axis(state), hparams, num_updates))


def _place(mesh: Mesh | None, tree: Any, batched: bool) -> Any:
    if mesh is None:
        return tree
    spec = P(POP_AXIS) if batched else P()
    return jax.device_put(tree, NamedSharding(mesh, spec))


def _with_sharding(tree: Any, sharding: NamedSharding | None) -> Any:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def compile_trainer(
    trainer: Trainer,
    hparams: HParams,
    keys: jax.Array,
    chunk_sizes: Sequence[int],
    with_init: bool = True,
    num_devices: int | None = None,
    members_per_device: int | None = None,
) -> Compiled:
    """Lower and compile `init` (unless `with_init` is off: a resume restores the state)
    and one `run` per distinct chunk size, timed.

    With one seed the functions are not vmapped, only given a leading axis of
    size 1 at the boundary (XLA:CPU compiles a size-1 vmap differently), so a
    one-seed run has exactly the bits of `jax.jit(make_train(cfg))(key, hparams)`.
    With several, the seeds are split into balanced groups of at most
    `members_per_device` (default: `default_members_per_device("train")`, which
    depends on the platform only) and each device of a mesh of up to `num_devices`
    local devices (default all; never more than there are groups) runs the vmap
    of one group per call (`purejaxppo.sharding.population_map`). The per-device
    program depends on the seeds and `members_per_device` only, so the numbers
    do not change with the device count; a group of one member runs the unvmapped
    trainer and has its single run's bits.
    """
    start = time.perf_counter()
    num_seeds = keys.shape[0]
    if members_per_device is None:
        members_per_device = default_members_per_device("train")
    groups, width = member_groups(num_seeds, members_per_device)
    available = len(jax.local_devices()) if num_devices is None else num_devices
    used = min(groups, available)
    mesh = population_mesh(jax.local_devices()[:used]) if num_seeds > 1 else None
    if mesh is not None:
        init_fn = population_map(trainer.init, mesh, (True, False))

        def run_fn(size: int) -> Callable[..., Any]:
            member = functools.partial(trainer.run, num_updates=size)
            return population_map(member, mesh, (True, False))

    else:
        init_fn = jax.jit(functools.partial(_single_init, trainer))

        def run_fn(size: int) -> Callable[..., Any]:
            return jax.jit(functools.partial(_single_run, trainer, size))

    round_keys = _place(mesh, keys[round_rows(num_seeds, width, used, 0)], True)
    hparams = _place(mesh, hparams, False)
    sharding = NamedSharding(mesh, P(POP_AXIS)) if mesh is not None else None
    state_shape = _with_sharding(jax.eval_shape(init_fn, round_keys, hparams), sharding)
    # Trace and lower here (Python, one at a time); XLA compiles the programs in
    # parallel threads (it releases the GIL), so the init and the chunk programs
    # cost the longest of their compile times, not the sum.
    lowered: dict[Any, Any] = {
        size: run_fn(size).lower(state_shape, hparams) for size in sorted(set(chunk_sizes))
    }
    if with_init:
        lowered["init"] = init_fn.lower(round_keys, hparams)
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(lowered)) as pool:
        done = dict(
            zip(lowered, pool.map(lambda low: low.compile(), lowered.values()), strict=True)
        )
    init = done.pop("init", None)
    member_shape = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct((num_seeds, *x.shape[1:]), x.dtype), state_shape
    )
    elapsed = time.perf_counter() - start
    return Compiled(
        init, done, member_shape, elapsed, num_seeds, members_per_device, width, groups, used, mesh
    )
