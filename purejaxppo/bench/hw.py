"""The machine a benchmark ran on, and its measured matrix-multiply peak (host side)."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import platform
import statistics
import time

LIBRARIES = (
    "purejaxppo",
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "gymnax",
    "numpy",
    "torch",
    "stable-baselines3",
    "gymnasium",
)


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else `platform.processor()`."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def usable_cores() -> int:
    """Cores this process may run on (CPU affinity), else `os.cpu_count()`."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    """Where the benchmark ran.

    Attributes:
      platform: jax's default backend (`cpu`, `gpu`, `tpu`).
      device_kind: `jax.devices()[0].device_kind` (the GPU/TPU model on accelerators).
      device_count: devices of the default backend (host devices on a CPU).
      cpu_model: from /proc/cpuinfo.
      cpu_cores: `os.cpu_count()`.
      usable_cores: cores in this process's CPU affinity.
      python: the Python version.
      os: `platform.platform()`.
    """

    platform: str
    device_kind: str
    device_count: int
    cpu_model: str
    cpu_cores: int
    usable_cores: int
    python: str
    os: str

    def describe(self) -> str:
        """One line: `cpu (AMD EPYC), 2 devices, 2 cores` / `gpu NVIDIA H100 ..., 1 device`."""
        devices = f"{self.device_count} device{'s' if self.device_count != 1 else ''}"
        if self.platform == "cpu":
            return f"cpu ({self.cpu_model}), {devices}, {self.usable_cores} usable cores"
        return f"{self.platform} {self.device_kind}, {devices}; host {self.cpu_model}"


def device_info() -> DeviceInfo:
    """Read the default jax backend and the host CPU."""
    import jax

    devices = jax.devices()
    return DeviceInfo(
        platform=devices[0].platform,
        device_kind=str(devices[0].device_kind),
        device_count=len(devices),
        cpu_model=cpu_model(),
        cpu_cores=os.cpu_count() or 1,
        usable_cores=usable_cores(),
        python=platform.python_version(),
        os=platform.platform(),
    )


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that matter here (None: not installed)."""
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@dataclasses.dataclass(frozen=True)
class MatmulPeak:
    """A square float32 matrix multiply timed on the default device.

    Attributes:
      size: n of the `[n, n] @ [n, n]` product.
      flops: `2 n^3` per product.
      calls: timed products (after one warm-up).
      best_gflops: from the fastest call (the peak used for utilisation).
      median_gflops: from the median call.
    """

    size: int
    flops: int
    calls: int
    best_gflops: float
    median_gflops: float


def measure_matmul_peak(
    size: int = 2048, min_time_s: float = 1.0, min_calls: int = 3
) -> MatmulPeak:
    """Time `jnp.dot` of two `[size, size]` float32 matrices until `min_time_s` has passed."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(2), (size, size), jnp.float32)
    dot = jax.jit(jnp.dot)
    dot(a, b).block_until_ready()
    times: list[float] = []
    spent = 0.0
    while len(times) < min_calls or spent < min_time_s:
        start = time.perf_counter()
        dot(a, b).block_until_ready()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    flops = 2 * size**3
    return MatmulPeak(
        size=size,
        flops=flops,
        calls=len(times),
        best_gflops=flops / min(times) / 1e9,
        median_gflops=flops / statistics.median(times) / 1e9,
    )
