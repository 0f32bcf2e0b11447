"""Learning tests: PureJaxRL's CartPole recipe solves it; a continuous env beats random;
the KL objectives and critic-free group advantages learn CartPole."""

import jax
import numpy as np
import pytest

import purejaxppo as ppo


def final_returns(metrics, last=10):
    """Mean episode return over the last `last` updates, per seed `[S]`."""
    return np.nanmean(np.asarray(metrics["episode_return"])[:, -last:], axis=1)


@pytest.mark.slow
def test_cartpole_pure_jax_rl_recipe_solves_it():
    """4 envs x 128 steps, 5e5 steps, 4 epochs x 4 minibatches: mean >= 475 over 4 seeds."""
    cfg = ppo.PPOConfig()  # the defaults are exactly that recipe
    keys = jax.random.split(jax.random.key(42), 4)
    out = jax.jit(jax.vmap(ppo.make_train(cfg), (0, None)))(keys, ppo.HParams())
    returns = final_returns(out.metrics)
    assert returns.mean() >= 475, returns


@pytest.mark.slow
def test_pendulum_clearly_beats_random():
    """A random policy scores about -1200 on Pendulum-v1; PPO should reach > -400."""
    cfg = ppo.PPOConfig(
        env_name="Pendulum-v1",
        num_envs=16,
        num_steps=64,
        total_timesteps=250_000,
        update_epochs=10,
        num_minibatches=16,
        normalize_observations=True,
        normalize_rewards=True,
    )
    hp = ppo.HParams(learning_rate=1e-3, gamma=0.95, ent_coef=0.0)
    keys = jax.random.split(jax.random.key(0), 2)
    out = jax.jit(jax.vmap(ppo.make_train(cfg), (0, None)))(keys, hp)
    first = np.nanmean(np.asarray(out.metrics["episode_return"])[:, :20])
    returns = final_returns(out.metrics)
    assert first < -900, first  # starts out random
    assert returns.mean() > -400, returns


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["kl_penalty", "clip+kl"])
def test_kl_objectives_learn_cartpole(objective):
    """The note's eq. 22 (and eq. 22 + 23) with adaptive beta: 1e5 steps, mean >= 300."""
    cfg = ppo.PPOConfig(num_envs=8, num_steps=128, total_timesteps=100_000, objective=objective)
    keys = jax.random.split(jax.random.key(0), 2)
    out = jax.jit(jax.vmap(ppo.make_train(cfg), (0, None)))(keys, ppo.HParams(learning_rate=2.5e-3))
    returns = final_returns(out.metrics)
    assert returns.mean() >= 300, returns


@pytest.mark.slow
def test_critic_free_group_advantages_learn_cartpole():
    """GRPO-style: 2 groups of 4 envs, whole 500-step episodes, no critic; 2e5 steps.
    It learns, but unreliably across seeds (docs/critic-vs-group.md): a random policy
    scores about 20, and the bar is 100."""
    cfg = ppo.PPOConfig(
        num_envs=8,
        num_steps=500,
        total_timesteps=200_000,
        num_minibatches=8,
        advantage="group",
        group_size=4,
    )
    keys = jax.random.split(jax.random.key(0), 2)
    out = jax.jit(jax.vmap(ppo.make_train(cfg), (0, None)))(keys, ppo.HParams(learning_rate=2.5e-3))
    first = np.asarray(out.metrics["episode_return"])[:, 0]
    returns = final_returns(out.metrics)
    assert first.mean() < 50, first
    assert returns.mean() >= 100, returns
