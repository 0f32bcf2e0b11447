"""Shared helpers of the sweep tests that run `purejaxppo sweep` in subprocesses.

Every run is a real subprocess (the host device count is fixed when jax
starts) bounded by a timeout, so a hang fails a test instead of blocking CI.
All runs share one JAX compilation cache folder, so a compiled shape that
another run already built loads from disk.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

# 8 members (2 learning rates x 2 entropy draws x 2 seeds) of a tiny CartPole
# trainer; 1000 updates make a 2-member chunk last most of a second on one core.
SPEC = """\
ppo:
  env_name: CartPole-v1
  num_envs: 4
  num_steps: 16
  total_timesteps: 64000
  num_minibatches: 1
  update_epochs: 1
  hidden_sizes: [16]
seeds: 2
grid:
  hparams.learning_rate: [1.0e-3, 3.0e-3]
random:
  count: 2
  seed: 1
  hparams.ent_coef: {log_uniform: [1.0e-4, 0.1]}
"""
# 10 updates of 4 envs x 16 steps: compiling dominates (a few seconds), training is instant.
TINY_PPO = """\
ppo:
  env_name: CartPole-v1
  num_envs: 4
  num_steps: 16
  total_timesteps: 640
  num_minibatches: 1
  update_epochs: 1
  hidden_sizes: [16]
"""
SEGMENT = ["--segment-updates", "100"]
TIMEOUT_S = 240


def cli_env(devices: int, cache: Path) -> dict[str, str]:
    """The environment of a CLI subprocess with `devices` CPU devices and a shared cache."""
    env = dict(os.environ)
    env.update(
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        PUREJAXPPO_CACHE_DIR=str(cache),
    )
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        env.pop(name, None)
    return env


def sweep_command(spec: Path, out: Path, *extra: str) -> list[str]:
    """`python -m purejaxppo.sweep.cli sweep SPEC --out OUT ...`."""
    return [sys.executable, "-m", "purejaxppo.sweep.cli", "sweep", str(spec), "--out", str(out),
            "--no-progress", *SEGMENT, *extra]  # fmt: skip


def run_command(command: list[str], devices: int, cache: Path) -> subprocess.CompletedProcess:
    """Run `command` to completion in a subprocess with `devices` host devices and the
    compilation cache `cache`; fail loudly on error or timeout."""
    proc = subprocess.run(
        command,
        env=cli_env(devices, cache),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def run_sweep(
    spec: Path, out: Path, devices: int, cache: Path, *extra: str
) -> subprocess.CompletedProcess:
    """Run a sweep to completion in a subprocess; fail loudly on error or timeout."""
    return run_command(sweep_command(spec, out, *extra), devices, cache)


def reference_sweep(base: Path) -> tuple[Path, Path, Path]:
    """The unsharded reference: one device, 2 members per chunk (4 chunks). Run once per session.

    Returns `(spec, out, cache)`.
    """
    spec, out, cache = base / "sweep.yaml", base / "reference", base / "jaxcache"
    if not (out / "results.csv").exists():
        base.mkdir(parents=True, exist_ok=True)
        spec.write_text(SPEC)
        run_sweep(spec, out, 1, cache, "--max-batch", "2")
    return spec, out, cache


def member_rows(out: Path) -> dict[tuple[int, int], dict[str, np.ndarray]]:
    """(set, seed) -> metric name -> `[U]` curve, from every chunk file of a sweep folder."""
    from purejaxppo.sweep.store import chunk_files, read_chunk

    rows: dict[tuple[int, int], dict[str, np.ndarray]] = {}
    for _, _, path in chunk_files(out):
        ids, metrics, _ = read_chunk(path)
        for i, (set_index, seed) in enumerate(ids):
            key = (int(set_index), int(seed))
            assert key not in rows, f"member {key} appears twice"
            rows[key] = {k: v[i] for k, v in metrics.items()}
    return rows


def assert_same_bits(a: Path, b: Path) -> None:
    """Every member's every metric curve is bit-identical in the two sweep folders."""
    rows_a, rows_b = member_rows(a), member_rows(b)
    assert sorted(rows_a) == sorted(rows_b) == [(s, k) for s in range(4) for k in range(2)]
    for m in rows_a:
        for name, curve in rows_a[m].items():
            assert curve.shape == (1000,), name
            np.testing.assert_array_equal(curve, rows_b[m][name], err_msg=f"member {m} {name}")


def results_without(out: Path, *columns: str) -> list[list[str]]:
    """results.csv cells without the named columns (wall time, chunk: they depend on the layout)."""
    lines = [line.split(",") for line in (out / "results.csv").read_text().splitlines()]
    drop = {lines[0].index(c) for c in columns}
    return [[cell for i, cell in enumerate(row) if i not in drop] for row in lines]
