"""Pure functions of any causal LM `logits_fn(params, tokens [B, T]) -> logits [B, T, V]`:
the policy's per-token log-probabilities of completions, and sampling completions inside a
`lax.scan`.

The policy's distribution is the LM's softmax restricted to the tokens a completion may hold
(content tokens and `end`; never `pad` or `sep`): `restrict_logits` is applied both when
sampling and when scoring, so the log-probs of the two agree (PPO's ratio needs that).

Completion token `i` (sequence index `P + 1 + i`) is predicted by the logits at sequence index
`P + i`. Completion arrays are `[B, C]`; full sequences `[B, T]`, `T = P + 1 + C`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.rlhf.language import LanguageConfig, completion_mask, join, split
from purejaxppo.rlhf.models import LogitsFn, Params


class Sample(NamedTuple):
    """Sampled completions and what PPO needs of them."""

    sequences: jax.Array  # [B, T] int32: prompt | sep | completion (pad after end)
    log_probs: jax.Array  # [B, C] float32: log pi(token) under the sampling policy; 0 if masked
    mask: jax.Array  # [B, C] float32: 1 through the first end token, 0 after


class SampleCarry(NamedTuple):
    """Carry of the sampling scan."""

    tokens: jax.Array  # [B, T] int32: the sequence so far (pad where not yet sampled)
    done: jax.Array  # [B] bool: the end token has been emitted


class SampleStep(NamedTuple):
    """Per-step output of the sampling scan (stacked to `[C, B]`)."""

    token: jax.Array  # [B] int32
    log_prob: jax.Array  # [B] float32
    alive: jax.Array  # [B] float32: 1 if this token belongs to the completion


def restrict_logits(logits: jax.Array, lang: LanguageConfig) -> jax.Array:
    """`[..., V]` logits with `pad` and `sep` set to -inf (a completion never holds them)."""
    banned = jnp.zeros((lang.vocab_size,), bool).at[jnp.array([lang.pad_id, lang.sep_id])].set(True)
    return jnp.where(banned, -jnp.inf, logits)


def completion_log_softmax(
    logits_fn: LogitsFn, params: Params, lang: LanguageConfig, sequences: jax.Array
) -> jax.Array:
    """`[B, T]` sequences -> `[B, C, V]` log-probabilities of the policy at each completion
    position (restricted to content tokens and `end`; banned tokens hold -inf)."""
    logits = logits_fn(params, sequences)  # [B, T, V]
    start = lang.prompt_len
    step_logits = logits[:, start : start + lang.max_completion_len]  # [B, C, V]
    return jax.nn.log_softmax(restrict_logits(step_logits, lang), axis=-1)


def policy_log_probs(
    logits_fn: LogitsFn, params: Params, lang: LanguageConfig, sequences: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """`[B, T]` sequences -> `(log pi(token) [B, C], entropy [B, C])` of the restricted policy
    at every completion position, unmasked (positions after the first `end` hold junk)."""
    log_softmax = completion_log_softmax(logits_fn, params, lang, sequences)  # [B, C, V]
    _, completions = split(lang, sequences)
    picked = jnp.take_along_axis(log_softmax, completions[..., None], axis=-1)[..., 0]
    probs = jnp.exp(log_softmax)
    # banned tokens hold -inf: mask before multiplying so the gradient stays finite
    finite = jnp.where(probs > 0, log_softmax, 0.0)
    return picked, -jnp.sum(probs * finite, axis=-1)


def completion_log_probs(
    logits_fn: LogitsFn, params: Params, lang: LanguageConfig, sequences: jax.Array
) -> jax.Array:
    """`[B, T]` sequences -> `[B, C]` log pi(completion token), 0 after the first `end`."""
    picked, _ = policy_log_probs(logits_fn, params, lang, sequences)
    mask = completion_mask(split(lang, sequences)[1], lang.end_id)
    return jnp.where(mask > 0, picked, 0.0)


def completion_entropy(
    logits_fn: LogitsFn, params: Params, lang: LanguageConfig, sequences: jax.Array
) -> jax.Array:
    """`[B, T]` sequences -> `[B, C]` entropy of the policy at each completion position
    (0 after the first `end`)."""
    _, entropy = policy_log_probs(logits_fn, params, lang, sequences)
    return entropy * completion_mask(split(lang, sequences)[1], lang.end_id)


def _sample_step(
    carry: SampleCarry,
    xs: tuple[jax.Array, jax.Array],
    logits_fn: LogitsFn,
    params: Params,
    lang: LanguageConfig,
    temperature: jax.Array | float,
) -> tuple[SampleCarry, SampleStep]:
    """Sample completion token `index` for every row still alive (pad for the others)."""
    index, key = xs
    position = lang.prompt_len + index  # logits here predict sequence index position + 1
    logits = logits_fn(params, carry.tokens)  # [B, T, V]
    step_logits = jax.lax.dynamic_index_in_dim(logits, position, axis=1, keepdims=False)
    step_logits = restrict_logits(step_logits, lang) / temperature  # [B, V]
    token = jax.random.categorical(key, step_logits).astype(jnp.int32)
    log_prob = jnp.take_along_axis(jax.nn.log_softmax(step_logits), token[:, None], -1)[:, 0]
    alive = jnp.logical_not(carry.done)
    token = jnp.where(alive, token, lang.pad_id)
    log_prob = jnp.where(alive, log_prob, 0.0)
    tokens = jax.lax.dynamic_update_slice_in_dim(carry.tokens, token[:, None], position + 1, 1)
    done = carry.done | (token == lang.end_id)
    return SampleCarry(tokens, done), SampleStep(token, log_prob, alive.astype(jnp.float32))


def sample_completions(
    key: jax.Array,
    logits_fn: LogitsFn,
    params: Params,
    lang: LanguageConfig,
    prompts: jax.Array,
    temperature: jax.Array | float = 1.0,
) -> Sample:
    """Sample one completion per `[B, P]` prompt, token by token in a `lax.scan` of length
    `C`; a row stops after its first `end` (pad afterwards) or at the length limit.

    Each step runs the LM on the whole `[B, T]` buffer (no KV cache: `T` is tiny).
    """
    batch = prompts.shape[0]
    blank = jnp.full((batch, lang.max_completion_len), lang.pad_id, jnp.int32)
    carry = SampleCarry(join(lang, prompts, blank), jnp.zeros((batch,), bool))
    steps = jnp.arange(lang.max_completion_len)
    keys = jax.random.split(key, lang.max_completion_len)
    body = functools.partial(
        _sample_step, logits_fn=logits_fn, params=params, lang=lang, temperature=temperature
    )
    carry, out = jax.lax.scan(body, carry, (steps, keys))
    return Sample(carry.tokens, out.log_prob.T, out.alive.T)
