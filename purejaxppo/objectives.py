"""The objectives around the loss pieces of `losses.py`: the loss of one minibatch per
`objective` and `advantage` mode, the target-KL stop of the minibatch steps, and the
adaptive beta of the KL objectives (pure JAX; `Trainer` in `train.py` calls them).

Shapes: a minibatch here is flat, leaves `[b, ...]` (a recurrent one is replayed and
flattened by the caller first); a batch is `[B, ...]`; everything else is a scalar `[]`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.config import HParams, PPOConfig
from purejaxppo.losses import (
    LossMetrics,
    PolicyTerms,
    adapt_kl_coef,
    k3_kl,
    masked_mean,
    masked_normalize,
    normalize,
    objective_loss,
    ppo_loss,
    value_loss,
)
from purejaxppo.networks import ActorCritic
from purejaxppo.rollout import Batch


class Anchors(NamedTuple):
    """What the loss holds fixed during one update: beta of the KL objectives and the
    reference policy of `group` mode (None otherwise)."""

    kl_coef: jax.Array
    ref_params: Any


def exact_kl(kl_direction: str, new: Any, old: Any) -> jax.Array:
    """Exact per-sample KL between the current and the acting distribution, in the
    configured direction: `new_old` = KL(new || old), `old_new` = KL(old || new)."""
    return new.kl(old) if kl_direction == "new_old" else old.kl(new)


def minibatch_loss(
    config: PPOConfig,
    network: ActorCritic,
    hparams: HParams,
    anchors: Anchors,
    dist: Any,
    value: jax.Array,
    minibatch: Batch,
) -> tuple[jax.Array, LossMetrics]:
    """Loss of one flat minibatch `[b, ...]` from the policy's `dist` and the critic's
    `value` on it: `(total, metrics)`.

    The default (`clip` objective, GAE) is PPO-clip with the value loss and entropy
    bonus (`ppo_loss`); the other objectives and `group` mode take `objective_loss`,
    with beta from `anchors` and, in `group` mode, the k3 KL to the reference policy
    `anchors.ref_params` (none when it is None) in place of the value loss.
    """
    advantages = minibatch.advantages
    if config.normalize_advantages and config.advantage == "gae":
        advantages = normalize(advantages)
    elif config.group_minibatch_normalize and config.advantage == "group":
        advantages = masked_normalize(advantages, minibatch.mask)
    log_prob = dist.log_prob(minibatch.action)
    if config.objective == "clip" and config.advantage == "gae":
        total, metrics = ppo_loss(
            log_prob=log_prob,
            entropy=dist.entropy(),
            value=value,
            old_log_prob=minibatch.log_prob,
            old_value=minibatch.value,
            advantages=advantages,
            returns=minibatch.returns,
            clip_eps=hparams.clip_eps,
            vf_coef=hparams.vf_coef,
            ent_coef=hparams.ent_coef,
            clip_value=config.clip_value_loss,
        )
        return total, metrics
    zeros = jnp.zeros_like(log_prob)
    kl = zeros
    if config.objective != "clip":
        kl = exact_kl(config.kl_direction, dist, minibatch.old_dist)
    ref_kl = zeros
    if config.advantage == "group":
        if anchors.ref_params is not None:
            ref_dist = network.apply(anchors.ref_params, minibatch.obs, method="policy")
            ref_kl = k3_kl(log_prob, ref_dist.log_prob(minibatch.action))
        value_term = jnp.zeros((), jnp.float32)
    else:
        v_loss = value_loss(
            value, minibatch.value, minibatch.returns, hparams.clip_eps, config.clip_value_loss
        )
        value_term = hparams.vf_coef * v_loss
    terms = PolicyTerms(log_prob, minibatch.log_prob, dist.entropy(), kl, ref_kl)
    total, metrics, _ = objective_loss(
        terms,
        advantages,
        value_term,
        minibatch.mask,
        config.objective,
        hparams.clip_eps,
        anchors.kl_coef,
        hparams.ent_coef,
        hparams.ref_kl_coef,
    )
    return total, metrics


# --------------------------------------------------------------------------- target-KL stop
class OptCarry(NamedTuple):
    """Carry of the epoch and minibatch scans.

    `loss_sums` adds up each minibatch's `LossMetrics` in a fixed order, so the
    reported means are bit-identical with and without an outer `vmap` (a
    `jnp.mean` over the stacked `[epochs, minibatches]` values is not) and cost
    no extra loop.
    """

    params: Any
    opt_state: Any
    loss_sums: LossMetrics
    approx_kl_sum: jax.Array  # approximate KL of the steps taken (target-KL stop)
    steps: jax.Array  # int32 minibatch steps taken
    active: jax.Array  # False once `early_stop_kl` was exceeded in this update


def start_carry(params: Any, opt_state: Any) -> OptCarry:
    """The carry before an update's first minibatch step: no losses, no steps, active."""
    zero = jnp.zeros((), jnp.float32)
    return OptCarry(
        params=params,
        opt_state=opt_state,
        loss_sums=LossMetrics(*([zero] * len(LossMetrics._fields))),
        approx_kl_sum=zero,
        steps=jnp.zeros((), jnp.int32),
        active=jnp.ones((), jnp.bool_),
    )


def take_step(carry: OptCarry, approx_kl: jax.Array, early_stop_kl: jax.Array) -> jax.Array:
    """Whether the minibatch step with approximate KL `approx_kl` (measured before the
    step) is taken: not once the mean over the steps taken plus this one exceeds
    `early_stop_kl`, and then no later step of the update either."""
    mean_with_this = (carry.approx_kl_sum + approx_kl) / (carry.steps.astype(jnp.float32) + 1.0)
    return jnp.logical_and(carry.active, jnp.logical_not(mean_with_this > early_stop_kl))


def record_step(
    carry: OptCarry, take: jax.Array, params: Any, opt_state: Any, metrics: LossMetrics
) -> OptCarry:
    """The carry after a minibatch step: `params`/`opt_state` (the caller's choice by
    `take`), and the step's metrics and approximate KL counted only if it was taken."""

    def pick(new: Any, old: Any) -> Any:
        return jax.tree.map(lambda a, b: jnp.where(take, a, b), new, old)

    loss_sums = LossMetrics(*(a + b for a, b in zip(carry.loss_sums, metrics, strict=True)))
    return OptCarry(
        params=params,
        opt_state=opt_state,
        loss_sums=pick(loss_sums, carry.loss_sums),
        approx_kl_sum=pick(carry.approx_kl_sum + metrics.approx_kl, carry.approx_kl_sum),
        steps=carry.steps + take.astype(jnp.int32),
        active=take,
    )


def loss_means(carry: OptCarry, planned: int) -> dict[str, jax.Array]:
    """Each loss metric's mean over the minibatch steps taken. When every planned step ran
    (no target-KL stop) it divides by the static count, as before the stop existed."""
    taken = carry.steps.astype(jnp.float32)
    full = carry.steps == planned
    return {
        name: jnp.where(full, total / planned, total / jnp.maximum(taken, 1.0))
        for name, total in carry.loss_sums._asdict().items()
    }


# --------------------------------------------------------------------------- adaptive beta
def next_kl_coef(
    kl_direction: str, kl_coef: jax.Array, hparams: HParams, new: Any, batch: Batch
) -> tuple[jax.Array, jax.Array]:
    """`(beta for the next update, measured KL)` of a KL objective: the exact KL between
    the rollout policy (`batch.old_dist`) and the updated one `new` over the whole batch
    (the PPO paper's `d`), beta adapted by its rule into `[kl_coef_min, kl_coef_max]`."""
    per_sample = exact_kl(kl_direction, new, batch.old_dist)
    kl = masked_mean(per_sample, batch.mask)
    beta = adapt_kl_coef(kl_coef, kl, hparams.kl_target, hparams.kl_coef_min, hparams.kl_coef_max)
    return beta, kl
