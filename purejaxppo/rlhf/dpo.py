"""DPO (Rafailov et al. 2023): the offline arm, trained directly on the preference pairs the
reward model was fitted on, with the SFT policy as the reference. No reward model, no
sampling during training.

Per pair (prompt `x`, chosen `y_w`, rejected `y_l`), with sequence log-probs summed over the
completion tokens (masked up to and including the first `end`):

    loss = -log sigmoid(beta * [(log pi(y_w|x) - log pi_ref(y_w|x))
                                - (log pi(y_l|x) - log pi_ref(y_l|x))])

`beta * (log pi(y|x) - log pi_ref(y|x))` is DPO's implicit reward of `y`; the bracket times
beta is the implicit reward margin. Pairs whose gold scores tie (`valid = 0`) weigh nothing,
as in the reward model's Bradley–Terry loss.

`make_dpo_train(cfg, lm)` returns `dpo_train(key, hparams, frozen) -> RLOutput` with the RL
trainer's contract (`frozen.pairs` holds the training pairs), so `pipeline.population` vmaps
it over `(key, hparams)` — `hparams.dpo_beta`, `learning_rate`, `max_grad_norm` traced — and
evaluates the final policy with the same `evaluate` as PPO and GRPO. One iteration
(`_iteration`, a `lax.scan` body) is one pass over the training pairs in `rl.minibatches`
shuffled minibatches of `train_pairs // minibatches` pairs (the remainder of a pass is left
out), one Adam step each; the member's seed only changes the shuffling (and the monitoring
samples). After each pass, `rl.completions_per_iteration` completions are sampled from fresh
prompts for the metrics only (gold, proxy, KL, length, like the RL arms' per-iteration
metrics); training never sees them, and `tokens` counts 0 sampled training tokens.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from purejaxppo.rlhf.config import RLHFConfig, RLHFHParams
from purejaxppo.rlhf.language import (
    LanguageConfig,
    gold_score_sequences,
    sample_prompts,
    sequence_mask,
)
from purejaxppo.rlhf.models import LogitsFn, Params, ScoreFn
from purejaxppo.rlhf.reward import PreferenceData
from purejaxppo.rlhf.sampling import completion_log_probs, sample_completions
from purejaxppo.rlhf.shaping import KLController, sequence_kl
from purejaxppo.rlhf.trainer import (
    Frozen,
    Learner,
    RLMetrics,
    RLOutput,
    RLState,
    make_optimizer,
)


class DPOLoss(NamedTuple):
    """The DPO loss of a batch of `B` pairs and its diagnostics."""

    loss: jax.Array  # [] weighted mean of -log sigmoid(margin)
    chosen_reward: jax.Array  # [B] beta * (log pi(y_w) - log pi_ref(y_w))
    rejected_reward: jax.Array  # [B] beta * (log pi(y_l) - log pi_ref(y_l))
    margin: jax.Array  # [B] chosen_reward - rejected_reward


class DPOPairs(NamedTuple):
    """Training pairs with the reference's sequence log-probs (fixed: computed once)."""

    chosen: jax.Array  # [N, T] int32
    rejected: jax.Array  # [N, T] int32
    ref_chosen: jax.Array  # [N] log pi_ref(y_w | x)
    ref_rejected: jax.Array  # [N] log pi_ref(y_l | x)
    valid: jax.Array  # [N] float32: 0 for a gold tie (weight 0)


class DPOModels(NamedTuple):
    """The two model functions DPO calls (static): the policy LM, and the reward model for
    the monitoring metrics only."""

    logits_fn: LogitsFn
    score_fn: ScoreFn


class Monitor(NamedTuple):
    """Means over one pass's monitoring samples (metrics only)."""

    proxy_reward: jax.Array
    gold_reward: jax.Array
    kl: jax.Array  # sequence KL(pi || pi_ref), k1 on the samples
    length: jax.Array  # completion tokens, `end` included
    entropy: jax.Array  # mean -log pi per sampled token


def sequence_log_probs(
    logits_fn: LogitsFn, params: Params, lang: LanguageConfig, sequences: jax.Array
) -> jax.Array:
    """`[B, T]` sequences -> `[B]` log pi(completion | prompt): the sum of the completion's
    token log-probs up to and including its first `end` (the restricted policy of
    `purejaxppo.rlhf.sampling`, as sampled)."""
    return jnp.sum(completion_log_probs(logits_fn, params, lang, sequences), axis=-1)


def dpo_loss(
    policy_chosen: jax.Array,
    policy_rejected: jax.Array,
    ref_chosen: jax.Array,
    ref_rejected: jax.Array,
    beta: jax.Array | float,
    weight: jax.Array | None = None,
) -> DPOLoss:
    """DPO on `[B]` sequence log-probs of the policy and the reference; a `[B]` `weight`
    (e.g. `valid`) turns the mean into a weighted mean (all-zero weights give 0)."""
    chosen = beta * (policy_chosen - ref_chosen)
    rejected = beta * (policy_rejected - ref_rejected)
    margin = chosen - rejected
    nll = -jax.nn.log_sigmoid(margin)
    if weight is None:
        loss = jnp.mean(nll)
    else:
        loss = jnp.sum(weight * nll) / jnp.maximum(jnp.sum(weight), 1.0)
    return DPOLoss(loss, chosen, rejected, margin)


def reference_pairs(
    logits_fn: LogitsFn, reference: Params, lang: LanguageConfig, data: PreferenceData
) -> DPOPairs:
    """`data` with the reference's `[N]` sequence log-probs of both completions."""
    return DPOPairs(
        chosen=data.chosen,
        rejected=data.rejected,
        ref_chosen=sequence_log_probs(logits_fn, reference, lang, data.chosen),
        ref_rejected=sequence_log_probs(logits_fn, reference, lang, data.rejected),
        valid=data.valid,
    )


def pair_loss(
    policy: Params, pairs: DPOPairs, beta: jax.Array, logits_fn: LogitsFn, lang: LanguageConfig
) -> tuple[jax.Array, DPOLoss]:
    """`(loss, DPOLoss)` of `policy` on a batch of `[B]` pairs (ties weighted 0)."""
    out = dpo_loss(
        sequence_log_probs(logits_fn, policy, lang, pairs.chosen),
        sequence_log_probs(logits_fn, policy, lang, pairs.rejected),
        pairs.ref_chosen,
        pairs.ref_rejected,
        beta,
        pairs.valid,
    )
    return out.loss, out


def _minibatch_step(
    state: RLState, mb: DPOPairs, hp: RLHFHParams, logits_fn: LogitsFn, lang: LanguageConfig
) -> tuple[RLState, jax.Array]:
    """One clipped Adam step on a minibatch of pairs. Emits `[3]`: loss, mean margin, and
    the share of (non-tied) pairs with a positive margin."""
    grad_fn = jax.grad(pair_loss, has_aux=True)
    grads, out = grad_fn(state.learner.policy, mb, hp.dpo_beta, logits_fn, lang)
    tx = make_optimizer(hp.learning_rate, hp.max_grad_norm)
    updates, opt = tx.update(grads, state.policy_opt, state.learner.policy)
    policy = optax.apply_updates(state.learner.policy, updates)
    n_valid = jnp.maximum(jnp.sum(mb.valid), 1.0)
    accuracy = jnp.sum(mb.valid * (out.margin > 0)) / n_valid
    stats = jnp.stack([out.loss, jnp.sum(mb.valid * out.margin) / n_valid, accuracy])
    return state._replace(learner=state.learner._replace(policy=policy), policy_opt=opt), stats


def _monitor(
    key: jax.Array,
    policy: Params,
    frozen: Frozen,
    models: DPOModels,
    cfg: RLHFConfig,
) -> Monitor:
    """Metrics-only samples of the current policy on `completions_per_iteration` fresh
    prompts."""
    logits_fn, score_fn = models.logits_fn, models.score_fn
    lang = cfg.language
    k_prompt, k_sample = jax.random.split(key)
    prompts = sample_prompts(k_prompt, lang, cfg.rl.completions_per_iteration)
    sample = sample_completions(k_sample, logits_fn, policy, lang, prompts)
    ref_lp = completion_log_probs(logits_fn, frozen.reference, lang, sample.sequences)
    seqs, mask = sample.sequences, sample.mask
    score = score_fn(frozen.reward, seqs, sequence_mask(lang, seqs))
    tokens = jnp.maximum(jnp.sum(mask), 1.0)
    return Monitor(
        proxy_reward=jnp.mean(score),
        gold_reward=jnp.mean(gold_score_sequences(lang, seqs)),
        kl=jnp.mean(sequence_kl(sample.log_probs, ref_lp, mask)),
        length=jnp.mean(jnp.sum(mask, axis=1)),
        entropy=-jnp.sum(sample.log_probs * mask) / tokens,
    )


def _iteration(
    state: RLState,
    key: jax.Array,
    hp: RLHFHParams,
    pairs: DPOPairs,
    frozen: Frozen,
    models: DPOModels,
    cfg: RLHFConfig,
) -> tuple[RLState, RLMetrics]:
    """One shuffled pass over the pairs (`rl.minibatches` steps), then the monitoring
    samples."""
    k_order, k_monitor = jax.random.split(key)
    n = pairs.valid.shape[0]
    size = n // cfg.rl.minibatches
    order = jax.random.permutation(k_order, n)[: cfg.rl.minibatches * size]
    minibatches = jax.tree.map(
        lambda x: x[order].reshape((cfg.rl.minibatches, size, *x.shape[1:])), pairs
    )
    body = functools.partial(_minibatch_step, hp=hp, logits_fn=models.logits_fn, lang=cfg.language)
    state, stats = jax.lax.scan(body, state, minibatches)
    stats = jnp.mean(stats, axis=0)  # [3]
    monitor = _monitor(k_monitor, state.learner.policy, frozen, models, cfg)
    zero = jnp.zeros(())
    metrics = RLMetrics(
        proxy_reward=monitor.proxy_reward,
        gold_reward=monitor.gold_reward,
        kl=monitor.kl,
        kl_coef=state.kl.beta,
        length=monitor.length,
        tokens=zero,  # DPO samples nothing to train on
        policy_loss=stats[0],
        value_loss=zero,
        entropy=monitor.entropy,
        approx_kl=stats[1],  # DPO: the mean implicit reward margin (docs/rlhf.md, run folder)
        clip_fraction=stats[2],  # DPO: the share of pairs with a positive margin
    )
    return state, metrics


def make_dpo_train(
    cfg: RLHFConfig, lm: nn.Module, rm: nn.Module
) -> Callable[[jax.Array, RLHFHParams, Frozen], RLOutput]:
    """Build the pure `dpo_train(key, hparams, frozen) -> RLOutput` (metrics
    `[iterations]`). `frozen.pairs` must hold the training `PreferenceData` (`[N]` pairs);
    the policy starts as `frozen.reference`."""
    models = DPOModels(lm.apply, rm.apply)

    def dpo_train(key: jax.Array, hparams: RLHFHParams, frozen: Frozen) -> RLOutput:
        hparams = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), hparams)
        pairs = reference_pairs(lm.apply, frozen.reference, cfg.language, frozen.pairs)
        tx = make_optimizer(hparams.learning_rate, hparams.max_grad_norm)
        state = RLState(
            Learner(frozen.reference, None),
            tx.init(frozen.reference),
            None,
            KLController(hparams.dpo_beta),
        )
        body = functools.partial(
            _iteration, hp=hparams, pairs=pairs, frozen=frozen, models=models, cfg=cfg
        )
        state, metrics = jax.lax.scan(body, state, jax.random.split(key, cfg.rl.iterations))
        return RLOutput(state, metrics)

    return dpo_train
