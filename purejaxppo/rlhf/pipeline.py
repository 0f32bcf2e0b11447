"""The RLHF pipeline end to end, as pure functions of keys (jit each once):

    prepare(key) -> Prepared         SFT reference, preference data, reward model (+ accuracy)
    population(keys [M], hparams [M], frozen) -> (RLOutput, Evaluation), both with a leading [M]

`make_pipeline(cfg, lm=None, rm=None, vm=None)` builds both for the default tiny Transformer
or for any modules with the shape contracts of `purejaxppo.rlhf.models`.

Evaluation (`evaluate`) samples each final policy and the reference on the same fresh prompts
(a fixed key, the same for every member) and judges them with the gold score: the win rate
counts a tie as half a win.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from purejaxppo.rlhf.config import RLHFConfig, RLHFHParams
from purejaxppo.rlhf.dpo import make_dpo_train
from purejaxppo.rlhf.language import (
    content_lengths,
    gold_score_sequences,
    sample_prompts,
    sequence_mask,
)
from purejaxppo.rlhf.models import (
    Params,
    check_models,
    init_params,
    make_models,
    with_torso_from,
)
from purejaxppo.rlhf.reward import (
    length_rule_accuracy,
    make_preference_data,
    make_train_reward,
    pairwise_accuracy,
    split_data,
)
from purejaxppo.rlhf.sampling import completion_log_probs, sample_completions
from purejaxppo.rlhf.sft import make_sft
from purejaxppo.rlhf.shaping import sequence_kl
from purejaxppo.rlhf.trainer import Frozen, RLOutput, make_rl_train

EVAL_KEY = 20_221_019  # fresh prompts for every evaluation (disjoint use from training keys)


class Prepared(NamedTuple):
    """The stages before RL and their diagnostics."""

    frozen: Frozen
    sft_losses: jax.Array  # [sft.steps]
    reward_losses: jax.Array  # [reward.steps]
    reward_model_accuracy: jax.Array  # held-out pairwise agreement with the gold order
    reward_model_train_accuracy: jax.Array
    length_rule_accuracy: jax.Array  # held-out: "the longer answer wins" against the gold
    preference_ties: jax.Array  # fraction of pairs whose gold scores tie (weight 0)


class Evaluation(NamedTuple):
    """Gold-judged evaluation of one policy against the reference on fresh prompts."""

    gold_reward: jax.Array  # mean gold score of the policy's completions
    gold_reward_reference: jax.Array  # mean gold score of the reference's completions
    proxy_reward: jax.Array  # mean reward-model score of the policy's completions
    proxy_reward_reference: jax.Array
    kl_to_reference: jax.Array  # mean sequence KL(pi || pi_ref), k1 estimate
    win_rate_vs_reference: jax.Array  # P(gold(pi) > gold(ref)) + 0.5 P(tie), same prompts
    length: jax.Array  # mean completion length of the policy (tokens, the `end` included)
    # per evaluation prompt `[E]` (the same prompts for policy and reference), for the
    # length-controlled reading of the gold score (`purejaxppo.rlhf.analysis`):
    gold_per_prompt: jax.Array  # gold score of the policy's completion
    gold_per_prompt_reference: jax.Array  # gold score of the reference's completion
    content_length: jax.Array  # content tokens before the first `end` (int32)
    content_length_reference: jax.Array


class Pipeline(NamedTuple):
    """The pure functions of one configuration (jit each)."""

    prepare: Callable[[jax.Array], Prepared]
    rl_train: Callable[[jax.Array, RLHFHParams, Frozen], RLOutput]
    evaluate: Callable[[Params, Frozen], Evaluation]
    population: Callable[[jax.Array, RLHFHParams, Frozen], tuple[RLOutput, Evaluation]]


def make_pipeline(
    cfg: RLHFConfig,
    lm: nn.Module | None = None,
    rm: nn.Module | None = None,
    vm: nn.Module | None = None,
) -> Pipeline:
    """The pipeline for `cfg`; `lm`, `rm`, `vm` default to `make_models(cfg.language,
    cfg.model, cfg.reward.readout)`. Their shape contracts are checked here (`check_models`,
    abstractly: one `ValueError` naming the model). The reward and value models start from
    the SFT LM's torso when their `torso` submodule has its parameter shapes
    (`with_torso_from`), otherwise from their own init."""
    lang = cfg.language
    default_lm, default_rm, default_vm = make_models(lang, cfg.model, cfg.reward.readout)
    lm, rm, vm = lm or default_lm, rm or default_rm, vm or default_vm
    check_models(lang, lm, rm, vm)
    sft = make_sft(
        lm.apply, lambda k: init_params(lm, k, lang), lang, cfg.sft.steps, cfg.sft.batch_size
    )
    train_reward = make_train_reward(rm.apply, lang, cfg.reward.steps, cfg.reward.batch_size)
    dpo = cfg.rl.algorithm == "dpo"
    rl_train = make_dpo_train(cfg, lm, rm) if dpo else make_rl_train(cfg, lm, rm, vm)

    def prepare(key: jax.Array) -> Prepared:
        k_sft, k_data, k_rm_init, k_rm, k_value = jax.random.split(key, 5)
        sft_out = sft(k_sft, cfg.sft.learning_rate)
        pairs = cfg.reward.train_pairs + cfg.reward.held_out_pairs
        data = make_preference_data(
            k_data, lang, lm.apply, sft_out.params, pairs, cfg.reward.flip_prob
        )
        train, held_out = split_data(data, cfg.reward.train_pairs)
        rm_init = with_torso_from(init_params(rm, k_rm_init, lang), sft_out.params)
        rm_out = train_reward(k_rm, rm_init, train, cfg.reward.learning_rate)
        value_init = with_torso_from(init_params(vm, k_value, lang), sft_out.params)
        return Prepared(
            frozen=Frozen(sft_out.params, rm_out.params, value_init, train if dpo else None),
            sft_losses=sft_out.losses,
            reward_losses=rm_out.losses,
            reward_model_accuracy=pairwise_accuracy(rm.apply, rm_out.params, lang, held_out),
            reward_model_train_accuracy=pairwise_accuracy(rm.apply, rm_out.params, lang, train),
            length_rule_accuracy=length_rule_accuracy(lang, held_out),
            preference_ties=1.0 - jnp.mean(data.valid),
        )

    def evaluate(policy: Params, frozen: Frozen) -> Evaluation:
        k_prompt, k_pol, k_ref = jax.random.split(jax.random.key(EVAL_KEY), 3)
        prompts = sample_prompts(k_prompt, lang, cfg.rl.eval_prompts)
        ours = sample_completions(k_pol, lm.apply, policy, lang, prompts)
        ref = sample_completions(k_ref, lm.apply, frozen.reference, lang, prompts)
        ref_lp = completion_log_probs(lm.apply, frozen.reference, lang, ours.sequences)
        gold, gold_ref = (
            gold_score_sequences(lang, ours.sequences),
            gold_score_sequences(lang, ref.sequences),
        )

        def proxy(seqs: jax.Array) -> jax.Array:
            return jnp.mean(rm.apply(frozen.reward, seqs, sequence_mask(lang, seqs)))

        win = jnp.mean((gold > gold_ref).astype(jnp.float32) + 0.5 * (gold == gold_ref))
        return Evaluation(
            gold_reward=jnp.mean(gold),
            gold_reward_reference=jnp.mean(gold_ref),
            proxy_reward=proxy(ours.sequences),
            proxy_reward_reference=proxy(ref.sequences),
            kl_to_reference=jnp.mean(sequence_kl(ours.log_probs, ref_lp, ours.mask)),
            win_rate_vs_reference=win,
            length=jnp.mean(jnp.sum(ours.mask, axis=1)),
            gold_per_prompt=gold,
            gold_per_prompt_reference=gold_ref,
            content_length=content_lengths(lang, ours.sequences),
            content_length_reference=content_lengths(lang, ref.sequences),
        )

    def member(key: jax.Array, hparams: RLHFHParams, frozen: Frozen) -> tuple[RLOutput, Evaluation]:
        out = rl_train(key, hparams, frozen)
        return out, evaluate(out.state.learner.policy, frozen)

    population = jax.vmap(member, in_axes=(0, 0, None))
    return Pipeline(prepare, rl_train, evaluate, population)


def member_keys(cfg: RLHFConfig, seeds: list[int]) -> jax.Array:
    """`[M]` RL keys: member seed `s` uses `fold_in(key(cfg.seed) -> rl branch, s)`, so a
    member's run does not depend on which other members ran with it."""
    rl_root = jax.random.fold_in(jax.random.key(cfg.seed), 1)
    return jax.vmap(lambda s: jax.random.fold_in(rl_root, s))(jnp.asarray(seeds, jnp.uint32))


def prepare_key(cfg: RLHFConfig) -> jax.Array:
    """The key of the SFT / reward-model stages: `fold_in(key(s), 0)` with `s` =
    `cfg.prepare_seed`, or `cfg.seed` when that is None (the RL keys use `cfg.seed` only)."""
    seed = cfg.seed if cfg.prepare_seed is None else cfg.prepare_seed
    return jax.random.fold_in(jax.random.key(seed), 0)
