"""Reward shaping for RLHF PPO: per-token rewards, token-level GAE, adaptive KL controller."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo.rlhf.shaping import (
    KLController,
    last_token_onehot,
    sequence_kl,
    step_kl_controller,
    token_gae,
    token_rewards,
    update_kl_controller,
)

# Three completions of C = 4: lengths 2, 4 (no end token: all real) and 1.
MASK = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], np.float32)
LOGP = np.array(
    [[-1.0, -0.5, -9.0, -9.0], [-0.2, -0.3, -0.4, -0.5], [-2.0, -7.0, -7.0, -7.0]], np.float32
)
REF = np.array(
    [[-1.5, -0.25, -1.0, -1.0], [-0.2, -0.1, -0.9, -0.5], [-1.0, -1.0, -1.0, -1.0]], np.float32
)
SCORE = np.array([3.0, -2.0, 0.5], np.float32)


def test_last_token_onehot():
    expected = np.array([[0, 1, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0]], np.float32)
    np.testing.assert_array_equal(last_token_onehot(jnp.asarray(MASK)), expected)
    assert float(jnp.sum(last_token_onehot(jnp.zeros((1, 4))))) == 0.0


def test_token_rewards_placement():
    beta = 0.1
    out = token_rewards(LOGP, REF, MASK, SCORE, beta)
    diff = LOGP - REF
    expected = -beta * diff * MASK
    expected[0, 1] += 3.0
    expected[1, 3] += -2.0
    expected[2, 0] += 0.5
    np.testing.assert_allclose(out.rewards, expected, rtol=1e-6, atol=1e-6)
    # nothing after the end token, even where the log-probs are junk
    assert np.all(np.asarray(out.rewards)[MASK == 0] == 0.0)
    # the score lands exactly once per row, at the last real token
    np.testing.assert_allclose(
        np.sum(out.rewards, axis=1) + beta * np.sum(diff * MASK, axis=1), SCORE, rtol=1e-6
    )
    # beta = 0: only the score remains
    zero = token_rewards(LOGP, REF, MASK, SCORE, 0.0).rewards
    np.testing.assert_allclose(zero, last_token_onehot(jnp.asarray(MASK)) * SCORE[:, None])


def test_sequence_kl():
    expected = np.array([0.5 - 0.25, 0.0 - 0.2 + 0.5 + 0.0, -1.0], np.float32)
    np.testing.assert_allclose(sequence_kl(LOGP, REF, MASK), expected, rtol=1e-6)
    np.testing.assert_allclose(token_rewards(LOGP, REF, MASK, SCORE, 0.3).kl, expected, rtol=1e-6)


def _gae_loop(rewards, values, mask, gamma, lam):
    """Plain Python reference: each row is one episode ending at its last real token."""
    batch, length = rewards.shape
    adv = np.zeros((batch, length))
    for b in range(batch):
        n = int(mask[b].sum())
        running = 0.0
        for t in reversed(range(n)):
            next_value = values[b, t + 1] if t + 1 < n else 0.0
            delta = rewards[b, t] + gamma * next_value - values[b, t]
            running = delta + gamma * lam * running
            adv[b, t] = running
    ret = (adv + values) * mask
    return adv, ret


def test_token_gae_matches_loop():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=MASK.shape).astype(np.float32)
    values = rng.normal(size=MASK.shape).astype(np.float32)
    adv, ret = token_gae(rewards, values, MASK, 1.0, 0.95)
    ref_adv, ref_ret = _gae_loop(rewards, values, MASK, 1.0, 0.95)
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret, ref_ret, rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(adv)[MASK == 0] == 0.0)
    assert np.all(np.asarray(ret)[MASK == 0] == 0.0)
    # junk in the masked tail changes nothing
    junk_r = np.where(MASK > 0, rewards, 100.0)
    junk_v = np.where(MASK > 0, values, -50.0)
    adv2, ret2 = token_gae(junk_r, junk_v, MASK, 1.0, 0.95)
    np.testing.assert_allclose(adv2, adv, rtol=1e-6)
    np.testing.assert_allclose(ret2, ret, rtol=1e-6)
    # gamma < 1 too
    adv3, _ = token_gae(rewards, values, MASK, 0.9, 0.8)
    np.testing.assert_allclose(adv3, _gae_loop(rewards, values, MASK, 0.9, 0.8)[0], atol=1e-5)


def test_token_gae_lambda_one_is_reward_to_go():
    rewards = np.array([[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 0.0, 0.0]], np.float32)
    values = np.array([[0.1, 0.2, 0.3, 0.4], [1.0, 2.0, 5.0, 5.0]], np.float32)
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], np.float32)
    adv, ret = token_gae(rewards, values, mask, 1.0, 1.0)
    to_go = np.array([[10.0, 9.0, 7.0, 4.0], [-0.5, -1.0, 0.0, 0.0]], np.float32)
    np.testing.assert_allclose(adv, (to_go - values) * mask, rtol=1e-6)
    np.testing.assert_allclose(ret, to_go, rtol=1e-6)


def test_shaping_jits():
    rewards = jax.jit(lambda *a: token_rewards(*a).rewards)(LOGP, REF, MASK, SCORE, 0.1)
    adv, _ = jax.jit(token_gae)(rewards, jnp.zeros_like(rewards), MASK, 1.0, 0.95)
    assert adv.shape == MASK.shape


@pytest.mark.parametrize(
    ("kl", "error"),
    [(9.0, 0.2), (7.0, 1.0 / 6.0), (6.6, 0.1), (5.4, -0.1), (0.0, -0.2)],
)
def test_kl_controller(kl, error):
    # target 6, n_steps / horizon = 0.5 / 10; error = clip(kl / 6 - 1, -0.2, 0.2)
    factor = error * 0.5 / 10.0
    beta = update_kl_controller(0.1, kl, 6.0, 10.0, 0.5)
    np.testing.assert_allclose(beta, 0.1 * (1 + factor), rtol=1e-6)


def test_kl_controller_direction_and_scaling():
    assert float(update_kl_controller(0.1, 8.0, 6.0, 100.0, 10.0)) > 0.1
    assert float(update_kl_controller(0.1, 4.0, 6.0, 100.0, 10.0)) < 0.1
    assert float(update_kl_controller(0.1, 6.0, 6.0, 100.0, 10.0)) == pytest.approx(0.1)
    # huge KL: clipped at +20 % of n_steps / horizon
    np.testing.assert_allclose(update_kl_controller(0.1, 1e6, 6.0, 1.0, 1.0), 0.12, rtol=1e-6)
    np.testing.assert_allclose(update_kl_controller(0.1, 0.0, 6.0, 1.0, 1.0), 0.08, rtol=1e-6)
    # the step is linear in n_steps / horizon
    d1 = float(update_kl_controller(1.0, 6.6, 6.0, 100.0, 10.0)) - 1.0
    d2 = float(update_kl_controller(1.0, 6.6, 6.0, 100.0, 20.0)) - 1.0
    d3 = float(update_kl_controller(1.0, 6.6, 6.0, 200.0, 20.0)) - 1.0
    np.testing.assert_allclose([d1, d2, d3], [0.01, 0.02, 0.01], rtol=1e-5)


def test_kl_controller_vmaps_over_targets():
    targets = jnp.array([1.0, 3.0, 6.0, 100.0])
    state = KLController(jnp.full((4,), 0.1))
    new = jax.jit(jax.vmap(step_kl_controller, in_axes=(0, None, 0, None, None)))(
        state, 6.0, targets, 10.0, 1.0
    )
    expected = [0.1 * (1 + 0.2 / 10), 0.1 * (1 + 0.2 / 10), 0.1, 0.1 * (1 - 0.2 / 10)]
    np.testing.assert_allclose(new.beta, expected, rtol=1e-6)
    # repeated updates converge in direction: beta keeps rising while kl stays above target
    betas = [0.1]
    for _ in range(3):
        betas.append(float(update_kl_controller(betas[-1], 10.0, 6.0, 10.0, 1.0)))
    assert betas == sorted(betas) and betas[-1] > betas[0]
