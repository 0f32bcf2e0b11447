"""The Brax adapter (`env_name: brax/<name>`): the gymnax 1.x interface, the mapping of
Brax's time limit and `done` to truncated/terminated, auto-reset, and a few PPO updates.

The tests under "without brax" simulate a missing extra and always run; the others are
skipped when brax is not installed.
"""

from __future__ import annotations

import sys
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _cli_support import REPO

import purejaxppo as ppo
from purejaxppo.envs import check_env_name

# Brax's mjx backend reaches into fields that mujoco-mjx 3.17 deprecates (still works).
pytestmark = pytest.mark.filterwarnings(
    "ignore:Accessing `.*` directly from `Data` is deprecated:DeprecationWarning"
)

PENDULUM = "brax/inverted_pendulum"  # obs [4] (cart x, pole angle, their velocities), action [1]
STEPS = 40  # per rollout below; the pendulum pushed one way falls well before that


@pytest.fixture(scope="module")
def brax_envs():
    return pytest.importorskip("brax.envs")


@pytest.fixture(scope="module")
def pendulum(brax_envs):
    """The wrapped env on Brax's `generalized` backend: the wrapper's logic does not depend
    on the backend, and this one compiles in 2/3 of the default's (`mjx`) time."""
    from purejaxppo.envs.brax import make_brax_env

    return make_brax_env(PENDULUM, backend="generalized")


class Rollout(NamedTuple):
    """`STEPS` steps of one env from a reset with a constant action, leaves `[STEPS, ...]`.

    `brax_obs`: what Brax's own step returns from the previous state (no wrapper);
    `reset_obs`: the obs of a reset made with the step's key.
    """

    obs: jax.Array
    time: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array
    brax_obs: jax.Array
    reset_obs: jax.Array


@pytest.fixture(scope="module")
def rollouts(pendulum):
    """`rollouts(actions [E, 1], limits [E])`: `E` vmapped, jitted and scanned rollouts,
    leaves `[E, STEPS, ...]`; the time limit is a traced param, so this compiles once."""
    env, params = pendulum

    def one(key, action, limit):
        env_params = params.replace(max_steps_in_episode=limit)

        def body(state, step_key):
            obs, nxt, reward, terminated, truncated, info = env.step(
                step_key, state, action, env_params
            )
            brax_obs = env.env.step(env.brax_state(state), action).obs
            reset_obs = env.reset(step_key, env_params)[0]
            out = Rollout(
                obs,
                nxt.time,
                reward,
                terminated,
                truncated,
                info["final_observation"],
                brax_obs,
                reset_obs,
            )
            return nxt, out

        _, state = env.reset(key, env_params)
        return jax.lax.scan(body, state, jax.random.split(key, STEPS))[1]

    run = jax.jit(jax.vmap(one))

    def rollouts(actions, limits):
        keys = jax.random.split(jax.random.key(0), len(limits))
        return run(keys, jnp.asarray(actions, jnp.float32), jnp.asarray(limits, jnp.int32))

    return rollouts


# --------------------------------------------------------------------------- without brax
def test_missing_extra_is_a_one_line_error(monkeypatch):
    # Simulate an install without the extra, whether or not brax is really there.
    monkeypatch.setitem(sys.modules, "brax", None)
    monkeypatch.setitem(sys.modules, "brax.envs", None)
    with pytest.raises(ValueError) as err:
        check_env_name("brax/hopper")
    message = str(err.value)
    assert message == "env_name: brax/hopper needs the brax extra: pip install -e '.[brax]'"
    with pytest.raises(ValueError, match=r"^env_name: brax/ant needs the brax extra"):
        ppo.make_env("brax/ant")


def test_missing_extra_in_a_run_config_exits_2(monkeypatch, tmp_path, capsys):
    from _cli_support import write_config

    from purejaxppo import cli

    monkeypatch.setitem(sys.modules, "brax", None)
    monkeypatch.setitem(sys.modules, "brax.envs", None)
    monkeypatch.setenv("PUREJAXPPO_CACHE_DIR", "off")
    path = write_config(tmp_path / "c.yaml", env_name="brax/hopper")
    assert cli.main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "needs the brax extra: pip install -e '.[brax]'" in err, err
    assert not (tmp_path / "run").exists()


def test_envs_listing_without_the_extra_says_how_to_install_it(monkeypatch, capsys):
    from purejaxppo import cli

    monkeypatch.setitem(sys.modules, "brax", None)
    monkeypatch.setitem(sys.modules, "brax.envs", None)
    assert cli.main(["envs"]) == 0
    out = capsys.readouterr().out
    assert "brax/NAME needs the brax extra: pip install -e '.[brax]'" in out.splitlines()
    assert "26 gymnax environments, 26 with a config" in out


def test_import_purejaxppo_does_not_import_brax():
    import subprocess

    code = "import sys, purejaxppo, purejaxppo.envs; print('brax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- with brax
def test_names_and_close_matches(brax_envs):
    from purejaxppo.envs.brax import brax_env_names

    names = brax_env_names()
    assert {"brax/hopper", "brax/ant", PENDULUM} <= set(names)
    check_env_name("brax/hopper")
    with pytest.raises(ValueError, match=r"^env_name: unknown Brax environment 'brax/hoper'; "):
        check_env_name("brax/hoper")
    with pytest.raises(ValueError, match=r"did you mean brax/hopper"):
        check_env_name("brax/hoper")


def test_default_backend_and_a_checkpointable_state(brax_envs):
    env, params = ppo.make_env(PENDULUM)
    assert env.backend == env.env.backend == "mjx" and params.max_steps_in_episode == 1000
    # MJX's zero-size arrays are kept out of the state: orbax cannot checkpoint them.
    _, state = jax.eval_shape(env.reset, jax.random.key(0), params)
    assert all(leaf.size > 0 for leaf in jax.tree.leaves(state))
    assert jax.tree.structure(env.brax_state(state)) == jax.tree.structure(
        jax.eval_shape(env.env.reset, jax.random.key(0))
    )
    swimmer, _ = ppo.make_env("brax/swimmer")  # Brax has it only on `generalized`
    assert swimmer.backend == "generalized"


def test_mujoco_warnings_leave_no_log_file(brax_envs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        ppo.make_env("brax/halfcheetah")  # its model uses a deprecated MuJoCo attribute
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


def test_spaces_and_params(pendulum):
    env, params = pendulum
    assert params.max_steps_in_episode == 1000
    obs_space, act_space = env.observation_space(params), env.action_space(params)
    assert tuple(obs_space.shape) == (4,)
    assert tuple(act_space.shape) == (1,)
    assert float(act_space.low) == -1.0 and float(act_space.high) == 1.0


def test_reset_and_step_shapes_and_dtypes_under_vmap(pendulum):
    env, params = pendulum
    keys = jax.random.split(jax.random.key(1), 3)
    obs, state = jax.eval_shape(jax.vmap(env.reset, (0, None)), keys, params)
    assert obs.shape == (3, 4) and obs.dtype == jnp.float32
    step = jax.vmap(env.step, (0, 0, 0, None))
    out = jax.eval_shape(step, keys, state, jnp.zeros((3, 1)), params)
    next_obs, next_state, reward, terminated, truncated, info = out
    assert next_obs.shape == (3, 4) and next_obs.dtype == jnp.float32
    assert reward.shape == (3,) and reward.dtype == jnp.float32
    assert terminated.shape == (3,) and terminated.dtype == jnp.bool_
    assert truncated.shape == (3,) and truncated.dtype == jnp.bool_
    assert info["final_observation"].shape == (3, 4)
    # The state keeps its exact types, so it can be a lax.scan carry.
    before, after = state, next_state
    assert jax.tree.structure(before) == jax.tree.structure(after)
    for old, new in zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True):
        assert (old.shape, old.dtype, old.weak_type) == (new.shape, new.dtype, new.weak_type)


# Two envs: a still cart with a 3-step time limit, and a cart pushed one way until it falls.
ACTIONS, LIMITS = [[0.0], [1.0]], [3, 1000]


def _env(out: Rollout, index: int) -> Rollout:
    return jax.tree.map(lambda x: np.asarray(x[index]), out)


def test_jitted_vmapped_scanned_rollout_shapes(rollouts):
    out = rollouts(ACTIONS, LIMITS)
    assert out.obs.shape == (2, STEPS, 4) and out.obs.dtype == jnp.float32
    assert out.reward.shape == (2, STEPS) and out.reward.dtype == jnp.float32
    assert out.terminated.dtype == jnp.bool_ and out.truncated.dtype == jnp.bool_
    assert out.final_obs.shape == (2, STEPS, 4)


def test_time_limit_is_a_truncation_with_the_final_observation(rollouts):
    out = _env(rollouts(ACTIONS, LIMITS), 0)
    ends = np.arange(STEPS) % 3 == 2
    np.testing.assert_array_equal(out.truncated, ends)
    assert not out.terminated.any()
    np.testing.assert_array_equal(out.time, np.where(ends, 0, np.arange(STEPS) % 3 + 1))
    # final_observation is what Brax's step computed, every step...
    np.testing.assert_allclose(out.final_obs, out.brax_obs, rtol=1e-6, atol=1e-7)
    # ...the returned obs is a fresh reset's where the episode ended, else the same.
    np.testing.assert_array_equal(out.obs[ends], out.reset_obs[ends])
    np.testing.assert_array_equal(out.obs[~ends], out.final_obs[~ends])
    assert not np.allclose(out.obs[ends], out.final_obs[ends])


def test_falling_over_is_a_termination(rollouts):
    # Pushing the cart one way tips the pole past 0.2 rad: Brax's done, not a time limit.
    out = _env(rollouts(ACTIONS, LIMITS), 1)
    assert out.terminated.any() and not out.truncated.any()
    end = int(np.argmax(out.terminated))
    assert abs(out.final_obs[end, 1]) > 0.2  # the pole angle that ended it
    np.testing.assert_allclose(out.final_obs[end], out.brax_obs[end], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(out.obs[end], out.reset_obs[end])
    assert out.time[end] == 0
    # A fall on the last allowed step is still a termination, not a truncation.
    last = _env(rollouts(ACTIONS, [3, end + 1]), 1)
    assert last.terminated[end] and not last.truncated[end]


def test_trainer_runs_a_few_updates(pendulum):
    env, params = pendulum  # `make_env(PENDULUM)` but on the faster-compiling backend
    cfg = ppo.PPOConfig(
        env_name=PENDULUM,
        num_envs=2,
        num_steps=8,
        total_timesteps=3 * 16,
        update_epochs=1,
        num_minibatches=2,
        hidden_sizes=(16,),
        normalize_observations=True,
    )
    out = jax.jit(ppo.make_train(cfg, env, params))(jax.random.key(0), ppo.HParams())
    losses = np.asarray(out.metrics["total_loss"])
    assert losses.shape == (3,) and np.all(np.isfinite(losses))
    assert int(out.state.update_step) == 3


def test_shipped_config_loads(brax_envs):
    from purejaxppo.run.config import load_run_config

    paths = sorted((REPO / "configs" / "brax").glob("*.yaml"))
    assert paths
    for path in paths:
        rc = load_run_config(path)
        assert rc.ppo.env_name == f"brax/{path.stem}"
        assert rc.expected_return is not None
