"""Host shell: the YAML form of an `RLHFConfig` (`configs/rlhf/*.yaml`), with `--set`
overrides, checked field by field into one-line `ConfigError`s (`FILE: rl.iterations:
expected an integer, got 1.5 (a number)`).

    seed: 0                            # RL members (and prepare, unless prepare_seed)
    prepare_seed: 1                    # optional: SFT, preference data, reward model
    language: {gold: ascending}        # LanguageConfig fields
    model: {d_model: 32}               # ModelConfig
    sft: {steps: 300}                  # SFTConfig
    reward: {train_pairs: 1000}        # RewardConfig
    rl: {algorithm: ppo}               # RLConfig
    hparams: {kl_target: 4.0}          # RLHFHParams (traced)
    population: {seeds: 2, grid: {kl_target: [1.0, 4.0, 16.0]}}
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from purejaxppo.rlhf.config import (
    HPARAM_NAMES,
    PopulationConfig,
    RewardConfig,
    RLConfig,
    RLHFConfig,
    RLHFHParams,
    SFTConfig,
    check_hparams,
    hparams_dict,
)
from purejaxppo.rlhf.language import LanguageConfig
from purejaxppo.rlhf.models import ModelConfig
from purejaxppo.run.errors import ConfigError
from purejaxppo.run.yamlcheck import closest, describe, field_error, unknown_key
from purejaxppo.run.yamlio import parse_yaml

SECTION_TYPES: dict[str, type] = {
    "language": LanguageConfig,
    "model": ModelConfig,
    "sft": SFTConfig,
    "reward": RewardConfig,
    "rl": RLConfig,
}
SEEDS = ("seed", "prepare_seed")  # top-level integers
SECTIONS = (*SEEDS, *SECTION_TYPES, "hparams", "population")


def _check_value(hint: Any, value: Any) -> Any:
    """`value` as the field type `hint` (int, float, bool, str) wants it, or `ValueError`."""
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"expected true or false, got {describe(value)}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"expected an integer, got {describe(value)}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"expected a number, got {describe(value)}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"expected a string, got {describe(value)}")
    raise AssertionError(f"no YAML check for a field of type {hint}")


def _unknown(source: str, key: str, valid: Sequence[str]) -> ConfigError:
    """`unknown key` error suggesting the nearest of `valid` in the key's own section."""
    leaf = closest(key.rsplit(".", 1)[-1], valid)
    prefix = key.rsplit(".", 1)[0] + "." if "." in key else ""
    return unknown_key(f"{source}: {key}", prefix + leaf if leaf else None, valid)


def _mapping(source: str, where: str, raw: Any) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: {where}: expected a mapping, got {describe(raw)}")
    return raw


def _section(source: str, name: str, raw: Any) -> Any:
    cls = SECTION_TYPES[name]
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in _mapping(source, name, raw).items():
        if key not in fields:
            raise _unknown(source, f"{name}.{key}", fields)
        try:
            values[key] = _check_value(hints[key], value)
        except ValueError as err:
            raise ConfigError(f"{source}: {name}.{key}: {err}") from None
    try:
        return cls(**values)
    except ValueError as err:
        raise field_error(source, name, err) from None


def _hparams(source: str, raw: Any) -> RLHFHParams:
    values = {}
    for key, value in _mapping(source, "hparams", raw).items():
        if key not in HPARAM_NAMES:
            raise _unknown(source, f"hparams.{key}", HPARAM_NAMES)
        try:
            values[key] = _check_value(float, value)
        except ValueError as err:
            raise ConfigError(f"{source}: hparams.{key}: {err}") from None
    try:
        return check_hparams(RLHFHParams(**values))
    except ValueError as err:
        raise field_error(source, "hparams", err) from None


def _population(source: str, raw: Any) -> PopulationConfig:
    data = _mapping(source, "population", raw)
    for key in data:
        if key not in ("seeds", "grid"):
            raise _unknown(source, f"population.{key}", ("seeds", "grid"))
    try:
        seeds = _check_value(int, data.get("seeds", 1))
    except ValueError as err:
        raise ConfigError(f"{source}: population.seeds: {err}") from None
    grid = []
    for name, values in _mapping(source, "population.grid", data.get("grid")).items():
        if name not in HPARAM_NAMES:
            raise _unknown(source, f"population.grid.{name}", HPARAM_NAMES)
        if not isinstance(values, list) or not values:
            raise ConfigError(
                f"{source}: population.grid.{name}: expected a non-empty list of numbers, "
                f"got {describe(values)}"
            )
        try:
            numbers = tuple(_check_value(float, v) for v in values)
            for v in numbers:  # the range of the field, checked now rather than after SFT
                check_hparams(RLHFHParams(**{name: v}))
        except ValueError as err:
            text = str(err).removeprefix(f"{name}: ")
            raise ConfigError(f"{source}: population.grid.{name}: {text}") from None
        grid.append((name, numbers))
    try:
        return PopulationConfig(seeds=seeds, grid=tuple(grid))
    except ValueError as err:
        raise field_error(source, "population", err) from None


def rlhf_config_from_dict(data: Any, source: str = "<config>") -> RLHFConfig:
    """Build and validate an `RLHFConfig` from a parsed YAML document."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: expected a mapping with keys {', '.join(SECTIONS)}, got {describe(data)}"
        )
    for key in data:
        if key not in SECTIONS:
            raise _unknown(source, str(key), SECTIONS)
    seed = _seed(source, "seed", data.get("seed", 0))
    prepare_seed = data.get("prepare_seed")
    if prepare_seed is not None:
        prepare_seed = _seed(source, "prepare_seed", prepare_seed)
    sections = {name: _section(source, name, data.get(name)) for name in SECTION_TYPES}
    try:
        return RLHFConfig(
            **sections,
            hparams=_hparams(source, data.get("hparams")),
            population=_population(source, data.get("population")),
            seed=seed,
            prepare_seed=prepare_seed,
        )
    except ValueError as err:  # checks across sections, the field named in full
        raise ConfigError(f"{source}: {err}") from None


def _seed(source: str, name: str, value: Any) -> int:
    """`value` if it is an integer in `[0, 2**31)`, else a one-line `ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise ConfigError(
            f"{source}: {name}: expected an integer in [0, 2**31), got {describe(value)}"
        )
    return value


def rlhf_config_to_dict(cfg: RLHFConfig) -> dict[str, Any]:
    """A plain YAML-able dict; `rlhf_config_from_dict` inverts it."""
    out: dict[str, Any] = {"seed": cfg.seed}
    if cfg.prepare_seed is not None:  # absent by default: older run folders read the same
        out["prepare_seed"] = cfg.prepare_seed
    for name in SECTION_TYPES:
        out[name] = dataclasses.asdict(getattr(cfg, name))
    out["hparams"] = hparams_dict(check_hparams(cfg.hparams))
    out["population"] = {
        "seeds": cfg.population.seeds,
        "grid": {name: list(values) for name, values in cfg.population.grid},
    }
    return out


def dump_rlhf_config(cfg: RLHFConfig) -> str:
    """The config as YAML text (round-trips through `rlhf_config_from_dict`)."""
    return yaml.safe_dump(rlhf_config_to_dict(cfg), sort_keys=False, default_flow_style=None)


def apply_sets(data: Mapping[str, Any], sets: Sequence[str]) -> dict[str, Any]:
    """`data` with `--set section.key=value` overrides applied (values parsed as YAML); a
    deeper key (`population.grid.kl_target=[1, 4]`) sets a value inside a mapping."""
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in data.items()}
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item}: expected KEY=VALUE, e.g. rl.iterations=50")
        value = parse_yaml(text, f"--set {key}")
        if "." not in key:
            if key not in SEEDS:
                raise _unknown("--set", key, (*SEEDS, *(f"{s}.KEY" for s in SECTIONS[2:])))
            out[key] = value
            continue
        section, *path = key.split(".")
        if section not in SECTIONS or section in SEEDS or not all(path):
            raise _unknown("--set", key, SECTIONS[2:])
        out[section] = _set_in(out.get(section), path, value, f"--set {key}", section)
    return out


def _set_in(current: Any, path: Sequence[str], value: Any, where: str, name: str) -> Any:
    """A copy of mapping `current` (None: empty) with `value` at `path`."""
    if current is None:
        current = {}
    if not isinstance(current, Mapping):
        raise ConfigError(f"{where}: the file's {name} is not a mapping")
    head, *rest = path
    inner = _set_in(current.get(head), rest, value, where, f"{name}.{head}") if rest else value
    return {**current, head: inner}


def load_rlhf_config(path: str | Path, sets: Sequence[str] = ()) -> RLHFConfig:
    """Read, override and validate an RLHF YAML file; `ConfigError` (one line) if bad."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read ({type(err).__name__})") from None
    data = parse_yaml(text, str(path))
    if data is None:
        raise ConfigError(
            f"{path}: the file is empty; expected a mapping with keys {', '.join(SECTIONS)} "
            "(configs/rlhf/ppo.yaml is a full example)"
        )
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{path}: expected a mapping with keys {', '.join(SECTIONS)}, got {describe(data)}"
        )
    return rlhf_config_from_dict(apply_sets(data, sets), str(path))
