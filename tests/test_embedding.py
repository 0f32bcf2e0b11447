"""Embedding the trainer in one's own JAX code: continuing runs, HParams checks, one compile
for every numeric form, clear shape and environment errors."""

from __future__ import annotations

import functools

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxppo as ppo
from purejaxppo.probe_envs import ConstantReward

TINY = ppo.PPOConfig(
    env_name="CartPole-v1",
    num_envs=2,
    num_steps=8,
    total_timesteps=64,  # 4 updates
    update_epochs=1,
    num_minibatches=1,
    hidden_sizes=(8,),
)


# ---------------------------------------------------------------- continuing a run
def test_learning_rate_never_goes_below_zero_past_the_horizon():
    trainer = ppo.make_trainer(TINY)
    hp = ppo.HParams(learning_rate=1e-3)
    out = jax.jit(trainer.train)(jax.random.key(0), hp)
    run = jax.jit(trainer.run, static_argnums=2)
    state, metrics = run(out.state, hp, 3)  # 3 updates past num_updates = 4
    np.testing.assert_array_equal(metrics["learning_rate"], np.zeros(3, np.float32))
    # A zero step leaves the parameters where they were.
    for a, b in zip(jax.tree.leaves(out.params), jax.tree.leaves(state.params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_longer_trainer_continues_the_old_state():
    hp = ppo.HParams(learning_rate=1e-3)
    out = jax.jit(ppo.make_train(TINY))(jax.random.key(0), hp)
    longer = ppo.make_trainer(TINY.replace(total_timesteps=2 * TINY.total_timesteps))
    state, metrics = jax.jit(longer.run, static_argnums=2)(out.state, hp, 4)
    expected = 1e-3 * (1 - np.arange(4, 8) / 8)  # the decay now runs to update 8
    np.testing.assert_allclose(metrics["learning_rate"], expected, rtol=1e-6)
    assert int(state.update_step) == 8


# ---------------------------------------------------------------- HParams checks
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"learning_rate": -1e-3}, "learning_rate: expected a number > 0, got -0.001"),
        ({"gamma": 1.5}, "gamma: expected a number in [0, 1], got 1.5"),
        ({"clip_eps": -0.2}, "clip_eps: expected a number > 0, got -0.2"),
        ({"learning_rate": None}, "learning_rate: expected a number, got None"),
        ({"ent_coef": "0.01"}, "ent_coef: expected a number, got '0.01'"),
        ({"gae_lambda": np.array([0.9, 1.2])}, "gae_lambda: expected a number in [0, 1], got 1.2"),
    ],
)
def test_hparams_are_checked_where_they_are_built(changes, message):
    with pytest.raises(ValueError) as info:
        ppo.HParams(**changes)
    assert str(info.value) == message
    with pytest.raises(ValueError, match="learning_rate"):
        ppo.HParams().replace(learning_rate=0.0)


def test_traced_hparams_pass_the_checks():
    def lr_times_two(lr):
        return ppo.HParams(learning_rate=lr).learning_rate * 2

    assert float(jax.jit(lr_times_two)(-1.0)) == -2.0  # traced: not checked, not refused


def test_every_numeric_form_of_a_value_hits_one_compiled_program():
    train = jax.jit(ppo.make_train(TINY))
    returns = []
    for lr in (1e-3, jnp.float32(1e-3), np.float64(1e-3), np.float32(1e-3)):
        out = train(jax.random.key(0), ppo.HParams(learning_rate=lr))
        returns.append(np.asarray(out.metrics["episode_return"]))
    train(jax.random.key(0), ppo.HParams(learning_rate=1, gamma=1))  # ints
    assert train._cache_size() == 1
    for r in returns[1:]:
        np.testing.assert_array_equal(r, returns[0])


# ---------------------------------------------------------------- shape mistakes
def test_stacked_hparams_without_vmap_say_how_to_vmap():
    stacked = ppo.stack_hparams([ppo.HParams(), ppo.HParams(learning_rate=1e-3)])
    with pytest.raises(ValueError, match=r"^hparams\.learning_rate: expected a scalar per member"):
        jax.jit(ppo.make_train(TINY))(jax.random.key(0), stacked)
    with pytest.raises(ValueError, match=r"in_axes=\(None, 0\)"):
        jax.jit(ppo.make_train(TINY))(jax.random.key(0), stacked)


def test_stacked_hparams_vmapped_over_the_seed_axis_are_caught():
    stacked = ppo.stack_hparams([ppo.HParams(), ppo.HParams(learning_rate=1e-3)])
    keys = jax.random.split(jax.random.key(0), 2)
    with pytest.raises(ValueError, match=r"^hparams\.learning_rate: expected a scalar"):
        jax.jit(jax.vmap(ppo.make_train(TINY), (0, None)))(keys, stacked)


def test_one_field_an_array_names_the_field():
    hp = ppo.HParams(clip_eps=jnp.array([0.1, 0.2]))
    with pytest.raises(
        ValueError, match=r"^hparams\.clip_eps: .* like learning_rate.*stack_hparams"
    ):
        jax.jit(ppo.make_train(TINY))(jax.random.key(0), hp)


def test_not_an_hparams_is_refused():
    with pytest.raises(ValueError, match=r"^hparams: expected an HParams, got dict"):
        jax.jit(ppo.make_train(TINY))(jax.random.key(0), {"learning_rate": 1e-3})


# ---------------------------------------------------------------- environment mistakes
class FiveValueStep(ConstantReward):
    """A gymnax 0.x-style env: `step` returns (obs, state, reward, done, info)."""

    def step(self, key, state, action, params):
        obs, state, reward, terminated, truncated, info = super().step(key, state, action, params)
        return obs, state, reward, jnp.logical_or(terminated, truncated), info


class NoFinalObservation(ConstantReward):
    def step(self, key, state, action, params):
        obs, state, reward, terminated, truncated, _ = super().step(key, state, action, params)
        return obs, state, reward, terminated, truncated, {}


class WrongObsShape(ConstantReward):
    def reset(self, key, params):
        _, state = super().reset(key, params)
        return jnp.zeros((3,)), state


def _build(env, name=None, **kwargs):
    cfg = TINY.replace(env_name=name)
    return ppo.make_trainer(cfg, env=env, **kwargs)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            gymnax.make("CartPole-v1"),
            r"^env \(tuple\): expected an environment, got a tuple of 2; gymnax.make returns",
        ),
        (
            ConstantReward,
            r"^env \(ConstantReward\): expected an environment instance, got the class "
            r"ConstantReward; pass env=ConstantReward\(\)",
        ),
        (
            FiveValueStep(),
            r"^env \(FiveValueStep\): step\(.*got a tuple of 5 values \(a gymnax 0.x step",
        ),
        (
            NoFinalObservation(),
            r"^env \(NoFinalObservation\): step's info must hold info\['final_observation'\]",
        ),
        (
            WrongObsShape(),
            r"^env \(WrongObsShape\): reset returned observations of shape \(3,\), "
            r"but observation_space says \(1,\)",
        ),
        (object(), r"^env \(object\): object lacks reset, step, observation_space, action_space"),
    ],
)
def test_environment_mistakes_are_caught_when_the_trainer_is_built(env, message):
    with pytest.raises(ValueError, match=message) as info:
        _build(env)
    assert "env_name" not in str(info.value)
    assert len(str(info.value).splitlines()) == 1


def test_a_named_custom_env_is_labelled_by_its_name():
    with pytest.raises(ValueError, match=r"^env \(Corridor\): step's info must hold"):
        _build(NoFinalObservation(), name="Corridor")


def test_env_checks_trace_nothing_at_run_time():
    env = ConstantReward()
    trainer = _build(env, env_params=env.default_params)
    out = jax.jit(functools.partial(trainer.train))(jax.random.key(0), ppo.HParams())
    assert out.metrics["episode_return"].shape == (TINY.num_updates,)


# ---------------------------------------------------------------- issue 24: embedding defects
def test_numpy_integer_config_values_are_plain_ints():
    cfg = ppo.PPOConfig(num_envs=np.int64(4), num_steps=np.int32(128), hidden_sizes=[np.int64(8)])
    assert cfg == ppo.PPOConfig(num_envs=4, num_steps=128, hidden_sizes=(8,))
    assert type(cfg.num_envs) is int and type(cfg.hidden_sizes[0]) is int
    assert hash(cfg) == hash(ppo.PPOConfig(num_envs=4, num_steps=128, hidden_sizes=(8,)))
    assert ppo.PPOConfig(anneal_lr=np.bool_(False)).anneal_lr is False


def test_a_list_in_hparams_is_refused_at_construction_with_the_stack_hint():
    with pytest.raises(ValueError, match=r"^learning_rate: expected a number, got a list .*"
                       r"stack_hparams\(\[\.\.\.\]\) and vmap"):  # fmt: skip
        ppo.HParams(learning_rate=[1e-3, 3e-4])
    with pytest.raises(ValueError, match=r"^gamma: expected a number, got a tuple"):
        ppo.HParams().replace(gamma=(0.9, 0.99))


def test_group_mode_vmaps_over_env_params():
    from purejaxppo.probe_envs import SignAction

    env = SignAction()
    cfg = ppo.PPOConfig(
        env_name=None, num_envs=4, num_steps=2, total_timesteps=16, update_epochs=1,
        num_minibatches=1, hidden_sizes=(8,), advantage="group", group_size=2,
    )  # fmt: skip
    params = jax.tree.map(lambda x: jnp.stack([x, x]), env.default_params)

    def train(p):
        return ppo.make_train(cfg, env=env, env_params=p)(jax.random.key(0), ppo.HParams())

    out = jax.jit(jax.vmap(train))(params)
    assert out.metrics["episode_return"].shape == (2, cfg.num_updates)
    single = jax.jit(train)(env.default_params)  # a traced limit skips only the static check
    np.testing.assert_allclose(out.metrics["episode_return"][0], single.metrics["episode_return"])
    with pytest.raises(ValueError, match="must be >= the env's time limit"):
        ppo.make_train(cfg, env=env, env_params=env.default_params.replace(max_steps_in_episode=3))


def test_env_action_is_public_and_act_clips_by_default():
    from purejaxppo.run.config import RunConfig
    from purejaxppo.run.load import LoadedRun

    cfg = ppo.PPOConfig(
        env_name="ContinuousTarget-probe", num_envs=2, num_steps=4, total_timesteps=8,
        num_minibatches=1, hidden_sizes=(8,),
    )  # fmt: skip
    trainer = ppo.make_trainer(cfg)
    state = jax.vmap(trainer.init, (0, None))(jax.random.split(jax.random.key(0), 1), ppo.HParams())
    run = LoadedRun(None, RunConfig(cfg, ppo.HParams()), [0], 0, state, trainer)
    obs = jnp.linspace(-0.8, 0.8, 256)[:, None]
    raw = run.act(obs, jax.random.key(1), clip=False)
    assert float(jnp.max(jnp.abs(raw))) > 1.0  # std 1 at init: samples leave [-1, 1]
    clipped = run.act(obs, jax.random.key(1))
    np.testing.assert_array_equal(clipped, jnp.clip(raw, -1.0, 1.0))
    np.testing.assert_array_equal(ppo.env_action(trainer.space, raw), clipped)
    assert ppo.env_action(ppo.make_trainer(TINY).space, jnp.array([1, 0])).tolist() == [1, 0]
