"""compute_gae against a plain loop and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo import compute_gae


def loop_gae(rewards, values, next_values, terminated, done, gamma, lam):
    """Reference: the textbook backward loop in float64 numpy."""
    T = rewards.shape[0]
    adv = np.zeros_like(values, dtype=np.float64)
    last = np.zeros_like(values[0], dtype=np.float64)
    for t in reversed(range(T)):
        delta = rewards[t] + gamma * (1.0 - terminated[t]) * next_values[t] - values[t]
        last = delta + gamma * lam * (1.0 - done[t]) * last
        adv[t] = last
    return adv, adv + values


def random_episode_data(seed, T=64, N=5):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(T, N)).astype(np.float32)
    values = rng.normal(size=(T, N)).astype(np.float32)
    next_values = rng.normal(size=(T, N)).astype(np.float32)
    terminated = rng.random((T, N)) < 0.1
    truncated = (rng.random((T, N)) < 0.1) & ~terminated
    return rewards, values, next_values, terminated, terminated | truncated


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("gamma", "lam"), [(0.99, 0.95), (0.9, 0.0), (1.0, 1.0), (0.5, 0.7)])
def test_matches_plain_loop_with_random_masks(seed, gamma, lam):
    r, v, nv, term, done = random_episode_data(seed)
    adv, ret = compute_gae(jnp.asarray(r), jnp.asarray(v), jnp.asarray(nv), term, done, gamma, lam)
    ref_adv, ref_ret = loop_gae(
        r, v, nv, term.astype(np.float64), done.astype(np.float64), gamma, lam
    )
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ret, ref_ret, rtol=1e-5, atol=1e-4)


def test_lambda_zero_is_td_error():
    r, v, nv, term, done = random_episode_data(3)
    adv, _ = compute_gae(jnp.asarray(r), jnp.asarray(v), jnp.asarray(nv), term, done, 0.9, 0.0)
    td = r + 0.9 * (1.0 - term) * nv - v
    np.testing.assert_allclose(adv, td, rtol=1e-6, atol=1e-6)


def test_gamma_lambda_one_is_reward_to_go():
    """No episode end: returns telescope to the reward-to-go plus the final bootstrap."""
    T, N = 20, 3
    rng = np.random.default_rng(4)
    r = rng.normal(size=(T, N)).astype(np.float32)
    states = rng.normal(size=(T + 1, N)).astype(np.float32)  # V(s_0) .. V(s_T)
    no = np.zeros((T, N), bool)
    _, ret = compute_gae(
        jnp.asarray(r), jnp.asarray(states[:-1]), jnp.asarray(states[1:]), no, no, 1.0, 1.0
    )
    reward_to_go = np.cumsum(r[::-1], axis=0)[::-1] + states[-1]
    np.testing.assert_allclose(ret, reward_to_go, rtol=1e-5, atol=1e-4)


def test_truncation_bootstraps_termination_does_not():
    """One step, reward 1, next value 10: truncated bootstraps, terminated does not."""
    r = jnp.ones((1, 2))
    v = jnp.zeros((1, 2))
    nv = jnp.full((1, 2), 10.0)
    terminated = jnp.array([[True, False]])
    done = jnp.array([[True, True]])
    adv, _ = compute_gae(r, v, nv, terminated, done, 0.9, 0.95)
    np.testing.assert_allclose(adv, [[1.0, 1.0 + 0.9 * 10.0]])


def test_done_cuts_the_trace():
    r = jnp.array([[1.0], [100.0]])
    v = jnp.zeros((2, 1))
    done = jnp.array([[True], [False]])
    adv, _ = compute_gae(r, v, jnp.zeros((2, 1)), jnp.zeros((2, 1)), done, 0.99, 0.95)
    np.testing.assert_allclose(adv[0], [1.0])  # the 100 of the next episode does not leak back


def test_vmappable_over_gamma_and_lambda():
    r, v, nv, term, done = random_episode_data(5, T=16, N=2)
    gammas = jnp.array([0.9, 0.99, 1.0])
    lams = jnp.array([0.0, 0.95, 1.0])
    batched = jax.vmap(lambda g, lam: compute_gae(r, v, nv, term, done, g, lam)[0])(gammas, lams)
    for i in range(3):
        single = compute_gae(r, v, nv, term, done, float(gammas[i]), float(lams[i]))[0]
        np.testing.assert_allclose(batched[i], single, rtol=1e-6, atol=1e-6)


def test_time_major_shapes_and_float_masks():
    r, v, nv, term, done = random_episode_data(6, T=7, N=4)
    adv_b, ret_b = compute_gae(r, v, nv, term, done, 0.99, 0.95)
    adv_f, ret_f = compute_gae(
        r, v, nv, term.astype(np.float32), done.astype(np.float32), 0.99, 0.95
    )
    assert adv_b.shape == ret_b.shape == (7, 4)
    assert adv_b.dtype == jnp.float32
    np.testing.assert_array_equal(adv_b, adv_f)
    np.testing.assert_array_equal(ret_b, ret_f)
