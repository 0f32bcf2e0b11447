"""Other PPO implementations timed on the reference recipe, when installed (host side).

Peers are optional (`pip install -e '.[peers]'` for Stable-Baselines3; rejax in
its own environment, given by `purejaxppo bench --rejax PYTHON`, since rejax 0.1.3
needs gymnax 0.0.x); one that is not importable is reported as skipped, in one
line, never as an error. Each is timed on PureJaxRL's CartPole
recipe: CartPole-v1, 4 envs x 128 steps, 4 epochs of minibatch 128 (4 per
epoch), separate 64x64 tanh actor and critic, lr 2.5e-4, the PPO-paper
coefficients. After one warm-up rollout+update, `steps` env steps are timed.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class PeerResult:
    """One peer's timing on the reference recipe.

    Attributes:
      name: the implementation (`stable-baselines3`).
      version: its installed version, or None.
      available: False when it is not installed (then nothing was measured).
      env_steps: env steps timed.
      wall_s: wall time of those steps.
      steps_per_s: `env_steps / wall_s` (NaN when not available).
      note: how it was run, or why it was skipped.
    """

    name: str
    version: str | None
    available: bool
    env_steps: int
    wall_s: float
    steps_per_s: float
    note: str


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def sb3_available() -> bool:
    """True when Stable-Baselines3 and torch can be imported."""
    return all(importlib.util.find_spec(m) is not None for m in ("stable_baselines3", "torch"))


def measure_sb3(steps: int) -> PeerResult:
    """Stable-Baselines3 PPO (torch, CPU) on the reference recipe for `steps` env steps."""
    name = "stable-baselines3"
    if not sb3_available():
        return PeerResult(
            name, None, False, 0, float("nan"), float("nan"), "not installed (extra `peers`)"
        )
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    n_envs, n_steps = 4, 128
    env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=0)
    model = PPO(
        "MlpPolicy",
        env,
        learning_rate=2.5e-4,
        n_steps=n_steps,
        batch_size=128,
        n_epochs=4,
        gamma=0.99,
        gae_lambda=0.95,
        clip_range=0.2,
        ent_coef=0.01,
        vf_coef=0.5,
        max_grad_norm=0.5,
        policy_kwargs={
            "net_arch": {"pi": [64, 64], "vf": [64, 64]},
            "activation_fn": torch.nn.Tanh,
        },
        device="cpu",
        seed=0,
        verbose=0,
    )
    batch = n_envs * n_steps
    steps = max(batch, (steps // batch) * batch)
    threads = torch.get_num_threads()
    # One thread: for 64-wide layers torch's intra-op threads only contend (on the
    # 2-core machine, 1 thread ran ~10x faster than 2); this is the peer's best case.
    torch.set_num_threads(1)
    try:
        model.learn(total_timesteps=batch)  # warm-up: one rollout and one update
        start = time.perf_counter()
        model.learn(total_timesteps=steps, reset_num_timesteps=False)
        wall = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
        env.close()
    note = (
        f"DummyVecEnv x{n_envs} (gymnasium CartPole-v1), torch {torch.__version__}, "
        "1 intra-op thread, device cpu"
    )
    return PeerResult(name, _version(name), True, steps, wall, steps / wall, note)


REJAX_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "time_rejax.py"
REJAX_BATCH = 4 * 128  # the recipe's env steps per update
_COMPILE = re.compile(r"compile ([0-9.]+) s")
_STEPS = re.compile(r"([0-9,]+) steps/s \(best")


def _rejax_skipped(note: str) -> PeerResult:
    return PeerResult("rejax", None, False, 0, float("nan"), float("nan"), note)


def rejax_problem(python: str | None, script: Path = REJAX_SCRIPT) -> str | None:
    """None when rejax can be timed with the interpreter `python`, else why not (one line)."""
    if not python:
        return "not given (--rejax PYTHON: the python of rejax's own venv)"
    if shutil.which(python) is None:
        return f"{python} not found"
    if not script.is_file():
        return f"{script.name} not found (it ships in the source checkout's scripts/)"
    probe = subprocess.run([python, "-c", "import rejax"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"{python} cannot import rejax (pip install rejax==0.1.3 gymnax==0.0.9)"
    return None


def measure_rejax(steps: int, python: str | None, script: Path = REJAX_SCRIPT) -> PeerResult:
    """rejax's PPO on the reference recipe for about `steps` env steps (whole updates, at
    least one), one seed on one XLA host device, run by `python` (rejax's own environment)
    as `scripts/time_rejax.py` in a fresh process; skipped when that cannot run."""
    problem = rejax_problem(python, script)
    if problem is not None:
        return _rejax_skipped(problem)
    assert python is not None
    updates = max(1, steps // REJAX_BATCH)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
    env["JAX_PLATFORMS"] = "cpu"
    cmd = [python, str(script), "--seeds", "1", "--repeats", "1", "--updates", str(updates)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    text = out.stdout + out.stderr
    compile_s, rate = _COMPILE.search(text), _STEPS.search(text)
    if out.returncode != 0 or compile_s is None or rate is None:
        last = (text.strip().splitlines() or ["no output"])[-1]
        return _rejax_skipped(f"failed: {last[:200]}")
    version = re.search(r"rejax ([0-9][^,\s]*)", text)
    steps_per_s = float(rate.group(1).replace(",", ""))
    env_steps = updates * REJAX_BATCH
    note = (
        f"rejax's own venv ({python}), jit(algo.train), 1 device, compile "
        f"{float(compile_s.group(1)):.1f} s; constant lr, per-network elementwise clip"
    )
    return PeerResult(
        "rejax",
        version.group(1) if version else None,
        True,
        env_steps,
        env_steps / steps_per_s,
        steps_per_s,
        note,
    )


def measure_peers(steps: int, log: Log, rejax_python: str | None = None) -> list[PeerResult]:
    """Every known peer: measured when installed, else listed as skipped (one line each).
    `rejax_python` is the interpreter of rejax's own environment, if any."""
    results = [measure_sb3(steps), measure_rejax(steps, rejax_python)]
    for r in results:
        if r.available:
            log(f"peer {r.name} {r.version}: {r.steps_per_s:,.0f} steps/s over {r.env_steps} steps")
        else:
            log(f"peer {r.name}: skipped, {r.note}")
    return results
