"""Use every CPU core: one XLA host device per core (call before importing jax).

XLA:CPU runs one program on one device with a thread pool that, for the small
matrices of PPO, keeps about one core busy. Giving XLA one *host device* per
core and sharding the population over them (`purejaxppo.sharding`) runs a
slice of the population on each core. The count must be fixed before jax
initialises its backends, hence this module imports nothing from jax.

    from purejaxppo.run.devices import ensure_host_devices
    ensure_host_devices()          # before `import jax`
    import jax                     # jax.devices() now lists one CPU device per core

On a GPU/TPU machine the extra CPU devices are created but unused: jax's
default backend is the accelerator.
"""

from __future__ import annotations

import os
import re
import sys

FLAG = "--xla_force_host_platform_device_count"
_FLAG_RE = re.compile(r"--xla_force_host_platform_device_count(=|\s|$)")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), else `os.cpu_count()`."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def ensure_host_devices(count: int | None = None, environ: dict[str, str] | None = None) -> int:
    """Add `--xla_force_host_platform_device_count=<count>` to `XLA_FLAGS` unless already set.

    Args:
      count: devices to ask for; default `available_cores()`.
      environ: the environment to edit (default `os.environ`).

    Returns:
      The host device count in force: the user's own value when `XLA_FLAGS`
      already sets one (it is never overridden), else `count`.

    Has no effect on a jax that is already initialised; a warning says so.
    """
    env = os.environ if environ is None else environ
    flags = env.get("XLA_FLAGS", "")
    match = re.search(rf"{FLAG}=(\d+)", flags)
    if match:
        return int(match.group(1))
    if _FLAG_RE.search(flags):  # set without a readable value: leave it to XLA
        return 1
    count = available_cores() if count is None else count
    if count < 1:
        raise ValueError(f"count: expected a positive integer, got {count}")
    if environ is None and _jax_backends_ready():
        print(
            "purejaxppo: warning: jax is already initialised; "
            f"{FLAG}={count} takes effect only in a new process",
            file=sys.stderr,
        )
    env["XLA_FLAGS"] = f"{flags} {FLAG}={count}".strip()
    return count


def _jax_backends_ready() -> bool:
    """True if jax is imported and has already created its backends."""
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return bool(getattr(xla_bridge, "_backends", {}))
    except ImportError:  # private layout changed: assume the worst, only a warning follows
        return True


def use_all_cores() -> int | None:
    """`ensure_host_devices()` for a command that starts a fresh process.

    Silently does nothing when jax is already initialised (the command was
    called in-process, e.g. from a test or a notebook, whose devices stay as
    they are); returns the host device count set, else None.
    """
    if _jax_backends_ready():
        return None
    return ensure_host_devices()
