"""The population axis over devices and processes, with JAX's own runtime (host side).

A sweep runs `P` independent members. Their arrays have a leading population
axis `[P, ...]`; this module lays that axis over a 1-D `Mesh` of every device
of every process (axis name `"pop"`) and runs a per-member function on each
device's slice with `jax.shard_map` (the body is `jax.vmap` of the function
over the local `P / D` members, so a device runs exactly the program a
single-device run of `P / D` members would).

So that results do not depend on the device count, callers never derive the
members per device from it: `member_groups(n, width)` splits `n` members into
balanced groups of a fixed width (`default_members_per_device`), every device
runs one group per call, and the groups run in rounds of `D` (`round_rows`).

Several processes (hosts) join with `initialize_distributed`, a thin wrapper
around `jax.distributed.initialize`; afterwards `jax.devices()` lists every
process's devices, the mesh spans them all, and each process reads back only
the rows held by its own devices (`local_rows`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

POP_AXIS = "pop"


def population_mesh(devices: list[Any] | None = None) -> Mesh:
    """A 1-D mesh over `devices` (default: all devices of all processes), axis `"pop"`."""
    devices = list(jax.devices()) if devices is None else list(devices)
    if not devices:
        raise ValueError("devices: expected at least one device")
    return Mesh(np.array(devices), (POP_AXIS,))


# Members per device (the vmap width of the per-device program) when none is asked for.
# Only the platform decides it, never the device count, so a population gives the same
# bits on any number of devices or processes. XLA:CPU runs a program of PPO's small
# matrices on about one core, so a few members per host device (one per core) suffice
# for `train --seeds` and more amortise per-op overhead in a sweep; an accelerator
# needs a wide batch to fill.
CPU_MEMBERS_PER_DEVICE = {"train": 4, "sweep": 16}
ACCELERATOR_MEMBERS_PER_DEVICE = 1024


def default_members_per_device(command: str, platform: str | None = None) -> int:
    """The default members per device of `command` (`"train"` or `"sweep"`) on `platform`
    (default: `jax.default_backend()`): 4 / 16 on a CPU, 1024 on any accelerator."""
    if command not in CPU_MEMBERS_PER_DEVICE:
        raise ValueError(f"command: expected one of {sorted(CPU_MEMBERS_PER_DEVICE)}")
    platform = jax.default_backend() if platform is None else platform
    if platform == "cpu":
        return CPU_MEMBERS_PER_DEVICE[command]
    return ACCELERATOR_MEMBERS_PER_DEVICE


def member_groups(n: int, width: int) -> tuple[int, int]:
    """`(groups, width_eff)`: `n` members in balanced groups of at most `width` per device.

    `groups = ceil(n / width)` and `width_eff = ceil(n / groups)` (<= `width`):
    member `i` is in group `i // width_eff` at position `i % width_eff`, and only
    the last group is short (it is padded with copies of its last member). This
    depends on `n` and `width` only, never on the device count: every device runs
    the same `width_eff`-wide program, in rounds of one group per device.
    """
    for name, value in (("n", n), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"member_groups: {name}: expected a positive integer, got {value!r}")
    groups = -(-n // width)
    return groups, -(-n // groups)


def round_rows(n: int, width: int, devices: int, round_index: int) -> np.ndarray:
    """Member index of each of the `devices * width` rows of round `round_index`.

    Round `r` holds groups `r * devices ... r * devices + devices - 1` (group `g` on
    device `g % devices`), i.e. members `r * devices * width + j`; rows past the
    last member (the last group's padding, whole dummy groups in the last round)
    repeat member `n - 1`, and their results are discarded.
    """
    start = round_index * devices * width
    return np.minimum(np.arange(start, start + devices * width), n - 1)


def padded_size(n: int, multiple: int) -> int:
    """The smallest multiple of `multiple` that is >= `n` (and >= `multiple`)."""
    if n <= 0 or multiple <= 0:
        raise ValueError(f"padded_size: expected positive sizes, got n={n}, multiple={multiple}")
    return -(-n // multiple) * multiple


def population_sharding(mesh: Mesh) -> NamedSharding:
    """Leading axis split over the mesh, other axes whole."""
    return NamedSharding(mesh, P(POP_AXIS))


def shard_rows(mesh: Mesh, rows: np.ndarray) -> jax.Array:
    """A global `[P, ...]` array from host rows every process holds in full.

    Each process places only the slices its own devices hold, so this works
    unchanged with one process or many. `P` must be a multiple of the mesh size.
    """
    rows = np.asarray(rows)
    size = mesh.devices.size
    if rows.shape[0] % size:
        raise ValueError(
            f"population: {rows.shape[0]} rows do not split over {size} devices; pad first"
        )
    return jax.make_array_from_callback(
        rows.shape, population_sharding(mesh), lambda index: rows[index]
    )


def shard_tree(mesh: Mesh, tree: Any) -> Any:
    """`shard_rows` on every leaf of a pytree of host arrays with leading axis `P`."""
    return jax.tree.map(lambda leaf: shard_rows(mesh, np.asarray(leaf)), tree)


def population_map(
    fn: Callable[..., Any],
    mesh: Mesh,
    batched: tuple[bool, ...],
    donate_argnums: tuple[int, ...] = (),
) -> Callable[..., Any]:
    """`jit(shard_map(vmap(fn)))`: `fn` of one member, run on a population sharded over `mesh`.

    Args:
      fn: a pure function of one member's arguments.
      mesh: the population mesh (`population_mesh`).
      batched: per positional argument, True if it carries the population axis
        `[P, ...]` (sharded), False if it is shared by all members (replicated).
      donate_argnums: arguments whose buffers may be reused for the output.

    Returns:
      A jitted function of the same arguments whose outputs all have leading
      axis `P`, sharded like the inputs. Each device runs `vmap(fn)` on its own
      `P / D` members; nothing is communicated between devices.
    """
    in_axes = tuple(0 if b else None for b in batched)
    in_specs = tuple(P(POP_AXIS) if b else P() for b in batched)
    vmapped = jax.vmap(fn, in_axes=in_axes)

    def body(*args: Any) -> Any:
        rows = {
            leaf.shape[0]
            for a, b in zip(args, batched, strict=True)
            if b
            for leaf in jax.tree.leaves(a)
        }
        if rows != {1}:
            return vmapped(*args)
        # One member per device: run `fn` itself, not a size-1 vmap, which XLA:CPU
        # compiles to different bits than the single run.
        members = [
            jax.tree.map(lambda x: x[0], a) if b else a for a, b in zip(args, batched, strict=True)
        ]
        return jax.tree.map(lambda x: x[None], fn(*members))

    # check_vma=False: the trainer's own loops (e.g. the orthogonal initialiser's
    # fori_loop) start from unsharded constants, which the varying-axis type check
    # rejects; nothing here communicates across devices, so the check has no use.
    mapped = jax.shard_map(
        body, mesh=mesh, in_specs=in_specs, out_specs=P(POP_AXIS), check_vma=False
    )
    return jax.jit(mapped, donate_argnums=donate_argnums)


def local_rows(array: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    """The rows of a population-sharded array held by this process's devices.

    Returns:
      `(index, rows)`: `index` int64 `[L]` global row numbers in increasing
      order, `rows` `[L, ...]` their values on the host. With one process `L = P`.
    """
    pieces: dict[int, np.ndarray] = {}
    for shard in array.addressable_shards:
        start = shard.index[0].start or 0
        data = np.asarray(shard.data)
        for offset in range(data.shape[0]):
            pieces.setdefault(start + offset, data[offset])
    index = np.array(sorted(pieces), dtype=np.int64)
    rows = np.stack([pieces[i] for i in index]) if len(index) else np.zeros((0,))
    return index, rows


@dataclasses.dataclass(frozen=True)
class DistributedArgs:
    """How to join a multi-process run; `None` fields are left to JAX to detect.

    Attributes:
      coordinator: `HOST:PORT` of process 0's coordinator service.
      num_processes: number of processes in the run.
      process_id: this process's rank in `[0, num_processes)`.
      auto: call `jax.distributed.initialize()` even when nothing is set, so
        JAX detects SLURM / Open MPI / TPU pod / Kubernetes settings itself.
    """

    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    auto: bool = False

    @classmethod
    def from_env(
        cls,
        coordinator: str | None = None,
        num_processes: int | None = None,
        process_id: int | None = None,
        auto: bool = False,
    ) -> DistributedArgs:
        """Explicit values first, then `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`,
        `JAX_PROCESS_ID` from the environment."""

        def env_int(name: str) -> int | None:
            text = os.environ.get(name)
            if text is None or text == "":
                return None
            try:
                return int(text)
            except ValueError:
                raise ValueError(f"{name}: expected an integer, got {text!r}") from None

        return cls(
            coordinator=coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS") or None,
            num_processes=num_processes
            if num_processes is not None
            else env_int("JAX_NUM_PROCESSES"),
            process_id=process_id if process_id is not None else env_int("JAX_PROCESS_ID"),
            auto=auto,
        )

    @property
    def requested(self) -> bool:
        """True when a multi-process run was asked for."""
        return self.auto or any(
            v is not None for v in (self.coordinator, self.num_processes, self.process_id)
        )

    def validate(self) -> DistributedArgs:
        """Check the values that are set; raise `ValueError` naming the flag."""
        if self.coordinator is not None:
            host, sep, port = self.coordinator.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"--coordinator: expected HOST:PORT, got {self.coordinator!r}")
        if self.num_processes is not None and self.num_processes < 1:
            raise ValueError(f"--num-processes: expected >= 1, got {self.num_processes}")
        if self.process_id is not None:
            if self.process_id < 0:
                raise ValueError(f"--process-id: expected >= 0, got {self.process_id}")
            if self.num_processes is not None and self.process_id >= self.num_processes:
                raise ValueError(
                    f"--process-id: expected < --num-processes ({self.num_processes}), "
                    f"got {self.process_id}"
                )
        return self


def initialize_distributed(args: DistributedArgs, timeout_s: int = 300) -> bool:
    """Join the multi-process run described by `args` (no-op when none was requested).

    Must run before anything touches a JAX device. On CPU the cross-process
    collectives are JAX's gloo implementation (its default). Returns True when
    `jax.distributed.initialize` was called.
    """
    args.validate()
    if not args.requested:
        return False
    jax.distributed.initialize(
        coordinator_address=args.coordinator,
        num_processes=args.num_processes,
        process_id=args.process_id,
        initialization_timeout=timeout_s,
    )
    return True


def barrier(name: str) -> None:
    """Wait until every process reaches the barrier `name` (no-op with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
