"""YAML run configurations: `RunConfig` = `PPOConfig` + `HParams` + seed + expected return.

A config file keeps the static part and the traced part apart::

    ppo:              # PPOConfig fields (static: shapes, loop lengths, switches)
      env_name: CartPole-v1
      num_envs: 4
    hparams:          # HParams fields (traced: vmappable numbers)
      learning_rate: 2.5e-4
    seed: 0
    expected_return: 475.0
    schedule: [...]   # optional: hparams that change during the run (run/schedule_config.py)

Missing fields take the dataclass defaults. Loading is strict: unknown keys
(with the nearest valid key suggested), wrong types and invalid values raise
`ConfigError`, whose message is one line `FILE: KEY: what was expected, got X`.
Overrides (`"ppo.num_envs=8"`) are parsed as YAML values and checked the same way.
Loading never mutates its inputs, and `load(dump(rc)) == rc`.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from purejaxppo.config import HParams, PPOConfig
from purejaxppo.envs import check_env_name
from purejaxppo.run.errors import ConfigError
from purejaxppo.run.rundir import CONFIG_FILE, SWEEP_MANIFEST
from purejaxppo.run.schedule_config import (
    ScheduleSegment,
    parse_schedule,
    schedule_to_list,
    to_hparam_schedule,
)
from purejaxppo.run.yamlcheck import closest, describe, field_error, unknown_key
from purejaxppo.run.yamlio import _Dumper, parse_yaml
from purejaxppo.unused_settings import check_hparams

if TYPE_CHECKING:
    from purejaxppo.train import Trainer

SECTIONS = ("ppo", "hparams", "seed", "expected_return", "schedule")
MAX_SEED = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a run is made from.

    Attributes:
      ppo: the static `PPOConfig`.
      hparams: the traced `HParams` (Python floats).
      seed: PRNG seed of the first seed; seed `i` of a multi-seed run uses `seed + i`.
      expected_return: the mean return this config is expected to reach, or None.
      schedule: segments of hyperparameters that change during the run (`()`: `hparams`
        throughout); see `purejaxppo.run.schedule_config`.
    """

    ppo: PPOConfig
    hparams: HParams
    seed: int = 0
    expected_return: float | None = None
    schedule: tuple[ScheduleSegment, ...] = ()

    @property
    def train_hparams(self) -> Any:
        """What the trainer takes: `hparams`, or its `HParamSchedule` when scheduled."""
        return to_hparam_schedule(self.schedule) if self.schedule else self.hparams


# --------------------------------------------------------------------------- field checks
_PPO_TYPES = typing.get_type_hints(PPOConfig)


def _check_ppo_value(name: str, value: Any) -> Any:
    """Type-check one `PPOConfig` field as read from YAML; return the value to pass on."""
    hint = _PPO_TYPES[name]
    if name == "env_name":
        if not isinstance(value, str):
            raise ValueError(f"expected an environment name (a string), got {describe(value)}")
        return value
    if name == "encoder":
        if value is not None and not isinstance(value, str):
            raise ValueError(f"expected an import string module:Attr, got {describe(value)}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {describe(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            hint_text = ""
            if isinstance(value, float) and value.is_integer():
                hint_text = f" (write {int(value)}, or {int(value):_} with underscores)"
            raise ValueError(f"expected an integer, got {describe(value)}{hint_text}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {describe(value)}")
        return value
    if name == "hidden_sizes":
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise ValueError(f"expected a list of positive integers, got {describe(value)}")
        return tuple(value)
    raise AssertionError(f"no YAML check for PPOConfig.{name}")  # a new field needs one


def _check_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {describe(value)}")
    return float(value)


def _check_seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer in [0, {MAX_SEED}], got {describe(value)}")
    if not 0 <= value <= MAX_SEED:
        raise ValueError(f"expected an integer in [0, {MAX_SEED}], got {value}")
    return value


PPO_FIELDS = tuple(f.name for f in dataclasses.fields(PPOConfig))
HPARAM_FIELDS = tuple(f.name for f in dataclasses.fields(HParams))
ALL_KEYS = (
    *(f"ppo.{n}" for n in PPO_FIELDS),
    *(f"hparams.{n}" for n in HPARAM_FIELDS),
    "seed",
    "expected_return",
)


def _unknown_key(source: str, key: str, via_set: bool = False) -> ConfigError:
    """`unknown key` error suggesting the nearest valid key (any section)."""
    where = f"{source}: --set {key}" if via_set else f"{source}: {key}"
    close = closest(key, SECTIONS) if "." not in key else None
    close = close or closest(key, ALL_KEYS)
    if not close:
        by_leaf = {k.rsplit(".", 1)[-1]: k for k in ALL_KEYS}
        leaf = closest(key.rsplit(".", 1)[-1], list(by_leaf))
        close = by_leaf[leaf] if leaf else None
    section = key.split(".", 1)[0]
    names = {"ppo": PPO_FIELDS, "hparams": HPARAM_FIELDS}.get(section, SECTIONS)
    return unknown_key(where, close, names)


# --------------------------------------------------------------------------- dict <-> RunConfig
def run_config_from_dict(
    data: Any,
    source: str = "<config>",
    overridden: frozenset[str] = frozenset(),
    check_unused: bool = True,
) -> RunConfig:
    """Build and validate a `RunConfig` from a parsed YAML document. `data` is not mutated.

    Keys in `overridden` came from `--set` and are named so in errors. With `check_unused`
    (default) a non-default hparams value that the ppo section never reads is refused
    (`purejaxppo.check_hparams`); a sweep checking one value alone turns it off.
    """

    def where(key: str) -> str:
        return f"{source}: --set {key}" if key in overridden else f"{source}: {key}"

    if data is None:
        raise ConfigError(
            f"{source}: expected a mapping with keys {', '.join(SECTIONS)}, got an empty document"
        )
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: expected a mapping with keys {', '.join(SECTIONS)}, got {describe(data)}"
        )
    sweep_keys = [k for k in SWEEP_ONLY_KEYS if k in data]
    if sweep_keys:
        raise ConfigError(
            f"{source}: a sweep file (it has {', '.join(sweep_keys)}), not a run config: run it "
            f"with purejaxppo sweep {source}"
        )
    for key in data:
        if key not in SECTIONS:
            raise _unknown_key(source, str(key))

    sections: dict[str, dict[str, Any]] = {}
    for section, names in (("ppo", PPO_FIELDS), ("hparams", HPARAM_FIELDS)):
        raw = data.get(section, {})
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(
                f"{source}: {section}: expected a mapping of {section} fields, got {describe(raw)}"
            )
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in names:
                raise _unknown_key(source, f"{section}.{key}")  # overrides are checked earlier
            try:
                if section == "ppo":
                    values[key] = _check_ppo_value(key, value)
                else:
                    values[key] = _check_float(value)
            except ValueError as err:
                raise ConfigError(f"{where(f'{section}.{key}')}: {err}") from None
        sections[section] = values

    try:
        ppo = PPOConfig(**sections["ppo"])
        # A run config builds its env from the name: check it now, before anything compiles.
        check_env_name(ppo.env_name)
    except ValueError as err:
        raise field_error(source, "ppo", err, overridden) from None
    try:
        hparams = HParams(**sections["hparams"])
        hparams = HParams(**{n: float(getattr(hparams, n)) for n in HPARAM_FIELDS})
        if check_unused:
            check_hparams(ppo, hparams)
    except ValueError as err:
        raise field_error(source, "hparams", err, overridden) from None

    try:
        seed = _check_seed(data.get("seed", 0))
    except ValueError as err:
        raise ConfigError(f"{where('seed')}: {err}") from None
    expected = data.get("expected_return")
    if expected is not None:
        if (
            isinstance(expected, bool)
            or not isinstance(expected, int | float)
            or not math.isfinite(expected)
        ):
            raise ConfigError(
                f"{where('expected_return')}: expected a finite number or null, "
                f"got {describe(expected)}"
            )
        expected = float(expected)
    schedule = parse_schedule(data.get("schedule"), ppo, hparams, source)
    return RunConfig(
        ppo=ppo, hparams=hparams, seed=seed, expected_return=expected, schedule=schedule
    )


def run_config_to_dict(rc: RunConfig) -> dict[str, Any]:
    """A plain, YAML-able dict of `rc` (lists, floats, ints, strings); `from_dict` inverts it."""
    ppo = {}
    for name in PPO_FIELDS:
        value = getattr(rc.ppo, name)
        ppo[name] = list(value) if isinstance(value, tuple) else value
    hparams = {name: float(getattr(rc.hparams, name)) for name in HPARAM_FIELDS}
    expected = None if rc.expected_return is None else float(rc.expected_return)
    out = {"ppo": ppo, "hparams": hparams, "seed": int(rc.seed), "expected_return": expected}
    if rc.schedule:
        out["schedule"] = schedule_to_list(rc.schedule)
    return out


def dump_run_config(rc: RunConfig) -> str:
    """`rc` as YAML text, sections in the canonical order."""
    return yaml.dump(run_config_to_dict(rc), Dumper=_Dumper, sort_keys=False)


# --------------------------------------------------------------------------- overrides
def apply_overrides(
    data: Mapping[str, Any], overrides: Sequence[str], source: str
) -> tuple[dict[str, Any], frozenset[str]]:
    """A copy of `data` with `"section.key=value"` overrides applied (values parsed as YAML).

    Returns the new document and the set of overridden keys. Keys are checked
    against the known fields here, values later by `run_config_from_dict`;
    `data` is not mutated.
    """
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in data.items()}
    keys: set[str] = set()
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        where = f"{source}: --set {item}"
        if not sep or not key:
            raise ConfigError(f"{where}: expected KEY=VALUE (e.g. ppo.num_envs=8)")
        if key not in ALL_KEYS:
            raise _unknown_key(source, key, via_set=True)
        value = parse_yaml(text, where) if text.strip() else None
        keys.add(key)
        if "." in key:
            section, name = key.split(".", 1)
            current = out.get(section)
            if current is None:
                current = {}
            if isinstance(current, dict):  # else run_config_from_dict reports the section
                out[section] = {**current, name: value}
        else:
            out[key] = value
    return out, frozenset(keys)


# Keys of a sweep file that a run config never has (see purejaxppo.sweep.spec).
SWEEP_ONLY_KEYS = ("grid", "random", "seeds", "base")


def _folder_kind(path: Path) -> str:
    """What a folder given as a config is, and which command takes it."""
    if (path / SWEEP_MANIFEST).is_file():
        return "is a sweep output folder (its best.yaml is a run config)"
    if (path / CONFIG_FILE).is_file():
        return "is a run folder (for purejaxppo eval RUN or train --resume RUN)"
    return "is a directory"


def load_run_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Read, override and validate a YAML run config.

    Args:
      path: the YAML file.
      overrides: `"section.key=value"` strings (`"ppo.num_envs=8"`,
        `"hparams.learning_rate=1e-3"`, `"seed=3"`); values are YAML.

    Raises:
      ConfigError: one line, `FILE: KEY: what was expected, got X`.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(
            f"{source}: {_folder_kind(Path(path))}, expected a YAML config file"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{source}: cannot read ({type(err).__name__}: {err})") from None
    data = parse_yaml(text, source)
    if overrides:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            return run_config_from_dict(data, source)
        data, overridden = apply_overrides(data, overrides, source)
        return run_config_from_dict(data, source, overridden)
    return run_config_from_dict(data, source)


def config_differences(a: RunConfig, b: RunConfig) -> list[str]:
    """Keys (`ppo.num_envs`, ...) whose values differ between `a` and `b`, as `key (a -> b)`."""
    flat_a, flat_b = _flatten(run_config_to_dict(a)), _flatten(run_config_to_dict(b))
    return [f"{k} ({flat_a[k]!r} -> {flat_b[k]!r})" for k in flat_a if flat_a[k] != flat_b[k]]


def _flatten(data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def make_run_trainer(rc: RunConfig, source: str) -> Trainer:
    """`make_trainer(rc.ppo)`; env construction errors become one-line `ConfigError`s
    naming `source` and the key (`configs/x.yaml: ppo.env_name: ...`)."""
    from purejaxppo.train import make_trainer

    try:
        return make_trainer(rc.ppo)
    except ValueError as err:
        text = str(err).splitlines()[0]
        head, sep, rest = text.partition(": ")
        if sep and head.isidentifier():
            raise ConfigError(f"{source}: ppo.{head}: {rest}") from None
        raise ConfigError(f"{source}: ppo: {text}") from None
