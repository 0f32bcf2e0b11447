"""Supervised fitting ("pretraining" / SFT) of a causal LM on the synthetic corpus.

`make_sft(...)` returns one pure function `sft(key, learning_rate) -> SFTOutput`, like the
main trainer's `make_train`: a `lax.scan` over Adam steps, each on a fresh `[B, T]` corpus
batch; `jax.jit` it once, `jax.vmap` it over keys or learning rates. The loss is the mean
negative log-likelihood of the completion tokens (through the first `end`) under the
restricted policy distribution of `sampling.py`; prompts are not modelled (they are uniform).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejaxppo.rlhf.language import LanguageConfig, completion_mask, sample_corpus, split
from purejaxppo.rlhf.models import LogitsFn, Params
from purejaxppo.rlhf.sampling import completion_log_probs


class SFTCarry(NamedTuple):
    """Carry of the SFT scan."""

    params: Params
    opt_state: optax.OptState


class SFTOutput(NamedTuple):
    """What `sft` returns."""

    params: Params
    losses: jax.Array  # [steps] float32: the training loss of each step's batch


def corpus_loss(
    logits_fn: LogitsFn, params: Params, lang: LanguageConfig, sequences: jax.Array
) -> jax.Array:
    """Scalar: mean NLL per completion token of `[B, T]` sequences (masked after `end`)."""
    log_probs = completion_log_probs(logits_fn, params, lang, sequences)  # [B, C]
    _, completions = split(lang, sequences)
    mask = completion_mask(completions, lang.end_id)
    return -jnp.sum(log_probs) / jnp.maximum(jnp.sum(mask), 1.0)


def make_optimizer(learning_rate: jax.Array | float) -> optax.GradientTransformation:
    """Adam with the learning rate in its state (traceable, vmappable)."""
    return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)


def _sft_step(
    carry: SFTCarry,
    key: jax.Array,
    logits_fn: LogitsFn,
    tx: optax.GradientTransformation,
    lang: LanguageConfig,
    batch_size: int,
) -> tuple[SFTCarry, jax.Array]:
    """One Adam step on a fresh corpus batch; emits the batch loss."""
    batch = sample_corpus(key, lang, batch_size)
    loss, grads = jax.value_and_grad(corpus_loss, argnums=1)(logits_fn, carry.params, lang, batch)
    updates, opt_state = tx.update(grads, carry.opt_state, carry.params)
    return SFTCarry(optax.apply_updates(carry.params, updates), opt_state), loss


def make_sft(
    logits_fn: LogitsFn,
    init_fn: Callable[[jax.Array], Params],
    lang: LanguageConfig,
    steps: int,
    batch_size: int,
) -> Callable[[jax.Array, jax.Array | float], SFTOutput]:
    """Build `sft(key, learning_rate) -> SFTOutput` (pure; jit / vmap it).

    Args:
      logits_fn: `(params, tokens [B, T]) -> logits [B, T, V]`, e.g. `TransformerLM(...).apply`.
      init_fn: `key -> params`, e.g. `lambda k: init_params(lm, k, lang)`.
      lang: the language (static).
      steps, batch_size: static loop length and batch size.
    """

    def sft(key: jax.Array, learning_rate: jax.Array | float) -> SFTOutput:
        init_key, data_key = jax.random.split(key)
        params = init_fn(init_key)
        tx = make_optimizer(learning_rate)
        body = functools.partial(
            _sft_step, logits_fn=logits_fn, tx=tx, lang=lang, batch_size=batch_size
        )
        carry = SFTCarry(params, tx.init(params))
        carry, losses = jax.lax.scan(body, carry, jax.random.split(data_key, steps))
        return SFTOutput(carry.params, losses)

    return sft
