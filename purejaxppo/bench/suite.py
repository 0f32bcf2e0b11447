"""What `purejaxppo bench` measures: modes, env suite, reference recipe, figures (host side).

Nothing here touches a device, so bad input is reported before any work starts.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from pathlib import Path

from purejaxppo.config import HParams, PPOConfig

DEFAULT_SUITE = ("CartPole-v1", "fast/CartPole-v1", "Acrobot-v1", "Pendulum-v1", "Breakout-MinAtar")
REFERENCE_ENV = "CartPole-v1"

# Gym's registered `reward_threshold` ("solved") where it defines one.
GYM_THRESHOLDS: dict[str, float] = {
    "CartPole-v1": 475.0,
    "Acrobot-v1": -100.0,
    "MountainCar-v0": -110.0,
    "MountainCarContinuous-v0": 90.0,
}


class BenchInputError(ValueError):
    """Bad `bench` input; `str(err)` is one line naming the flag."""


@dataclasses.dataclass(frozen=True)
class ReferenceFigures:
    """Figures quoted in issue 5, measured by its author on the same 2-core CPU.

    Not measured by this benchmark (PureJaxRL's code cannot be fetched here);
    reports label them as such.
    """

    purejaxrl_steps_per_s: float = 130_000.0  # per seed, CartPole recipe
    purejaxrl_compile_s: float = 8.0
    purejaxrl_utilisation: float = 0.26  # of the matmul peak
    sb3_steps_per_s: float = 1_200.0
    matmul_gflops: float = 115.0  # 2048^3 float32
    target_speedup: float = 2.0  # x PureJaxRL, 2+ seeds, all cores
    target_utilisation: float = 0.50
    target_solve_s: float = 5.0  # CartPole, 8 seeds, mean >= 475, incl. compilation


REFERENCE = ReferenceFigures()


def reference_recipe() -> tuple[PPOConfig, HParams]:
    """PureJaxRL's CartPole: 4 envs x 128 steps, 4 x 4 minibatches, 64x64 tanh, 5e5 steps."""
    return PPOConfig(env_name=REFERENCE_ENV), HParams()


# The compute-bound point: the reference env with wide layers and a wide batch, so
# that the epochs' matmuls (minibatches of 2,048 x width x width) dominate the time.
COMPUTE_NUM_ENVS = 256
COMPUTE_NUM_STEPS = 32
COMPUTE_UPDATES = 64  # updates in the config (the learning-rate schedule's length)


def compute_recipe(width: int) -> tuple[PPOConfig, HParams]:
    """The reference recipe with `width x width` layers, 256 envs x 32 steps (a batch of
    8,192), 4 epochs x 4 minibatches of 2,048; one seed."""
    batch = COMPUTE_NUM_ENVS * COMPUTE_NUM_STEPS
    cfg = PPOConfig(
        env_name=REFERENCE_ENV,
        num_envs=COMPUTE_NUM_ENVS,
        num_steps=COMPUTE_NUM_STEPS,
        hidden_sizes=(width, width),
        update_epochs=4,
        num_minibatches=4,
        total_timesteps=batch * COMPUTE_UPDATES,
    )
    return cfg, HParams()


@dataclasses.dataclass(frozen=True)
class BenchPlan:
    """How much a mode measures.

    Attributes:
      mode: `quick`, `default` or `full`.
      envs: suite entries (env ids or config names), in order.
      seeds: seeds per env, and of the reference recipe's whole-machine / per-device
        figures; run as `purejaxppo train --seeds` runs them.
      env_budget_s: training wall time per env after compilation; `None` trains
        each config to its `total_timesteps` (runs cut by the budget are marked
        partial in the report).
      chunk_s: aimed wall time of one compiled chunk of updates (the resolution
        of the time-to-threshold measurement).
      num_envs_points: `num_envs` values of the scaling sweep (reference recipe, 1 seed).
      population_points: population sizes of the scaling sweep (reference recipe).
      compute_widths: hidden widths of the compute-bound points (`compute_recipe`).
      min_measure_s: least timed wall per scaling point (after one warm-up call).
      matmul_size: n of the `[n, n] @ [n, n]` peak measurement.
      matmul_s: least timed wall of the peak measurement.
      peer_steps: env steps each installed peer trains while timed.
    """

    mode: str
    envs: tuple[str, ...]
    seeds: int
    env_budget_s: float | None
    chunk_s: float
    num_envs_points: tuple[int, ...]
    population_points: tuple[int, ...]
    compute_widths: tuple[int, ...]
    min_measure_s: float
    matmul_size: int
    matmul_s: float
    peer_steps: int


PLANS: dict[str, BenchPlan] = {
    "quick": BenchPlan(
        mode="quick",
        envs=(REFERENCE_ENV,),
        seeds=2,
        env_budget_s=4.0,
        chunk_s=0.25,
        num_envs_points=(4, 64),
        population_points=(1, 2),
        compute_widths=(256,),
        min_measure_s=0.3,
        matmul_size=2048,
        matmul_s=0.5,
        peer_steps=1024,
    ),
    "default": BenchPlan(
        mode="default",
        envs=DEFAULT_SUITE,
        seeds=8,
        env_budget_s=15.0,
        chunk_s=0.25,
        num_envs_points=(4, 64, 512, 4096),
        population_points=(1, 8, 64, 256),
        compute_widths=(256, 512),
        min_measure_s=1.0,
        matmul_size=2048,
        matmul_s=1.0,
        peer_steps=6144,
    ),
    "full": BenchPlan(
        mode="full",
        envs=DEFAULT_SUITE,
        seeds=16,
        env_budget_s=None,
        chunk_s=1.0,
        num_envs_points=(4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
        population_points=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        compute_widths=(256, 512),
        min_measure_s=2.0,
        matmul_size=2048,
        matmul_s=3.0,
        peer_steps=32768,
    ),
}


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """One resolved suite entry.

    Attributes:
      name: the entry as given (`CartPole-v1`, a config name, or a YAML path).
      ppo: its static config.
      hparams: its hyperparameters.
      source: where the recipe comes from (`configs/X.yaml` or `built-in`).
      threshold: the return that counts as solved, or None.
      threshold_source: `gym reward_threshold`, `config expected_return` or `none`.
    """

    name: str
    ppo: PPOConfig
    hparams: HParams
    source: str
    threshold: float | None
    threshold_source: str


def config_dir() -> Path:
    """The shipped `configs/` folder (source checkout), else `./configs`."""
    here = Path(__file__).resolve().parent.parent / "configs"
    return here if here.is_dir() else Path.cwd() / "configs"


def _known_envs() -> list[str]:
    import gymnax

    from purejaxppo.probe_envs import PROBE_ENVS

    return [*gymnax.registered_envs, *PROBE_ENVS]


def _from_yaml(name: str, path: Path) -> EnvSpec:
    from purejaxppo.run.config import ConfigError, load_run_config

    try:
        rc = load_run_config(path)
    except ConfigError as err:
        raise BenchInputError(f"--envs {name}: {err}") from None
    env_name = rc.ppo.env_name or name
    threshold, threshold_source = _threshold(env_name, rc.expected_return)
    try:
        shown = str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        shown = str(path)
    return EnvSpec(name, rc.ppo, rc.hparams, shown, threshold, threshold_source)


def _threshold(env_name: str, expected: float | None) -> tuple[float | None, str]:
    if env_name in GYM_THRESHOLDS:
        return GYM_THRESHOLDS[env_name], "gym reward_threshold"
    if expected is not None:
        return float(expected), "config expected_return"
    return None, "none"


def resolve_env(name: str) -> EnvSpec:
    """A suite entry from a YAML path, `configs/<name>.yaml`, or an env id (built-in recipe)."""
    name = name.strip()
    if not name:
        raise BenchInputError("--envs: empty environment name")
    try:
        import purejaxppo.run.config  # noqa: F401  (issue-3 loader; optional)

        have_loader = True
    except ImportError:
        have_loader = False
    path = Path(name)
    if have_loader and path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise BenchInputError(f"--envs {name}: no such config file")
        return _from_yaml(name, path)
    shipped = config_dir() / f"{name}.yaml"
    if have_loader and shipped.is_file():
        return _from_yaml(name, shipped)
    known = _known_envs()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise BenchInputError(f"--envs: unknown environment {name!r}{hint}")
    threshold, threshold_source = _threshold(name, None)
    return EnvSpec(
        name, PPOConfig(env_name=name), HParams(), "built-in", threshold, threshold_source
    )


def parse_envs(text: str | None, default: Sequence[str]) -> tuple[str, ...]:
    """`--envs A,B` (or several `--envs`) to a tuple of names; `None` gives `default`."""
    if text is None:
        return tuple(default)
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise BenchInputError("--envs: expected a comma-separated list of environments")
    if len(set(names)) != len(names):
        raise BenchInputError(f"--envs: an environment is listed twice in {text!r}")
    return names
