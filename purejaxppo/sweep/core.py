"""Hyperparameter sweeps: a population of (hyperparameter set x seed) members (host side).

A sweep is a base `RunConfig`, a search space and a number of seeds:

    spec = load_sweep("configs/sweeps/cartpole_lr.yaml")   # or SweepSpec(...) in code
    pop = spec.population()                                # sets x seeds, members in order
    out = train_population(pop.groups()[0].config, ...)    # one compiled program, sharded

Members that share a `PPOConfig` (a *static group*) run together in ONE
compiled, vmapped program: `jit(shard_map(vmap(...)))` over every device
(`purejaxppo.sharding`), in chunks of at most `max_batch` members, the last
chunk padded to the same compiled shape. A sweep that varies a static field
(e.g. `ppo.num_envs`) has one group per value; each group compiles once.

Training is run as `init` then repeated `segment_updates`-long scans of PPO
updates, fetching metrics after each segment, so device memory does not depend
on `total_timesteps` (see docs/sweeps.md).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.config import HParams, PPOConfig
from purejaxppo.run.config import (
    MAX_SEED,
    ConfigError,
    RunConfig,
    load_run_config,
    parse_yaml,
    run_config_from_dict,
    run_config_to_dict,
)
from purejaxppo.run.rundir import final_return
from purejaxppo.sharding import local_rows, padded_size, population_map, population_mesh
from purejaxppo.sharding import shard_rows as _shard_rows
from purejaxppo.train import METRIC_NAMES, Trainer, TrainOutput, TrainState, make_trainer

PPO_FIELDS = tuple(f.name for f in dataclasses.fields(PPOConfig))
HPARAM_FIELDS = tuple(f.name for f in dataclasses.fields(HParams))
SWEEPABLE = (*(f"hparams.{n}" for n in HPARAM_FIELDS), *(f"ppo.{n}" for n in PPO_FIELDS))
DISTRIBUTIONS = ("uniform", "log_uniform", "choice")
SPEC_KEYS = ("base", "ppo", "hparams", "seed", "seeds", "grid", "random")
DEFAULT_SEGMENT_UPDATES = 32


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
class HParamSet:
    """One point of the search space.

    Attributes:
      index: position in the population's list of sets.
      values: `(key, value)` for every swept key (`hparams.learning_rate`, `ppo.num_envs`).
      config: the static config of this set.
      hparams: its hyperparameters (Python floats).
    """

    index: int
    values: tuple[tuple[str, Any], ...]
    config: PPOConfig
    hparams: HParams

    def label(self) -> str:
        """`learning_rate=0.001 num_envs=8` (short keys, compact numbers)."""
        return " ".join(f"{k.split('.', 1)[1]}={_fmt(v)}" for k, v in self.values) or "base"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, tuple | list):
        return "x".join(str(v) for v in value)
    return str(value)


class Member(NamedTuple):
    """One training run of the population: a set and a seed."""

    index: int
    set_index: int
    seed: int


@dataclasses.dataclass(frozen=True)
class StaticGroup:
    """Members sharing one `PPOConfig`: they compile once and run together.

    Attributes:
      index: position among the population's groups (order of first appearance).
      config: the shared static config.
      members: member indices, increasing.
      values: the swept static `(key, value)` pairs that single out this group.
    """

    index: int
    config: PPOConfig
    members: tuple[int, ...]
    values: tuple[tuple[str, Any], ...]

    def label(self) -> str:
        """`num_envs=8` or `all members` when no static field is swept."""
        return " ".join(f"{k.split('.', 1)[1]}={_fmt(v)}" for k, v in self.values) or "all"


@dataclasses.dataclass(frozen=True)
class Population:
    """Hyperparameter sets x seeds. Member `m` is set `m // num_seeds`, seed `seeds[m % num_seeds]`.

    Attributes:
      sets: the hyperparameter sets.
      seeds: integer seeds; member key is `jax.random.key(seed)`, as `purejaxppo train` uses.
      swept: the keys that the search space varies, in file order.
    """

    sets: tuple[HParamSet, ...]
    seeds: tuple[int, ...]
    swept: tuple[str, ...]

    @property
    def size(self) -> int:
        """Number of members P."""
        return len(self.sets) * len(self.seeds)

    def member(self, index: int) -> Member:
        """Member `index` (set-major order)."""
        if not 0 <= index < self.size:
            raise ValueError(f"member: expected an index in [0, {self.size}), got {index}")
        n = len(self.seeds)
        return Member(index=index, set_index=index // n, seed=self.seeds[index % n])

    @property
    def members(self) -> tuple[Member, ...]:
        """All members, in order."""
        return tuple(self.member(i) for i in range(self.size))

    def groups(self) -> tuple[StaticGroup, ...]:
        """Members split by static config, groups in order of first appearance."""
        order: dict[PPOConfig, list[int]] = {}
        for m in self.members:
            order.setdefault(self.sets[m.set_index].config, []).append(m.index)
        static = [k for k in self.swept if k.startswith("ppo.")]
        groups = []
        for g, (config, members) in enumerate(order.items()):
            first = self.sets[self.member(members[0]).set_index]
            values = tuple((k, v) for k, v in first.values if k in static)
            groups.append(StaticGroup(g, config, tuple(members), values))
        return tuple(groups)

    def hparams_of(self, members: Sequence[int]) -> list[HParams]:
        """The `HParams` of each listed member."""
        return [self.sets[self.member(i).set_index].hparams for i in members]

    def seeds_of(self, members: Sequence[int]) -> list[int]:
        """The seed of each listed member."""
        return [self.member(i).seed for i in members]


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
    """

    base: RunConfig
    grid: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    random: tuple[tuple[str, Distribution], ...] = ()
    count: int = 0
    sampler_seed: int = 0
    num_seeds: int = 1
    source: str = "<sweep>"

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
        return {
            "base": run_config_to_dict(self.base),
            "seeds": self.num_seeds,
            "grid": {k: [_plain(v) for v in values] for k, values in self.grid},
            "random": random,
        }

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
    where = ", ".join(f"{k}={_fmt(v)}" for k, v in values)
    try:
        config = dataclasses.replace(base.ppo, **ppo) if ppo else base.ppo
        hparams = base.hparams.replace(**hps).validate()
    except ValueError as err:
        raise ConfigError(f"{source}: the set {where}: {str(err).splitlines()[0]}") from None
    return config, hparams


# =========================================================================== SWEEP.yaml
def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a SWEEP.yaml.

    Layout (every key optional except a non-empty search space or `seeds`):

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
      ConfigError: one line, `FILE: KEY: what was expected, got X`.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such sweep file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{source}: cannot read ({type(err).__name__})") from None
    return sweep_from_dict(parse_yaml(text, source), source, Path(path).parent)


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
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping with keys {', '.join(SPEC_KEYS)}")
    for key in data:
        if key not in SPEC_KEYS:
            hint = _suggest(str(key), SPEC_KEYS)
            raise ConfigError(
                f"{source}: {key}: unknown key{hint or '; valid: ' + ', '.join(SPEC_KEYS)}"
            )

    # ---- base config: the file, then this sweep's own sections on top
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
        doc = run_config_to_dict(base)
    for section in ("ppo", "hparams"):
        extra = data.get(section) or {}
        if not isinstance(extra, Mapping):
            raise ConfigError(f"{source}: {section}: expected a mapping, got {_got(extra)}")
        doc[section] = {**doc.get(section, {}), **extra}
    if "seed" in data:
        doc["seed"] = data["seed"]
    doc["expected_return"] = None
    base = run_config_from_dict(doc, source)

    # ---- seeds
    num_seeds = data.get("seeds", 1)
    if isinstance(num_seeds, bool) or not isinstance(num_seeds, int) or num_seeds < 1:
        raise ConfigError(f"{source}: seeds: expected a positive integer, got {_got(num_seeds)}")

    # ---- grid
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

    # ---- random
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
    return SweepSpec(
        base=base,
        grid=tuple(grid),
        random=tuple(random),
        count=count if random else 0,
        sampler_seed=sampler_seed if random else 0,
        num_seeds=num_seeds,
        source=source,
    )


def _check_key(where: str, key: Any, also: Sequence[str] = ()) -> None:
    if key not in SWEEPABLE:
        hint = _suggest(str(key), (*SWEEPABLE, *also))
        raise ConfigError(f"{where}: unknown key{hint or '; keys are hparams.NAME or ppo.NAME'}")


def _check_value(where: str, base: RunConfig, key: str, value: Any) -> Any:
    """Validate one value of `key` on its own (type and range); return it normalised."""
    section, name = key.split(".", 1)
    doc = run_config_to_dict(base)
    doc[section] = {**doc[section], name: value}
    try:
        rc = run_config_from_dict(doc, "<value>")
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


# =========================================================================== running
_NAN_METRICS = {name: float("nan") for name in METRIC_NAMES}


def _init_member(trainer: Trainer, key_data: jax.Array, hparams: HParams) -> TrainState:
    """One member's initial state from raw key data `[2]` (uint32)."""
    return trainer.init(jax.random.wrap_key_data(key_data), hparams)


def _advance_member(
    trainer: Trainer, length: int, state: TrainState, hparams: HParams, n_valid: jax.Array
) -> tuple[TrainState, dict[str, jax.Array]]:
    """Up to `length` PPO updates of one member: the first `n_valid` run, the rest are skipped.

    Skipping (`lax.cond` on an unbatched predicate, so it stays a branch under
    vmap) lets one compiled program run the last, shorter segment of a run.
    Returns the state and metrics `[length]` (NaN rows for skipped updates).
    """

    def body(state: TrainState, i: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
        def skip(s: TrainState) -> tuple[TrainState, dict[str, jax.Array]]:
            return s, {k: jnp.float32(v) for k, v in _NAN_METRICS.items()}

        return jax.lax.cond(i < n_valid, lambda s: trainer.update(s, hparams), skip, state)

    return jax.lax.scan(body, state, jnp.arange(length))


def seed_key_data(seeds: Sequence[int]) -> np.ndarray:
    """Raw key data `[n, 2]` uint32 of `jax.random.key(seed)` for each seed."""
    seeds = np.asarray(list(seeds), dtype=np.uint32)
    return np.asarray(jax.vmap(lambda s: jax.random.key_data(jax.random.key(s)))(seeds))


def _stack_host(hparams: Sequence[HParams]) -> HParams:
    """Stack `HParams` into float32 numpy leaves `[n]` (host side, validated)."""
    for hp in hparams:
        hp.validate()
    return jax.tree.map(lambda *xs: np.asarray(xs, np.float32), *hparams)


class ChunkResult(NamedTuple):
    """One chunk's outcome.

    Attributes:
      rows: positions within the chunk `[L]` held by this process (all `n` in
        a single-process run), padding rows excluded.
      metrics: name -> `[L, U]` float32 per-update metrics of those rows.
      state: final `TrainState`, global arrays `[C_pad, ...]` sharded over the mesh.
      run_s: wall time of the chunk (compilation excluded).
    """

    rows: np.ndarray
    metrics: dict[str, np.ndarray]
    state: TrainState
    run_s: float


class GroupRunner:
    """Runs chunks of one static group: compiled once, sharded over a mesh.

    A chunk of `n <= chunk_size` members is padded (with copies of its last
    member) to `padded = padded_size(chunk_size, D)` rows, `D` = devices in the
    mesh, so every chunk has the same compiled shape; each device runs
    `padded / D` members.
    """

    def __init__(
        self,
        config: PPOConfig,
        chunk_size: int,
        mesh: jax.sharding.Mesh | None = None,
        segment_updates: int = DEFAULT_SEGMENT_UPDATES,
        env: Any = None,
        env_params: Any = None,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"max_batch: expected a positive integer, got {chunk_size}")
        if segment_updates < 1:
            raise ValueError(f"segment_updates: expected a positive integer, got {segment_updates}")
        self.config = config
        self.trainer = make_trainer(config, env, env_params)
        self.mesh = mesh if mesh is not None else population_mesh()
        self.chunk_size = chunk_size
        self.padded = padded_size(chunk_size, self.mesh.devices.size)
        self.segment = min(segment_updates, config.num_updates)
        self._init_fn = population_map(
            functools.partial(_init_member, self.trainer), self.mesh, (True, True)
        )
        self._advance_fn = population_map(
            functools.partial(_advance_member, self.trainer, self.segment),
            self.mesh,
            (True, True, False),
            donate_argnums=(0,),
        )
        self._init: Any = None
        self._advance: Any = None
        self.compile_s = 0.0

    def _inputs(self, seeds: Sequence[int], hparams: Sequence[HParams]) -> tuple[Any, Any]:
        n = len(seeds)
        if not 1 <= n <= self.chunk_size or len(hparams) != n:
            raise ValueError(
                f"chunk: expected 1..{self.chunk_size} members with one HParams each, "
                f"got {n} seeds and {len(hparams)} HParams"
            )
        pad = [n - 1] * (self.padded - n)
        rows = [*range(n), *pad]
        keys = seed_key_data([seeds[i] for i in rows])
        hps = _stack_host([hparams[i] for i in rows])
        return _shard_rows(self.mesh, keys), jax.tree.map(lambda x: _shard_rows(self.mesh, x), hps)

    def compile(self) -> float:
        """Compile the init and update programs for this chunk shape; returns seconds."""
        if self._init is not None:
            return self.compile_s
        start = time.perf_counter()
        keys, hps = self._inputs([0], [HParams()])
        self._init = self._init_fn.lower(keys, hps).compile()
        state = self._init(keys, hps)  # cheap (env resets); gives the state's shardings
        self._advance = self._advance_fn.lower(state, hps, np.int32(0)).compile()
        self.compile_s = time.perf_counter() - start
        return self.compile_s

    def programs(self) -> tuple[Any, Any]:
        """The compiled `(init, update-segment)` executables (compiling them if needed)."""
        self.compile()
        return self._init, self._advance

    def memory_bytes(self) -> int:
        """Device memory one device needs for a chunk (largest of the two programs)."""
        sizes = []
        for compiled in self.programs():
            m = compiled.memory_analysis()
            if m is None:
                return 0
            sizes.append(
                m.argument_size_in_bytes
                + m.output_size_in_bytes
                + m.temp_size_in_bytes
                - m.alias_size_in_bytes
            )
        return max(sizes)

    def run_chunk(
        self,
        seeds: Sequence[int],
        hparams: Sequence[HParams],
        on_updates: Callable[[int], None] | None = None,
    ) -> ChunkResult:
        """Train `n <= chunk_size` members (seed i with hparams i) for `num_updates`.

        `on_updates(k)` is called after each segment with the updates done so far.
        """
        self.compile()
        start = time.perf_counter()
        n = len(seeds)
        keys, hps = self._inputs(seeds, hparams)
        state = self._init(keys, hps)
        total = self.config.num_updates
        done = 0
        pieces: dict[str, list[np.ndarray]] = {name: [] for name in METRIC_NAMES}
        rows = np.zeros((0,), np.int64)
        while done < total:
            valid = min(self.segment, total - done)
            state, metrics = self._advance(state, hps, np.int32(valid))
            for name in METRIC_NAMES:
                rows, values = local_rows(metrics[name])
                pieces[name].append(values[:, :valid])
            done += valid
            if on_updates is not None:
                on_updates(done)
        jax.block_until_ready(state)
        keep = rows < n
        out = {name: np.concatenate(pieces[name], axis=1)[keep] for name in METRIC_NAMES}
        return ChunkResult(rows[keep], out, state, time.perf_counter() - start)


def chunk_bounds(n: int, chunk_size: int) -> list[tuple[int, int]]:
    """`[(start, stop), ...]` splitting `n` members into chunks of at most `chunk_size`."""
    return [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]


def train_population(
    config: PPOConfig,
    hparams: Sequence[HParams],
    seeds: Sequence[int],
    *,
    max_batch: int | None = None,
    mesh: jax.sharding.Mesh | None = None,
    segment_updates: int = DEFAULT_SEGMENT_UPDATES,
    env: Any = None,
    env_params: Any = None,
    on_updates: Callable[[int, int], None] | None = None,
) -> TrainOutput:
    """Train P members of one static config: member i is `(seeds[i], hparams[i])`.

    One compiled program runs all chunks of at most `max_batch` members
    (default: all P at once), sharded over every local device. Member i equals
    `jax.jit(make_train(config))(jax.random.key(seeds[i]), hparams[i])` up to
    float rounding (XLA compiles the batched program differently).

    Returns:
      A batched `TrainOutput`: params and state leaves `[P, ...]`, metrics
      `[P, num_updates]`, on one device. `select(out, i)` takes member i out.
      `on_updates(chunk, updates_done)` reports progress.
    """
    if jax.process_count() > 1:
        raise ValueError(
            "train_population: runs in one process; for several processes use "
            "`purejaxppo sweep` (each process writes its own rows)"
        )
    hparams, seeds = list(hparams), list(seeds)
    if len(hparams) != len(seeds) or not seeds:
        raise ValueError(f"seeds: expected one per HParams, got {len(seeds)} and {len(hparams)}")
    chunk = len(seeds) if max_batch is None else min(max_batch, len(seeds))
    runner = GroupRunner(config, chunk, mesh, segment_updates, env, env_params)
    device = jax.local_devices()[0]
    states, metrics = [], []
    for c, (lo, hi) in enumerate(chunk_bounds(len(seeds), chunk)):
        report = None if on_updates is None else functools.partial(on_updates, c)
        res = runner.run_chunk(seeds[lo:hi], hparams[lo:hi], report)
        states.append(jax.tree.map(lambda x, k=hi - lo: jax.device_put(x, device)[:k], res.state))
        metrics.append(res.metrics)
    state = jax.tree.map(lambda *xs: jnp.concatenate(xs), *states)
    joined = {
        name: jnp.asarray(np.concatenate([m[name] for m in metrics])) for name in METRIC_NAMES
    }
    return TrainOutput(params=state.params, metrics=joined, state=state)


def select(output: TrainOutput, i: int) -> TrainOutput:
    """Member `i` of a batched `TrainOutput` (leaves `[P, ...]` -> `[...]`).

    The result is a single run's output: evaluate `output.params`, checkpoint it,
    or continue with `trainer.run(output.state, hparams, k)`.
    """
    size = output.metrics[METRIC_NAMES[0]].shape[0] if output.metrics else None
    if size is None or output.metrics[METRIC_NAMES[0]].ndim < 2:
        raise ValueError("output: expected a batched TrainOutput (metrics [P, num_updates])")
    if isinstance(i, bool) or not isinstance(i, int | np.integer) or not 0 <= i < size:
        raise ValueError(f"i: expected a member index in [0, {size}), got {i!r}")
    return jax.tree.map(lambda x: x[int(i)], output)


# =========================================================================== results
def area_under_curve(returns: np.ndarray) -> float:
    """Mean episode return over all updates: the area under the learning curve / its length."""
    r = np.asarray(returns, np.float64)
    return float(np.nanmean(r)) if np.isfinite(r).any() else float("nan")


@dataclasses.dataclass(frozen=True)
class MemberResult:
    """One row of `results.csv`.

    Attributes:
      member, set_index, seed: which run.
      group, chunk: its static group and chunk (members of a chunk ran together).
      values: the swept `(key, value)` pairs of its set.
      hparams: all its hyperparameters.
      env_steps: environment steps it took (`num_updates * batch_size`).
      final_return: `final_return` of its curve.
      auc: `area_under_curve` of its curve.
      wall_time_s: wall time of its chunk (shared by the chunk's members).
    """

    member: int
    set_index: int
    seed: int
    group: int
    chunk: int
    values: tuple[tuple[str, Any], ...]
    hparams: HParams
    env_steps: int
    final_return: float
    auc: float
    wall_time_s: float


def member_result(
    population: Population,
    member: int,
    returns: np.ndarray,
    group: int,
    chunk: int,
    wall_time_s: float,
) -> MemberResult:
    """The results row of `member` from its episode-return curve `[U]`."""
    m = population.member(member)
    s = population.sets[m.set_index]
    return MemberResult(
        member=member,
        set_index=m.set_index,
        seed=m.seed,
        group=group,
        chunk=chunk,
        values=s.values,
        hparams=s.hparams,
        env_steps=s.config.num_updates * s.config.batch_size,
        final_return=final_return(returns),
        auc=area_under_curve(returns),
        wall_time_s=float(wall_time_s),
    )


@dataclasses.dataclass(frozen=True)
class SetSummary:
    """One row of `summary.csv`: a hyperparameter set over its seeds.

    `ci95` is the half-width of the 95% confidence interval of the mean final
    return (Student t, n - 1 degrees of freedom; NaN with one seed).
    """

    rank: int
    set_index: int
    values: tuple[tuple[str, Any], ...]
    num_seeds: int
    mean_return: float
    std_return: float
    ci95: float
    mean_auc: float


def t_quantile_975(dof: int) -> float:
    """The 0.975 quantile of Student's t with `dof` degrees of freedom."""
    from scipy import stats

    return float(stats.t.ppf(0.975, dof))


def summarize(results: Sequence[MemberResult], population: Population) -> list[SetSummary]:
    """Sets ranked by mean final return over seeds, ties by mean AUC (NaN means go last)."""
    by_set: dict[int, list[MemberResult]] = {}
    for r in results:
        by_set.setdefault(r.set_index, []).append(r)
    rows = []
    for index, members in by_set.items():
        finals = np.array([r.final_return for r in members], np.float64)
        n = len(finals)
        mean = float(np.mean(finals))
        std = float(np.std(finals, ddof=1)) if n > 1 else float("nan")
        ci = t_quantile_975(n - 1) * std / math.sqrt(n) if n > 1 else float("nan")
        auc = float(np.mean([r.auc for r in members]))
        values = population.sets[index].values
        rows.append(SetSummary(0, index, values, n, mean, std, ci, auc))
    rows.sort(key=_rank_key)
    return [dataclasses.replace(s, rank=i + 1) for i, s in enumerate(rows)]


def _rank_key(s: SetSummary) -> tuple[bool, float, float, int]:
    """Mean final return (descending), ties broken by mean AUC (faster learning first)."""
    nan = math.isnan(s.mean_return)
    auc = -s.mean_auc if math.isfinite(s.mean_auc) else math.inf
    return (nan, 0.0 if nan else -s.mean_return, auc, s.set_index)


def best_run_config(population: Population, summary: Sequence[SetSummary]) -> RunConfig:
    """The top set as a `RunConfig` (first seed of the sweep), ready for `purejaxppo train`.

    `expected_return` is the lower end of the set's 95% interval (its mean with one seed).
    """
    top = summary[0]
    s = population.sets[top.set_index]
    expected = top.mean_return - (0.0 if math.isnan(top.ci95) else top.ci95)
    return RunConfig(
        ppo=s.config,
        hparams=s.hparams,
        seed=population.seeds[0],
        expected_return=None if math.isnan(expected) else round(float(expected), 2),
    )
