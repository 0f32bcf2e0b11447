"""Chunk plans and the compiled, seed-vmapped trainer functions of a run (host side).

The pure trainer is split into `init` (compiled once) and `run(state, hparams,
K)` (compiled once per chunk size K, normally one size), both vmapped over the
seed axis and split over local devices. Chunks give the same bits as one
`jax.jit(jax.vmap(train))` call because the state carried between chunks is the
whole `TrainState`.
"""

from __future__ import annotations

import concurrent.futures
import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from purejaxppo.config import HParams
from purejaxppo.sharding import POP_AXIS, population_map, population_mesh
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
    return jnp.stack([jax.random.key(int(s)) for s in seeds])


class Compiled(NamedTuple):
    """Ahead-of-time compiled, seed-vmapped functions.

    `init(keys [S], hparams) -> TrainState [S]`;
    `run[K](state [S], hparams) -> (state [S], metrics {name: [S, K]})`.
    `place(tree, batched)` puts host or device arrays where the compiled code
    expects them: split over `devices` along the seed axis when `batched`,
    replicated otherwise (a restored checkpoint, the hyperparameters).
    """

    init: Callable[[jax.Array, HParams], TrainState] | None
    run: dict[int, Callable[[TrainState, HParams], tuple[TrainState, dict[str, jax.Array]]]]
    state_shape: TrainState
    compile_time_s: float
    devices: int
    place: Callable[[Any, bool], Any]


def _vmapped_run(trainer: Trainer, num_updates: int, state: TrainState, hparams: HParams):
    return jax.vmap(functools.partial(trainer.run, num_updates=num_updates), (0, None))(
        state, hparams
    )


def _add_axis(tree: Any) -> Any:
    return jax.tree.map(lambda x: x[None], tree)


def _drop_axis(tree: Any) -> Any:
    return jax.tree.map(lambda x: x[0], tree)


def _single_init(trainer: Trainer, keys: jax.Array, hparams: HParams) -> TrainState:
    return _add_axis(trainer.init(keys[0], hparams))


def _single_run(trainer: Trainer, num_updates: int, state: TrainState, hparams: HParams):
    return _add_axis(trainer.run(_drop_axis(state), hparams, num_updates))


def seed_devices(num_seeds: int, num_devices: int | None = None) -> int:
    """Local devices the seed axis is split over: the most (up to `num_devices`,
    default all local devices) that divide `num_seeds` evenly, so no seed is padded."""
    available = len(jax.local_devices()) if num_devices is None else num_devices
    return max(d for d in range(1, min(num_seeds, available) + 1) if num_seeds % d == 0)


def _placer(mesh: Mesh | None) -> Callable[[Any, bool], Any]:
    def place(tree: Any, batched: bool) -> Any:
        if mesh is None:
            return tree
        spec = P(POP_AXIS) if batched else P()
        return jax.device_put(tree, NamedSharding(mesh, spec))

    return place


def _with_sharding(tree: Any, sharding: NamedSharding | None) -> Any:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def compile_trainer(
    trainer: Trainer,
    hparams: HParams,
    keys: jax.Array,
    chunk_sizes: Sequence[int],
    with_init: bool = True,
    num_devices: int | None = None,
) -> Compiled:
    """Lower and compile `init` (unless `with_init` is off: a resume restores the state)
    and one `run` per distinct chunk size, timed.

    With several seeds the functions are vmapped over the seed axis, giving the
    bits of `jax.jit(jax.vmap(train, (0, None)))(keys, hparams)`; the seed axis
    is split over `seed_devices(S, num_devices)` local devices (on a CPU, one
    host device per core: `purejaxppo.run.devices`), each running the vmap of
    its own seeds, which gives the same bits. With one seed they are not
    vmapped, only given a leading axis of size 1 at the boundary (XLA:CPU
    compiles a size-1 vmap differently), so a one-seed run has exactly the bits
    of `jax.jit(make_train(cfg))(key, hparams)`.
    """
    start = time.perf_counter()
    num_seeds = keys.shape[0]
    used = seed_devices(num_seeds, num_devices) if num_seeds > 1 else 1
    mesh = population_mesh(jax.local_devices()[:used]) if used > 1 else None
    place = _placer(mesh)
    keys, hparams = place(keys, True), place(hparams, False)
    if mesh is not None:
        init_fn = population_map(trainer.init, mesh, (True, False))

        def run_fn(size: int) -> Callable[..., Any]:
            member = functools.partial(trainer.run, num_updates=size)
            return population_map(member, mesh, (True, False))

    else:
        if num_seeds == 1:
            init_fn = jax.jit(functools.partial(_single_init, trainer))
            run_impl = _single_run
        else:
            init_fn = jax.jit(jax.vmap(trainer.init, (0, None)))
            run_impl = _vmapped_run

        def run_fn(size: int) -> Callable[..., Any]:
            return jax.jit(functools.partial(run_impl, trainer, size))

    sharding = NamedSharding(mesh, P(POP_AXIS)) if mesh is not None else None
    state_shape = _with_sharding(jax.eval_shape(init_fn, keys, hparams), sharding)
    # Trace and lower here (Python, one at a time); XLA compiles the programs in
    # parallel threads (it releases the GIL), so the init and the chunk programs
    # cost the longest of their compile times, not the sum.
    lowered: dict[Any, Any] = {
        size: run_fn(size).lower(state_shape, hparams) for size in sorted(set(chunk_sizes))
    }
    if with_init:
        lowered["init"] = init_fn.lower(keys, hparams)
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(lowered)) as pool:
        done = dict(
            zip(lowered, pool.map(lambda low: low.compile(), lowered.values()), strict=True)
        )
    init = done.pop("init", None)
    return Compiled(init, done, state_shape, time.perf_counter() - start, used, place)
