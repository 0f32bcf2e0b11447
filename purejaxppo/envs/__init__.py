"""Environments: construction by name, space handling, running statistics.

Pure helpers used by the rollout. Any environment with the gymnax 1.x interface
works: `reset(key, params) -> (obs, state)` and
`step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)`
with `info["final_observation"]`, plus `observation_space(params)` and
`action_space(params)` (Discrete or Box).

Adapters to other JAX env libraries live beside this module and are imported only when
their names are used: `brax/<name>` builds a Brax env (`purejaxppo.envs.brax`),
`navix/<name>`, `xminigrid/<name>`, `craftax/<name>` and `jumanji/<name>` the env of that
suite (`purejaxppo.envs.navix`, ...; docs/envs.md).

Observations are one array, or a pytree of arrays with an optional `action_mask` leaf
(`purejaxppo.envs.observations`: the layout, the mask, per-leaf normalisation).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import jax.numpy as jnp

from purejaxppo.envs.brax import is_brax_name  # brax itself is imported lazily
from purejaxppo.envs.checks import _check_env_object, check_env_signature
from purejaxppo.envs.observations import (
    ObsSpec,
    ObsStats,
    normalize_observation,
)
from purejaxppo.envs.spaces import SpaceInfo, env_action, is_box, is_discrete, space_info
from purejaxppo.envs.stats import RunningStats, scale_reward

__all__ = [
    "ObsSpec",
    "ObsStats",
    "RunningStats",
    "SpaceInfo",
    "check_env_name",
    "check_env_signature",
    "env_action",
    "is_box",
    "is_discrete",
    "make_env",
    "normalize_observation",
    "resolve_env",
    "scale_reward",
    "space_info",
]

# `prefix/<name>` -> the adapter module `purejaxppo.envs.<module>`, imported only when a name
# with that prefix is used; it has `check_<module>_name` and `make_<module>_env`.
SUITES = {
    "navix/": "navix",
    "xminigrid/": "xminigrid",
    "craftax/": "craftax",
    "jumanji/": "jumanji",
}
# Suites whose envs the trainer cannot take, and why (docs/envs.md); none at present.
UNSUPPORTED_SUITES: dict[str, str] = {}


def _suite(env_name: Any) -> str | None:
    """The adapter module's name for a `prefix/<name>` of `SUITES`, else None; a name of
    `UNSUPPORTED_SUITES` raises a one-line `ValueError`."""
    if not isinstance(env_name, str):
        return None
    for prefix, why in UNSUPPORTED_SUITES.items():
        if env_name.startswith(prefix):
            raise ValueError(f"env_name: {env_name} is not supported: {why}")
    for prefix, module in SUITES.items():
        if env_name.startswith(prefix):
            return module
    return None


def _suite_function(module: str, kind: str) -> Any:
    """`check_<module>_name` (kind "check") or `make_<module>_env` (kind "make")."""
    adapter = importlib.import_module(f"purejaxppo.envs.{module}")
    return getattr(adapter, f"check_{module}_name" if kind == "check" else f"make_{module}_env")


MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def mnist_dir() -> Path:
    """Where `MNISTBandit-bsuite` reads MNIST: `$PUREJAXPPO_MNIST_DIR` or gymnax's `/tmp/mnist`."""
    return Path(os.environ.get("PUREJAXPPO_MNIST_DIR", "/tmp/mnist"))


def _make_mnist_bandit() -> Any:
    """`MNISTBandit-bsuite` from local files only: purejaxppo never downloads data."""
    from gymnax.environments.bsuite import mnist
    from gymnax.utils import load_mnist

    directory = mnist_dir()
    missing = [f for f in MNIST_FILES if not (directory / f).is_file()]
    if missing:
        raise ValueError(
            f"env_name: MNISTBandit-bsuite needs the MNIST files in {directory} "
            f"(missing {', '.join(missing)}); purejaxppo never downloads data, so put them "
            "there or set PUREJAXPPO_MNIST_DIR"
        )
    env = mnist.MNISTBandit.__new__(mnist.MNISTBandit)
    mnist.environment.Environment.__init__(env)
    (images, labels), _ = load_mnist.load_mnist(str(directory))
    env.num_data = len(labels)
    env.image_shape = images.shape[1:]
    env.images = jnp.array(images)
    env.labels = jnp.array(labels)
    return env


def known_env_names() -> list[str]:
    """Every name `make_env` builds: gymnax's registry, then purejaxppo's probe envs.

    `brax/<name>` envs are not listed: listing them imports brax
    (`purejaxppo.envs.brax.brax_env_names()` does).
    """
    import gymnax

    from purejaxppo.probe_envs import PROBE_ENVS

    return [*gymnax.registered_envs, *PROBE_ENVS]


def check_env_name(env_name: Any) -> None:
    """Raise `ValueError("env_name: ...")`, with close names, unless `make_env` knows it.

    An import string `module:attr` is checked by importing it.
    """
    import difflib

    if isinstance(env_name, str) and ":" in env_name:
        _import_env(env_name)
        return
    if is_brax_name(env_name):
        from purejaxppo.envs.brax import check_brax_name

        check_brax_name(env_name)
        return
    suite = _suite(env_name)
    if suite is not None:
        _suite_function(suite, "check")(env_name)
        return
    known = known_env_names()
    if not isinstance(env_name, str) or env_name not in known:
        close = difflib.get_close_matches(str(env_name), known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"env_name: unknown environment {env_name!r}{hint} (`purejaxppo envs` lists them; "
            "a Brax env is brax/NAME, likewise navix/, xminigrid/, craftax/, jumanji/; "
            "a custom env is an import string module:ClassOrFactory)"
        )


def _import_env(spec: str) -> tuple[Any, Any]:
    """`(env, env_params)` from an import string `package.module:attr` (attr may be dotted).

    `attr` is an environment class (called with no arguments), a factory returning an
    env or `(env, env_params)`, or an env instance; params default to `env.default_params`.
    """
    import importlib

    module_name, _, attr = spec.partition(":")
    label = f"env_name: {spec}"
    if not module_name or not attr:
        raise ValueError(f"{label}: expected an import string module:ClassOrFactory")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(
            f"{label}: cannot import {module_name} ({err}); put it on PYTHONPATH or run from "
            "the folder that holds it"
        ) from None
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ValueError(f"{label}: {module_name} has no attribute {attr}")
        target = getattr(target, part)
    is_factory = isinstance(target, type) or (callable(target) and not hasattr(target, "step"))
    made = target() if is_factory else target
    if isinstance(made, tuple) and len(made) == 2 and hasattr(made[0], "step"):
        env, env_params = made
    else:
        env, env_params = made, None
    return env, _checked_params(env, env_params, label, "; return (env, env_params) instead")


def make_env(env_name: str) -> tuple[Any, Any]:
    """Build `(env, env_params)` for a gymnax id, a purejaxppo probe env, a Brax env
    `brax/<name>` (needs the brax extra), an env of another suite (`navix/<name>`,
    `xminigrid/<name>`, `craftax/<name>`, `jumanji/<name>`: each needs its extra), or an
    import string `module:ClassOrFactory` naming a custom gymnax-1.x env."""
    import gymnax

    from purejaxppo.probe_envs import PROBE_ENVS

    check_env_name(env_name)
    if ":" in env_name:
        return _import_env(env_name)
    if is_brax_name(env_name):
        from purejaxppo.envs.brax import make_brax_env

        return make_brax_env(env_name)
    suite = _suite(env_name)
    if suite is not None:
        return _suite_function(suite, "make")(env_name)
    if env_name in PROBE_ENVS:
        env = PROBE_ENVS[env_name]()
        return env, env.default_params
    if env_name == "MNISTBandit-bsuite":
        env = _make_mnist_bandit()
        return env, env.default_params
    return gymnax.make(env_name)


def resolve_env(config: Any, env: Any = None, env_params: Any = None) -> tuple[Any, Any, str]:
    """`(env, env_params, label)`: the given env, or one made from `config.env_name`.

    The label starts every error message about the env: `env_name: NAME` for an env
    built from the name, `env (NAME)` / `env (ClassName)` for one passed as `env=`.
    """
    if env is None:
        if config.env_name is None:
            raise ValueError("env_name: is None, so pass env= (and env_params=)")
        env, default_params = make_env(config.env_name)
        env_params = default_params if env_params is None else env_params
        return env, env_params, f"env_name: {config.env_name}"
    shown = env.__name__ if isinstance(env, type) else type(env).__name__
    label = f"env ({config.env_name or shown})"
    return env, _checked_params(env, env_params, label, ", so pass env_params="), label


def _checked_params(env: Any, env_params: Any, label: str, hint: str) -> Any:
    """`env_params`, or the env's `default_params`, after `_check_env_object`; one line
    ending in `hint` (its own punctuation) when the env has none."""
    _check_env_object(env, label)
    if env_params is None:
        env_params = getattr(env, "default_params", None)
        if env_params is None:
            raise ValueError(f"{label}: has no default_params{hint}")
    return env_params
