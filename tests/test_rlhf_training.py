"""Training pieces of `purejaxppo.rlhf`: the Bradley–Terry loss against its closed form,
supervised fitting on the corpus, and a reward model learnt from noisy preference pairs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo.rlhf import language as L
from purejaxppo.rlhf import models as M
from purejaxppo.rlhf import reward as R
from purejaxppo.rlhf import sft as F

LANG = L.LanguageConfig()  # vocab 16, prompts of 4, completions up to 8, gold "match"
TINY = M.ModelConfig(d_model=32, num_layers=2, num_heads=2)


def test_bt_loss_and_gradient_match_the_closed_form():
    s_c = jnp.array([2.0, -1.0, 0.5, 0.0])
    s_r = jnp.array([1.0, 1.0, 0.5, -3.0])
    margin = np.asarray(s_c - s_r)
    sigmoid = 1.0 / (1.0 + np.exp(-margin))
    expected = -np.mean(np.log(sigmoid))
    np.testing.assert_allclose(R.bt_loss(s_c, s_r), expected, rtol=1e-6)
    assert float(R.bt_loss(jnp.zeros(3), jnp.zeros(3))) == pytest.approx(np.log(2.0))
    g_c, g_r = jax.grad(R.bt_loss, argnums=(0, 1))(s_c, s_r)
    np.testing.assert_allclose(g_c, -(1.0 - sigmoid) / 4, rtol=1e-6)
    np.testing.assert_allclose(g_r, (1.0 - sigmoid) / 4, rtol=1e-6)
    # weights: a weighted mean; weight 0 rows get no gradient
    w = jnp.array([1.0, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(
        R.bt_loss(s_c, s_r, w), -np.log(sigmoid[[0, 2, 3]]).mean(), rtol=1e-6
    )
    g_w = jax.grad(R.bt_loss)(s_c, s_r, w)
    np.testing.assert_allclose(g_w, -(1.0 - sigmoid) * np.asarray(w) / 3, rtol=1e-6)
    # large margins stay finite (log_sigmoid, not log(sigmoid))
    assert np.isfinite(float(R.bt_loss(jnp.array([-200.0]), jnp.array([200.0]))))


@pytest.fixture(scope="module")
def sft_result():
    lm, _, _ = M.make_models(LANG, TINY)
    sft = F.make_sft(lm.apply, lambda k: M.init_params(lm, k, LANG), LANG, steps=150, batch_size=32)
    return lm, jax.jit(sft)(jax.random.key(0), 3e-3)


def test_sft_lowers_the_corpus_loss(sft_result):
    lm, out = sft_result
    assert out.losses.shape == (150,)
    assert bool(jnp.all(jnp.isfinite(out.losses)))
    held_out = L.sample_corpus(jax.random.key(7), LANG, 512)
    init = M.init_params(lm, jax.random.split(jax.random.key(0))[0], LANG)
    loss = jax.jit(F.corpus_loss, static_argnums=(0, 2))
    before = float(loss(lm.apply, init, LANG, held_out))
    after = float(loss(lm.apply, out.params, LANG, held_out))
    assert before > np.log(LANG.vocab_size - 2) - 0.1  # ~uniform over content + end
    assert after < before - 0.6, (before, after)
    assert float(out.losses[-20:].mean()) < float(out.losses[:5].mean()) - 0.6


def test_preference_data_is_labelled_by_gold_with_noise(sft_result):
    lm, out = sft_result
    make = jax.jit(R.make_preference_data, static_argnums=(1, 2, 4))
    clean = make(jax.random.key(1), LANG, lm.apply, out.params, 256, 0.0)
    assert clean.chosen.shape == clean.rejected.shape == (256, LANG.seq_len)
    np.testing.assert_array_equal(clean.chosen[:, : LANG.prompt_len], clean.rejected[:, :4])
    np.testing.assert_array_equal(L.gold_score_sequences(LANG, clean.chosen), clean.gold_chosen)
    valid = clean.valid > 0
    assert 0.3 < float(clean.valid.mean()) < 0.95
    assert bool(jnp.all(jnp.where(valid, clean.gold_chosen > clean.gold_rejected, True)))
    noisy = make(jax.random.key(1), LANG, lm.apply, out.params, 256, 0.3)
    wrong = jnp.sum((noisy.gold_chosen < noisy.gold_rejected) * noisy.valid) / noisy.valid.sum()
    assert 0.15 < float(wrong) < 0.45


@pytest.mark.slow
def test_reward_model_beats_chance_on_held_out_pairs(sft_result):
    """400 noisy pairs (10% flipped, ~60% untied) from the SFT policy; gold "match" needs the
    model to relate the completion to the prompt's first token."""
    lm, out = sft_result
    _, rm, _ = M.make_models(LANG, TINY)
    make = jax.jit(R.make_preference_data, static_argnums=(1, 2, 4))
    data = make(jax.random.key(1), LANG, lm.apply, out.params, 1000, 0.1)
    train, held_out = R.split_data(data, 400)
    init = M.init_params(rm, jax.random.key(2), LANG)
    train_rm = jax.jit(R.make_train_reward(rm.apply, LANG, steps=100, batch_size=64))
    result = train_rm(jax.random.key(3), init, train, 1e-3)
    assert result.losses[-20:].mean() < result.losses[:5].mean()
    accuracy = jax.jit(R.pairwise_accuracy, static_argnums=(0, 2))
    acc = float(accuracy(rm.apply, result.params, LANG, held_out))
    assert acc > 0.6, acc


def test_length_rule_accuracy_orders_pairs_by_content_length():
    """ "The longer answer wins" against the gold order: right, wrong, an equal-length pair
    (one half), and a gold tie (not counted)."""
    end, pad = LANG.end_id, LANG.pad_id
    prompt = [4, 5, 6, 7]

    def seq(content: list[int]) -> list[int]:
        tail = [end] + [pad] * (LANG.max_completion_len - len(content) - 1)
        return prompt + content + tail

    chosen = jnp.array([seq([5, 6, 7]), seq([5]), seq([5, 6]), seq([5, 6, 7])])
    rejected = jnp.array([seq([5]), seq([5, 6, 7]), seq([6, 5]), seq([5])])
    data = R.PreferenceData(
        chosen=chosen,
        rejected=rejected,
        valid=jnp.array([1.0, 1.0, 1.0, 0.0]),  # the last pair's gold ties
        gold_chosen=jnp.array([2.0, 1.0, 1.0, 0.0]),
        gold_rejected=jnp.array([0.0, 0.0, 0.0, 0.0]),
    )
    # pair 1: longer chosen, gold agrees (1); pair 2: longer rejected, gold prefers chosen
    # (0); pair 3: equal lengths (1/2); pair 4: not counted
    got = float(R.length_rule_accuracy(LANG, data))
    assert got == pytest.approx((1.0 + 0.0 + 0.5) / 3)
