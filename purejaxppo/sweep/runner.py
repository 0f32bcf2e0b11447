"""Training a population: `GroupRunner` (one static group, chunked), `train_population`, `select`.

Members that share a `PPOConfig` (a *static group*) run together in ONE
compiled, vmapped program: `jit(shard_map(vmap(...)))` over every device
(`purejaxppo.sharding`). Each device runs a fixed number of members (the
*width*, from `member_groups(n, members_per_device)`, never from the device
count), so the numbers do not depend on how many devices there are; a chunk is
one round of one width-wide group per device, the last one padded to the same
compiled shape. A sweep that varies a static field (e.g. `ppo.num_envs`) has
one group per value; each group compiles once.

Training is run as `init` then repeated `segment_updates`-long scans of PPO
updates, fetching metrics after each segment, so device memory does not depend
on `total_timesteps` (see docs/sweeps.md). `plan_width` picks the largest
width whose compiled programs fit in device memory.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.config import HParams, PPOConfig
from purejaxppo.run.memory import (
    MemoryEstimate,
    available_memory,
    check_fits,
    ppo_member_memory,
)
from purejaxppo.run.progress import count
from purejaxppo.sharding import (
    default_members_per_device,
    local_rows,
    member_groups,
    population_map,
    population_mesh,
)
from purejaxppo.sharding import shard_rows as _shard_rows
from purejaxppo.train import METRIC_NAMES, Trainer, TrainOutput, TrainState, make_trainer

DEFAULT_SEGMENT_UPDATES = 32
MEMORY_FRACTION = 0.7  # of a device's memory a chunk may plan to use

_NAN_METRICS = {name: float("nan") for name in METRIC_NAMES}


def _init_member(trainer: Trainer, key_data: jax.Array, hparams: HParams) -> TrainState:
    """One member's initial state from raw key data `[2]` (uint32)."""
    return trainer.init(jax.random.wrap_key_data(key_data), hparams)


def _advance_member(
    trainer: Trainer, length: int, state: TrainState, hparams: HParams, n_valid: jax.Array
) -> tuple[TrainState, dict[str, jax.Array]]:
    """Up to `length` PPO updates of one member: the first `n_valid` run, the rest are skipped.

    Skipping (`lax.cond` on an unbatched predicate, so it stays a branch under
    vmap) lets one compiled program run the last, shorter segment of a run.
    Returns the state and metrics `[length]` (NaN rows for skipped updates).
    """

    def body(state: TrainState, i: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
        def skip(s: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
            return s, {k: jnp.float32(v) for k, v in _NAN_METRICS.items()}

        return jax.lax.cond(i < n_valid, lambda s: trainer.update(s, hparams), skip, state)

    return jax.lax.scan(body, state, jnp.arange(length))


def seed_key_data(seeds: Sequence[int]) -> np.ndarray:
    """Raw key data `[n, 2]` uint32 of `jax.random.key(seed)` for each seed."""
    seeds = np.asarray(list(seeds), dtype=np.uint32)
    return np.asarray(jax.vmap(lambda s: jax.random.key_data(jax.random.key(s)))(seeds))


def _stack_host(hparams: Sequence[HParams]) -> HParams:
    """Stack `HParams` into float32 numpy leaves `[n]` (host side, validated)."""
    for hp in hparams:
        hp.validate()
    return jax.tree.map(lambda *xs: np.asarray(xs, np.float32), *hparams)


class ChunkResult(NamedTuple):
    """One chunk's outcome.

    Attributes:
      rows: positions within the chunk `[L]` held by this process (all `n` in
        a single-process run), padding rows excluded.
      metrics: name -> `[L, U]` float32 per-update metrics of those rows.
      state: final `TrainState`, global arrays `[C_pad, ...]` sharded over the mesh.
      run_s: wall time of the chunk (compilation excluded).
    """

    rows: np.ndarray
    metrics: dict[str, np.ndarray]
    state: TrainState
    run_s: float


class GroupRunner:
    """Runs chunks of one static group: compiled once, sharded over a mesh.

    Every device runs `width` members (a one-member width runs the unvmapped
    trainer); a chunk is one round of `D` such groups, `D` = devices in the
    mesh, so it holds up to `chunk_size = D * width` members: members `j *
    width ... (j + 1) * width - 1` of the chunk on device `j`, rows past the
    last member (the last group's padding, whole dummy groups) copies of the
    last member, dropped from the results. The per-device program depends on
    `width` only, so a member gets the same bits on any number of devices.
    """

    def __init__(
        self,
        config: PPOConfig,
        width: int,
        mesh: jax.sharding.Mesh | None = None,
        segment_updates: int = DEFAULT_SEGMENT_UPDATES,
        env: Any = None,
        env_params: Any = None,
    ) -> None:
        if isinstance(width, bool) or not isinstance(width, int | np.integer) or width < 1:
            raise ValueError(f"members_per_device: expected a positive integer, got {width}")
        if segment_updates < 1:
            raise ValueError(f"segment_updates: expected a positive integer, got {segment_updates}")
        self.config = config
        self.trainer = make_trainer(config, env, env_params)
        self.mesh = mesh if mesh is not None else population_mesh()
        self.width = int(width)
        self.chunk_size = self.width * self.mesh.devices.size
        self.padded = self.chunk_size
        self.segment = min(segment_updates, config.num_updates)
        self._init_fn = population_map(
            functools.partial(_init_member, self.trainer), self.mesh, (True, True)
        )
        self._advance_fn = population_map(
            functools.partial(_advance_member, self.trainer, self.segment),
            self.mesh,
            (True, True, False),
            donate_argnums=(0,),
        )
        self._init: Any = None
        self._advance: Any = None
        self.compile_s = 0.0

    def _inputs(self, seeds: Sequence[int], hparams: Sequence[HParams]) -> tuple[Any, Any]:
        n = len(seeds)
        if not 1 <= n <= self.chunk_size or len(hparams) != n:
            raise ValueError(
                f"chunk: expected 1..{self.chunk_size} members with one HParams each, "
                f"got {count(n, 'seed')} and {len(hparams)} HParams"
            )
        pad = [n - 1] * (self.padded - n)
        rows = [*range(n), *pad]
        keys = seed_key_data([seeds[i] for i in rows])
        hps = _stack_host([hparams[i] for i in rows])
        return _shard_rows(self.mesh, keys), jax.tree.map(lambda x: _shard_rows(self.mesh, x), hps)

    def compile(self) -> float:
        """Compile the init and update programs for this chunk shape; returns seconds."""
        if self._init is not None:
            return self.compile_s
        start = time.perf_counter()
        keys, hps = self._inputs([0], [HParams()])
        self._init = self._init_fn.lower(keys, hps).compile()
        state = self._init(keys, hps)  # cheap (env resets); gives the state's shardings
        self._advance = self._advance_fn.lower(state, hps, np.int32(0)).compile()
        self.compile_s = time.perf_counter() - start
        return self.compile_s

    def programs(self) -> tuple[Any, Any]:
        """The compiled `(init, update-segment)` executables (compiling them if needed)."""
        self.compile()
        return self._init, self._advance

    def memory_bytes(self) -> int:
        """Device memory one device needs for its `width` members (largest of the two
        programs); it does not depend on the device count."""
        sizes = []
        for compiled in self.programs():
            m = compiled.memory_analysis()
            if m is None:
                return 0
            sizes.append(
                m.argument_size_in_bytes
                + m.output_size_in_bytes
                + m.temp_size_in_bytes
                - m.alias_size_in_bytes
            )
        return max(sizes)

    def run_chunk(
        self,
        seeds: Sequence[int],
        hparams: Sequence[HParams],
        on_updates: Callable[[int], None] | None = None,
    ) -> ChunkResult:
        """Train `n <= chunk_size` members (seed i with hparams i) for `num_updates`.

        `on_updates(k)` is called after each segment with the updates done so far.
        """
        self.compile()
        start = time.perf_counter()
        n = len(seeds)
        keys, hps = self._inputs(seeds, hparams)
        state = self._init(keys, hps)
        total = self.config.num_updates
        done = 0
        pieces: dict[str, list[np.ndarray]] = {name: [] for name in METRIC_NAMES}
        rows = np.zeros((0,), np.int64)
        while done < total:
            valid = min(self.segment, total - done)
            state, metrics = self._advance(state, hps, np.int32(valid))
            for name in METRIC_NAMES:
                rows, values = local_rows(metrics[name])
                pieces[name].append(values[:, :valid])
            done += valid
            if on_updates is not None:
                on_updates(done)
        jax.block_until_ready(state)
        keep = rows < n
        out = {name: np.concatenate(pieces[name], axis=1)[keep] for name in METRIC_NAMES}
        return ChunkResult(rows[keep], out, state, time.perf_counter() - start)


def chunk_bounds(n: int, chunk_size: int) -> list[tuple[int, int]]:
    """`[(start, stop), ...]` splitting `n` members into chunks of at most `chunk_size`.

    With a `GroupRunner`'s `chunk_size` (`D * width`) and the balanced `width` of
    `member_groups(n, ...)`, member `i` lands in group `i // width` on any `D`.
    """
    return [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]


def train_population(
    config: PPOConfig,
    hparams: Sequence[HParams],
    seeds: Sequence[int],
    *,
    members_per_device: int | None = None,
    max_batch: int | None = None,
    mesh: jax.sharding.Mesh | None = None,
    segment_updates: int = DEFAULT_SEGMENT_UPDATES,
    env: Any = None,
    env_params: Any = None,
    on_updates: Callable[[int, int], None] | None = None,
) -> TrainOutput:
    """Train P members of one static config: member i is `(seeds[i], hparams[i])`.

    The members run in balanced groups of at most `members_per_device` (default
    `default_members_per_device("sweep")`: 16 on a CPU, 1024 on an accelerator),
    capped by `max_batch` when given (`member_groups`), one group per device of
    `mesh` (default: the local devices, at most one per group) per call of one
    compiled program (a chunk). The numbers depend on the members and that width
    only, not on the number of devices. Member i equals
    `jax.jit(make_train(config))(jax.random.key(seeds[i]), hparams[i])` up to
    float rounding (XLA compiles the batched program differently).

    Returns:
      A batched `TrainOutput`: params and state leaves `[P, ...]`, metrics
      `[P, num_updates]`, on one device. `select(out, i)` takes member i out.
      `on_updates(chunk, updates_done)` reports progress.
    """
    if jax.process_count() > 1:
        raise ValueError(
            "train_population: runs in one process; for several processes use "
            "`purejaxppo sweep` (each process writes its own rows)"
        )
    hparams, seeds = list(hparams), list(seeds)
    if len(hparams) != len(seeds) or not seeds:
        raise ValueError(f"seeds: expected one per HParams, got {len(seeds)} and {len(hparams)}")
    for name, value in (("members_per_device", members_per_device), ("max_batch", max_batch)):
        if value is not None and value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value}")
    cap = members_per_device or default_members_per_device("sweep")
    groups, width = member_groups(len(seeds), min(cap, max_batch or cap))
    if mesh is None:  # no more devices than groups: the others would only run padding
        mesh = population_mesh(jax.local_devices()[:groups])
    runner = GroupRunner(config, width, mesh, segment_updates, env, env_params)
    device = jax.local_devices()[0]
    states, metrics = [], []
    for c, (lo, hi) in enumerate(chunk_bounds(len(seeds), runner.chunk_size)):
        report = None if on_updates is None else functools.partial(on_updates, c)
        res = runner.run_chunk(seeds[lo:hi], hparams[lo:hi], report)
        states.append(jax.tree.map(lambda x, k=hi - lo: jax.device_put(x, device)[:k], res.state))
        metrics.append(res.metrics)
    state = jax.tree.map(lambda *xs: jnp.concatenate(xs), *states)
    joined = {
        name: jnp.asarray(np.concatenate([m[name] for m in metrics])) for name in METRIC_NAMES
    }
    return TrainOutput(params=state.params, metrics=joined, state=state)


def select(output: TrainOutput, i: int) -> TrainOutput:
    """Member `i` of a batched `TrainOutput` (leaves `[P, ...]` -> `[...]`).

    The result is a single run's output: evaluate `output.params`, checkpoint it,
    or continue with `trainer.run(output.state, hparams, k)`.
    """
    size = output.metrics[METRIC_NAMES[0]].shape[0] if output.metrics else None
    if size is None or output.metrics[METRIC_NAMES[0]].ndim < 2:
        raise ValueError("output: expected a batched TrainOutput (metrics [P, num_updates])")
    if isinstance(i, bool) or not isinstance(i, int | np.integer) or not 0 <= i < size:
        raise ValueError(f"i: expected a member index in [0, {size}), got {i!r}")
    return jax.tree.map(lambda x: x[int(i)], output)


# =========================================================================== memory
def memory_budget(device: Any, local_devices: int) -> int | None:
    """Bytes one chunk may plan to use on `device` (None: unknown): `MEMORY_FRACTION` of
    `purejaxppo.run.memory.available_memory`."""
    available = available_memory(device, local_devices)
    return None if available is None else int(available * MEMORY_FRACTION)


@functools.lru_cache(maxsize=64)
def member_memory(config: PPOConfig) -> MemoryEstimate:
    """The estimated device memory of one member of `config` (traced once per config)."""
    return ppo_member_memory(make_trainer(config))


def check_groups_fit(groups: Sequence[Any]) -> None:
    """Refuse a sweep (one-line `ConfigError`, before anything is written or compiled) one of
    whose static groups (`StaticGroup`s) cannot fit even one member in a device's memory
    (the estimate of `purejaxppo.run.memory`); wider groups are narrowed by `plan_width`."""
    for g in groups:
        where = f" of group {g.index + 1}/{len(groups)} ({g.label()})" if len(groups) > 1 else ""
        devices = min(len(g.members), len(jax.local_devices()))  # at most, at once
        _check_member(member_memory(g.config), g.config, where, devices)


def _check_member(member: Any, config: PPOConfig, where: str = "", devices: int = 1) -> None:
    where = where or f" (num_envs={config.num_envs}, num_steps={config.num_steps})"
    what, lower = f"one member{where}", "ppo.num_envs or ppo.num_steps"
    check_fits(member, "ppo.num_envs", what, lower, devices)


def plan_width(
    config: PPOConfig, group_size: int, width: int, segment: int, mesh: jax.sharding.Mesh
) -> tuple[int, GroupRunner]:
    """The balanced members per device (`member_groups(group_size, <= width)`) whose
    compiled programs fit in one device's memory.

    First, before compiling, the estimate of `purejaxppo.run.memory` (the one `train` and
    `rlhf` use): a member that cannot fit at all is refused (`ConfigError`, one line), and
    the width is capped to the members that fit. Then it compiles at that width; if XLA's
    memory analysis says it does not fit, shrinks in proportion (memory is linear in the
    width) and compiles again. Memory per device does not depend on the device count.
    Returns the width and a `GroupRunner` of that width.
    """
    _, size = member_groups(group_size, width)
    device = jax.local_devices()[0]
    budget = memory_budget(device, len(jax.local_devices()))
    member = member_memory(config)
    _check_member(member, config, devices=mesh.devices.size)
    if budget is not None and member.total * size > budget:
        _, size = member_groups(group_size, max(1, budget // max(1, member.total)))
    for _ in range(4):
        runner = GroupRunner(config, size, mesh, segment)
        need = runner.memory_bytes()
        if budget is None or need <= budget or size <= 1:
            return size, runner
        _, size = member_groups(group_size, max(1, int(size * budget / need * 0.9)))
    return size, GroupRunner(config, size, mesh, segment)
