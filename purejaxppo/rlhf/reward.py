"""The reward model: a preference dataset labelled by the hidden gold score with label noise,
the Bradley–Terry loss, training, and held-out pairwise accuracy.

Pairs are two completions sampled from a policy (normally the SFT reference) for the same
prompt. The pair is ordered by the gold score, then the order is flipped with probability
`flip_prob` (label noise). Pairs whose gold scores tie carry `valid = 0`: they are kept (fixed
shapes) but weigh nothing in the loss and are not counted in the accuracy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejaxppo.rlhf.language import (
    LanguageConfig,
    content_lengths,
    gold_score_sequences,
    sample_prompts,
    sequence_mask,
)
from purejaxppo.rlhf.models import LogitsFn, Params, ScoreFn
from purejaxppo.rlhf.sampling import sample_completions
from purejaxppo.rlhf.sft import make_optimizer


class PreferenceData(NamedTuple):
    """`N` (prompt, chosen, rejected) triples; the prompt is the head of both sequences."""

    chosen: jax.Array  # [N, T] int32: the sequence labelled as preferred (after label noise)
    rejected: jax.Array  # [N, T] int32
    valid: jax.Array  # [N] float32: 1 if the two gold scores differ, 0 for a tie
    gold_chosen: jax.Array  # [N] float32: gold score of `chosen` (for evaluation only)
    gold_rejected: jax.Array  # [N] float32


class RewardCarry(NamedTuple):
    """Carry of the reward-model training scan."""

    params: Params
    opt_state: optax.OptState


class RewardOutput(NamedTuple):
    """What `train_reward` returns."""

    params: Params
    losses: jax.Array  # [steps] float32: Bradley–Terry loss of each minibatch


def bt_loss(
    score_chosen: jax.Array, score_rejected: jax.Array, weight: jax.Array | None = None
) -> jax.Array:
    """Bradley–Terry: `-mean(log sigmoid(s_c - s_r))` over `[B]` scores (a `[B]` `weight`
    turns the mean into a weighted mean)."""
    log_lik = jax.nn.log_sigmoid(score_chosen - score_rejected)
    if weight is None:
        return -jnp.mean(log_lik)
    return -jnp.sum(weight * log_lik) / jnp.maximum(jnp.sum(weight), 1.0)


def make_preference_data(
    key: jax.Array,
    lang: LanguageConfig,
    logits_fn: LogitsFn,
    policy_params: Params,
    num_pairs: int,
    flip_prob: jax.Array | float,
) -> PreferenceData:
    """`num_pairs` triples from two samples of the policy per fresh prompt, labelled by the
    gold score, each label flipped with probability `flip_prob`."""
    k_prompt, k_a, k_b, k_flip = jax.random.split(key, 4)
    prompts = sample_prompts(k_prompt, lang, num_pairs)  # [N, P]
    seq_a = sample_completions(k_a, logits_fn, policy_params, lang, prompts).sequences
    seq_b = sample_completions(k_b, logits_fn, policy_params, lang, prompts).sequences
    gold_a = gold_score_sequences(lang, seq_a)  # [N]
    gold_b = gold_score_sequences(lang, seq_b)
    flip = jax.random.bernoulli(k_flip, flip_prob, (num_pairs,))
    a_first = jnp.logical_xor(gold_a > gold_b, flip)  # [N]
    pick = a_first[:, None]
    return PreferenceData(
        chosen=jnp.where(pick, seq_a, seq_b),
        rejected=jnp.where(pick, seq_b, seq_a),
        valid=(gold_a != gold_b).astype(jnp.float32),
        gold_chosen=jnp.where(a_first, gold_a, gold_b),
        gold_rejected=jnp.where(a_first, gold_b, gold_a),
    )


def take(data: PreferenceData, index: jax.Array) -> PreferenceData:
    """Rows `index` `[M]` of every field."""
    return PreferenceData(*(field[index] for field in data))


def split_data(data: PreferenceData, num_train: int) -> tuple[PreferenceData, PreferenceData]:
    """The first `num_train` triples and the rest (held out)."""
    first = PreferenceData(*(field[:num_train] for field in data))
    rest = PreferenceData(*(field[num_train:] for field in data))
    return first, rest


def preference_loss(
    score_fn: ScoreFn, params: Params, lang: LanguageConfig, data: PreferenceData
) -> jax.Array:
    """Scalar: `bt_loss` of the model's scores on a batch, ties weighted 0."""
    s_c = score_fn(params, data.chosen, sequence_mask(lang, data.chosen))
    s_r = score_fn(params, data.rejected, sequence_mask(lang, data.rejected))
    return bt_loss(s_c, s_r, data.valid)


def pairwise_accuracy(
    score_fn: ScoreFn, params: Params, lang: LanguageConfig, data: PreferenceData
) -> jax.Array:
    """Scalar: the fraction of non-tied pairs the model orders as the *gold* score does
    (not as the noisy labels do)."""
    s_c = score_fn(params, data.chosen, sequence_mask(lang, data.chosen))
    s_r = score_fn(params, data.rejected, sequence_mask(lang, data.rejected))
    agree = ((s_c > s_r) == (data.gold_chosen > data.gold_rejected)).astype(jnp.float32)
    return _mean_over_valid(agree, data.valid)


def length_rule_accuracy(lang: LanguageConfig, data: PreferenceData) -> jax.Array:
    """Scalar: how well "the longer answer is better" orders the non-tied pairs as the *gold*
    score does (content lengths; a pair of equal lengths counts one half). The accuracy a
    reward model gets by reading length alone: compare `pairwise_accuracy` with it."""
    longer_c = content_lengths(lang, data.chosen)
    longer_r = content_lengths(lang, data.rejected)
    right = (longer_c > longer_r) == (data.gold_chosen > data.gold_rejected)
    agree = jnp.where(longer_c == longer_r, 0.5, right.astype(jnp.float32))
    return _mean_over_valid(agree, data.valid)


def _mean_over_valid(agree: jax.Array, valid: jax.Array) -> jax.Array:
    """Mean of `agree` `[N]` over the non-tied pairs (`valid` 1); 0 when there are none."""
    return jnp.sum(agree * valid) / jnp.maximum(jnp.sum(valid), 1.0)


def _reward_step(
    carry: RewardCarry,
    key: jax.Array,
    score_fn: ScoreFn,
    tx: optax.GradientTransformation,
    lang: LanguageConfig,
    data: PreferenceData,
    batch_size: int,
) -> tuple[RewardCarry, jax.Array]:
    """One Adam step on a minibatch drawn with replacement from `data`."""
    index = jax.random.randint(key, (batch_size,), 0, data.valid.shape[0])
    loss_fn = functools.partial(preference_loss, score_fn, lang=lang, data=take(data, index))
    loss, grads = jax.value_and_grad(loss_fn)(carry.params)
    updates, opt_state = tx.update(grads, carry.opt_state, carry.params)
    return RewardCarry(optax.apply_updates(carry.params, updates), opt_state), loss


def make_train_reward(
    score_fn: ScoreFn, lang: LanguageConfig, steps: int, batch_size: int
) -> Callable[[jax.Array, Params, PreferenceData, jax.Array | float], RewardOutput]:
    """Build `train_reward(key, init_params, data, learning_rate) -> RewardOutput` (pure).

    `score_fn(params, tokens [B, T], mask [B, T]) -> [B]`, e.g. `RewardModel(...).apply`;
    `init_params` e.g. `with_torso_from(init_params(rm, k, lang), sft_params)`.
    """

    def train_reward(
        key: jax.Array, params: Params, data: PreferenceData, learning_rate: jax.Array | float
    ) -> RewardOutput:
        tx = make_optimizer(learning_rate)
        body = functools.partial(
            _reward_step, score_fn=score_fn, tx=tx, lang=lang, data=data, batch_size=batch_size
        )
        carry, losses = jax.lax.scan(
            body, RewardCarry(params, tx.init(params)), jax.random.split(key, steps)
        )
        return RewardOutput(carry.params, losses)

    return train_reward
