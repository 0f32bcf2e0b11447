"""Loss pieces against hand-computed numbers; distributions against closed forms."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxppo as ppo
from purejaxppo.losses import clipped_surrogate, explained_variance, ppo_loss, value_loss
from purejaxppo.networks import Categorical, DiagGaussian, orthogonal


def test_clipped_surrogate_hand_numbers():
    # ratios 1.5, 0.5, 1.1 with advantages +1, -2, +3 and eps 0.2:
    # min(1.5*1, 1.2*1) = 1.2; min(0.5*-2, 0.8*-2) = -1.6; min(1.1*3, 1.1*3) = 3.3
    old = jnp.zeros(3)
    new = jnp.log(jnp.array([1.5, 0.5, 1.1]))
    adv = jnp.array([1.0, -2.0, 3.0])
    loss, kl, clip_frac = clipped_surrogate(new, old, adv, 0.2)
    np.testing.assert_allclose(loss, -(1.2 - 1.6 + 3.3) / 3, rtol=1e-6)
    r = np.array([1.5, 0.5, 1.1])
    np.testing.assert_allclose(kl, np.mean((r - 1) - np.log(r)), rtol=1e-6)
    np.testing.assert_allclose(clip_frac, 2 / 3, rtol=1e-6)


def test_value_loss_hand_numbers():
    value = jnp.array([2.0, 0.0])
    old = jnp.array([1.0, 0.5])
    ret = jnp.array([1.5, 0.0])
    # unclipped: 0.5 * mean(0.25, 0) = 0.0625
    np.testing.assert_allclose(value_loss(value, old, ret, 0.2, clip=False), 0.0625, rtol=1e-6)
    # clipped values: 1.2, 0.3 -> squares 0.09, 0.09; max with 0.25, 0 -> 0.25, 0.09
    # -> 0.5 * mean(0.25, 0.09) = 0.085
    np.testing.assert_allclose(value_loss(value, old, ret, 0.2, clip=True), 0.085, rtol=1e-6)


def test_total_loss_combines_pieces():
    args = dict(
        log_prob=jnp.log(jnp.array([0.5, 0.25])),
        entropy=jnp.array([0.6, 0.4]),
        value=jnp.array([1.0, 2.0]),
        old_log_prob=jnp.log(jnp.array([0.5, 0.25])),
        old_value=jnp.array([1.0, 2.0]),
        advantages=jnp.array([1.0, -1.0]),
        returns=jnp.array([2.0, 2.0]),
        clip_eps=0.2,
        vf_coef=0.5,
        ent_coef=0.01,
        clip_value=False,
    )
    total, m = ppo_loss(**args)
    # ratio 1: policy = -mean(A) = 0; value = 0.5 * mean(1, 0) = 0.25; entropy 0.5
    np.testing.assert_allclose(m.policy_loss, 0.0, atol=1e-7)
    np.testing.assert_allclose(m.value_loss, 0.25, rtol=1e-6)
    np.testing.assert_allclose(m.entropy, 0.5, rtol=1e-6)
    np.testing.assert_allclose(total, 0.5 * 0.25 - 0.01 * 0.5, rtol=1e-6)
    np.testing.assert_allclose(m.approx_kl, 0.0, atol=1e-7)


def test_explained_variance():
    ret = jnp.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(explained_variance(ret, ret), 1.0)
    np.testing.assert_allclose(explained_variance(jnp.zeros(4) + 2.5, ret), 0.0, atol=1e-6)
    assert np.isnan(explained_variance(jnp.zeros(3), jnp.ones(3)))


def test_categorical_closed_forms():
    logits = jnp.array([[0.0, math.log(3.0)]])  # probabilities 1/4, 3/4
    d = Categorical(logits)
    np.testing.assert_allclose(d.log_prob(jnp.array([1])), [math.log(0.75)], rtol=1e-6)
    np.testing.assert_allclose(
        d.entropy(), [-(0.25 * math.log(0.25) + 0.75 * math.log(0.75))], rtol=1e-6
    )
    assert int(d.mode()[0]) == 1
    samples = Categorical(jnp.broadcast_to(logits, (20000, 2))).sample(jax.random.key(0))
    assert samples.dtype == jnp.int32
    assert abs(float(jnp.mean(samples)) - 0.75) < 0.02


def test_diag_gaussian_closed_forms():
    mean = jnp.array([[0.5, -1.0]])
    log_std = jnp.log(jnp.array([2.0, 0.5]))
    d = DiagGaussian(mean, log_std)
    a = jnp.array([[1.5, -1.0]])
    expected = sum(
        -0.5 * ((x - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)
        for x, m, s in [(1.5, 0.5, 2.0), (-1.0, -1.0, 0.5)]
    )
    np.testing.assert_allclose(d.log_prob(a), [expected], rtol=1e-6)
    expected_h = sum(0.5 * math.log(2 * math.pi * math.e * s**2) for s in (2.0, 0.5))
    np.testing.assert_allclose(d.entropy(), [expected_h], rtol=1e-6)
    np.testing.assert_array_equal(d.mode(), mean)
    x = DiagGaussian(jnp.zeros((20000, 2)), log_std).sample(jax.random.key(1))
    np.testing.assert_allclose(jnp.std(x, axis=0), [2.0, 0.5], rtol=0.05)


@pytest.mark.parametrize("shape", [(4, 64), (64, 64), (64, 2), (64, 1), (1, 1)])
def test_orthogonal_init(shape):
    w = orthogonal(1.7)(jax.random.key(0), shape)
    assert w.shape == shape
    gram = w.T @ w if shape[0] >= shape[1] else w @ w.T
    np.testing.assert_allclose(gram, 1.7**2 * np.eye(min(shape)), atol=1e-5)


def test_orthogonal_init_same_bits_under_vmap():
    keys = jax.random.split(jax.random.key(0), 3)
    batched = jax.vmap(lambda k: orthogonal(1.0)(k, (64, 64)))(keys)
    np.testing.assert_array_equal(batched[1], orthogonal(1.0)(keys[1], (64, 64)))


def test_ratio_is_one_on_first_minibatch():
    """Right after the rollout, the loss sees the same policy: ratio 1, no clipping, KL 0."""
    cfg = ppo.PPOConfig(total_timesteps=512)
    trainer = ppo.make_trainer(cfg)
    hp = ppo.HParams()

    def first_minibatch_metrics(key):
        state = trainer.init(key, hp)
        state, traj, _ = trainer.rollout(state, hp, key)
        batch = trainer.make_batch(state.params, traj, hp)
        mb = jax.tree.map(lambda x: x[: cfg.minibatch_size], batch)
        dist, _ = trainer.network.apply(state.params, mb.obs)
        _, metrics = trainer.loss(state.params, hp, mb)
        return dist.log_prob(mb.action) - mb.log_prob, metrics

    log_ratio, metrics = jax.jit(first_minibatch_metrics)(jax.random.key(3))
    np.testing.assert_allclose(np.exp(log_ratio), 1.0, atol=1e-6)
    assert float(metrics.clip_fraction) == 0.0
    assert abs(float(metrics.approx_kl)) < 1e-10


def test_tanh_activation_is_tanh_to_float_rounding():
    """networks.tanh (2 sigmoid(2x) - 1, faster on XLA:CPU) and its gradient are tanh's."""
    from purejaxppo.networks import tanh

    x = np.linspace(-20.0, 20.0, 40_001, dtype=np.float32)
    exact = np.tanh(x.astype(np.float64))
    np.testing.assert_allclose(np.asarray(tanh(x)), exact, rtol=0, atol=3e-7)
    grad = np.asarray(jax.vmap(jax.grad(tanh))(x))
    np.testing.assert_allclose(grad, 1.0 - exact**2, rtol=0, atol=5e-7)
