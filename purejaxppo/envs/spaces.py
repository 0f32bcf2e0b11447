"""An environment's spaces as the trainer sees them (`SpaceInfo`): Discrete or Box
observations, or a pytree observation with an optional `action_mask` leaf; Discrete or 1-D
Box actions, and the action the env receives (`env_action`)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.envs.observations import ObsSpec, obs_spec


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
