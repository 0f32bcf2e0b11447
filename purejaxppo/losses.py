"""PPO loss pieces: clipped surrogate, KL-penalty surrogate, (clipped) value loss,
entropy, KL estimates, the adaptive KL coefficient.

All functions are pure and take flat minibatch arrays `[B]`; `mask` `[B]` (1 = the
step counts, 0 = it does not: steps after a `group`-mode episode ended) turns every
mean into a mean over the counted steps. A non-negative weight works the same way
(`sum(w x) / sum(w)`): `group_aggregation: sequence_mean` passes `1 / |o_i|`-style
weights (`purejaxppo.gae.sequence_weights`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.gae import divide_by_spread


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


def masked_normalize(x: jax.Array, mask: jax.Array, eps: float = 1e-8) -> jax.Array:
    """`(x - mean) / (std + eps)` over the steps where `mask > 0` (any shape, `mask` like
    `x`; a weight counts as 1), 0 elsewhere. A minibatch whose counted values tie (std 0
    up to float32 rounding) is only centred (`divide_by_spread`), and one with no counted
    step is all 0."""
    counted = (mask > 0).astype(x.dtype)
    centred = counted * (x - masked_mean(x, counted))
    spread = jnp.sqrt(masked_mean(centred**2, counted))
    magnitude = jnp.max(jnp.abs(counted * x))
    return divide_by_spread(centred, spread, magnitude, eps)


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
    mask: jax.Array | None = None,
) -> jax.Array:
    """`0.5 * mean((V - R)^2)`; with `clip`, the PPO2 pessimistic clipped variant; with a
    `mask` (same shape), the mean over the counted elements (`masked_mean`)."""
    squared = jnp.square(value - returns)
    if clip:
        clipped_value = old_value + jnp.clip(value - old_value, -clip_eps, clip_eps)
        squared = jnp.maximum(squared, jnp.square(clipped_value - returns))
    return 0.5 * masked_mean(squared, mask)


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


def masked_mean(x: jax.Array, mask: jax.Array | None) -> jax.Array:
    """`mean(x)`, or `sum(mask * x) / sum(mask)` (0 when nothing counts) with a mask."""
    if mask is None:
        return jnp.mean(x)
    return jnp.sum(mask * x) / jnp.maximum(jnp.sum(mask), 1.0)


def k3_kl(log_prob: jax.Array, ref_log_prob: jax.Array) -> jax.Array:
    """Per-sample k3 estimate of KL(pi || pi_ref) from actions drawn by pi:
    `r - log r - 1` with `r = pi_ref(a) / pi(a)` (non-negative, unbiased)."""
    log_r = ref_log_prob - log_prob
    return jnp.exp(log_r) - log_r - 1.0


KL_COEF_MIN = 1e-4
"""Default floor of beta (`HParams.kl_coef_min`)."""
KL_COEF_MAX = 1e4
"""Default ceiling of beta (`HParams.kl_coef_max`)."""


def adapt_kl_coef(
    kl_coef: jax.Array,
    kl: jax.Array,
    kl_target: jax.Array,
    kl_coef_min: jax.Array | float = KL_COEF_MIN,
    kl_coef_max: jax.Array | float = KL_COEF_MAX,
) -> jax.Array:
    """The PPO paper's rule for beta after an update that measured `kl`:
    `kl < target / 1.5` -> beta / 2; `kl > 1.5 * target` -> beta * 2; else unchanged;
    then clipped into `[kl_coef_min, kl_coef_max]`.

    The floor keeps beta from underflowing to 0 after a long stretch of low KL (0 x 2 = 0
    would switch the penalty off for good); from it beta doubles again once the KL rises.
    All arguments are scalars `[]` (or broadcast together).
    """
    halved = jnp.where(kl < kl_target / 1.5, kl_coef * 0.5, kl_coef)
    adapted = jnp.where(kl > kl_target * 1.5, kl_coef * 2.0, halved)
    return jnp.clip(adapted, kl_coef_min, kl_coef_max)


class PolicyTerms(NamedTuple):
    """What the general objective needs of one minibatch `[B]` besides the advantages."""

    log_prob: jax.Array
    old_log_prob: jax.Array
    entropy: jax.Array
    kl: jax.Array  # exact KL per sample in the configured direction (zeros if unused)
    ref_kl: jax.Array  # k3 KL to the reference policy per sample (zeros if unused)


def objective_loss(
    terms: PolicyTerms,
    advantages: jax.Array,
    value_term: jax.Array,
    mask: jax.Array | None,
    objective: str,
    clip_eps: jax.Array,
    kl_coef: jax.Array,
    ent_coef: jax.Array,
    ref_kl_coef: jax.Array,
) -> tuple[jax.Array, LossMetrics, jax.Array]:
    """The policy objectives of the PPO note, masked: `clip` (eq. 23), `kl_penalty`
    (`-mean(r A) + beta KL`, eq. 22) or `clip+kl`, minus the entropy bonus, plus the
    k3 KL to a reference policy and `value_term` (already weighted).

    Returns `(total, LossMetrics, mean exact KL)`.
    """
    log_ratio = terms.log_prob - terms.old_log_prob
    ratio = jnp.exp(log_ratio)
    surrogate = ratio * advantages
    if objective in ("clip", "clip+kl"):
        clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
        surrogate = jnp.minimum(surrogate, clipped)
    policy = -masked_mean(surrogate, mask)
    kl = masked_mean(terms.kl, mask)
    if objective in ("kl_penalty", "clip+kl"):
        policy = policy + kl_coef * kl
    entropy = masked_mean(terms.entropy, mask)
    total = policy + value_term - ent_coef * entropy + ref_kl_coef * masked_mean(terms.ref_kl, mask)
    approx_kl = masked_mean((ratio - 1.0) - log_ratio, mask)
    clip_fraction = masked_mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32), mask)
    metrics = LossMetrics(total, policy, value_term, entropy, approx_kl, clip_fraction)
    return total, metrics, kl
