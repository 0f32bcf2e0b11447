"""Checks of an environment object against the gymnax 1.x interface, before anything runs:
the usual mistakes of `env=` (a tuple, a class, missing methods) and one abstractly traced
reset and step (six values, `info["final_observation"]`, observation shapes)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from purejaxppo.envs.observations import ObsSpec, is_structured, obs_spec
from purejaxppo.envs.spaces import SpaceInfo


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
