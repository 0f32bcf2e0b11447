"""The RL stage of RLHF as one pure function: PPO with a token-level critic, or GRPO.

`make_rl_train(cfg, lm, vm)` returns `rl_train(key, hparams, frozen) -> RLOutput`; jit it
once and vmap it over `(key, hparams)` for a population (the frozen models are shared).

One iteration (a named `lax.scan` body, `_iteration`):

1. Prompts: PPO draws `N` fresh prompts; GRPO draws `N / G` and repeats each `G` times.
2. Completions sampled by the current policy inside `sample_completions`' `lax.scan`,
   with their log-probs `[N, C]` and prefix mask `[N, C]`; the frozen reference's log-probs
   and the reward model's score `[N]` of every sequence.
3. Advantages. PPO: per-token reward `-beta (log pi - log pi_ref)` plus the score at the
   last real token (`shaping.token_rewards`), the value model's `[N, C]` values, token-level
   GAE through `purejaxppo.gae.compute_gae` (`shaping.token_gae`), whitened over the batch's
   real tokens. GRPO: the score normalised within its group (by the mean, and the std unless
   Dr. GRPO), broadcast to every real token; no value model. `rl.kl_placement` swaps
   where the KL sits: `loss` drops PPO's per-token KL reward, `reward` subtracts beta
   times GRPO's sequence k1 from its score before the group normalisation.
4. `epochs` x `minibatches` Adam steps on the clipped loss of `purejaxppo.losses`
   (`objective_loss`), a masked mean over real tokens; GRPO (or `kl_placement: loss`)
   adds `beta * k3(pi, pi_ref)`.
   PPO's value model is fitted to the GAE returns with the clipped value loss.
5. With `rl.adaptive_kl`, beta follows Ziegler et al.'s controller toward `kl_target`
   (`shaping.step_kl_controller`, the batch's mean sequence KL, `N` completions per step).

The gold score is computed on every batch for the metrics only: nothing the policy or its
losses see depends on it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from purejaxppo.gae import group_advantages
from purejaxppo.losses import PolicyTerms, k3_kl, masked_mean, objective_loss, value_loss
from purejaxppo.rlhf.config import RLConfig, RLHFConfig, RLHFHParams
from purejaxppo.rlhf.language import (
    LanguageConfig,
    gold_score_sequences,
    sample_prompts,
    sequence_mask,
)
from purejaxppo.rlhf.models import LogitsFn, Params, ScoreFn
from purejaxppo.rlhf.sampling import Sample, policy_log_probs, sample_completions
from purejaxppo.rlhf.shaping import (
    KLController,
    sequence_kl,
    step_kl_controller,
    token_gae,
    token_rewards,
)

GROUP_EPS = 1e-6  # added to a group's score std before dividing (GRPO)

ValuesFn = Callable[[Params, jax.Array], jax.Array]
"""`values_fn(params, tokens [B, T]) -> values [B, T]`, e.g. `ValueModel(...).apply`."""


class Frozen(NamedTuple):
    """What the RL stage starts from and never changes (shared by a population)."""

    reference: Params  # the SFT policy: the start of the policy and the KL anchor
    reward: Params  # the reward model (the proxy)
    value: Params  # the value model's initial params (PPO; ignored by GRPO)
    pairs: Any = None  # DPO: the training `PreferenceData` (None for PPO and GRPO)


class Learner(NamedTuple):
    """What the RL stage optimises: the policy and (PPO) the value model."""

    policy: Params
    value: Params


class RLState(NamedTuple):
    """Carry of the iteration scan."""

    learner: Learner
    policy_opt: optax.OptState
    value_opt: optax.OptState
    kl: KLController  # beta


class Batch(NamedTuple):
    """One iteration's experience, batch-major (`N` completions)."""

    sequences: jax.Array  # [N, T] int32
    old_log_probs: jax.Array  # [N, C]
    ref_log_probs: jax.Array  # [N, C]
    mask: jax.Array  # [N, C]
    advantages: jax.Array  # [N, C] (0 where mask is 0)
    returns: jax.Array  # [N, C] (PPO; zeros for GRPO)
    old_values: jax.Array  # [N, C] (PPO; zeros for GRPO)


class RLMetrics(NamedTuple):
    """Per-iteration scalars (stacked to `[iterations]` by the scan)."""

    proxy_reward: jax.Array  # mean reward-model score of the batch
    gold_reward: jax.Array  # mean gold score of the batch (metrics only)
    kl: jax.Array  # mean sequence KL(pi || pi_ref), k1 estimate on the samples
    kl_coef: jax.Array  # beta used this iteration
    length: jax.Array  # mean completion length (tokens, end included)
    tokens: jax.Array  # completion tokens sampled this iteration
    policy_loss: jax.Array
    value_loss: jax.Array
    entropy: jax.Array
    approx_kl: jax.Array  # KL(pi_old || pi) of the updates
    clip_fraction: jax.Array


class RLOutput(NamedTuple):
    state: RLState
    metrics: RLMetrics


class Models(NamedTuple):
    """The three model functions the RL stage calls (static)."""

    logits_fn: LogitsFn
    score_fn: ScoreFn
    values_fn: ValuesFn


def make_optimizer(
    learning_rate: jax.Array, max_grad_norm: jax.Array
) -> optax.GradientTransformation:
    """Global-norm clipping then Adam, the learning rate traced in the optimizer state."""
    return optax.chain(
        optax.clip_by_global_norm(max_grad_norm),
        optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate),
    )


def completion_values(
    values_fn: ValuesFn, params: Params, lang: LanguageConfig, sequences: jax.Array
) -> jax.Array:
    """`[B, T]` -> `[B, C]`: value of the state before each completion token (index `P + i`)."""
    values = values_fn(params, sequences)
    return values[:, lang.prompt_len : lang.prompt_len + lang.max_completion_len]


def whiten(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Masked `(x - mean) / std` over the real tokens; 0 where `mask` is 0."""
    mean = masked_mean(x, mask)
    var = masked_mean(jnp.square(x - mean), mask)
    return (x - mean) * jax.lax.rsqrt(var + 1e-8) * mask


def _experience(
    key: jax.Array, state: RLState, hp: RLHFHParams, frozen: Frozen, models: Models, cfg: RLHFConfig
) -> tuple[Batch, jax.Array, jax.Array, jax.Array]:
    """Sample a batch and its advantages. Returns `(batch, score [N], gold [N], kl [N])`."""
    lang, rl = cfg.language, cfg.rl
    k_prompt, k_sample = jax.random.split(key)
    prompts = sample_prompts(k_prompt, lang, rl.prompts_per_iteration)
    prompts = jnp.repeat(prompts, rl.group_size, axis=0)  # [N, P], groups consecutive
    sample: Sample = sample_completions(
        k_sample, models.logits_fn, state.learner.policy, lang, prompts
    )
    seqs, mask = sample.sequences, sample.mask
    ref_lp = jnp.where(
        mask > 0, policy_log_probs(models.logits_fn, frozen.reference, lang, seqs)[0], 0.0
    )
    score = models.score_fn(frozen.reward, seqs, sequence_mask(lang, seqs))  # [N]
    gold = gold_score_sequences(lang, seqs)
    kl = sequence_kl(sample.log_probs, ref_lp, mask)
    beta = state.kl.beta if rl.kl_in_reward else jnp.zeros_like(state.kl.beta)
    rewards = token_rewards(sample.log_probs, ref_lp, mask, score, beta).rewards  # [N, C]
    if rl.algorithm == "ppo":
        values = completion_values(models.values_fn, state.learner.value, lang, seqs) * mask
        advantages, returns = token_gae(rewards, values, mask, hp.gamma, hp.gae_lambda)
        if rl.whiten_advantages:
            advantages = whiten(advantages, mask)
    else:
        shaped = jnp.sum(rewards, axis=1) if rl.kl_in_reward else score  # [N]
        seq_adv = group_advantages(shaped, rl.group_size, rl.group_normalize, eps=GROUP_EPS)
        advantages = seq_adv[:, None] * mask
        returns = values = jnp.zeros_like(mask)
    batch = Batch(seqs, sample.log_probs, ref_lp, mask, advantages, returns, values)
    return batch, score, gold, kl


def _loss(
    learner: Learner, mb: Batch, beta: jax.Array, hp: RLHFHParams, models: Models, cfg: RLHFConfig
) -> tuple[jax.Array, tuple[Any, jax.Array]]:
    """Clipped token-level loss of one minibatch (+ the k3 KL where `rl.kl_placement` puts
    it in the loss, GRPO's by default; + PPO's value loss)."""
    lang, grpo = cfg.language, cfg.rl.algorithm == "grpo"
    kl_in_loss = not cfg.rl.kl_in_reward
    log_prob, entropy = policy_log_probs(models.logits_fn, learner.policy, lang, mb.sequences)
    log_prob = jnp.where(mb.mask > 0, log_prob, 0.0)
    ref_kl = k3_kl(log_prob, mb.ref_log_probs) if kl_in_loss else jnp.zeros_like(log_prob)
    v_loss = jnp.zeros(())
    if not grpo:
        values = completion_values(models.values_fn, learner.value, lang, mb.sequences)
        v_loss = value_loss(values, mb.old_values, mb.returns, hp.clip_eps, True, mb.mask)
    terms = PolicyTerms(log_prob, mb.old_log_probs, entropy, jnp.zeros_like(log_prob), ref_kl)
    total, metrics, _ = objective_loss(
        terms,
        mb.advantages,
        v_loss,
        mb.mask,
        "clip",
        hp.clip_eps,
        jnp.zeros(()),
        hp.ent_coef,
        beta if kl_in_loss else jnp.zeros(()),
    )
    return total, (metrics, v_loss)


def _minibatch_step(
    state: RLState, mb: Batch, hp: RLHFHParams, models: Models, cfg: RLHFConfig
) -> tuple[RLState, jax.Array]:
    """One optimiser step of the policy (and value model). Emits `[5]` loss statistics."""
    grad_fn = jax.grad(_loss, has_aux=True)
    grads, (metrics, v_loss) = grad_fn(state.learner, mb, state.kl.beta, hp, models, cfg)
    policy_tx = make_optimizer(hp.learning_rate, hp.max_grad_norm)
    updates, policy_opt = policy_tx.update(grads.policy, state.policy_opt, state.learner.policy)
    policy = optax.apply_updates(state.learner.policy, updates)
    value, value_opt = state.learner.value, state.value_opt
    if cfg.rl.algorithm == "ppo":
        value_tx = make_optimizer(hp.value_learning_rate, hp.max_grad_norm)
        updates, value_opt = value_tx.update(grads.value, state.value_opt, value)
        value = optax.apply_updates(value, updates)
    stats = jnp.stack(
        [metrics.policy_loss, v_loss, metrics.entropy, metrics.approx_kl, metrics.clip_fraction]
    )
    return state._replace(
        learner=Learner(policy, value), policy_opt=policy_opt, value_opt=value_opt
    ), stats


def _epoch(
    state: RLState, key: jax.Array, batch: Batch, hp: RLHFHParams, models: Models, cfg: RLHFConfig
) -> tuple[RLState, jax.Array]:
    """One pass over the batch in `minibatches` shuffled minibatches of whole completions."""
    rl = cfg.rl
    order = jax.random.permutation(key, rl.completions_per_iteration)
    shape = (rl.minibatches, rl.completions_per_iteration // rl.minibatches)
    minibatches = jax.tree.map(lambda x: x[order].reshape(shape + x.shape[1:]), batch)
    body = functools.partial(_minibatch_step, hp=hp, models=models, cfg=cfg)
    return jax.lax.scan(body, state, minibatches)


def _iteration(
    state: RLState, key: jax.Array, hp: RLHFHParams, frozen: Frozen, models: Models, cfg: RLHFConfig
) -> tuple[RLState, RLMetrics]:
    """Sample, compute advantages, run the epochs, adapt beta."""
    k_exp, k_epochs = jax.random.split(key)
    batch, score, gold, kl = _experience(k_exp, state, hp, frozen, models, cfg)
    beta = state.kl.beta
    body = functools.partial(_epoch, batch=batch, hp=hp, models=models, cfg=cfg)
    state, stats = jax.lax.scan(body, state, jax.random.split(k_epochs, cfg.rl.epochs))
    stats = jnp.mean(stats, axis=(0, 1))  # [5]
    mean_kl = jnp.mean(kl)
    if cfg.rl.adaptive_kl:
        n = jnp.asarray(cfg.rl.completions_per_iteration, jnp.float32)
        state = state._replace(
            kl=step_kl_controller(state.kl, mean_kl, hp.kl_target, hp.kl_horizon, n)
        )
    metrics = RLMetrics(
        proxy_reward=jnp.mean(score),
        gold_reward=jnp.mean(gold),
        kl=mean_kl,
        kl_coef=beta,
        length=jnp.mean(jnp.sum(batch.mask, axis=1)),
        tokens=jnp.sum(batch.mask),
        policy_loss=stats[0],
        value_loss=stats[1],
        entropy=stats[2],
        approx_kl=stats[3],
        clip_fraction=stats[4],
    )
    return state, metrics


def init_rl_state(hp: RLHFHParams, frozen: Frozen, rl: RLConfig) -> RLState:
    """The policy starts as the reference, the value model from `frozen.value`."""
    policy_tx = make_optimizer(hp.learning_rate, hp.max_grad_norm)
    value = frozen.value if rl.algorithm == "ppo" else None
    value_opt = (
        make_optimizer(hp.value_learning_rate, hp.max_grad_norm).init(value)
        if value is not None
        else None
    )
    learner = Learner(frozen.reference, value)
    beta = KLController(jnp.asarray(hp.kl_coef, jnp.float32))
    return RLState(learner, policy_tx.init(frozen.reference), value_opt, beta)


def make_rl_train(
    cfg: RLHFConfig, lm: nn.Module, rm: nn.Module, vm: nn.Module
) -> Callable[[jax.Array, RLHFHParams, Frozen], RLOutput]:
    """Build the pure `rl_train(key, hparams, frozen) -> RLOutput` (metrics `[iterations]`).

    `lm`, `rm`, `vm`: Flax modules (or anything with `.apply`) with the contracts of
    `purejaxppo.rlhf.models` (`tokens [B, T] -> logits [B, T, V]`, `tokens, mask -> [B]`,
    `tokens -> values [B, T]`).
    """
    models = Models(lm.apply, rm.apply, vm.apply)

    def rl_train(key: jax.Array, hparams: RLHFHParams, frozen: Frozen) -> RLOutput:
        hparams = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), hparams)
        state = init_rl_state(hparams, frozen, cfg.rl)
        body = functools.partial(_iteration, hp=hparams, frozen=frozen, models=models, cfg=cfg)
        state, metrics = jax.lax.scan(body, state, jax.random.split(key, cfg.rl.iterations))
        return RLOutput(state, metrics)

    return rl_train
