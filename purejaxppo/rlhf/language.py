"""A synthetic language for RLHF in miniature: prompts, a "pretraining" corpus and a hidden
gold preference over completions.

Notation used across `purejaxppo.rlhf`: `B` batch, `P = prompt_len`, `C = max_completion_len`,
`T = P + 1 + C` the full sequence length, `V = vocab_size`. A sequence is laid out as

    [ prompt (P tokens) | sep | completion (C tokens) ]

Token ids: `pad = 0`, `sep = 1` (the beginning of the answer), `end = 2`; ids `3 .. V-1` are
content tokens. Prompts are content tokens only. A completion is content tokens, then one `end`
token, then `pad` up to `C`; a sampled completion that reaches `C` tokens without `end` is cut
by the length limit.

The corpus ("pretraining" data) copies the prompt with noise: completion token `i` is the
prompt token `i mod P` with probability `copy_prob`, otherwise a uniformly random content token;
its length (content tokens before `end`) is uniform on `[min_completion_len, C - 1]`.

The gold preference (`gold_score`) is hidden: only the dataset generator and the evaluation
call it, never the policy or the reward model. Kinds (`LanguageConfig.gold`):

- `"match"` (default): the number of completion tokens equal to the prompt's first token (the
  "topic"). Depends on the prompt, so a reward model has to relate the answer to the question.
- `"count"`: the number of completion tokens equal to `gold_target`.
- `"ascending"`: the number of adjacent content-token pairs `c_i < c_{i+1}` (an ordering).
  Grows with the content length `L` (at most `L - 1`), so a longer answer can only gain.
- `"ascending_fraction"`: the same rising pairs divided by the pairs there are,
  `rising / max(1, L - 1)`, in `[0, 1]` (0 for `L <= 1`). Not monotone in length: its
  optimum, 1, is any strictly rising answer of 2 to `num_content` tokens (a longer one must
  fall somewhere, as there are only `num_content` content tokens), a longer answer scores
  lower whenever it adds a falling pair (`3 5 9` scores 1, `3 5 9 4` scores 2/3), and adding
  a rising pair to a not-all-rising answer raises the score by less than it would under
  `ascending`. Length is not gold here: a policy gains only by ordering its tokens better.
- `"net_ascending"`: rising minus falling adjacent content pairs (ties count 0), a count like
  `ascending` but not monotone in length: an unordered answer's expected score is 0 at every
  length, and a longer answer gains only by rising more than it falls (`3 5 9` scores 2,
  `3 5 9 4` scores 1). Its best answers rise throughout, so the optimum still lengthens up to
  `num_content` tokens. The shipped reward model reads it poorly (held-out accuracy 0.62 at
  8 tokens, 0.51-0.52 at 32; docs/rlhf.md, "When length is not gold").

Only tokens up to the first `end` (excluded; it is not content) count.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

GOLD_KINDS = ("match", "count", "ascending", "ascending_fraction", "net_ascending")


@dataclasses.dataclass(frozen=True)
class LanguageConfig:
    """Static description of the language (hashable: shapes and loop lengths depend on it)."""

    vocab_size: int = 16
    prompt_len: int = 4
    max_completion_len: int = 8
    pad_id: int = 0
    sep_id: int = 1
    end_id: int = 2
    copy_prob: float = 0.5
    min_completion_len: int = 1
    gold: str = "match"
    gold_target: int = 3

    def __post_init__(self) -> None:
        if {self.pad_id, self.sep_id, self.end_id} != {0, 1, 2}:
            raise ValueError("pad_id, sep_id and end_id must be 0, 1 and 2 in some order")
        if self.vocab_size < 5:
            raise ValueError(f"vocab_size must be >= 5 (2 content tokens), got {self.vocab_size}")
        if self.prompt_len < 1 or self.max_completion_len < 2:
            raise ValueError("prompt_len must be >= 1 and max_completion_len >= 2")
        if not 1 <= self.min_completion_len <= self.max_completion_len - 1:
            raise ValueError("min_completion_len must be in [1, max_completion_len - 1]")
        if not 0.0 <= self.copy_prob <= 1.0:
            raise ValueError(f"copy_prob must be in [0, 1], got {self.copy_prob}")
        if self.gold not in GOLD_KINDS:
            raise ValueError(f"gold must be one of {GOLD_KINDS}, got {self.gold!r}")
        if not self.first_content_id <= self.gold_target < self.vocab_size:
            raise ValueError(f"gold_target must be a content token id, got {self.gold_target}")

    @property
    def first_content_id(self) -> int:
        return 3

    @property
    def num_content(self) -> int:
        return self.vocab_size - self.first_content_id

    @property
    def seq_len(self) -> int:
        """`T = P + 1 + C`."""
        return self.prompt_len + 1 + self.max_completion_len

    @property
    def completion_start(self) -> int:
        """Index of the first completion token in a full sequence (`P + 1`)."""
        return self.prompt_len + 1


def sample_prompts(key: jax.Array, cfg: LanguageConfig, batch: int) -> jax.Array:
    """`[B, P]` int32 prompts of uniformly random content tokens."""
    return jax.random.randint(
        key, (batch, cfg.prompt_len), cfg.first_content_id, cfg.vocab_size, dtype=jnp.int32
    )


def join(cfg: LanguageConfig, prompts: jax.Array, completions: jax.Array) -> jax.Array:
    """`[B, P]` prompts and `[B, C]` completions into `[B, T]` sequences (sep between)."""
    sep = jnp.full((prompts.shape[0], 1), cfg.sep_id, dtype=jnp.int32)
    return jnp.concatenate([prompts.astype(jnp.int32), sep, completions.astype(jnp.int32)], 1)


def split(cfg: LanguageConfig, sequences: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`[B, T]` sequences into `([B, P] prompts, [B, C] completions)`."""
    return sequences[:, : cfg.prompt_len], sequences[:, cfg.completion_start :]


def completion_mask(completions: jax.Array, end_id: int) -> jax.Array:
    """`[B, C]` float32: 1 for every completion token up to and including the first `end`,
    0 after it (a completion without `end` is all ones: cut by the length limit)."""
    is_end = (completions == end_id).astype(jnp.int32)
    ended_before = (jnp.cumsum(is_end, axis=-1) - is_end) > 0
    return jnp.logical_not(ended_before).astype(jnp.float32)


def content_mask(completions: jax.Array, end_id: int) -> jax.Array:
    """`[B, C]` float32: 1 for the content tokens before the first `end` (end excluded)."""
    before_end = jnp.cumsum((completions == end_id).astype(jnp.int32), axis=-1) == 0
    return before_end.astype(jnp.float32)


def sequence_mask(cfg: LanguageConfig, sequences: jax.Array) -> jax.Array:
    """`[B, T]` float32: 1 for the prompt, the sep and the completion through its first
    `end`; 0 for the padding after it."""
    _, completions = split(cfg, sequences)
    head = jnp.ones((sequences.shape[0], cfg.completion_start), jnp.float32)
    return jnp.concatenate([head, completion_mask(completions, cfg.end_id)], axis=1)


def last_token_index(mask: jax.Array) -> jax.Array:
    """`[B]` int32: index of the last 1 of a `[B, T]` prefix mask (`sum - 1`)."""
    return jnp.sum(mask, axis=-1).astype(jnp.int32) - 1


def completion_lengths(cfg: LanguageConfig, completions: jax.Array) -> jax.Array:
    """`[B]` int32: number of completion tokens, the `end` token included."""
    return jnp.sum(completion_mask(completions, cfg.end_id), axis=-1).astype(jnp.int32)


def content_lengths(cfg: LanguageConfig, sequences: jax.Array) -> jax.Array:
    """`[B]` int32: content tokens of `[B, T]` sequences' completions before the first `end`
    (`0 .. C`; `C` when the length limit cut the completion)."""
    _, completions = split(cfg, sequences)
    return jnp.sum(content_mask(completions, cfg.end_id), axis=-1).astype(jnp.int32)


def sample_corpus(key: jax.Array, cfg: LanguageConfig, batch: int) -> jax.Array:
    """`[B, T]` int32 sequences of the pretraining distribution (see the module docstring)."""
    k_prompt, k_copy, k_noise, k_len = jax.random.split(key, 4)
    prompts = sample_prompts(k_prompt, cfg, batch)
    c = cfg.max_completion_len
    positions = jnp.arange(c)
    copied = prompts[:, positions % cfg.prompt_len]  # [B, C]
    noise = jax.random.randint(k_noise, (batch, c), cfg.first_content_id, cfg.vocab_size)
    copy = jax.random.bernoulli(k_copy, cfg.copy_prob, (batch, c))
    content = jnp.where(copy, copied, noise).astype(jnp.int32)
    lengths = jax.random.randint(k_len, (batch, 1), cfg.min_completion_len, c)  # in [min, C-1]
    completions = jnp.where(
        positions < lengths, content, jnp.where(positions == lengths, cfg.end_id, cfg.pad_id)
    ).astype(jnp.int32)
    return join(cfg, prompts, completions)


def gold_score(cfg: LanguageConfig, prompts: jax.Array, completions: jax.Array) -> jax.Array:
    """The hidden gold preference: `[B, P]` prompts, `[B, C]` completions -> `[B]` float32.

    Never called by the policy or the reward model; see the module docstring for the kinds.
    """
    content = content_mask(completions, cfg.end_id)
    if cfg.gold == "match":
        hits = (completions == prompts[:, :1]).astype(jnp.float32)
        return jnp.sum(hits * content, axis=-1)
    if cfg.gold == "count":
        hits = (completions == cfg.gold_target).astype(jnp.float32)
        return jnp.sum(hits * content, axis=-1)
    # ascending(_fraction), net_ascending: both tokens of the pair are content tokens
    rising = (completions[:, 1:] > completions[:, :-1]).astype(jnp.float32)
    count = jnp.sum(rising * content[:, 1:], axis=-1)
    if cfg.gold == "ascending":
        return count
    if cfg.gold == "net_ascending":
        falling = (completions[:, 1:] < completions[:, :-1]).astype(jnp.float32)
        return count - jnp.sum(falling * content[:, 1:], axis=-1)
    pairs = jnp.sum(content, axis=-1) - 1.0  # L - 1 adjacent content pairs
    return count / jnp.maximum(pairs, 1.0)


def gold_score_sequences(cfg: LanguageConfig, sequences: jax.Array) -> jax.Array:
    """`gold_score` of `[B, T]` full sequences -> `[B]`."""
    prompts, completions = split(cfg, sequences)
    return gold_score(cfg, prompts, completions)
