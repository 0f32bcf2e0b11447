"""PPOConfig / HParams validation: clear ValueErrors naming the field, before compiling."""

import dataclasses

import gymnax  # noqa: F401  (gymnax jits at import: import it before a test patches jax.jit)
import jax
import jax.numpy as jnp
import pytest

import purejaxppo as ppo


def test_defaults_are_pure_jax_rl_cartpole_recipe():
    cfg = ppo.PPOConfig()
    assert (cfg.env_name, cfg.num_envs, cfg.num_steps) == ("CartPole-v1", 4, 128)
    assert (cfg.update_epochs, cfg.num_minibatches, cfg.total_timesteps) == (4, 4, 500_000)
    assert cfg.batch_size == 512 and cfg.minibatch_size == 128 and cfg.num_updates == 976
    assert cfg.hidden_sizes == (64, 64) and cfg.activation == "tanh"
    assert not cfg.normalize_observations and not cfg.normalize_rewards
    hp = ppo.HParams()
    assert (hp.learning_rate, hp.gamma, hp.gae_lambda, hp.clip_eps) == (2.5e-4, 0.99, 0.95, 0.2)
    assert (hp.ent_coef, hp.vf_coef, hp.max_grad_norm) == (0.01, 0.5, 0.5)


def test_config_is_frozen_and_hashable():
    cfg = ppo.PPOConfig(hidden_sizes=[32, 32])
    assert cfg.hidden_sizes == (32, 32)
    assert hash(cfg) == hash(ppo.PPOConfig(hidden_sizes=(32, 32)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.num_envs = 8  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"num_envs": 0}, "num_envs"),
        ({"num_steps": -3}, "num_steps"),
        ({"num_envs": 2.5}, "num_envs"),
        ({"update_epochs": 0}, "update_epochs"),
        ({"num_minibatches": 3}, "num_minibatches"),
        ({"total_timesteps": 100}, "total_timesteps"),
        ({"hidden_sizes": (64, 0)}, "hidden_sizes"),
        ({"hidden_sizes": 64}, "hidden_sizes"),
        ({"activation": "sigmoidish"}, "activation"),
        ({"anneal_lr": "yes"}, "anneal_lr"),
        ({"env_name": ""}, "env_name"),
        ({"env_name": 3}, "env_name"),
    ],
)
def test_bad_config_names_the_field(changes, field):
    with pytest.raises(ValueError, match=rf"^{field}: "):
        ppo.PPOConfig(**changes)


def test_unknown_env_suggests_close_names_before_compiling(monkeypatch):
    calls = []
    monkeypatch.setattr(jax, "jit", lambda *a, **k: calls.append(1))
    cfg = ppo.PPOConfig(env_name="Cartpole-v1")  # only a label until an env is built from it
    with pytest.raises(ValueError, match=r"^env_name: .*did you mean CartPole-v1"):
        ppo.make_train(cfg)
    assert not calls


def test_custom_env_may_carry_its_own_name_as_a_label():
    from purejaxppo.probe_envs import ConstantReward

    env = ConstantReward()
    cfg = ppo.PPOConfig(env_name="MyEnv", num_envs=2, num_steps=8, total_timesteps=32)
    trainer = ppo.make_trainer(cfg, env=env, env_params=env.default_params)
    assert trainer.config.env_name == "MyEnv"


def test_bad_config_raises_before_compiling(monkeypatch):
    calls = []
    monkeypatch.setattr(jax, "jit", lambda *a, **k: calls.append(1))
    with pytest.raises(ValueError):
        ppo.make_train(ppo.PPOConfig(num_minibatches=5))
    assert not calls


def test_custom_env_needs_env_argument():
    with pytest.raises(ValueError, match=r"^env_name: "):
        ppo.make_train(ppo.PPOConfig(env_name=None))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("learning_rate", 0.0),
        ("learning_rate", -1e-3),
        ("gamma", 1.5),
        ("gae_lambda", -0.1),
        ("clip_eps", 0.0),
        ("ent_coef", -0.01),
        ("max_grad_norm", 0.0),
    ],
)
def test_bad_hparams_name_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^{field}: expected"):
        ppo.HParams(**{field: value}).validate()


def test_stack_hparams():
    grid = ppo.stack_hparams([ppo.HParams(), ppo.HParams(learning_rate=1e-3, gamma=0.9)])
    assert grid.learning_rate.shape == (2,) and grid.learning_rate.dtype == jnp.float32
    assert float(grid.gamma[1]) == pytest.approx(0.9)
    with pytest.raises(ValueError, match=r"^learning_rate: "):
        ppo.stack_hparams([ppo.HParams(learning_rate=-1.0)])
    with pytest.raises(ValueError, match="at least one"):
        ppo.stack_hparams([])


def test_hparams_replace():
    hp = ppo.HParams().replace(learning_rate=1e-3)
    assert hp.learning_rate == 1e-3 and hp.gamma == 0.99


# ---------------------------------------------------------------- issue 24: unused settings
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"group_size": 4}, "group_size: 4 has no effect with advantage: gae; it is read only "
         "with advantage: group (leave it at 8 otherwise)"),
        ({"group_normalize": False}, "group_normalize: False has no effect with advantage: gae"),
        ({"kl_direction": "old_new"}, "kl_direction: 'old_new' has no effect with objective: "
         "clip; it is read only with objective: kl_penalty or clip+kl"),
    ],
)  # fmt: skip
def test_static_settings_that_would_do_nothing_are_refused(changes, message):
    with pytest.raises(ValueError) as info:
        ppo.PPOConfig(**changes)
    assert str(info.value).startswith(message)
    ppo.PPOConfig(**changes, advantage="group", objective="kl_penalty", num_envs=8)  # read there


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kl_coef": 3.0}, "kl_coef: 3 has no effect with objective: clip; it is read only with "
         "objective: kl_penalty or clip+kl (leave it at its default 1 otherwise)"),
        ({"kl_target": 0.05}, "kl_target: 0.05 has no effect with objective: clip"),
        ({"kl_coef_max": 10.0}, "kl_coef_max: 10 has no effect with objective: clip"),
        ({"ref_kl_coef": 0.5}, "ref_kl_coef: 0.5 has no effect with advantage: gae; it is read "
         "only with advantage: group"),
    ],
)  # fmt: skip
def test_hparams_that_would_do_nothing_are_refused(changes, message):
    hp = ppo.HParams(**changes)
    with pytest.raises(ValueError) as info:
        ppo.check_hparams(ppo.PPOConfig(), hp)
    assert str(info.value).startswith(message)
    with pytest.raises(ValueError, match=message.split(";")[0]):  # eager calls check too
        ppo.make_trainer(ppo.PPOConfig(num_steps=8, total_timesteps=64)).init(jax.random.key(0), hp)
    read = ppo.PPOConfig(objective="clip+kl", advantage="group", num_envs=8)
    assert ppo.check_hparams(read, hp) is hp
    stacked = ppo.stack_hparams([ppo.HParams(), hp])  # any member's value counts
    with pytest.raises(ValueError, match=message.split(";")[0]):
        ppo.check_hparams(ppo.PPOConfig(), stacked)
    ppo.check_hparams(ppo.PPOConfig(), ppo.stack_hparams([ppo.HParams(), ppo.HParams()]))


def test_unused_hparams_in_yaml_are_refused_in_one_line(tmp_path):
    from purejaxppo.run.config import load_run_config
    from purejaxppo.run.errors import ConfigError

    path = tmp_path / "x.yaml"
    path.write_text("ppo: {objective: clip}\nhparams: {ref_kl_coef: 0.5, kl_coef: 3.0}\n")
    with pytest.raises(ConfigError) as info:
        load_run_config(path)
    assert str(info.value) == (
        f"{path}: hparams.kl_coef: 3 has no effect with objective: clip; it is read only with "
        "objective: kl_penalty or clip+kl (leave it at its default 1 otherwise)"
    )
    with pytest.raises(ConfigError, match=r"--set hparams\.ref_kl_coef: 0\.5 has no effect"):
        load_run_config(path, ["hparams.kl_coef=1.0", "hparams.ref_kl_coef=0.5"])
    assert load_run_config(path, ["ppo.objective=kl_penalty", "hparams.ref_kl_coef=0"])
