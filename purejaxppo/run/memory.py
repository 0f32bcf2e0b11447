"""Device memory of a program, estimated before compiling it (host side).

`traced_bytes(fn, *args)` traces `fn` to a jaxpr at abstract shapes (`jax.make_jaxpr`:
no XLA compile, so it takes the same fraction of a second at 134M envs as at 4) and
plays the jaxpr's buffers through their lifetimes: arguments, plus at every equation
the live intermediates, the equation's outputs and the peak inside its sub-jaxprs
(scan and while bodies, cond branches, calls); an intermediate is freed after
its last use. Measured against XLA's own `compiled.memory_analysis()` (arguments +
outputs + temporaries - aliased) on CPU the estimate of a PPO trainer lies within
`ESTIMATE_FACTOR` (2) of it either way, of the RLHF programs between a quarter and
twice it (`RLHF_ESTIMATE_FACTOR`; tests/test_memory.py, docs/cli.md lists the ratios).

`purejaxppo train`, `purejaxppo sweep` and `purejaxppo rlhf` use it to refuse, in
one line and before compiling, a run whose estimate exceeds the memory available
(`check_fits`): a GPU's allocator limit per device, or on a CPU the host's available
RAM for all the XLA host devices that run at once.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np
from jax.extend import core as jcore

from purejaxppo.run.errors import ConfigError

ESTIMATE_FACTOR = 2.0  # PPO: estimate / XLA's memory analysis in [1/2, 2] (tests/test_memory.py)
# RLHF's Transformers: [1/4, 2]. XLA:CPU keeps each layer's [B, T, 4D] MLP buffers apart (its
# memory-usage report), so the shipped RLHF configs use ~3x the estimate there.
RLHF_ESTIMATE_FACTOR = 4.0
KEY_BYTES = 8  # a threefry key: two uint32 words


# --------------------------------------------------------------------------- the estimate
def aval_bytes(aval: Any) -> int:
    """Bytes of one abstract array (a `ShapedArray` or `ShapeDtypeStruct`); 0 for tokens."""
    shape = getattr(aval, "shape", None)
    dtype = getattr(aval, "dtype", None)
    if shape is None or dtype is None:
        return 0
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        size = KEY_BYTES
    else:
        size = np.dtype(dtype).itemsize
    return int(np.prod(shape, dtype=np.int64)) * size


def tree_bytes(tree: Any) -> int:
    """Bytes of every array (concrete or abstract) in a pytree."""
    return sum(aval_bytes(leaf) for leaf in jax.tree.leaves(tree))


def _sub_jaxprs(params: dict[str, Any]) -> Iterator[jcore.Jaxpr]:
    for value in params.values():
        for item in value if isinstance(value, tuple | list) else (value,):
            if isinstance(item, jcore.ClosedJaxpr):
                yield item.jaxpr
            elif isinstance(item, jcore.Jaxpr):
                yield item


def temp_bytes(jaxpr: jcore.Jaxpr) -> int:
    """Peak bytes of the intermediates of `jaxpr` (its outputs included, its inputs not):
    at each equation the live intermediates, its outputs and the peak of its sub-jaxprs;
    an intermediate is freed after its last use."""
    n = len(jaxpr.eqns)
    last_use: dict[jcore.Var, int] = {}
    for i, eqn in enumerate(jaxpr.eqns):
        for var in eqn.invars:
            if isinstance(var, jcore.Var):
                last_use[var] = i
    for var in jaxpr.outvars:
        if isinstance(var, jcore.Var):
            last_use[var] = n
    owned: dict[jcore.Var, int] = {}  # intermediates alive now -> bytes
    live = peak = 0
    for i, eqn in enumerate(jaxpr.eqns):
        inner = max((temp_bytes(sub) for sub in _sub_jaxprs(eqn.params)), default=0)
        outs = [(v, aval_bytes(v.aval)) for v in eqn.outvars if not isinstance(v, jcore.DropVar)]
        peak = max(peak, live + sum(size for _, size in outs) + inner)
        for var, size in outs:
            if last_use.get(var, -1) > i:
                owned[var] = size
                live += size
        for var in [v for v in owned if last_use[v] == i]:
            live -= owned.pop(var)
    return peak


def traced_bytes(fn: Callable[..., Any], *args: Any) -> int:
    """Estimated device bytes of `jax.jit(fn)(*args)`: arguments plus the peak of the
    intermediates, from the jaxpr traced at the (abstract or concrete) `args`."""
    closed = jax.make_jaxpr(fn)(*args)
    arguments = sum(aval_bytes(v.aval) for v in closed.jaxpr.invars)
    constants = sum(aval_bytes(v.aval) for v in closed.jaxpr.constvars)
    return arguments + constants + temp_bytes(closed.jaxpr)


# --------------------------------------------------------------------------- reporting
@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Estimated bytes on one device, and named parts of it for the message.

    Attributes:
      total: bytes one device needs (the larger of the programs it runs).
      parts: `(name, bytes)` pairs that explain the total, e.g. the state and rollout.
    """

    total: int
    parts: tuple[tuple[str, int], ...] = ()

    def describe(self) -> str:
        """`state 0.1 GB, rollout 60 GB`: the parts ("" without parts)."""
        return ", ".join(f"{name} {gigabytes(size)}" for name, size in self.parts)


def gigabytes(size: float) -> str:
    """`93 GB`, `1.4 GB`, `0.003 GB`: bytes as decimal gigabytes, 2 significant digits."""
    value = size / 1e9
    if value >= 10:
        return f"{value:.0f} GB"
    return f"{value:.2g} GB"


def _mem_available() -> int | None:
    """The host's available RAM (`MemAvailable` of /proc/meminfo, else its free pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def available_memory(device: Any = None, local_devices: int | None = None) -> int | None:
    """Bytes one device may use: its allocator's limit (GPU, TPU), or on a CPU the host's
    available RAM divided among its `local_devices` (default: all local devices); None
    when unknown."""
    device = device if device is not None else jax.local_devices()[0]
    try:
        stats = device.memory_stats()
    except Exception:  # backends without memory stats raise various errors
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    total = _mem_available()
    if total is None:
        return None
    count = local_devices if local_devices is not None else len(jax.local_devices())
    return total // max(1, count)


def check_fits(
    estimate: MemoryEstimate, field: str, what: str, lower: str, devices: int = 1
) -> None:
    """Raise a one-line `ConfigError` naming `field` if `estimate` (bytes on one device)
    does not fit: on an accelerator in one device's memory, on a CPU (whose XLA devices
    share the host's RAM) `devices` times it in the host's available RAM (`devices`: how
    many run at once). `what` says what needs it, `lower` what to lower."""
    device = jax.local_devices()[0]
    available = available_memory(device, local_devices=1)
    cpu = device.platform == "cpu"
    need = estimate.total * (devices if cpu else 1)
    if available is None or need <= available:
        return
    parts = estimate.describe() if estimate.parts else ""
    if cpu and devices > 1:
        parts = f"{gigabytes(estimate.total)} on each of {devices} cpu devices" + (
            f": {parts}" if parts else ""
        )
    has = (
        f"the host has {gigabytes(available)} of RAM available"
        if cpu
        else f"{device.platform} {device.id} has {gigabytes(available)}"
    )
    raise ConfigError(
        f"{field}: {what} needs about {gigabytes(need)} of {'memory' if cpu else 'device memory'}"
        + (f" ({parts})" if parts else "")
        + f", {has}; lower {lower}"
    )


# --------------------------------------------------------------------------- PPO
def ppo_member_memory(trainer: Any) -> MemoryEstimate:
    """Estimated bytes of one member of `trainer` (a `purejaxppo.train.Trainer`): the
    larger of its `init` and of one update (what a chunk of any length needs, metrics
    aside); parts: the state, the rollout's trajectory and the update's peak."""
    from purejaxppo.config import HParams

    key = jax.random.key(0)
    hparams = HParams()
    state = jax.eval_shape(trainer.init, key, hparams)
    _, trajectory, _ = jax.eval_shape(trainer.rollout, state, hparams, key)
    init = traced_bytes(trainer.init, key, hparams)
    update = traced_bytes(functools.partial(trainer.run, num_updates=1), state, hparams)
    parts = (
        ("state", tree_bytes(state)),
        ("rollout [T, N]", tree_bytes(trajectory)),
        ("update peak", update),
    )
    return MemoryEstimate(max(init, update), parts)


def scaled(estimate: MemoryEstimate, members: int) -> MemoryEstimate:
    """`members` members side by side (a vmap): every byte times `members`."""
    parts = tuple((name, size * members) for name, size in estimate.parts)
    return MemoryEstimate(estimate.total * members, parts)


def check_train_memory(
    trainer: Any, num_seeds: int, members_per_device: int | None, source: str
) -> None:
    """`purejaxppo train`: refuse in one line (`ConfigError`) before compiling when the
    seeds one device runs at once (`member_groups(num_seeds, members_per_device)`) do not
    fit in its memory."""
    from purejaxppo.sharding import default_members_per_device, member_groups

    cap = members_per_device or default_members_per_device("train")
    groups, width = member_groups(num_seeds, cap)
    devices = min(groups, len(jax.local_devices()))  # how compile_trainer lays them out
    estimate = scaled(ppo_member_memory(trainer), width)
    per = f"{width} seeds vmapped on each device" if width > 1 else "one seed"
    lower = "ppo.num_envs or ppo.num_steps" + (" (or --members-per-device)" if width > 1 else "")
    check_fits(estimate, f"{source}: ppo.num_envs", f"the run ({per})", lower, devices)
