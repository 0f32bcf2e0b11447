"""The trainer: output structure, determinism, no recompiles, vmap, truncation, memory."""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxppo as ppo
from purejaxppo.probe_envs import ConstantReward, ContinuousTarget, ProbeParams, SignAction

TINY = ppo.PPOConfig(total_timesteps=4 * 512)  # CartPole, 4 updates


@pytest.fixture(scope="module")
def jitted_train():
    return jax.jit(ppo.make_train(TINY))


@pytest.fixture(scope="module")
def tiny_out(jitted_train):
    return jitted_train(jax.random.key(0), ppo.HParams())


def test_output_structure_and_dtypes(tiny_out):
    out = tiny_out
    assert isinstance(out, ppo.TrainOutput)
    assert set(out.metrics) == set(ppo.METRIC_NAMES)
    for name, value in out.metrics.items():
        assert value.shape == (TINY.num_updates,), name
        assert value.dtype == jnp.float32, name
    for leaf in jax.tree.leaves(out):
        assert isinstance(leaf, jax.Array) and not isinstance(leaf, jax.core.Tracer)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(out.params))
    st = out.state
    assert int(st.update_step) == TINY.num_updates
    assert st.obs.shape == (TINY.num_envs, 4)
    assert st.episode_length.dtype == jnp.int32
    lr = st.opt_state.hyperparams["learning_rate"]
    # annealed: the last update ran at lr0 * (1 - 3/4)
    np.testing.assert_allclose(lr, 2.5e-4 * 0.25, rtol=1e-6)
    np.testing.assert_allclose(out.metrics["learning_rate"], 2.5e-4 * (1 - np.arange(4) / 4))
    assert jax.tree.leaves(out.params) and jax.tree.all(
        jax.tree.map(lambda a, b: a is b or np.array_equal(a, b), out.params, st.params)
    )


def test_metrics_are_sane(tiny_out):
    m = {k: np.asarray(v) for k, v in tiny_out.metrics.items()}
    assert np.all(np.isfinite(m["policy_loss"])) and np.all(m["value_loss"] > 0)
    assert np.all(m["entropy"] > 0) and np.all(m["entropy"] <= np.log(2) + 1e-6)
    assert np.all((m["clip_fraction"] >= 0) & (m["clip_fraction"] <= 1))
    assert np.all(m["approx_kl"] >= -1e-7)
    finished = np.isfinite(m["episode_return"])
    assert finished.any()  # random CartPole episodes last ~20 steps
    np.testing.assert_allclose(m["episode_return"][finished], m["episode_length"][finished])


def test_same_key_same_bits_different_key_different(jitted_train, tiny_out):
    again = jitted_train(jax.random.key(0), ppo.HParams())
    fresh = jax.jit(ppo.make_train(TINY))(jax.random.key(0), ppo.HParams())
    for other in (again, fresh):
        jax.tree.map(
            lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
            (tiny_out.params, tiny_out.metrics),
            (other.params, other.metrics),
        )
    different = jitted_train(jax.random.key(1), ppo.HParams())
    assert not np.array_equal(
        np.asarray(jax.tree.leaves(different.params)[0]),
        np.asarray(jax.tree.leaves(tiny_out.params)[0]),
    )


def test_changing_hparams_values_does_not_recompile(jitted_train, tiny_out):
    before = jitted_train._cache_size()
    for hp in (
        ppo.HParams(learning_rate=1e-3),
        ppo.HParams(gamma=0.9, gae_lambda=0.8, clip_eps=0.1),
        ppo.HParams(ent_coef=0.0, vf_coef=1.0, max_grad_norm=1.0),
    ):
        out = jitted_train(jax.random.key(0), hp)
        jax.block_until_ready(out)
    assert jitted_train._cache_size() == before == 1
    assert not np.array_equal(
        np.asarray(out.metrics["value_loss"]), np.asarray(tiny_out.metrics["value_loss"])
    )


def test_typed_and_raw_keys(jitted_train):
    out = jitted_train(jax.random.PRNGKey(0), ppo.HParams())
    assert np.all(np.isfinite(np.asarray(out.metrics["total_loss"])))


NESTED_VMAP_SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np, purejaxppo as ppo
    cfg = ppo.PPOConfig(total_timesteps=3 * 512)
    train = ppo.make_train(cfg)
    keys = jax.random.split(jax.random.key(0), 3)
    hps = [ppo.HParams(), ppo.HParams(learning_rate=1e-3, gamma=0.95, clip_eps=0.1)]
    sweep = jax.jit(jax.vmap(jax.vmap(train, (0, None)), (None, 0)))
    for _ in range(3):  # the LAPACK deadlock hit 2 of 3 runs
        out = jax.block_until_ready(sweep(keys, ppo.stack_hparams(hps)))
    assert out.metrics["episode_return"].shape == (2, 3, cfg.num_updates)
    assert out.state.obs.shape == (2, 3, cfg.num_envs, 4)
    single = jax.jit(train)
    for i, hp in enumerate(hps):
        for j in range(3):
            one = single(keys[j], hp)
            pairs = zip(
                jax.tree.leaves((one.params, one.metrics, one.state.replace(key=None))),
                jax.tree.leaves((out.params, out.metrics, out.state.replace(key=None))),
            )
            for a, b in pairs:
                a, b = np.asarray(a), np.asarray(b)[i, j]
                assert a.shape == b.shape and a.dtype == b.dtype
                if np.issubdtype(a.dtype, np.floating):  # to float rounding (DESIGN.md)
                    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
                else:
                    np.testing.assert_array_equal(a, b)
    print("OK")
    """
)


def test_nested_vmap_runs_matches_single_runs_and_never_hangs():
    """seeds x hparams in one compile; member (i, j) equals the single run to float rounding.

    Run in a subprocess under a timeout so a thread-pool deadlock fails the test
    instead of hanging CI.
    """
    try:
        proc = subprocess.run(
            [sys.executable, "-c", NESTED_VMAP_SCRIPT],
            capture_output=True,
            text=True,
            timeout=240,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("jit(vmap(vmap(train))) hung (thread-pool deadlock?)")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("OK")


def test_memory_does_not_grow_with_total_timesteps():
    sizes = []
    for updates in (2, 40):
        cfg = TINY.replace(total_timesteps=updates * TINY.batch_size)
        compiled = jax.jit(ppo.make_train(cfg)).lower(jax.random.key(0), ppo.HParams()).compile()
        sizes.append(compiled.memory_analysis())
    assert sizes[0].temp_size_in_bytes == sizes[1].temp_size_in_bytes
    # the output grows by the per-update metric rows only: 10 float32 per update
    grow = sizes[1].output_size_in_bytes - sizes[0].output_size_in_bytes
    assert grow == 38 * len(ppo.METRIC_NAMES) * 4


def test_truncation_is_not_termination():
    """Constant +1 reward, never terminates, truncated every 5 steps.

    Bootstrapping from the final observation gives V = 1 / (1 - gamma) = 10.
    Treating truncation as termination would give at most (1 - 0.9^5) / 0.1 = 4.1.
    """
    env, params = ConstantReward(), ProbeParams(max_steps_in_episode=5)
    cfg = ppo.PPOConfig(
        env_name=None,
        num_envs=4,
        num_steps=32,
        total_timesteps=128 * 60,
        anneal_lr=False,
        clip_value_loss=False,
    )
    out = jax.jit(ppo.make_train(cfg, env, params))(
        jax.random.key(0), ppo.HParams(learning_rate=3e-3, gamma=0.9)
    )
    _, value = ppo.make_network(cfg, env, params).apply(out.params, jnp.ones((1,)))
    assert float(value) == pytest.approx(10.0, rel=0.02)
    np.testing.assert_allclose(out.metrics["episode_length"][-1], 5.0)


def test_custom_env_discrete_policy_learns():
    env = SignAction()
    cfg = ppo.PPOConfig(env_name=None, num_envs=8, num_steps=16, total_timesteps=128 * 40)
    out = jax.jit(ppo.make_train(cfg, env))(jax.random.key(0), ppo.HParams(learning_rate=3e-3))
    assert float(np.mean(out.metrics["episode_return"][-5:])) > 0.9


def test_continuous_gaussian_policy_learns_and_clips_actions():
    env = ContinuousTarget()
    cfg = ppo.PPOConfig(env_name=None, num_envs=8, num_steps=16, total_timesteps=128 * 150)
    out = jax.jit(ppo.make_train(cfg, env))(
        jax.random.key(0), ppo.HParams(learning_rate=3e-3, ent_coef=0.0)
    )
    first = float(out.metrics["episode_return"][0])
    last = float(np.mean(out.metrics["episode_return"][-5:]))
    # The initial N(0, 1) policy scores about -0.77 with its actions clipped to [-1, 1]
    # (-1.21 unclipped); the optimum is 0.
    assert -0.9 < first < -0.65 and last > -0.1
    assert out.params["params"]["log_std"].shape == (1,)
    assert float(out.params["params"]["log_std"][0]) < -0.5


def test_observation_and_reward_normalisation_state():
    cfg = ppo.PPOConfig(
        env_name="Pendulum-v1",
        num_envs=4,
        num_steps=32,
        total_timesteps=3 * 128,
        normalize_observations=True,
        normalize_rewards=True,
    )
    out = jax.jit(ppo.make_train(cfg))(jax.random.key(0), ppo.HParams())
    st = out.state
    assert st.obs_stats.mean.shape == (3,) and st.return_stats.mean.shape == ()
    assert float(st.obs_stats.count) == pytest.approx(4 * (1 + 3 * 32), rel=1e-3)
    assert float(st.return_stats.count) == pytest.approx(4 * 3 * 32, rel=1e-3)
    assert np.all(np.isfinite(np.asarray(out.metrics["value_loss"])))
    obs = jnp.ones((5, 3))
    z = ppo.normalize_observation(st.obs_stats, obs)
    assert z.shape == (5, 3) and np.all(np.abs(np.asarray(z)) <= 10.0)
    dist, value = ppo.make_network(cfg).apply(out.params, z)
    assert dist.mode().shape == (5, 1) and value.shape == (5,)


def test_normalising_discrete_observations_is_refused():
    with pytest.raises(ValueError, match=r"^normalize_observations: "):
        ppo.make_train(ppo.PPOConfig(env_name="FrozenLake-misc", normalize_observations=True))


def test_chunked_runs_give_the_same_bits_as_one_train():
    trainer = ppo.make_trainer(TINY)
    hp = ppo.HParams()
    whole = jax.jit(trainer.train)(jax.random.key(5), hp)
    run = jax.jit(trainer.run, static_argnums=2)
    state = jax.jit(trainer.init)(jax.random.key(5), hp)
    state, m1 = run(state, hp, 2)
    state, m2 = run(state, hp, 2)
    np.testing.assert_array_equal(
        jax.random.key_data(whole.state.key), jax.random.key_data(state.key)
    )
    jax.tree.map(
        lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
        (whole.state.replace(key=None), whole.metrics),
        (state.replace(key=None), jax.tree.map(lambda x, y: jnp.concatenate([x, y]), m1, m2)),
    )
