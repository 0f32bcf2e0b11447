"""YAML run configs: strict loading, overrides, round trips, and the shipped configs/."""

from __future__ import annotations

import copy
from pathlib import Path

import gymnax
import pytest
import yaml
from _cli_support import REPO, TINY, write_config

from purejaxppo.config import HParams, PPOConfig
from purejaxppo.run.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    dump_run_config,
    load_run_config,
    parse_yaml,
    run_config_from_dict,
    run_config_to_dict,
)

CONFIGS = REPO / "configs"


# --------------------------------------------------------------------------- shipped configs
def test_one_config_per_registered_env():
    shipped = {p.stem for p in CONFIGS.glob("*.yaml")}
    assert shipped == set(gymnax.registered_envs)
    assert len(shipped) == 26


@pytest.mark.parametrize("env_name", gymnax.registered_envs)
def test_shipped_config_loads_and_round_trips(env_name):
    path = CONFIGS / f"{env_name}.yaml"
    raw = path.read_text()
    data = yaml.safe_load(raw)
    assert set(data) <= {"ppo", "hparams", "seed", "expected_return"}
    assert {"ppo", "hparams"} <= set(data), "static and traced parts are kept apart"
    rc = load_run_config(path)
    assert rc.ppo.env_name == env_name
    assert path.read_text() == raw  # loading never writes
    again = run_config_from_dict(parse_yaml(dump_run_config(rc), "dump"), "dump")
    assert again == rc


def test_required_envs_state_the_return_they_reach():
    # The thresholds: each of these must say what it is expected to reach.
    minimum = {
        "CartPole-v1": 475.0,
        "Acrobot-v1": -100.0,
        "MountainCar-v0": -200.0,
        "Pendulum-v1": -300.0,
        "MountainCarContinuous-v0": 0.0,
        "Breakout-MinAtar": 2.0,
    }
    for env_name, threshold in minimum.items():
        rc = load_run_config(CONFIGS / f"{env_name}.yaml")
        assert rc.expected_return is not None, env_name
        assert rc.expected_return >= threshold, env_name


# --------------------------------------------------------------------------- loading
def test_missing_fields_take_the_dataclass_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("ppo:\n  env_name: Acrobot-v1\n")
    rc = load_run_config(path)
    assert rc == RunConfig(ppo=PPOConfig(env_name="Acrobot-v1"), hparams=HParams())
    assert rc.seed == 0 and rc.expected_return is None


def test_yaml_12_floats_and_underscored_ints(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("ppo:\n  total_timesteps: 1_000_000\nhparams:\n  learning_rate: 3e-4\n")
    rc = load_run_config(path)
    assert rc.ppo.total_timesteps == 1_000_000
    assert rc.hparams.learning_rate == pytest.approx(3e-4)
    assert isinstance(rc.hparams.learning_rate, float)


def test_dump_load_round_trip_is_exact(tmp_path):
    rc = RunConfig(
        ppo=PPOConfig(env_name="Pendulum-v1", hidden_sizes=(32, 16), normalize_rewards=True),
        hparams=HParams(learning_rate=1.2345678e-4, gamma=0.95),
        seed=7,
        expected_return=-250.5,
    )
    path = tmp_path / "rc.yaml"
    path.write_text(dump_run_config(rc))
    assert load_run_config(path) == rc
    assert run_config_from_dict(run_config_to_dict(rc)) == rc


def test_overrides_are_typed_and_do_not_mutate(tmp_path):
    path = write_config(tmp_path / "c.yaml")
    before = path.read_text()
    overrides = ["ppo.num_envs=8", "hparams.learning_rate=1e-3", "ppo.hidden_sizes=[16]", "seed=3"]
    frozen = list(overrides)
    rc = load_run_config(path, overrides)
    assert rc.ppo.num_envs == 8 and rc.ppo.hidden_sizes == (16,)
    assert rc.hparams.learning_rate == pytest.approx(1e-3) and rc.seed == 3
    assert overrides == frozen and path.read_text() == before

    data = copy.deepcopy(TINY)
    snapshot = copy.deepcopy(data)
    new, keys = apply_overrides(data, ["ppo.num_envs=4"], "x")
    run_config_from_dict(data)
    assert data == snapshot and new["ppo"]["num_envs"] == 4 and keys == {"ppo.num_envs"}


@pytest.mark.parametrize(
    ("text", "overrides", "expected"),
    [
        ("ppo:\n  num_env: 4\n", (), "ppo.num_env: unknown key; did you mean ppo.num_envs?"),
        ("ppo:\n  learning_rate: 0.1\n", (), "did you mean hparams.learning_rate?"),
        ("hparms: {}\n", (), "hparms: unknown key; did you mean hparams?"),
        ("ppo:\n  num_envs: four\n", (), "ppo.num_envs: expected an integer, got 'four'"),
        ("ppo:\n  num_envs: 4.0\n", (), "ppo.num_envs: expected an integer, got 4.0"),
        ("ppo:\n  anneal_lr: 1\n", (), "ppo.anneal_lr: expected true or false, got 1"),
        ("ppo:\n  hidden_sizes: 64\n", (), "ppo.hidden_sizes: expected a list of positive"),
        ("ppo:\n  hidden_sizes: [64, 0]\n", (), "hidden_sizes: expected a list of positive"),
        ("ppo:\n  num_minibatches: 3\n", (), "ppo.num_minibatches: 3 does not divide"),
        ("ppo:\n  env_name: CartPol-v1\n", (), "ppo.env_name: unknown environment"),
        ("ppo:\n  activation: sigmoid\n", (), "ppo.activation: expected one of"),
        ("hparams:\n  learning_rate: 0\n", (), "hparams.learning_rate: expected a number > 0"),
        ("hparams:\n  gamma: 1.5\n", (), "hparams.gamma: expected a number in [0, 1]"),
        ("hparams:\n  gamma: high\n", (), "hparams.gamma: expected a number, got 'high'"),
        ("seed: -1\n", (), "seed: expected an integer in [0, "),
        ("expected_return: lots\n", (), "expected_return: expected a finite number or null"),
        ("ppo: 3\n", (), "ppo: expected a mapping of ppo fields, got 3"),
        ("- 1\n", (), "expected a mapping with keys ppo, hparams"),
        ("", (), "got an empty document"),
        ("ppo:\n  num_envs: 4\n num_steps: 3\n", (), "line 3 column 2: invalid YAML"),
        ("ppo:\n  num_envs: 4\n  num_envs: 8\n", (), "key 'num_envs' appears twice"),
        ("{}", ("ppo.num_env=3",), "--set ppo.num_env: unknown key; did you mean ppo.num_envs?"),
        ("{}", ("ppo.num_envs=x",), "--set ppo.num_envs: expected an integer, got 'x'"),
        ("{}", ("hparams.learning_rate=-1",), "--set hparams.learning_rate: expected a number >"),
        ("{}", ("ppo.num_minibatches=3",), "--set ppo.num_minibatches: 3 does not divide"),
        ("{}", ("num_envs",), "--set num_envs: expected KEY=VALUE"),
        ("{}", ("ppo.hidden_sizes=[1,",), "invalid YAML"),
    ],
)
def test_bad_configs_raise_one_line_naming_file_and_key(tmp_path, text, overrides, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_run_config(path, overrides)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert expected in message, message
    assert "\n" not in message
    assert path.read_text() == text


def test_missing_file_and_directory(tmp_path: Path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_run_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_run_config(tmp_path)


@pytest.mark.parametrize(
    "path", sorted((CONFIGS / "variants").glob("*.yaml")), ids=lambda p: p.stem
)
def test_variant_configs_load_and_build_a_trainer(path):
    import purejaxppo as ppo

    rc = load_run_config(path)
    trainer = ppo.make_trainer(rc.ppo)
    assert trainer.config.env_name == rc.ppo.env_name


def test_shipped_sweeps_load():
    from purejaxppo.sweep import load_sweep

    for path in sorted((CONFIGS / "sweeps").glob("*.yaml")):
        assert load_sweep(path).population().size > 1, path
