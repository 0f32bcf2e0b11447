"""Flax models of RLHF in miniature: a small causal Transformer LM (the policy and its frozen
reference), a reward model and a value head, all on one shared torso.

Shape contracts (`B` batch, `T` sequence length, `V` vocabulary):

- `TransformerLM`: `tokens [B, T] int32 -> logits [B, T, V]`; the logits at position `t`
  predict token `t + 1`, and depend only on tokens `0 .. t` (causal).
- `RewardModel`: `tokens [B, T], mask [B, T] -> score [B]`, a scalar head read at the last
  real token (the last 1 of `mask`; without a mask, the last non-pad token), or averaged /
  summed over the answer's positions (`readout`).
- `ValueModel`: `tokens [B, T] -> values [B, T]`; `values[:, t]` estimates the return from
  the state "tokens `0 .. t` seen", i.e. before token `t + 1` is generated.

Any Flax module (or any function) with the LM contract can stand in for `TransformerLM`: the
rest of `purejaxppo.rlhf` only calls `logits_fn(params, tokens) -> logits`.

The torso is pre-LN with learned positions: `x = embed(tokens) + pos`, then per block
`x += attn(LN(x))` (causal) and `x += MLP(LN(x))`, then a final LN.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from purejaxppo.rlhf.language import LanguageConfig, last_token_index

Params = Any
LogitsFn = Callable[[Params, jax.Array], jax.Array]
"""`logits_fn(params, tokens [B, T] int32) -> logits [B, T, V]` (causal)."""
ScoreFn = Callable[[Params, jax.Array, jax.Array], jax.Array]
"""`score_fn(params, tokens [B, T] int32, mask [B, T]) -> score [B]`."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Static sizes of the Transformer torso (tiny defaults: ~20k parameters)."""

    d_model: int = 32
    num_layers: int = 2
    num_heads: int = 2
    mlp_ratio: int = 4

    def __post_init__(self) -> None:
        for name in ("d_model", "num_layers", "num_heads", "mlp_ratio"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {getattr(self, name)}")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model: must be divisible by num_heads ({self.num_heads}), got {self.d_model}"
            )


class Block(nn.Module):
    """One pre-LN Transformer block: `[B, T, D] -> [B, T, D]`."""

    d_model: int
    num_heads: int
    mlp_ratio: int

    @nn.compact
    def __call__(self, x: jax.Array, attention_mask: jax.Array) -> jax.Array:
        h = nn.LayerNorm(name="ln_attn")(x)
        h = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads, qkv_features=self.d_model, name="attn"
        )(h, h, mask=attention_mask)
        x = x + h
        h = nn.LayerNorm(name="ln_mlp")(x)
        h = nn.Dense(self.mlp_ratio * self.d_model, name="mlp_in")(h)
        h = nn.Dense(self.d_model, name="mlp_out")(nn.gelu(h))
        return x + h


class TransformerTorso(nn.Module):
    """`tokens [B, T] int32 -> hidden [B, T, D]`, causal, pre-LN, learned positions."""

    vocab_size: int
    max_len: int
    config: ModelConfig = ModelConfig()

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        cfg = self.config
        length = tokens.shape[-1]
        if length > self.max_len:
            raise ValueError(f"sequence length {length} > max_len {self.max_len}")
        init = nn.initializers.normal(0.02)
        x = nn.Embed(self.vocab_size, cfg.d_model, embedding_init=init, name="embed")(tokens)
        positions = self.param("positions", init, (self.max_len, cfg.d_model))
        x = x + positions[:length]
        causal = nn.make_causal_mask(tokens)  # [B, 1, T, T]
        for i in range(cfg.num_layers):
            x = Block(cfg.d_model, cfg.num_heads, cfg.mlp_ratio, name=f"block_{i}")(x, causal)
        return nn.LayerNorm(name="ln_final")(x)


class TransformerLM(nn.Module):
    """Causal LM: `tokens [B, T] int32 -> logits [B, T, V]`."""

    vocab_size: int
    max_len: int
    config: ModelConfig = ModelConfig()

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        hidden = TransformerTorso(self.vocab_size, self.max_len, self.config, name="torso")(tokens)
        return nn.Dense(self.vocab_size, name="lm_head")(hidden)


READOUTS = ("last", "mean", "sum")


class RewardModel(nn.Module):
    """`tokens [B, T] int32, mask [B, T] | None -> score [B]`. Without `mask`, every
    non-`pad_id` token is real (pads only trail the sequence).

    `readout`: `last` (default) puts the torso's hidden state at the last real token through a
    scalar head; `mean` / `sum` put every position's hidden state through it and average /
    add the per-position scores over the real tokens from `answer_start` on (the answer's
    tokens through its `end`: a per-token score, read at every answer position). The
    parameters are the same for every readout."""

    vocab_size: int
    max_len: int
    config: ModelConfig = ModelConfig()
    pad_id: int = 0
    readout: str = "last"
    answer_start: int = 0

    @nn.compact
    def __call__(self, tokens: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        hidden = TransformerTorso(self.vocab_size, self.max_len, self.config, name="torso")(tokens)
        if mask is None:
            mask = (tokens != self.pad_id).astype(jnp.float32)
        head = nn.Dense(1, name="score_head")
        if self.readout == "last":
            last = last_token_index(mask)  # [B]
            read = jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]  # [B, D]
            return head(read)[:, 0]
        per_position = head(hidden)[..., 0]  # [B, T]
        counted = mask * (jnp.arange(mask.shape[-1]) >= self.answer_start)  # [B, T]
        total = jnp.sum(per_position * counted, axis=-1)
        if self.readout == "sum":
            return total
        return total / jnp.maximum(jnp.sum(counted, axis=-1), 1.0)


class ValueModel(nn.Module):
    """Token-level critic: `tokens [B, T] int32 -> values [B, T]`."""

    vocab_size: int
    max_len: int
    config: ModelConfig = ModelConfig()

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        hidden = TransformerTorso(self.vocab_size, self.max_len, self.config, name="torso")(tokens)
        return nn.Dense(1, name="value_head")(hidden)[..., 0]


def make_models(
    lang: LanguageConfig, config: ModelConfig = ModelConfig(), readout: str = "last"
) -> tuple[TransformerLM, RewardModel, ValueModel]:
    """The three default modules sized for `lang` (`max_len = T`), the reward model read
    out by `readout` (`RewardModel`; `mean` / `sum` count the answer's tokens, its `end`
    included)."""
    args = (lang.vocab_size, lang.seq_len, config)
    rm = RewardModel(*args, pad_id=lang.pad_id, readout=readout, answer_start=lang.completion_start)
    return TransformerLM(*args), rm, ValueModel(*args)


def init_params(module: nn.Module, key: jax.Array, lang: LanguageConfig) -> Params:
    """Initialise any of the modules on a `[1, T]` dummy sequence."""
    return module.init(key, jnp.zeros((1, lang.seq_len), jnp.int32))


def _shapes(tree: Any) -> Any:
    return jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), tree)


def with_torso_from(params: Params, lm_params: Params) -> Params:
    """`params` (of a reward or value model) with the torso copied from an LM's params: the
    usual RLHF start from the SFT model.

    The copy happens only when both have a submodule `torso` with the same parameter tree
    and shapes (the defaults on one `TransformerTorso` do); otherwise `params` is returned
    unchanged (the model starts from its own init). Shapes are static, so this is decided at
    trace time.
    """
    inner, lm_inner = params.get("params", {}), lm_params.get("params", {})
    if "torso" not in inner or "torso" not in lm_inner:
        return params
    mine, theirs = inner["torso"], lm_inner["torso"]
    if jax.tree.structure(mine) != jax.tree.structure(theirs) or _shapes(mine) != _shapes(theirs):
        return params
    return {**params, "params": {**inner, "torso": theirs}}


def check_models(lang: LanguageConfig, lm: nn.Module, rm: nn.Module, vm: nn.Module) -> None:
    """Check the three modules' shape contracts on a `[2, T]` dummy batch, abstractly (no
    FLOPs): `lm` gives logits `[B, T, V]` with `V = lang.vocab_size`, `rm` a score `[B]`
    (called with tokens and a mask), `vm` values `[B, T]`. Raises one-line `ValueError`."""
    tokens = jax.ShapeDtypeStruct((2, lang.seq_len), jnp.int32)
    mask = jax.ShapeDtypeStruct((2, lang.seq_len), jnp.float32)
    b, t, v = 2, lang.seq_len, lang.vocab_size
    for name, module, args, want, what in (
        ("lm", lm, (tokens,), (b, t, v), "logits [B, T, V] with V = the language's vocab_size"),
        ("rm", rm, (tokens, mask), (b,), "a score [B] from (tokens [B, T], mask [B, T])"),
        ("vm", vm, (tokens,), (b, t), "values [B, T]"),
    ):
        params = jax.eval_shape(module.init, jax.random.key(0), tokens)
        got = jax.eval_shape(module.apply, params, *args)
        shape = getattr(got, "shape", None)
        if shape != want:
            extra = ""
            if name == "lm" and shape is not None and len(shape) == 3 and shape[:2] == (b, t):
                extra = f": its vocabulary has {shape[2]} tokens, the language's vocab_size is {v}"
            raise ValueError(
                f"{name}: {type(module).__name__} maps tokens {(b, t)} to shape {shape}, "
                f"expected {want}, {what}{extra}"
            )
