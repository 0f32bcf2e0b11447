"""Settings that only some configurations read, and the checks that refuse them elsewhere.

A field that a configuration never reads must keep its default: a non-default value is
refused in one line naming the field, the setting that ignores it and the one that would
read it (`group_size: 4 has no effect with advantage: gae; it is read only with
advantage: group (leave it at 8 otherwise)`), instead of training with no word.

Static fields (`PPOConfig`) are checked when the config is built; traced ones (`HParams`)
by `check_hparams(config, hparams)`, because an `HParams` does not know its config.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

Switches = dict[str, tuple[str, tuple[str, ...]]]
"""field -> (the `PPOConfig` switch, the values of it under which the field is read)."""

_KL_OBJECTIVES = ("objective", ("kl_penalty", "clip+kl"))
_GROUP = ("advantage", ("group",))

SWITCHED_FIELDS: Switches = {
    "group_size": _GROUP,
    "group_normalize": _GROUP,
    "group_minibatch_normalize": _GROUP,
    "group_score": _GROUP,
    "group_aggregation": _GROUP,
    "group_reset": _GROUP,
    "kl_direction": _KL_OBJECTIVES,
}
"""`PPOConfig` fields read only under some settings."""

SWITCHED_HPARAMS: Switches = {
    "kl_coef": _KL_OBJECTIVES,
    "kl_target": _KL_OBJECTIVES,
    "kl_coef_min": _KL_OBJECTIVES,
    "kl_coef_max": _KL_OBJECTIVES,
    "ref_kl_coef": _GROUP,
}
"""`HParams` fields read only under some `PPOConfig` settings."""


def concrete(value: Any) -> np.ndarray | None:
    """`value` as a float64 numpy array, or None for tracers and placeholders."""
    if isinstance(value, (bool, int, float, np.number, np.ndarray)) or (
        isinstance(value, jax.Array) and not isinstance(value, jax.core.Tracer)
    ):
        return np.asarray(value, np.float64)
    return None


def _defaults(obj: Any) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(obj)}


def _refusal(
    name: str, value: str, default: str, config: Any, switch: tuple[str, tuple[str, ...]]
) -> ValueError:
    key, users = switch
    return ValueError(
        f"{name}: {value} has no effect with {key}: {getattr(config, key)}; it is read only "
        f"with {key}: {' or '.join(users)} (leave it at {default} otherwise)"
    )


def check_static_settings(config: Any) -> None:
    """Refuse a non-default `PPOConfig` field that `config` never reads (`ValueError`)."""
    defaults = _defaults(config)
    for name, (key, users) in SWITCHED_FIELDS.items():
        value = getattr(config, name)
        if getattr(config, key) not in users and value != defaults[name]:
            raise _refusal(name, repr(value), repr(defaults[name]), config, (key, users))


def check_hparams(config: Any, hparams: Any) -> Any:
    """Refuse a non-default concrete value of an `HParams` field that `config` (a
    `PPOConfig`) never reads; return `hparams` unchanged.

    `kl_coef`, `kl_target`, `kl_coef_min` and `kl_coef_max` are read only by the KL
    objectives (`objective: kl_penalty` or `clip+kl`), `ref_kl_coef` only with
    `advantage: group`. One-line `ValueError` naming the field, the setting that ignores it
    and the one that would read it. Every element of a stacked `[P]` leaf is checked.

    Traced values (inside `jax.jit` / `vmap`) cannot be checked and pass: the trainer calls
    this in `Trainer.init` / `Trainer.run`, where eager (un-jitted) values are concrete, and
    the YAML loaders call it for every run config and sweep set. Code that jits its own
    training should call it once before.
    """
    defaults = _defaults(hparams)
    for name, (key, users) in SWITCHED_HPARAMS.items():
        value = concrete(getattr(hparams, name, None))
        if getattr(config, key) in users or value is None:
            continue
        default = np.float32(defaults[name])
        differs = value.astype(np.float32).ravel() != default
        if differs.any():
            off = value.ravel()[np.argmax(differs)]
            raise _refusal(
                name, f"{off:g}", f"its default {float(default):g}", config, (key, users)
            )
    return hparams
