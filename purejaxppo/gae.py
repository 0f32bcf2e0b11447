"""Advantages: generalised advantage estimation as a reverse `lax.scan`, and the
critic-free group-relative scores of GRPO (time-major `[T, N]`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _gae_step(next_advantage: jax.Array, step: tuple[jax.Array, jax.Array]):
    """One backward step: `A_t = delta_t + decay_t * A_{t+1}`, decay = gamma*lambda*(1-done)."""
    delta, decay = step
    advantage = delta + decay * next_advantage
    return advantage, advantage


def compute_gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    done: jax.Array,
    gamma: jax.Array | float,
    gae_lambda: jax.Array | float,
) -> tuple[jax.Array, jax.Array]:
    """Advantages and returns, time-major `[T, ...]`.

    `delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t`
    `A_t = delta_t + gamma * gae_lambda * (1 - done_t) * A_{t+1}`, `A_T = 0`.

    Args:
      rewards: `[T, ...]` rewards of each transition.
      values: `[T, ...]` V(s_t).
      next_values: `[T, ...]` V of the true next observation: on a time-limit
        truncation the episode's final observation, not the reset one.
      terminated: `[T, ...]` bool or 0/1: the episode really ended (no bootstrap).
      done: `[T, ...]` bool or 0/1: terminated or truncated (the trace is cut).
      gamma, gae_lambda: scalars (traced; vmap over them freely).

    Returns:
      `(advantages, returns)`, both `[T, ...]`, `returns = advantages + values`.
    """
    dtype = jnp.result_type(values.dtype, jnp.float32)
    values = values.astype(dtype)
    not_terminated = 1.0 - jnp.asarray(terminated).astype(dtype)
    not_done = 1.0 - jnp.asarray(done).astype(dtype)
    deltas = rewards.astype(dtype) + gamma * not_terminated * next_values.astype(dtype) - values
    decays = gamma * gae_lambda * not_done
    _, advantages = jax.lax.scan(
        _gae_step, jnp.zeros_like(deltas[0]), (deltas, decays), reverse=True
    )
    return advantages, advantages + values


def first_episode_mask(done: jax.Array) -> jax.Array:
    """`[T, N]` float32: 1 for the steps of each env's first episode in the rollout (up to
    and including its first `done`), 0 after it."""
    done = done.astype(jnp.int32)
    ended_before = (jnp.cumsum(done, axis=0) - done) > 0
    return jnp.logical_not(ended_before).astype(jnp.float32)


def group_advantages(
    returns: jax.Array, group_size: int, normalize: bool, eps: float = 1e-8
) -> jax.Array:
    """GRPO scores of episode returns `[N]`, envs grouped in consecutive blocks of
    `group_size`: `(R_i - mean_group R) / (std_group R + eps)`, or only the mean
    subtracted (`normalize=False`, Dr. GRPO). Returns `[N]`."""
    grouped = returns.reshape((-1, group_size))
    centred = grouped - jnp.mean(grouped, axis=1, keepdims=True)
    if normalize:
        centred = centred / (jnp.std(grouped, axis=1, keepdims=True) + eps)
    return centred.reshape(returns.shape)
