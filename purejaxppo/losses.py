"""PPO loss pieces: clipped surrogate, (clipped) value loss, entropy, KL estimate.

All functions are pure and take flat minibatch arrays `[B]`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class LossMetrics(NamedTuple):
    """Scalars reported for one minibatch."""

    total_loss: jax.Array
    policy_loss: jax.Array
    value_loss: jax.Array
    entropy: jax.Array
    approx_kl: jax.Array
    clip_fraction: jax.Array


def normalize(x: jax.Array, eps: float = 1e-8) -> jax.Array:
    """`(x - mean) / (std + eps)` over the whole array."""
    return (x - jnp.mean(x)) / (jnp.std(x) + eps)


def clipped_surrogate(
    log_prob: jax.Array, old_log_prob: jax.Array, advantages: jax.Array, clip_eps: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """PPO-clip policy loss `-mean(min(r A, clip(r, 1-eps, 1+eps) A))`, `r = pi/pi_old`.

    Returns `(loss, approx_kl, clip_fraction)` with `approx_kl = mean((r - 1) - log r)`
    (Schulman's unbiased, non-negative estimator of KL(pi_old || pi)).
    """
    log_ratio = log_prob - old_log_prob
    ratio = jnp.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    loss = -jnp.mean(jnp.minimum(unclipped, clipped))
    approx_kl = jnp.mean((ratio - 1.0) - log_ratio)
    clip_fraction = jnp.mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32))
    return loss, approx_kl, clip_fraction


def value_loss(
    value: jax.Array,
    old_value: jax.Array,
    returns: jax.Array,
    clip_eps: jax.Array,
    clip: bool,
) -> jax.Array:
    """`0.5 * mean((V - R)^2)`; with `clip`, the PPO2 pessimistic clipped variant."""
    squared = jnp.square(value - returns)
    if clip:
        clipped_value = old_value + jnp.clip(value - old_value, -clip_eps, clip_eps)
        squared = jnp.maximum(squared, jnp.square(clipped_value - returns))
    return 0.5 * jnp.mean(squared)


def ppo_loss(
    log_prob: jax.Array,
    entropy: jax.Array,
    value: jax.Array,
    old_log_prob: jax.Array,
    old_value: jax.Array,
    advantages: jax.Array,
    returns: jax.Array,
    clip_eps: jax.Array,
    vf_coef: jax.Array,
    ent_coef: jax.Array,
    clip_value: bool,
) -> tuple[jax.Array, LossMetrics]:
    """Total loss `policy + vf_coef * value - ent_coef * entropy` and its pieces.

    All array arguments are `[B]` (advantages already normalised if wanted).
    """
    policy, approx_kl, clip_fraction = clipped_surrogate(
        log_prob, old_log_prob, advantages, clip_eps
    )
    v_loss = value_loss(value, old_value, returns, clip_eps, clip_value)
    mean_entropy = jnp.mean(entropy)
    total = policy + vf_coef * v_loss - ent_coef * mean_entropy
    return total, LossMetrics(total, policy, v_loss, mean_entropy, approx_kl, clip_fraction)


def explained_variance(values: jax.Array, returns: jax.Array) -> jax.Array:
    """`1 - Var(R - V) / Var(R)` over all elements (NaN when Var(R) is 0)."""
    var_returns = jnp.var(returns)
    return jnp.where(var_returns > 0, 1.0 - jnp.var(returns - values) / var_returns, jnp.nan)
