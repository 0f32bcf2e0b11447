"""The PPO note's other objectives: KL penalty with adaptive beta, the target-KL stop
inside the scan, critic-free group advantages (GRPO / Dr. GRPO)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxppo as ppo
from purejaxppo.gae import first_episode_mask, group_advantages
from purejaxppo.losses import PolicyTerms, adapt_kl_coef, k3_kl, objective_loss
from purejaxppo.networks import Categorical, DiagGaussian
from purejaxppo.rollout import group_reset, make_group_batch

SMALL = {
    "env_name": "CartPole-v1",
    "num_envs": 4,
    "num_steps": 16,
    "total_timesteps": 4 * 16 * 3,
    "update_epochs": 2,
    "num_minibatches": 4,
    "hidden_sizes": (16,),
}


# ---------------------------------------------------------------- KL pieces
def test_adaptive_beta_follows_the_ppo_paper_rule():
    target = jnp.float32(0.01)
    for kl, expected in [(0.001, 0.5), (0.0066, 0.5), (0.0067, 1.0), (0.01, 1.0), (0.015, 1.0),
                         (0.0151, 2.0), (0.5, 2.0)]:  # fmt: skip
        got = float(adapt_kl_coef(jnp.float32(1.0), jnp.float32(kl), target))
        assert got == expected, (kl, got)


def test_adaptive_beta_never_reaches_zero_and_grows_again_from_its_floor():
    # issue 24: halving without a floor underflowed to exactly 0, and 0 x 2 = 0 forever
    assert float(adapt_kl_coef(0.0, kl=1.0, kl_target=0.01)) == pytest.approx(1e-4)
    beta, target = jnp.float32(1.0), jnp.float32(0.01)
    history = []
    for kl in [1e-6] * 300 + [1.0] * 10:  # the KL stays tiny for long, then rises
        beta = adapt_kl_coef(beta, jnp.float32(kl), target)
        history.append(float(beta))
    assert min(history) == pytest.approx(1e-4) and history[299] == pytest.approx(1e-4)
    np.testing.assert_allclose(history[300:], 1e-4 * 2.0 ** np.arange(1, 11), rtol=1e-5)
    # and a ceiling: doubling stops at kl_coef_max
    assert float(adapt_kl_coef(8.0, 1.0, 0.01, 1e-4, 10.0)) == 10.0
    assert float(adapt_kl_coef(1e-3, 1e-9, 0.01, 1e-2, 10.0)) == pytest.approx(1e-2)


def test_beta_recovers_in_training_after_many_low_kl_updates():
    cfg = ppo.PPOConfig(**SMALL, objective="kl_penalty", anneal_lr=False)  # LR stays > 0
    trainer = ppo.make_trainer(cfg)
    low = ppo.HParams(kl_coef=1.0, kl_target=1e3, kl_coef_min=0.2)  # every KL is "low"
    run = jax.jit(trainer.run, static_argnums=2)
    state, first = run(trainer.init(jax.random.key(0), low), low, 6)
    np.testing.assert_allclose(first["kl_coef"], [1.0, 0.5, 0.25, 0.2, 0.2, 0.2], rtol=1e-6)
    high = low.replace(kl_target=1e-9)  # now every KL is "high": beta grows from its floor
    state, then = run(state, high, 3)
    np.testing.assert_allclose(then["kl_coef"], [0.2, 0.4, 0.8], rtol=1e-6)
    assert float(state.kl_coef) == pytest.approx(1.6)


def test_kl_coef_bounds_are_checked():
    with pytest.raises(ValueError, match="kl_coef_min: expected a number > 0, got 0"):
        ppo.HParams(kl_coef_min=0.0)
    with pytest.raises(ValueError, match=r"kl_coef_min: expected <= kl_coef_max \(1\), got 2"):
        ppo.HParams(kl_coef_min=2.0, kl_coef_max=1.0)
    with pytest.raises(ValueError, match="kl_coef_max"):
        ppo.HParams(kl_coef_max=math.inf)


def test_exact_categorical_kl_matches_the_definition():
    pa, qa = np.array([0.7, 0.2, 0.1]), np.array([0.2, 0.5, 0.3])
    p, q = Categorical(jnp.log(jnp.asarray(pa))), Categorical(jnp.log(jnp.asarray(qa)))
    by_hand = float(np.sum(pa * np.log(pa / qa)))
    np.testing.assert_allclose(float(p.kl(q)), by_hand, rtol=1e-5)
    assert float(p.kl(p)) == 0.0
    assert float(q.kl(p)) != pytest.approx(float(p.kl(q)))  # KL is not symmetric


def test_exact_gaussian_kl_matches_the_closed_form():
    p = DiagGaussian(jnp.array([0.0, 1.0]), jnp.log(jnp.array([1.0, 2.0])))
    q = DiagGaussian(jnp.array([1.0, 1.0]), jnp.log(jnp.array([2.0, 2.0])))
    # dim 0: log 2 + (1 + 1) / 8 - 1/2; dim 1: 0 + 4 / 8 - 1/2 = 0
    np.testing.assert_allclose(float(p.kl(q)), math.log(2.0) + 0.25 - 0.5, rtol=1e-6)
    np.testing.assert_allclose(float(p.kl(p)), 0.0, atol=1e-7)


def test_k3_is_non_negative_and_zero_at_equality():
    logp = jnp.log(jnp.array([0.2, 0.5, 0.9]))
    ref = jnp.log(jnp.array([0.4, 0.5, 0.3]))
    k3 = np.asarray(k3_kl(logp, ref))
    assert (k3 >= 0).all() and k3[1] == 0.0
    np.testing.assert_allclose(k3[0], 2.0 - math.log(2.0) - 1.0, rtol=1e-6)


def test_kl_penalty_objective_by_hand():
    logp, old = jnp.log(jnp.array([0.6, 0.3])), jnp.log(jnp.array([0.5, 0.5]))
    adv, kl = jnp.array([1.0, -2.0]), jnp.array([0.1, 0.3])
    terms = PolicyTerms(logp, old, jnp.zeros(2), kl, jnp.zeros(2))
    args = (adv, jnp.float32(0.0), None)
    hp = (jnp.float32(0.2), jnp.float32(0.5), jnp.float32(0.0), jnp.float32(0.0))
    total, _, mean_kl = objective_loss(terms, *args, "kl_penalty", *hp)
    ratio = np.array([1.2, 0.6])
    expected = -np.mean(ratio * np.array([1.0, -2.0])) + 0.5 * 0.2
    np.testing.assert_allclose(float(total), expected, rtol=1e-6)
    assert float(mean_kl) == pytest.approx(0.2)
    clip_total, _, _ = objective_loss(terms, *args, "clip", *hp)
    clipped = -np.mean(np.minimum(ratio * [1.0, -2.0], np.clip(ratio, 0.8, 1.2) * [1.0, -2.0]))
    np.testing.assert_allclose(float(clip_total), clipped, rtol=1e-6)
    both, _, _ = objective_loss(terms, *args, "clip+kl", *hp)
    np.testing.assert_allclose(float(both), clipped + 0.5 * 0.2, rtol=1e-6)
    masked, _, _ = objective_loss(
        terms, adv, jnp.float32(0.0), jnp.array([1.0, 0.0]), "kl_penalty", *hp
    )
    np.testing.assert_allclose(float(masked), -1.2 + 0.5 * 0.1, rtol=1e-6)


# ---------------------------------------------------------------- KL objectives train
@pytest.mark.parametrize(
    ("objective", "direction"),
    [("kl_penalty", "new_old"), ("kl_penalty", "old_new"), ("clip+kl", "new_old")],
)
def test_kl_objectives_adapt_beta_and_log_it(objective, direction):
    cfg = ppo.PPOConfig(**SMALL, objective=objective, kl_direction=direction)
    hp = ppo.HParams(learning_rate=1e-2, kl_coef=0.7, kl_target=1e-6)
    out = jax.jit(ppo.make_train(cfg))(jax.random.key(0), hp)
    kl, beta = np.asarray(out.metrics["kl"]), np.asarray(out.metrics["kl_coef"])
    assert np.isfinite(kl).all() and (kl > 0).all()
    # beta logged is the one each update used: 0.7, then doubled after every update
    # whose KL exceeded 1.5 x the (tiny) target.
    np.testing.assert_allclose(beta, 0.7 * 2.0 ** np.arange(cfg.num_updates), rtol=1e-6)
    assert float(out.state.kl_coef) == pytest.approx(0.7 * 2.0**cfg.num_updates)


def test_clip_objective_reports_no_kl_and_keeps_beta():
    out = jax.jit(ppo.make_train(ppo.PPOConfig(**SMALL)))(jax.random.key(0), ppo.HParams())
    assert np.isnan(np.asarray(out.metrics["kl"])).all()
    assert (np.asarray(out.metrics["kl_coef"]) == 1.0).all()


# ---------------------------------------------------------------- target-KL stop
def test_tiny_early_stop_threshold_runs_exactly_one_minibatch_step():
    cfg = ppo.PPOConfig(**SMALL)
    out = jax.jit(ppo.make_train(cfg))(jax.random.key(0), ppo.HParams(early_stop_kl=1e-12))
    np.testing.assert_array_equal(out.metrics["minibatch_steps"], np.ones(cfg.num_updates))


def test_infinite_threshold_runs_every_step_and_a_huge_one_gives_the_same_bits():
    cfg = ppo.PPOConfig(**SMALL)
    train = jax.jit(ppo.make_train(cfg))
    off = train(jax.random.key(0), ppo.HParams())
    huge = train(jax.random.key(0), ppo.HParams(early_stop_kl=1e30))
    planned = cfg.update_epochs * cfg.num_minibatches
    np.testing.assert_array_equal(off.metrics["minibatch_steps"], np.full(cfg.num_updates, planned))
    for a, b in zip(jax.tree.leaves(off.params), jax.tree.leaves(huge.params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_thresholds_vmap_in_one_program():
    cfg = ppo.PPOConfig(**SMALL)
    train = ppo.make_train(cfg)
    values = (1e-12, 1e-3, math.inf)
    grid = ppo.stack_hparams([ppo.HParams(early_stop_kl=v) for v in values])
    out = jax.jit(jax.vmap(train, (None, 0)))(jax.random.key(0), grid)
    steps = np.asarray(out.metrics["minibatch_steps"])
    assert (steps[0] == 1).all() and (steps[2] == 8).all()
    single = jax.jit(train)(jax.random.key(0), ppo.HParams(early_stop_kl=1e-3))
    np.testing.assert_array_equal(steps[1], single.metrics["minibatch_steps"])


# ---------------------------------------------------------------- group advantages
def test_group_advantages_by_hand():
    returns = jnp.array([1.0, 3.0, 10.0, 10.0])
    grpo = np.asarray(group_advantages(returns, 2, normalize=True))
    np.testing.assert_allclose(grpo, [-1.0, 1.0, 0.0, 0.0], atol=1e-6)
    dr = np.asarray(group_advantages(returns, 2, normalize=False))
    np.testing.assert_allclose(dr, [-1.0, 1.0, 0.0, 0.0])
    four = np.asarray(group_advantages(jnp.array([0.0, 0.0, 0.0, 4.0]), 4, normalize=False))
    np.testing.assert_allclose(four, [-1.0, -1.0, -1.0, 3.0])


def test_first_episode_mask():
    done = jnp.array([[0, 1], [1, 0], [0, 0], [1, 1]], bool)  # [T=4, N=2]
    np.testing.assert_array_equal(first_episode_mask(done), [[1, 1], [1, 0], [0, 0], [0, 0]])


GROUP = {**SMALL, "num_envs": 8, "num_steps": 500, "total_timesteps": 8 * 500 * 2}


def test_groups_share_their_reset_and_have_no_critic():
    cfg = ppo.PPOConfig(**GROUP, advantage="group", group_size=4)
    trainer = ppo.make_trainer(cfg)
    state = jax.jit(trainer.init)(jax.random.key(0), ppo.HParams())
    assert "critic" not in state.params["params"] and state.ref_params is not None
    state = group_reset(trainer, state, jax.random.key(7))
    obs = np.asarray(state.obs)
    np.testing.assert_array_equal(obs[:4], np.broadcast_to(obs[0], obs[:4].shape))
    np.testing.assert_array_equal(obs[4:], np.broadcast_to(obs[4], obs[4:].shape))
    assert not np.array_equal(obs[0], obs[4])


def test_masked_steps_contribute_nothing_to_the_gradient():
    cfg = ppo.PPOConfig(**GROUP, advantage="group", group_size=4)
    trainer = ppo.make_trainer(cfg)
    hp = ppo.HParams(ref_kl_coef=0.1)
    state = jax.jit(trainer.init)(jax.random.key(0), hp)
    state, trajectory, _ = trainer.rollout(state, hp, jax.random.key(1))
    batch, episodes = make_group_batch(trainer, trajectory, hp)
    assert 0 < float(batch.mask.mean()) < 1  # CartPole episodes end well before 500 steps
    from purejaxppo.train import Anchors

    anchors = Anchors(state.kl_coef, state.ref_params)
    loss = jax.jit(jax.grad(lambda p, b: trainer.loss(p, hp, b, anchors)[0]))
    scrambled = batch._replace(
        obs=jnp.where(batch.mask[:, None] > 0, batch.obs, 123.0),
        action=jnp.where(batch.mask > 0, batch.action, 1 - batch.action),
        log_prob=jnp.where(batch.mask > 0, batch.log_prob, -5.0),
    )
    for a, b in zip(jax.tree.leaves(loss(state.params, batch)),
                    jax.tree.leaves(loss(state.params, scrambled)), strict=True):  # fmt: skip
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(episodes.lengths, np.asarray(batch.mask).reshape(500, 8).sum(0))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_steps": 100}, r"^num_steps: advantage group needs whole episodes.*\(500\)"),
        ({"normalize_rewards": True}, r"^normalize_rewards: not with advantage group"),
    ],
)
def test_group_mode_refuses_what_cannot_work(changes, message):
    cfg = ppo.PPOConfig(**{**GROUP, **changes}, advantage="group", group_size=4)
    with pytest.raises(ValueError, match=message):
        ppo.make_trainer(cfg)
    with pytest.raises(ValueError, match=r"^group_size: 3 does not divide num_envs = 8"):
        ppo.PPOConfig(**GROUP, advantage="group", group_size=3)


def test_group_mode_trains_continuous_actions_and_reports_whole_episodes():
    cfg = ppo.PPOConfig(
        env_name="Pendulum-v1", num_envs=4, num_steps=200, total_timesteps=4 * 200 * 2,
        update_epochs=1, num_minibatches=2, hidden_sizes=(16,), advantage="group",
        group_size=2, group_normalize=False,
    )  # fmt: skip
    out = jax.jit(ppo.make_train(cfg))(jax.random.key(0), ppo.HParams(ref_kl_coef=0.1))
    np.testing.assert_array_equal(out.metrics["episode_length"], [200.0, 200.0])
    assert np.isfinite(np.asarray(out.metrics["episode_return"])).all()
    assert np.isnan(np.asarray(out.metrics["explained_variance"])).all()


# ---------------------------------------------------------------- chunks, populations
def test_kl_objective_in_chunks_equals_one_train():
    """beta is part of the carried state, so chunks (and resumes) continue it exactly."""
    cfg = ppo.PPOConfig(**SMALL, objective="kl_penalty")
    hp = ppo.HParams(learning_rate=1e-2, kl_target=1e-3)
    trainer = ppo.make_trainer(cfg)
    whole = jax.jit(trainer.train)(jax.random.key(1), hp)
    run = jax.jit(trainer.run, static_argnums=2)
    state = jax.jit(trainer.init)(jax.random.key(1), hp)
    state, first = run(state, hp, 1)
    state, rest = run(state, hp, cfg.num_updates - 1)
    joined = np.concatenate([first["kl_coef"], rest["kl_coef"]])
    np.testing.assert_array_equal(joined, whole.metrics["kl_coef"])
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(whole.params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_population_over_kl_targets_in_one_program():
    from purejaxppo.sweep import select, train_population

    cfg = ppo.PPOConfig(**SMALL, objective="kl_penalty")
    targets = (1e-6, 1.0)
    hps = [ppo.HParams(learning_rate=1e-2, kl_target=t) for t in targets]
    out = train_population(cfg, hps, [0, 0])
    beta = np.asarray(out.metrics["kl_coef"])
    assert (np.diff(beta[0]) > 0).all() and (np.diff(beta[1]) < 0).all()  # doubled / halved
    single = jax.jit(ppo.make_train(cfg))(jax.random.key(0), hps[1])
    np.testing.assert_allclose(select(out, 1).metrics["kl_coef"], single.metrics["kl_coef"])
