"""The group-mode options of issue 25: leave-one-out reward-to-go advantages
(`group_score: reward_to_go`) and DeepSeekMath's per-sequence loss mean
(`group_aggregation: sequence_mean`), against hand-computed values; the defaults keep the
bits of the configs that existed before them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxppo as ppo
from purejaxppo.gae import (
    first_episode_mask,
    group_advantages,
    leave_one_out_advantages,
    reward_to_go,
    sequence_weights,
)
from purejaxppo.losses import PolicyTerms, masked_normalize, objective_loss
from purejaxppo.rollout import make_group_batch

GROUP = {
    "env_name": "CartPole-v1",
    "num_envs": 4,
    "num_steps": 500,
    "total_timesteps": 4 * 500 * 3,
    "update_epochs": 2,
    "num_minibatches": 4,
    "hidden_sizes": (16,),
    "advantage": "group",
    "group_size": 2,
}


def test_reward_to_go_by_hand():
    rewards = jnp.array([[1.0, 1.0], [1.0, 2.0], [1.0, 5.0]])  # [T=3, N=2]
    mask = jnp.array([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])  # env 1 ended at t=1
    to_go = np.asarray(reward_to_go(rewards, mask, 0.5))
    # env 0: G2 = 1, G1 = 1 + 0.5 * 1, G0 = 1 + 0.5 * 1.5; env 1: G2 = 0 (after its end)
    np.testing.assert_allclose(to_go, [[1.75, 2.0], [1.5, 2.0], [1.0, 0.0]])


def test_leave_one_out_by_hand():
    to_go = jnp.array([[3.0, 6.0, 0.0], [1.0, 1.0, 4.0]])  # [T=2, N=3], one group of 3
    adv = np.asarray(leave_one_out_advantages(to_go, 3, normalize=False))
    # t=0: 3 - (6+0)/2, 6 - (3+0)/2, 0 - (3+6)/2; t=1: 1 - 2.5, 1 - 2.5, 4 - 1
    np.testing.assert_allclose(adv, [[0.0, 4.5, -4.5], [-1.5, -1.5, 3.0]])
    scaled = np.asarray(leave_one_out_advantages(to_go, 3, normalize=True))
    np.testing.assert_allclose(scaled, adv / np.std([3.0, 6.0, 0.0]), rtol=1e-6)


def test_leave_one_out_at_the_first_step_is_the_scaled_group_mean_score():
    """At t=0 with gamma=1, `A_i(0) = R_i - mean_{j != i} R_j = g/(g-1) (R_i - mean R)`."""
    returns = jnp.array([2.0, 5.0, 9.0, 0.0, 1.0, 1.0, 4.0, 7.0])
    adv = leave_one_out_advantages(returns[None, :], 4, normalize=False)[0]
    np.testing.assert_allclose(
        adv, 4 / 3 * np.asarray(group_advantages(returns, 4, normalize=False)), rtol=1e-6
    )


def test_sequence_weights_give_the_per_sequence_mean():
    mask = first_episode_mask(jnp.array([[0, 1], [0, 0], [1, 0]], bool))  # lengths 3 and 1
    weights = np.asarray(sequence_weights(mask))
    np.testing.assert_allclose(weights, [[2 / 3, 2.0], [2 / 3, 0.0], [2 / 3, 0.0]], rtol=1e-6)
    x = np.array([[1.0, 10.0], [2.0, 7.0], [6.0, 8.0]])
    per_sequence = ((1.0 + 2.0 + 6.0) / 3 + 10.0) / 2  # (1/N) sum_i (1/|o_i|) sum_t x
    assert np.sum(weights * x) / np.sum(weights) == pytest.approx(per_sequence)
    token = (1.0 + 2.0 + 6.0 + 10.0) / 4
    assert np.sum(np.asarray(mask) * x) / np.sum(np.asarray(mask)) == pytest.approx(token)


def test_objective_loss_with_sequence_weights_by_hand():
    """The surrogate at ratio 1 is `-mean(A)`: per sequence, not per step."""
    mask = jnp.array([1.0, 1.0, 1.0, 1.0, 0.0])  # episode a: steps 0-2, episode b: step 3
    weights = jnp.array([2 / 3, 2 / 3, 2 / 3, 2.0, 0.0])
    adv = jnp.array([3.0, 3.0, 3.0, -1.0, 0.0])
    zeros = jnp.zeros(5)
    terms = PolicyTerms(zeros, zeros, zeros, zeros, zeros)
    args = ("clip", 0.2, 0.0, 0.0, 0.0)
    token, _, _ = objective_loss(terms, adv, jnp.zeros(()), mask, *args)
    sequence, _, _ = objective_loss(terms, adv, jnp.zeros(()), weights, *args)
    assert float(token) == pytest.approx(-(3 * 3.0 - 1.0) / 4)
    assert float(sequence) == pytest.approx(-(3.0 - 1.0) / 2)


def test_group_batch_reward_to_go_matches_the_pieces():
    cfg = ppo.PPOConfig(**GROUP, group_score="reward_to_go", group_normalize=False)
    trainer = ppo.make_trainer(cfg)
    hp = ppo.HParams(gamma=0.9)
    state = jax.jit(trainer.init)(jax.random.key(0), hp)
    state, trajectory, _ = trainer.rollout(state, hp, jax.random.key(1))
    batch, episodes = make_group_batch(trainer, trajectory, hp)
    mask = np.asarray(first_episode_mask(trajectory.done))
    adv = np.asarray(batch.advantages).reshape(500, 4)
    # CartPole pays 1 per step: G_i(t) = (1 - 0.9^(L_i - t)) / 0.1 inside episode i
    lengths = mask.sum(0)
    t = np.arange(500)[:, None]
    to_go = np.where(t < lengths, (1 - 0.9 ** np.maximum(lengths - t, 0)) / 0.1, 0.0)
    expected = mask * (to_go - to_go[:, [1, 0, 3, 2]])  # group of 2: the other episode
    np.testing.assert_allclose(adv, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(batch.mask).reshape(500, 4), mask)
    np.testing.assert_array_equal(episodes.lengths, lengths)


def test_group_batch_sequence_mean_weights():
    cfg = ppo.PPOConfig(**GROUP, group_aggregation="sequence_mean")
    trainer = ppo.make_trainer(cfg)
    hp = ppo.HParams()
    state = jax.jit(trainer.init)(jax.random.key(0), hp)
    state, trajectory, _ = trainer.rollout(state, hp, jax.random.key(1))
    batch, episodes = make_group_batch(trainer, trajectory, hp)
    weights = np.asarray(batch.mask).reshape(500, 4)
    lengths = np.asarray(episodes.lengths)
    np.testing.assert_allclose(weights.sum(0), np.full(4, lengths.mean()), rtol=1e-5)
    np.testing.assert_allclose(weights.sum(), lengths.sum(), rtol=1e-5)


# Made by this config at bfa29ab, before the options existed; bit-identical after them.
BEFORE = {True: 18.70525550842285, False: 18.696317672729492}


@pytest.mark.parametrize("normalize", [True, False])
def test_defaults_keep_the_bits_of_existing_group_configs(normalize):
    cfg = ppo.PPOConfig(**GROUP, group_normalize=normalize)
    assert (cfg.group_score, cfg.group_aggregation) == ("outcome", "token_mean")
    out = jax.jit(ppo.make_train(cfg))(jax.random.key(3), ppo.HParams(ref_kl_coef=0.05))
    np.testing.assert_array_equal(out.metrics["episode_return"], [25.25, 18.5, 21.25])
    total = float(sum(np.abs(np.asarray(leaf)).sum() for leaf in jax.tree.leaves(out.params)))
    np.testing.assert_allclose(total, BEFORE[normalize], rtol=1e-6)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"group_score": "rtg"}, r"^group_score: expected one of outcome, reward_to_go"),
        ({"group_aggregation": "x"}, r"^group_aggregation: expected one of token_mean"),
        ({"group_score": "reward_to_go", "group_size": 1}, r"^group_size: group_score"),
    ],
)
def test_bad_group_options_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        ppo.PPOConfig(**{**GROUP, **changes})


def test_group_options_are_refused_with_gae():
    with pytest.raises(ValueError, match=r"^group_aggregation: 'sequence_mean' has no effect"):
        ppo.PPOConfig(env_name="CartPole-v1", group_aggregation="sequence_mean")


def test_a_group_of_tied_scores_gets_no_noise_advantages():
    """Eight identical discounted returns: their leave-one-out differences and centred
    scores are float32 rounding noise, and so is their std; dividing noise by noise (or by
    eps) made advantages of order 1 on every step of such a group. A tie is left undivided,
    so the advantages stay at rounding size, while a resolvable group is still scaled."""
    tied = jnp.full((3, 8), -63.39676, jnp.float32)  # [T=3, N=8], one group of 8
    spread = jnp.concatenate([tied, tied.at[:, 0].add(-1.0)], axis=1)  # a second group
    loo = np.asarray(leave_one_out_advantages(spread, 8, normalize=True))
    assert np.max(np.abs(loo[:, :8])) < 1e-4
    raw = np.asarray(leave_one_out_advantages(spread, 8, normalize=False))
    np.testing.assert_allclose(
        loo[:, 8:], raw[:, 8:] / np.std(np.asarray(spread[0, 8:])), rtol=1e-5
    )
    scores = np.asarray(group_advantages(spread[0], 8, normalize=True))
    assert np.max(np.abs(scores[:8])) < 1e-4
    assert np.isclose(np.std(scores[8:]), 1.0, atol=1e-3)


def test_masked_normalize_over_the_counted_steps_by_hand():
    x = jnp.array([[1.0, 5.0], [3.0, 100.0]])  # [T=2, N=2]; 100 falls past an episode's end
    weights = jnp.array([[0.5, 0.5], [0.5, 0.0]])  # sequence_mean-style weights count as 1
    out = np.asarray(masked_normalize(x, weights))
    counted = np.array([1.0, 5.0, 3.0])
    expected = (counted - counted.mean()) / (counted.std() + 1e-8)
    np.testing.assert_allclose(out.ravel()[:3], expected, rtol=1e-6)
    assert out[1, 1] == 0.0
    tied = np.asarray(masked_normalize(jnp.full((4,), 7.0), jnp.ones(4)))
    np.testing.assert_array_equal(tied, np.zeros(4))  # a tie is centred, not blown up
    assert not np.any(np.asarray(masked_normalize(x, jnp.zeros_like(x))))


def test_group_minibatch_normalize_trains_on_the_normalised_advantages():
    """On the group minibatch PPO's per-minibatch normalisation changes the update (the
    group scores are not unit-scaled per minibatch), and it is refused with GAE."""
    hp = ppo.HParams(ref_kl_coef=0.0)
    runs = {
        flag: jax.jit(
            ppo.make_train(
                ppo.PPOConfig(**GROUP, group_normalize=False, group_minibatch_normalize=flag)
            )
        )(jax.random.key(3), hp)
        for flag in (False, True)
    }
    first = [jax.tree.leaves(runs[flag].params)[0] for flag in (False, True)]
    assert not np.allclose(np.asarray(first[0]), np.asarray(first[1]))
    assert np.all(np.isfinite(np.asarray(runs[True].metrics["episode_return"])))
    with pytest.raises(ValueError, match=r"^group_minibatch_normalize: True has no effect"):
        ppo.PPOConfig(env_name="CartPole-v1", group_minibatch_normalize=True)
