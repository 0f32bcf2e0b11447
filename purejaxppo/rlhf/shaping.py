"""Reward shaping for PPO on a language model (issue 12): the per-token KL-penalised reward,
token-level GAE through `purejaxppo.gae.compute_gae`, and Ziegler et al.'s (2019) adaptive KL
coefficient.

Completion arrays are batch-major `[B, C]` with a prefix mask (`mask[b, i] = 1` through the
first `end` token, 0 after; a completion cut by the length limit is all ones). Token `i`'s
"action" is completion token `i`; the episode ends at the last real token.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.gae import compute_gae


class TokenRewards(NamedTuple):
    """Per-token rewards and the per-sequence KL they were built from."""

    rewards: jax.Array  # [B, C] float32: -beta * (logp - ref_logp) (+ score at the last token)
    kl: jax.Array  # [B] float32: sum over real tokens of (logp - ref_logp)


class KLController(NamedTuple):
    """State of the adaptive KL controller (vmap it over targets as any pytree)."""

    beta: jax.Array  # [] or [N] float32: the KL coefficient


def last_token_onehot(mask: jax.Array) -> jax.Array:
    """`[B, C]` prefix mask -> `[B, C]` float32 one-hot of the last real token (index
    `mask.sum(-1) - 1`); an all-zero row gives all zeros."""
    mask = mask.astype(jnp.float32)
    length = jnp.sum(mask, axis=-1).astype(jnp.int32)  # [B]
    positions = jnp.arange(mask.shape[-1])  # [C]
    return (positions[None, :] == (length - 1)[:, None]).astype(jnp.float32)


def sequence_kl(log_probs: jax.Array, ref_log_probs: jax.Array, mask: jax.Array) -> jax.Array:
    """`[B, C]` log-probs of the policy and the reference, `[B, C]` mask -> `[B]`
    `sum_i mask * (logp - ref_logp)` (the sampled, k1 estimate of KL(pi || pi_ref))."""
    mask = mask.astype(jnp.float32)
    return jnp.sum(mask * (log_probs - ref_log_probs), axis=-1)


def token_rewards(
    log_probs: jax.Array,
    ref_log_probs: jax.Array,
    mask: jax.Array,
    score: jax.Array,
    beta: jax.Array | float,
) -> TokenRewards:
    """The RLHF per-token reward.

    `r_i = -beta * (logp_i - ref_logp_i)` on every real token, plus `score` at the last real
    token, 0 after the end.

    Args:
      log_probs: `[B, C]` log pi(token) of the sampling policy.
      ref_log_probs: `[B, C]` log pi_ref(token) of the frozen reference.
      mask: `[B, C]` 1 through the first `end` token, 0 after.
      score: `[B]` the reward model's score of each sequence.
      beta: scalar KL coefficient (traced).

    Returns:
      `TokenRewards(rewards [B, C], kl [B])`.
    """
    mask = mask.astype(jnp.float32)
    kl_per_token = mask * (log_probs - ref_log_probs)  # [B, C]
    rewards = -beta * kl_per_token + last_token_onehot(mask) * score[:, None]
    return TokenRewards(rewards * mask, jnp.sum(kl_per_token, axis=-1))


def token_gae(
    rewards: jax.Array,
    values: jax.Array,
    mask: jax.Array,
    gamma: jax.Array | float = 1.0,
    gae_lambda: jax.Array | float = 0.95,
) -> tuple[jax.Array, jax.Array]:
    """Token-level GAE of `[B, C]` rewards and values via `compute_gae` (time-major `[C, B]`).

    `values[:, i]` is V of the state before completion token `i`. The next value of token `i`
    is `values[:, i + 1]`, 0 after the last real token, which is terminal
    (`terminated = done = 1`); positions after the end are terminal too and their advantages
    and returns are zeroed.

    Args:
      rewards: `[B, C]` per-token rewards (e.g. `token_rewards(...).rewards`).
      values: `[B, C]` value estimates of each token's state.
      mask: `[B, C]` 1 through the first `end` token, 0 after.
      gamma, gae_lambda: scalars (traced).

    Returns:
      `(advantages [B, C], returns [B, C])`, 0 where `mask` is 0.
    """
    mask = mask.astype(jnp.float32)
    values = values.astype(jnp.float32)
    next_mask = jnp.concatenate([mask[:, 1:], jnp.zeros_like(mask[:, :1])], axis=1)  # [B, C]
    next_values = jnp.concatenate([values[:, 1:], jnp.zeros_like(values[:, :1])], axis=1)
    next_values = next_values * next_mask
    terminal = 1.0 - next_mask  # the last real token and everything after it
    advantages, returns = compute_gae(
        (rewards * mask).T,
        values.T,
        next_values.T,
        terminal.T,
        terminal.T,
        gamma,
        gae_lambda,
    )
    return advantages.T * mask, returns.T * mask


def update_kl_controller(
    beta: jax.Array | float,
    kl: jax.Array | float,
    target: jax.Array | float,
    horizon: jax.Array | float,
    n_steps: jax.Array | float,
) -> jax.Array:
    """Ziegler et al. (2019) adaptive KL coefficient (proportional control, with a horizon).

    `error = clip(kl / target - 1, -0.2, 0.2)`, `beta <- beta * (1 + error * n_steps / horizon)`.

    Args:
      beta: current coefficient (scalar, or any shape broadcasting with the others).
      kl: the measured KL (e.g. mean of `sequence_kl` over the batch).
      target: the KL the controller steers toward.
      horizon: the controller's horizon, in the same unit as `n_steps`.
      n_steps: how many samples (or steps) this update accounts for.

    Returns:
      The new beta. Pure `jnp`: vmap over targets (or any argument) freely.
    """
    error = jnp.clip(jnp.asarray(kl) / target - 1.0, -0.2, 0.2)
    return jnp.asarray(beta) * (1.0 + error * n_steps / horizon)


def step_kl_controller(
    state: KLController,
    kl: jax.Array | float,
    target: jax.Array | float,
    horizon: jax.Array | float,
    n_steps: jax.Array | float,
) -> KLController:
    """`KLController` -> `KLController` with `beta` updated by `update_kl_controller`."""
    return KLController(update_kl_controller(state.beta, kl, target, horizon, n_steps))
