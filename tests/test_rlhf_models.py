"""Models and sampling of `purejaxppo.rlhf`: shape contracts, causality, the reward model's
read-out, sampling that stops at the end token, log-probs that agree with sampling."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo.rlhf import language as L
from purejaxppo.rlhf import models as M
from purejaxppo.rlhf import sampling as S

LANG = L.LanguageConfig(vocab_size=10, prompt_len=3, max_completion_len=6)
TINY = M.ModelConfig(d_model=16, num_layers=2, num_heads=2)


@pytest.fixture(scope="module")
def models():
    lm, rm, vm = M.make_models(LANG, TINY)
    keys = jax.random.split(jax.random.key(0), 3)
    params = tuple(M.init_params(m, k, LANG) for m, k in zip((lm, rm, vm), keys, strict=True))
    return (_Jitted(lm), _Jitted(rm), _Jitted(vm)), params


class _Jitted:
    """A module whose `apply` is jitted (eager Flax dispatch is slow on a busy CPU)."""

    def __init__(self, module):
        self.apply = jax.jit(module.apply)


def test_shape_contracts(models):
    (lm, rm, vm), (lm_p, rm_p, vm_p) = models
    seq = L.sample_corpus(jax.random.key(1), LANG, 5)
    assert lm.apply(lm_p, seq).shape == (5, LANG.seq_len, LANG.vocab_size)
    assert rm.apply(rm_p, seq, L.sequence_mask(LANG, seq)).shape == (5,)
    assert vm.apply(vm_p, seq).shape == (5, LANG.seq_len)
    assert S.completion_log_probs(lm.apply, lm_p, LANG, seq).shape == (5, LANG.max_completion_len)
    with pytest.raises(ValueError, match="max_len"):
        lm.apply(lm_p, jnp.zeros((1, LANG.seq_len + 1), jnp.int32))


def test_causal_mask_later_tokens_do_not_change_earlier_outputs(models):
    (lm, _, vm), (lm_p, _, vm_p) = models
    seq = L.sample_corpus(jax.random.key(2), LANG, 4)
    changed = seq.at[:, 6].set((seq[:, 6] + 1 - 3) % LANG.num_content + 3)
    for apply, params in ((lm.apply, lm_p), (vm.apply, vm_p)):
        before, after = apply(params, seq), apply(params, changed)
        np.testing.assert_allclose(before[:, :6], after[:, :6], atol=1e-6)
        assert float(jnp.max(jnp.abs(before[:, 6:] - after[:, 6:]))) > 1e-6


def test_reward_model_reads_the_last_real_token(models):
    (_, rm, _), (_, rm_p, _) = models
    seq = L.join(LANG, jnp.array([[3, 4, 5]]), jnp.array([[6, 7, LANG.end_id, 0, 0, 0]]))
    mask = L.sequence_mask(LANG, seq)
    score = rm.apply(rm_p, seq, mask)
    np.testing.assert_allclose(rm.apply(rm_p, seq), score, rtol=1e-6)  # mask from pads
    garbage = seq.at[:, 7:].set(9)  # tokens after the end do not count
    np.testing.assert_allclose(rm.apply(rm_p, garbage, mask), score, rtol=1e-6)
    shorter = mask.at[:, 6].set(0.0)  # reading one token earlier changes the score
    assert abs(float(rm.apply(rm_p, seq, shorter)[0] - score[0])) > 1e-6


@pytest.mark.parametrize("readout", ["mean", "sum"])
def test_reward_model_all_position_readout_by_hand(models, readout):
    """`mean` / `sum` score the answer's tokens (through its `end`) with the same head as
    `last`, per position, and average / add them; the prompt, the sep and the padding after
    the end do not count. Same parameters as `last`."""
    (_, _, _), (_, rm_p, _) = models
    rm = M.make_models(LANG, TINY, readout)[1]
    seq = L.join(LANG, jnp.array([[3, 4, 5]]), jnp.array([[6, 7, LANG.end_id, 0, 0, 0]]))
    mask = L.sequence_mask(LANG, seq)
    hidden = M.TransformerTorso(LANG.vocab_size, LANG.seq_len, TINY).apply(
        {"params": rm_p["params"]["torso"]}, seq
    )
    head = rm_p["params"]["score_head"]
    per_position = (hidden @ head["kernel"])[0, :, 0] + head["bias"][0]  # [T]
    answer = per_position[LANG.completion_start : LANG.completion_start + 3]  # 6, 7, end
    want = answer.mean() if readout == "mean" else answer.sum()
    np.testing.assert_allclose(rm.apply(rm_p, seq, mask)[0], want, rtol=1e-5, atol=1e-6)
    garbage = seq.at[:, LANG.completion_start + 3 :].set(9)  # after the end: not counted
    np.testing.assert_allclose(rm.apply(rm_p, garbage, mask), rm.apply(rm_p, seq, mask), rtol=1e-6)
    prompt = seq.at[:, 0].set(8)  # the prompt changes the answer's hidden states only
    assert abs(float(rm.apply(rm_p, prompt, mask)[0] - want)) > 1e-7


def test_reward_readout_is_checked():
    from purejaxppo.rlhf.config import RewardConfig

    with pytest.raises(ValueError, match=r"^readout: expected one of last, mean, sum, got 'max'"):
        RewardConfig(readout="max")


def test_with_torso_from_copies_the_lm_torso(models):
    _, (lm_p, rm_p, _) = models
    merged = M.with_torso_from(rm_p, lm_p)
    same = jax.tree.map(jnp.array_equal, merged["params"]["torso"], lm_p["params"]["torso"])
    assert all(jax.tree.leaves(same))
    assert "score_head" in merged["params"]


def _forced_end_logits(end_at: int):
    """A fake LM: always token 5, except `end` at completion step `end_at`."""

    def logits_fn(params, tokens):
        del params
        b, t = tokens.shape
        logits = jnp.zeros((b, t, LANG.vocab_size)).at[..., 5].set(10.0)
        return logits.at[:, LANG.prompt_len + end_at, LANG.end_id].set(30.0)

    return logits_fn


def test_sampling_stops_at_the_end_token_and_the_mask_matches():
    prompts = L.sample_prompts(jax.random.key(3), LANG, 4)
    out = S.sample_completions(jax.random.key(4), _forced_end_logits(2), None, LANG, prompts)
    _, completions = L.split(LANG, out.sequences)
    np.testing.assert_array_equal(completions, np.tile([5, 5, LANG.end_id, 0, 0, 0], (4, 1)))
    np.testing.assert_array_equal(out.mask, np.tile([1, 1, 1, 0, 0, 0], (4, 1)))
    np.testing.assert_array_equal(out.log_probs[:, 3:], 0.0)
    np.testing.assert_array_equal(out.sequences[:, : LANG.prompt_len], prompts)


def test_sampling_from_a_random_lm_is_well_formed_and_log_probs_agree(models):
    (lm, _, _), (lm_p, _, _) = models
    prompts = L.sample_prompts(jax.random.key(5), LANG, 64)
    out = S.sample_completions(jax.random.key(6), lm.apply, lm_p, LANG, prompts)
    assert out.sequences.shape == (64, LANG.seq_len)
    assert out.log_probs.shape == out.mask.shape == (64, LANG.max_completion_len)
    _, completions = L.split(LANG, out.sequences)
    np.testing.assert_array_equal(out.mask, L.completion_mask(completions, LANG.end_id))
    alive = out.mask > 0
    assert bool(jnp.all(jnp.where(alive, completions >= LANG.end_id, completions == 0)))
    assert bool(jnp.all(jnp.where(alive, out.log_probs < 0, out.log_probs == 0)))
    assert 0 < float(jnp.mean(jnp.any(completions == LANG.end_id, -1))) < 1  # both endings
    rescored = jax.jit(S.completion_log_probs, static_argnums=(0, 2))(
        lm.apply, lm_p, LANG, out.sequences
    )
    np.testing.assert_allclose(rescored, out.log_probs, atol=1e-5)
    entropy = jax.jit(S.completion_entropy, static_argnums=(0, 2))(
        lm.apply, lm_p, LANG, out.sequences
    )
    assert bool(jnp.all(jnp.where(alive, entropy > 0, entropy == 0)))
    assert float(entropy.max()) <= np.log(LANG.vocab_size - 2) + 1e-5  # pad, sep banned
