"""Helpers for the CLI, config and checkpoint tests: run the real `purejaxppo` command."""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent

# One compilation cache for all CLI subprocesses of a test session: a program compiled by
# one test (same config shapes) is loaded from disk by the next.
SESSION_CACHE = Path(tempfile.mkdtemp(prefix="purejaxppo-test-cache-"))
atexit.register(shutil.rmtree, SESSION_CACHE, ignore_errors=True)

# A run small enough to compile and train in seconds: 12 updates of 2 envs x 16 steps.
TINY: dict[str, Any] = {
    "ppo": {
        "env_name": "CartPole-v1",
        "num_envs": 2,
        "num_steps": 16,
        "total_timesteps": 384,
        "update_epochs": 1,
        "num_minibatches": 2,
    },
    "hparams": {"learning_rate": 2.5e-4},
    "seed": 0,
    "expected_return": 20.0,
}


def write_config(path: Path, data: dict[str, Any] | None = None, **ppo: Any) -> Path:
    """Write a YAML config (TINY by default, `ppo` fields overridden) and return its path."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in (data or TINY).items()}
    data["ppo"] = {**data.get("ppo", {}), **ppo}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def cli_env(cache_dir: Path | None) -> dict[str, str]:
    """Environment for a CLI subprocess: CPU, the given compilation cache (None: off)
    and two host devices, as on a 2-core machine, whatever this machine has (so a
    multi-seed run takes the same, sharded, path everywhere)."""
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    env["PUREJAXPPO_CACHE_DIR"] = str(cache_dir) if cache_dir is not None else "off"
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    return env


def run_cli(
    *args: str | Path, cwd: Path, cache_dir: Path | None = SESSION_CACHE, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `python -m purejaxppo ARGS` to completion and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "purejaxppo", *map(str, args)],
        cwd=cwd,
        env=cli_env(cache_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_cli(
    *args: str | Path, cwd: Path, cache_dir: Path | None = SESSION_CACHE
) -> subprocess.Popen:
    """Start `python -m purejaxppo ARGS` with piped, line-buffered stdout/stderr."""
    return subprocess.Popen(
        [sys.executable, "-u", "-m", "purejaxppo", *map(str, args)],
        cwd=cwd,
        env=cli_env(cache_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def assert_bad_input(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit status 2, exactly one line on stderr containing `fragments`, no traceback."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def tree_digest(root: Path) -> dict[str, str]:
    """`{relative path: sha256}` of every file under `root` (to prove nothing changed)."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@contextlib.contextmanager
def script_module(name: str) -> Iterator[ModuleType]:
    """`scripts/<name>.py` imported as module `name`, registered in `sys.modules` while in
    use (its dataclasses look their module up while defined), removed afterwards."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)
