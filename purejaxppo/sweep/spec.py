"""The sweep file: `SweepSpec` (base config, search space, seeds), SWEEP.yaml parsing and checks.

A sweep is a base `RunConfig`, a search space and a number of seeds:

    spec = load_sweep("configs/sweeps/cartpole_lr.yaml")   # or SweepSpec(...) in code
    pop = spec.population()                                # sets x seeds, members in order

The search space is a grid (lists, crossed) and a random part (`count` draws
of `Distribution`s, crossed with the grid). Host side; no JAX.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from purejaxppo.config import HParams, PPOConfig
from purejaxppo.run.config import (
    MAX_SEED,
    SECTIONS,
    ConfigError,
    RunConfig,
    load_run_config,
    parse_yaml,
    run_config_from_dict,
    run_config_to_dict,
)
from purejaxppo.run.rundir import CHECKPOINT_DIR, CONFIG_FILE, SWEEP_MANIFEST
from purejaxppo.sweep.population import HParamSet, Population, format_value
from purejaxppo.sweep.strategy import parse_strategy
from purejaxppo.unused_settings import SWITCHED_FIELDS, check_hparams

PPO_FIELDS = tuple(f.name for f in dataclasses.fields(PPOConfig))
HPARAM_FIELDS = tuple(f.name for f in dataclasses.fields(HParams))
SWEEPABLE = (*(f"hparams.{n}" for n in HPARAM_FIELDS), *(f"ppo.{n}" for n in PPO_FIELDS))
DISTRIBUTIONS = ("uniform", "log_uniform", "choice")
SPEC_KEYS = (
    "base", "ppo", "hparams", "seed", "seeds", "grid", "random",
    "strategy", "pbt", "halving", "optuna",
)  # fmt: skip
SWEEP_KEYS = ("grid", "random", "seeds")  # a sweep file has at least one of these
OUTPUT_MANIFEST = SWEEP_MANIFEST  # the record of a sweep output folder (see `store`)


# =========================================================================== search space
@dataclasses.dataclass(frozen=True)
class Distribution:
    """A random axis of the search space.

    Attributes:
      kind: `uniform` (lo, hi), `log_uniform` (lo, hi; log-spaced, lo > 0) or
        `choice` (any number of options, equally likely).
      args: `(lo, hi)` or the options.
    """

    kind: str
    args: tuple[Any, ...]

    def sample(self, rng: np.random.Generator) -> Any:
        """One draw (a Python float, or one of the options)."""
        if self.kind == "uniform":
            return float(rng.uniform(self.args[0], self.args[1]))
        if self.kind == "log_uniform":
            return float(math.exp(rng.uniform(math.log(self.args[0]), math.log(self.args[1]))))
        return self.args[int(rng.integers(len(self.args)))]

    def to_dict(self) -> dict[str, list[Any]]:
        """`{kind: [args...]}` as written in SWEEP.yaml."""
        return {self.kind: [_plain(a) for a in self.args]}


def _plain(value: Any) -> Any:
    """Tuples to lists (for YAML/JSON); everything else as is."""
    return [_plain(v) for v in value] if isinstance(value, tuple | list) else value


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A parsed SWEEP.yaml (or one built in code).

    Attributes:
      base: the run config every set starts from (base file + the sweep's own
        `ppo:` / `hparams:` / `seed:` sections).
      grid: `(key, values)`: the cartesian product of these lists.
      random: `(key, Distribution)`: `count` random draws, crossed with the grid.
      count: number of random draws (0 when there is no random part).
      sampler_seed: seed of the numpy generator that draws them.
      num_seeds: seeds per set: `base.seed, base.seed + 1, ...`.
      source: where it was read from (for messages).
      strategy: the search strategy (`purejaxppo.sweep.strategy`): `grid` trains the
        population above to the end; `pbt`, `halving` and `optuna` adapt it.
      settings: the strategy's settings (None for `grid`).
    """

    base: RunConfig
    grid: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    random: tuple[tuple[str, Distribution], ...] = ()
    count: int = 0
    sampler_seed: int = 0
    num_seeds: int = 1
    source: str = "<sweep>"
    strategy: str = "grid"
    settings: Any = None

    @property
    def swept(self) -> tuple[str, ...]:
        """Keys varied by the grid and the random part, in order."""
        return (*(k for k, _ in self.grid), *(k for k, _ in self.random))

    def to_dict(self) -> dict[str, Any]:
        """Canonical plain form (used to detect a changed sweep on resume)."""
        random: dict[str, Any] = {}
        if self.random:
            random = {"count": self.count, "seed": self.sampler_seed}
            random.update({k: d.to_dict() for k, d in self.random})
        out: dict[str, Any] = {
            "base": run_config_to_dict(self.base),
            "seeds": self.num_seeds,
            "grid": {k: [_plain(v) for v in values] for k, values in self.grid},
            "random": random,
        }
        if self.strategy != "grid":  # a grid sweep's record stays as it was
            out["strategy"] = self.strategy
            out[self.strategy] = self.settings.to_dict()
        return out

    def population(self) -> Population:
        """Expand the search space: grid points x random draws, each with `num_seeds` seeds.

        Raises:
          ConfigError: a combination of values is invalid (named in the message).
        """
        rng = np.random.default_rng(self.sampler_seed)
        draws = [tuple((k, d.sample(rng)) for k, d in self.random) for _ in range(self.count)]
        grid_points = list(itertools.product(*(values for _, values in self.grid)))
        keys = [k for k, _ in self.grid]
        sets = []
        for point in grid_points:
            for draw in draws or [()]:
                values = (*zip(keys, point, strict=True), *draw)
                config, hparams = apply_values(self.base, values, self.source)
                sets.append(HParamSet(len(sets), values, config, hparams))
        seeds = tuple(self.base.seed + i for i in range(self.num_seeds))
        if seeds[-1] > MAX_SEED:
            raise ConfigError(f"{self.source}: seeds: the last seed {seeds[-1]} is > {MAX_SEED}")
        return Population(sets=tuple(sets), seeds=seeds, swept=self.swept)


def apply_values(
    base: RunConfig, values: Sequence[tuple[str, Any]], source: str = "<sweep>"
) -> tuple[PPOConfig, HParams]:
    """`base` with swept `(key, value)` pairs applied, validated.

    Raises:
      ConfigError: one line naming the source and the combination.
    """
    ppo = {k.split(".", 1)[1]: v for k, v in values if k.startswith("ppo.")}
    hps = {k.split(".", 1)[1]: float(v) for k, v in values if k.startswith("hparams.")}
    where = ", ".join(f"{k}={format_value(v)}" for k, v in values)
    try:
        config = dataclasses.replace(base.ppo, **ppo) if ppo else base.ppo
        hparams = check_hparams(config, base.hparams.replace(**hps).validate())
    except ValueError as err:
        raise ConfigError(f"{source}: the set {where}: {str(err).splitlines()[0]}") from None
    return config, hparams


# =========================================================================== SWEEP.yaml
def load_sweep(path: str | Path, overrides: Sequence[str] = ()) -> SweepSpec:
    """Read and validate a SWEEP.yaml, with `--set KEY=VALUE` `overrides` applied first:
    `seeds=N`, or a run-config key (`ppo.total_timesteps=...`, `hparams.gamma=...`, `seed`,
    `expected_return`) set in the sweep file's own sections (over its base config).

    Layout (every key optional, but at least one of `grid`, `random`, `seeds`):

        base: ../cartpole.yaml        # a `purejaxppo train` config, relative to this file
        ppo: {total_timesteps: 100000}   # overrides of the base, like a run config
        hparams: {gamma: 0.99}
        seed: 0                       # first seed (default: the base's)
        seeds: 4                      # seeds per set
        grid:                         # lists: their cartesian product
          hparams.learning_rate: [1.0e-4, 3.0e-4, 1.0e-3]
          ppo.num_envs: [4, 8]        # static: one compile per value
        random:                       # `count` draws, crossed with the grid
          count: 8
          seed: 0
          hparams.ent_coef: {log_uniform: [1.0e-4, 0.1]}
          hparams.clip_eps: {uniform: [0.1, 0.3]}
          hparams.gae_lambda: {choice: [0.9, 0.95]}

    Raises:
      ConfigError: one line, `FILE: KEY: what was expected, got X`; or what
        `path` is instead (a folder, a run config) and which command takes it.
    """
    source = str(path)
    if Path(path).is_dir():
        raise ConfigError(_what_folder(Path(path)))
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such sweep file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{source}: cannot read ({type(err).__name__})") from None
    data = parse_yaml(text, source)
    if overrides:
        data = _apply_sets(data, overrides, source)
    return sweep_from_dict(data, source, Path(path).parent)


def _apply_sets(data: Any, overrides: Sequence[str], source: str) -> Any:
    """The sweep document with `--set` overrides applied (see `load_sweep`)."""
    from purejaxppo.run.config import apply_overrides

    if not isinstance(data, Mapping):
        return data  # sweep_from_dict names what it is
    data = dict(data)
    rest = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if key.strip() == "seeds" and sep:
            data["seeds"] = parse_yaml(text, f"{source}: --set {item}")
        else:
            rest.append(item)
    return apply_overrides(data, rest, source)[0] if rest else data


def _what_folder(path: Path) -> str:
    """The message for a folder given as the sweep file: what it is, which command takes it."""
    if (path / OUTPUT_MANIFEST).is_file():
        return (
            f"{path} is a sweep output folder, not a sweep file; to rerun it: "
            f"purejaxppo sweep {path / 'SWEEP.yaml'} --out {path}"
        )
    if (path / CONFIG_FILE).is_file() and (path / CHECKPOINT_DIR).is_dir():
        return f"{path} is a run folder (for purejaxppo eval / train --resume), not a sweep file"
    return f"{path} is a folder, not a sweep file"


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _suggest(key: str, known: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if not close and "." not in key:
        close = [k for k in known if k.split(".", 1)[-1] == key]
    return f"; did you mean {close[0]}?" if close else ""


def sweep_from_dict(data: Any, source: str = "<sweep>", base_dir: Path | None = None) -> SweepSpec:
    """Build a `SweepSpec` from a parsed SWEEP.yaml document (see `load_sweep`)."""
    _check_spec_keys(data, source)
    base = _base_config(data, source, base_dir)
    num_seeds = _num_seeds(data, source)
    grid = _grid(data, source, base)
    random, count, sampler_seed = _random_part(data, source, base, grid)
    spec = SweepSpec(
        base=base,
        grid=grid,
        random=random,
        count=count,
        sampler_seed=sampler_seed,
        num_seeds=num_seeds,
        source=source,
    )
    strategy, settings = parse_strategy(data, source, spec)
    return dataclasses.replace(spec, strategy=strategy, settings=settings)


def _check_spec_keys(data: Any, source: str) -> None:
    """The document is a mapping of known top-level keys, with something to sweep."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping with keys {', '.join(SPEC_KEYS)}")
    if data and set(data) <= set(SECTIONS):  # ppo, hparams, seed, expected_return
        raise ConfigError(
            f"{source} is a run config (for purejaxppo train), not a sweep file "
            "(it has no grid, random or seeds section)"
        )
    for key in data:
        if key not in SPEC_KEYS:
            hint = _suggest(str(key), SPEC_KEYS)
            raise ConfigError(
                f"{source}: {key}: unknown key{hint or '; valid: ' + ', '.join(SPEC_KEYS)}"
            )
    if not any(key in data for key in SWEEP_KEYS):
        raise ConfigError(f"{source}: nothing to sweep; add a grid, random or seeds section")


def _base_config(data: Mapping[str, Any], source: str, base_dir: Path | None) -> RunConfig:
    """The base config: the `base:` file, then this sweep's own sections on top."""
    doc: dict[str, Any] = {"ppo": {}, "hparams": {}}
    base_path = data.get("base")
    if base_path is not None:
        if not isinstance(base_path, str):
            raise ConfigError(
                f"{source}: base: expected a path to a run config, got {_got(base_path)}"
            )
        path = Path(base_path)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        base = load_run_config(path)  # ConfigError names the base file
        if base.schedule:
            raise ConfigError(
                f"{source}: base: {path} has a schedule: (hyperparameters that change during "
                "the run); a sweep sets the hyperparameters itself: use a config without one"
            )
        doc = run_config_to_dict(base)
    for section in ("ppo", "hparams"):
        extra = data.get(section) or {}
        if not isinstance(extra, Mapping):
            raise ConfigError(f"{source}: {section}: expected a mapping, got {_got(extra)}")
        doc[section] = {**doc.get(section, {}), **extra}
    if "seed" in data:
        doc["seed"] = data["seed"]
    doc["expected_return"] = None
    return run_config_from_dict(doc, source)


def _num_seeds(data: Mapping[str, Any], source: str) -> int:
    """`seeds:`, a positive integer (default 1)."""
    num_seeds = data.get("seeds", 1)
    if isinstance(num_seeds, bool) or not isinstance(num_seeds, int) or num_seeds < 1:
        raise ConfigError(f"{source}: seeds: expected a positive integer, got {_got(num_seeds)}")
    return num_seeds


def _grid(
    data: Mapping[str, Any], source: str, base: RunConfig
) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """`grid:`: `(key, values)` pairs, each value checked and normalised."""
    grid_data = data.get("grid") or {}
    if not isinstance(grid_data, Mapping):
        raise ConfigError(
            f"{source}: grid: expected a mapping KEY: [values], got {_got(grid_data)}"
        )
    grid = []
    for key, values in grid_data.items():
        where = f"{source}: grid.{key}"
        _check_key(where, key)
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: expected a non-empty list of values, got {_got(values)}")
        checked = tuple(_check_value(where, base, key, v) for v in values)
        if len(set(map(repr, checked))) != len(checked):
            raise ConfigError(f"{where}: a value appears twice in {_got(values)}")
        grid.append((key, checked))
    return tuple(grid)


def _random_part(
    data: Mapping[str, Any],
    source: str,
    base: RunConfig,
    grid: Sequence[tuple[str, Any]],
) -> tuple[tuple[tuple[str, Distribution], ...], int, int]:
    """`random:`: `((key, Distribution), ...), count, sampler_seed` (`(), 0, 0` when absent)."""
    random_data = data.get("random") or {}
    if not isinstance(random_data, Mapping):
        raise ConfigError(f"{source}: random: expected a mapping, got {_got(random_data)}")
    count = random_data.get("count", 0 if not random_data else None)
    sampler_seed = random_data.get("seed", 0)
    random = []
    for key, spec in random_data.items():
        if key in ("count", "seed"):
            continue
        where = f"{source}: random.{key}"
        _check_key(where, key, also=("count", "seed"))
        if key in dict(grid):
            raise ConfigError(f"{where}: also in grid; sweep a key in one of the two")
        random.append((key, _check_distribution(where, base, key, spec)))
    if random_data:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError(
                f"{source}: random.count: expected a positive integer, got {_got(count)}"
            )
        if isinstance(sampler_seed, bool) or not isinstance(sampler_seed, int) or sampler_seed < 0:
            raise ConfigError(
                f"{source}: random.seed: expected a non-negative integer, got {_got(sampler_seed)}"
            )
        if not random:
            raise ConfigError(f"{source}: random: no key to sample (e.g. hparams.ent_coef: ...)")
    return tuple(random), count if random else 0, sampler_seed if random else 0


def _check_key(where: str, key: Any, also: Sequence[str] = ()) -> None:
    if key not in SWEEPABLE:
        hint = _suggest(str(key), (*SWEEPABLE, *also))
        raise ConfigError(f"{where}: unknown key{hint or '; keys are hparams.NAME or ppo.NAME'}")
    if key == "ppo.env_name":  # one ranking of returns needs one env
        raise ConfigError(
            f"{where}: cannot be swept (returns of different envs do not rank against "
            "each other); run one sweep per env"
        )


def _check_value(where: str, base: RunConfig, key: str, value: Any) -> Any:
    """Validate one value of `key` on its own (type and range); return it normalised."""
    section, name = key.split(".", 1)
    doc = run_config_to_dict(base)
    doc[section] = {**doc[section], name: value}
    if section == "ppo" and name in SWITCHED_FIELDS:
        # alone it may be unused under the base's settings; the whole set is checked later
        switch, users = SWITCHED_FIELDS[name]
        doc["ppo"] = {**doc["ppo"], switch: users[0]}
    try:
        rc = run_config_from_dict(doc, "<value>", check_unused=False)
    except ConfigError as err:
        text = str(err)
        text = text.split(": ", 2)[-1] if text.startswith(f"<value>: {key}: ") else text
        text = text.removeprefix("<value>: ")
        raise ConfigError(f"{where}: {text}") from None
    return getattr(rc.ppo if section == "ppo" else rc.hparams, name)


def _check_distribution(where: str, base: RunConfig, key: str, spec: Any) -> Distribution:
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ConfigError(
            f"{where}: expected one of {{uniform: [lo, hi]}}, {{log_uniform: [lo, hi]}}, "
            f"{{choice: [a, b, ...]}}, got {_got(spec)}"
        )
    ((kind, args),) = spec.items()
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"{where}: {kind}: unknown distribution; use {', '.join(DISTRIBUTIONS)}")
    if not isinstance(args, list) or not args:
        raise ConfigError(f"{where}.{kind}: expected a non-empty list, got {_got(args)}")
    if kind == "choice":
        return Distribution(
            kind, tuple(_check_value(f"{where}.choice", base, key, v) for v in args)
        )
    if key.startswith("ppo."):
        raise ConfigError(f"{where}: {kind}: static fields can only be sampled with choice")
    if len(args) != 2 or any(isinstance(a, bool) or not isinstance(a, int | float) for a in args):
        raise ConfigError(f"{where}.{kind}: expected [lo, hi] (two numbers), got {_got(args)}")
    lo, hi = (float(a) for a in args)
    if not lo < hi:
        raise ConfigError(f"{where}.{kind}: expected lo < hi, got {_got(args)}")
    if kind == "log_uniform" and lo <= 0:
        raise ConfigError(f"{where}.log_uniform: expected lo > 0, got {_got(args)}")
    for bound in (lo, hi):
        _check_value(f"{where}.{kind}", base, key, bound)
    return Distribution(kind, (lo, hi))
