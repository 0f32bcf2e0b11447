"""Learning tests: PureJaxRL's CartPole recipe solves it; a continuous env beats random."""

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
