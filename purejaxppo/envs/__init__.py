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
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.envs.brax import is_brax_name  # brax itself is imported lazily
from purejaxppo.envs.observations import (
    ObsSpec,
    ObsStats,
    is_structured,
    normalize_observation,
    obs_spec,
)
from purejaxppo.envs.stats import RunningStats, scale_reward

__all__ = [
    "ObsSpec",
    "ObsStats",
    "RunningStats",
    "SpaceInfo",
    "check_env_name",
    "check_env_signature",
    "env_action",
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


def _check_env_object(env: Any, label: str) -> None:
    """Catch the usual mistakes of `env=` before anything is traced."""
    if isinstance(env, tuple):
        raise ValueError(
            f"{label}: expected an environment, got a tuple of {len(env)}; gymnax.make returns "
            "(env, env_params): pass env=env, env_params=env_params"
        )
    if isinstance(env, type):
        raise ValueError(
            f"{label}: expected an environment instance, got the class {env.__name__}; "
            f"pass env={env.__name__}()"
        )
    missing = [m for m in ENV_METHODS if not callable(getattr(env, m, None))]
    if missing:
        raise ValueError(
            f"{label}: {type(env).__name__} lacks {', '.join(missing)}; expected the gymnax 1.x "
            "interface (reset, step, observation_space, action_space)"
        )


ENV_METHODS = ("reset", "step", "observation_space", "action_space")


def check_env_signature(env: Any, env_params: Any, info: SpaceInfo, label: str) -> None:
    """Trace one reset and one step abstractly (`jax.eval_shape`, nothing runs) and check
    them against the gymnax 1.x interface and the env's observation space.

    Raises `ValueError` starting with `label` for a step that does not return six
    values, an `info` without `final_observation`, or observations whose shape
    differs from `observation_space`.
    """
    key = jax.random.key(0)
    reset_out = jax.eval_shape(env.reset, key, env_params)
    if not (isinstance(reset_out, tuple) and len(reset_out) == 2):
        raise ValueError(
            f"{label}: reset(key, params) must return (obs, state), got {_describe(reset_out)}"
        )
    obs, state = reset_out
    _check_obs_shape(obs, info, label, "reset")
    if info.continuous:
        action = jax.ShapeDtypeStruct((info.action_dim,), jnp.float32)
    else:
        action = jax.ShapeDtypeStruct((), jnp.int32)
    step_out = jax.eval_shape(env.step, key, state, action, env_params)
    if not (isinstance(step_out, tuple) and len(step_out) == 6):
        hint = (
            " (a gymnax 0.x step: obs, state, reward, done, info; gymnax 1.x splits done into "
            "terminated and truncated)"
            if isinstance(step_out, tuple) and len(step_out) == 5
            else ""
        )
        raise ValueError(
            f"{label}: step(key, state, action, params) must return (obs, state, reward, "
            f"terminated, truncated, info), got {_describe(step_out)}{hint}"
        )
    next_obs, _, reward, terminated, truncated, step_info = step_out
    _check_obs_shape(next_obs, info, label, "step")
    for name, value in (("reward", reward), ("terminated", terminated), ("truncated", truncated)):
        if tuple(getattr(value, "shape", ())) != ():
            raise ValueError(
                f"{label}: step's {name} must be a scalar per env, got shape {value.shape}"
            )
    if not isinstance(step_info, dict) or "final_observation" not in step_info:
        raise ValueError(
            f"{label}: step's info must hold info['final_observation'] (the observation that "
            "ended the episode, before the auto-reset), needed to bootstrap truncated episodes"
        )
    _check_obs_shape(step_info["final_observation"], info, label, "info['final_observation']")


def _describe(value: Any) -> str:
    if isinstance(value, tuple):
        return f"a tuple of {len(value)} values"
    return type(value).__name__


def _check_obs_shape(obs: Any, info: SpaceInfo, label: str, where: str) -> None:
    if info.obs_spec is not None:
        got = obs_spec(obs, label)
        if got.treedef != info.obs_spec.treedef or got.leaves != info.obs_spec.leaves:
            raise ValueError(
                f"{label}: {where} returned observations laid out as {_layout(got)}, but reset "
                f"returned {_layout(info.obs_spec)}"
            )
        return
    shape = tuple(getattr(obs, "shape", ()))
    if is_structured(obs):
        raise ValueError(
            f"{label}: {where} returned a structured observation ({type(obs).__name__}), but "
            "observation_space has a shape; give a gymnax Dict or Tuple space for pytree "
            "observations"
        )
    if not hasattr(obs, "shape"):
        raise ValueError(f"{label}: {where} returned an observation of type {type(obs).__name__}")
    if shape != info.obs_shape:
        raise ValueError(
            f"{label}: {where} returned observations of shape {shape}, but observation_space "
            f"says {info.obs_shape}"
        )


def _layout(spec: ObsSpec) -> str:
    return ", ".join(f"{leaf.path} {leaf.dtype}{list(leaf.shape)}" for leaf in spec.leaves)


def is_discrete(space: Any) -> bool:
    """True for a gymnax `Discrete` space (has `n`, scalar shape)."""
    return hasattr(space, "n") and tuple(getattr(space, "shape", ())) == ()


def is_box(space: Any) -> bool:
    """True for a gymnax `Box` space (has `low`, `high`, `shape`)."""
    return all(hasattr(space, a) for a in ("low", "high", "shape"))


class SpaceInfo(NamedTuple):
    """What the trainer needs to know about an environment's spaces (all static)."""

    obs_shape: tuple[int, ...]  # shape of one raw observation
    obs_categories: int  # > 0: observation is a Discrete index, one-hot encoded
    action_dim: int  # number of categories (discrete) or vector size (continuous)
    continuous: bool
    action_low: tuple[float, ...] | None  # [action_dim] bounds (continuous only)
    action_high: tuple[float, ...] | None
    # A structured (pytree) observation's layout, else None; `obs_shape` is then `()`.
    obs_spec: ObsSpec | None = None


def space_info(env: Any, env_params: Any, label: str = "env") -> SpaceInfo:
    """Read and check an environment's spaces; unsupported ones raise `ValueError`."""
    import numpy as np

    obs_space = env.observation_space(env_params)
    act_space = env.action_space(env_params)
    spec = None
    if is_discrete(obs_space):
        obs_shape, obs_categories = (), int(obs_space.n)
    elif hasattr(obs_space, "shape"):
        obs_shape, obs_categories = tuple(int(d) for d in obs_space.shape), 0
    elif hasattr(obs_space, "spaces"):  # gymnax Dict / Tuple: a pytree observation
        obs_shape, obs_categories = (), 0
        spec = _structured_spec(env, env_params, label)
    else:
        raise ValueError(
            f"{label}: unsupported observation space {obs_space!r} (expected Discrete, Box, "
            "or a Dict or Tuple for pytree observations)"
        )
    if is_discrete(act_space):
        num = int(act_space.n)
        _check_action_mask(spec, num, label)
        return SpaceInfo(obs_shape, obs_categories, num, False, None, None, spec)
    if spec is not None and spec.mask_index >= 0:
        raise ValueError(
            f"{label}: observations hold an action_mask, which needs a Discrete action space, "
            f"got {act_space!r}"
        )
    if is_box(act_space) and len(tuple(act_space.shape)) == 1:
        dim = int(act_space.shape[0])
        low = tuple(np.broadcast_to(np.asarray(act_space.low, np.float32), (dim,)).tolist())
        high = tuple(np.broadcast_to(np.asarray(act_space.high, np.float32), (dim,)).tolist())
        return SpaceInfo(obs_shape, obs_categories, dim, True, low, high, spec)
    raise ValueError(
        f"{label}: unsupported action space {act_space!r} (expected Discrete or a 1-D Box)"
    )


def _structured_spec(env: Any, env_params: Any, label: str) -> ObsSpec:
    """The layout of a pytree observation, from one abstractly traced reset."""
    out = jax.eval_shape(env.reset, jax.random.key(0), env_params)
    obs = out[0] if isinstance(out, tuple) and len(out) == 2 else out
    return obs_spec(obs, label)


def _check_action_mask(spec: ObsSpec | None, num_actions: int, label: str) -> None:
    """An `action_mask` leaf must be `[num_actions]`."""
    if spec is None or spec.mask_index < 0:
        return
    leaf = spec.leaves[spec.mask_index]
    if leaf.shape != (num_actions,):
        raise ValueError(
            f"{label}: the observation's action_mask {leaf.path} has shape {list(leaf.shape)}, "
            f"expected [{num_actions}] (one flag per action of Discrete({num_actions}))"
        )


def env_action(info: SpaceInfo, action: jax.Array) -> jax.Array:
    """The action sent to the env: continuous actions clipped to the space's bounds.

    `info` is the trainer's `SpaceInfo` (`trainer.space`, or `space_info(env, env_params)`);
    `action` is `[..., action_dim]` (continuous, clipped elementwise to `[low, high]`) or
    integer `[...]` (discrete, returned as is). The unclipped sample is what the trainer
    stores and scores; only the env sees this. Apply it to `dist.sample(...)` or
    `dist.mode()` when acting yourself: a Gaussian's mode is its unbounded mean.
    """
    if info.continuous:
        low = jnp.asarray(info.action_low, jnp.float32)
        high = jnp.asarray(info.action_high, jnp.float32)
        return jnp.clip(action, low, high)
    return action
