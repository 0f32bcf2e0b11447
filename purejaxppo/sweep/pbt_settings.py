"""The `pbt:` section of a sweep file (`strategy: pbt`): parsing and checks (host side).

    strategy: pbt
    random:                      # the initial population; also PBT's default bounds
      count: 16
      hparams.learning_rate: {log_uniform: [1.0e-4, 3.0e-3]}
      hparams.ent_coef: {log_uniform: [1.0e-4, 0.05]}
    pbt:
      interval_updates: 10       # exploit/explore every 10 updates; must divide the run
      truncation: 0.25           # the bottom quarter copies the top quarter
      fitness: episode_return    # any per-update metric, averaged over the interval
      mode: max                  # or min
      explore: [hparams.learning_rate, hparams.ent_coef]   # default: the random: keys
      perturb_factors: [0.8, 1.2]
      resample_probability: 0.25
      seed: 0                    # of the exploit/explore draws

`explore` is a list of keys (bounds from their `random:` distributions) or a mapping
`hparams.NAME: {uniform|log_uniform: [lo, hi]}`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from purejaxppo.run.compiled import default_chunk
from purejaxppo.run.config import ConfigError
from purejaxppo.run.yamlcheck import closest, describe, unknown_key
from purejaxppo.state import METRIC_NAMES
from purejaxppo.sweep.pbt import Bounds, PBTConfig

if TYPE_CHECKING:
    from purejaxppo.sweep.spec import SweepSpec

KEYS = (
    "interval_updates",
    "truncation",
    "fitness",
    "mode",
    "explore",
    "perturb_factors",
    "resample_probability",
    "seed",
)
DEFAULT_INTERVALS = 10  # a run of U updates: about U / 10 updates per interval by default


@dataclasses.dataclass(frozen=True)
class PBTSettings:
    """A sweep's PBT settings (see the module docstring for each key).

    Attributes:
      interval_updates: updates between exploit/explore steps; divides every group's run.
      step: the exploit/explore step's static settings (explored bounds, truncation,
        perturbation).
      fitness: the metric members are ranked by (mean over the last interval).
      mode: `max` or `min`.
      seed: seed of the steps' PRNG keys (step j uses `fold_in(key(seed), j)`).
    """

    interval_updates: int
    step: PBTConfig
    fitness: str = "episode_return"
    mode: str = "max"
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Canonical plain form (recorded in the sweep folder's manifest)."""
        explore = {
            f"hparams.{b.name}": {("log_uniform" if b.log else "uniform"): [b.low, b.high]}
            for b in self.step.explore
        }
        return {
            "interval_updates": self.interval_updates,
            "truncation": self.step.truncation,
            "fitness": self.fitness,
            "mode": self.mode,
            "explore": explore,
            "perturb_factors": list(self.step.perturb_factors),
            "resample_probability": self.step.resample_probability,
            "seed": self.seed,
        }


def settings_from_dict(raw: dict[str, Any], source: str, spec: SweepSpec) -> PBTSettings:
    """Check the `pbt:` section against the sweep (`ConfigError`, one line, on bad input)."""
    for key in raw:
        if key not in KEYS:
            raise unknown_key(f"{source}: pbt.{key}", closest(str(key), KEYS), KEYS)
    groups = spec.population().groups()
    for g in groups:
        if len(g.members) < 2:
            where = f" (group {g.label()})" if len(groups) > 1 else ""
            raise ConfigError(
                f"{source}: strategy: pbt needs at least 2 members per static group{where}, "
                f"got {len(g.members)}; add random draws (random.count) or seeds"
            )
    interval = _interval(raw, source, sorted({g.config.num_updates for g in groups}))
    fitness = raw.get("fitness", "episode_return")
    if fitness not in METRIC_NAMES:
        hint = closest(str(fitness), METRIC_NAMES)
        raise ConfigError(
            f"{source}: pbt.fitness: expected a metric name"
            + (f"; did you mean {hint}?" if hint else f" ({', '.join(METRIC_NAMES)})")
            + f", got {describe(fitness)}"
        )
    mode = raw.get("mode", "max")
    if mode not in ("max", "min"):
        raise ConfigError(f"{source}: pbt.mode: expected max or min, got {describe(mode)}")
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
        raise ConfigError(f"{source}: pbt.seed: expected a non-negative integer, got {seed!r}")
    explore = _explore(raw.get("explore"), source, spec)
    factors = raw.get("perturb_factors", [0.8, 1.2])
    if not isinstance(factors, list):
        raise ConfigError(
            f"{source}: pbt.perturb_factors: expected a list of positive numbers, "
            f"got {describe(factors)}"
        )
    try:
        step = PBTConfig(
            explore=explore,
            truncation=_number(raw.get("truncation", 0.25), source, "truncation"),
            perturb_factors=tuple(factors),
            resample_probability=_number(
                raw.get("resample_probability", 0.25), source, "resample_probability"
            ),
        )
    except ValueError as err:
        raise ConfigError(f"{source}: pbt.{err}") from None
    return PBTSettings(interval, step, fitness, mode, seed)


def _number(value: Any, source: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{source}: pbt.{key}: expected a number, got {describe(value)}")
    return float(value)


def _interval(raw: Mapping[str, Any], source: str, runs: list[int]) -> int:
    """`interval_updates`, checked to divide every group's `num_updates` (`runs`)."""
    if "interval_updates" not in raw:
        interval = default_chunk(runs[0], DEFAULT_INTERVALS)
        if any(u % interval for u in runs) or interval == runs[0]:
            raise ConfigError(
                f"{source}: pbt.interval_updates: no default divides the run "
                f"({', '.join(map(str, runs))} updates) into intervals; set it"
            )
        return interval
    interval = raw["interval_updates"]
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise ConfigError(
            f"{source}: pbt.interval_updates: expected a positive integer, got {describe(interval)}"
        )
    for updates in runs:
        if updates % interval or interval == updates:
            raise ConfigError(
                f"{source}: pbt.interval_updates: {interval} does not divide the run's "
                f"{updates} updates into at least 2 intervals (ppo.total_timesteps / "
                f"(num_envs x num_steps) = {updates}); use a divisor smaller than {updates}"
            )
    return interval


def _explore(value: Any, source: str, spec: SweepSpec) -> tuple[Bounds, ...]:
    """The explored fields and bounds: from `random:` (a list of keys, or the default) or
    given (`{hparams.NAME: {uniform|log_uniform: [lo, hi]}}`)."""
    sampled = dict(spec.random)
    if value is None:
        keys = [k for k, d in sampled.items() if k.startswith("hparams.") and _numeric(d.args)]
        keys = [k for k in keys if k != "hparams.kl_coef"]
        return tuple(_from_random(k, sampled[k], source) for k in keys)
    if isinstance(value, list):
        out = []
        for key in value:
            _check_explored(key, source)
            if key not in sampled:
                raise ConfigError(
                    f"{source}: pbt.explore: {key}: no bounds; sample it in random: or give "
                    f"them: explore: {{{key}: {{log_uniform: [lo, hi]}}}}"
                )
            out.append(_from_random(key, sampled[key], source))
        return tuple(out)
    if isinstance(value, Mapping):
        out = []
        for key, spec_ in value.items():
            _check_explored(key, source)
            where = f"{source}: pbt.explore.{key}"
            if not isinstance(spec_, Mapping) or len(spec_) != 1:
                raise ConfigError(
                    f"{where}: expected {{uniform: [lo, hi]}} or {{log_uniform: [lo, hi]}}, "
                    f"got {describe(spec_)}"
                )
            ((kind, args),) = spec_.items()
            if kind not in ("uniform", "log_uniform") or not isinstance(args, list):
                raise ConfigError(
                    f"{where}: expected {{uniform: [lo, hi]}} or {{log_uniform: [lo, hi]}}, "
                    f"got {describe(spec_)}"
                )
            if len(args) != 2 or not _numeric(args):
                raise ConfigError(f"{where}.{kind}: expected [lo, hi] (two numbers), got {args!r}")
            out.append(_bounds(key, float(args[0]), float(args[1]), kind == "log_uniform", source))
        return tuple(out)
    raise ConfigError(
        f"{source}: pbt.explore: expected a list of keys or a mapping of bounds, "
        f"got {describe(value)}"
    )


def _numeric(args: Any) -> bool:
    return all(not isinstance(a, bool) and isinstance(a, int | float) for a in args)


def _check_explored(key: Any, source: str) -> None:
    where = f"{source}: pbt.explore: {key}"
    if isinstance(key, str) and key.startswith("ppo."):
        raise ConfigError(
            f"{where}: a static field (it changes a shape, a loop or control flow, so changing "
            "it recompiles) cannot be perturbed; explore hparams.* fields"
        )
    if key == "hparams.kl_coef":
        raise ConfigError(
            f"{where}: beta is adapted during training from its initial value, so perturbing "
            "it changes nothing after the start; explore hparams.kl_target instead"
        )
    if not isinstance(key, str) or not key.startswith("hparams."):
        raise ConfigError(f"{where}: expected a key hparams.NAME")


def _from_random(key: str, dist: Any, source: str) -> Bounds:
    """Bounds of a `random:` distribution: its range (a numeric choice: min to max)."""
    if dist.kind == "choice":
        if not _numeric(dist.args) or len(set(dist.args)) < 2:
            raise ConfigError(
                f"{source}: pbt.explore: {key}: its random: choice has no numeric range; "
                "give bounds in pbt.explore"
            )
        return _bounds(key, float(min(dist.args)), float(max(dist.args)), False, source)
    return _bounds(key, dist.args[0], dist.args[1], dist.kind == "log_uniform", source)


def _bounds(key: str, low: float, high: float, log: bool, source: str) -> Bounds:
    try:
        return Bounds(key.split(".", 1)[1], low, high, log)
    except ValueError as err:
        raise ConfigError(f"{source}: pbt.{err}") from None
