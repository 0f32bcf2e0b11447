"""Every registered gymnax environment constructs and trains a few updates."""

import gzip
import struct

import gymnax
import jax
import numpy as np
import pytest

import purejaxppo as ppo
from purejaxppo.envs import MNIST_FILES, space_info

SMALL = dict(
    num_envs=2,
    num_steps=8,
    total_timesteps=2 * 16,
    update_epochs=1,
    num_minibatches=2,
    hidden_sizes=(16,),
)


def write_synthetic_mnist(directory, n=64):
    """MNIST-format (IDX, gzip) files with random digits: the real loader, no download."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(n,), dtype=np.uint8)
    for name in MNIST_FILES:
        with gzip.open(directory / name, "wb") as fh:
            if "images" in name:
                fh.write(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
            else:
                fh.write(struct.pack(">II", 2049, n) + labels.tobytes())


def train_a_few_updates(env_name):
    cfg = ppo.PPOConfig(env_name=env_name, **SMALL)
    out = jax.jit(ppo.make_train(cfg))(jax.random.key(0), ppo.HParams())
    losses = np.asarray(out.metrics["total_loss"])
    assert losses.shape == (2,) and np.all(np.isfinite(losses)), env_name
    assert int(out.state.update_step) == 2


@pytest.mark.slow
@pytest.mark.parametrize(
    "env_name", [e for e in gymnax.registered_envs if e != "MNISTBandit-bsuite"]
)
def test_every_registered_env_trains(env_name):
    train_a_few_updates(env_name)


def test_all_26_gymnax_envs_are_covered():
    assert len(gymnax.registered_envs) == 26
    for name in gymnax.registered_envs:
        ppo.PPOConfig(env_name=name)  # every registered name is accepted


def test_mnist_bandit_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("PUREJAXPPO_MNIST_DIR", str(tmp_path / "absent"))
    with pytest.raises(ValueError, match=r"^env_name: MNISTBandit-bsuite needs the MNIST files"):
        ppo.make_train(ppo.PPOConfig(env_name="MNISTBandit-bsuite", **SMALL))


def test_mnist_bandit_trains_from_local_files(tmp_path, monkeypatch):
    write_synthetic_mnist(tmp_path)
    monkeypatch.setenv("PUREJAXPPO_MNIST_DIR", str(tmp_path))
    env, _ = ppo.make_env("MNISTBandit-bsuite")
    assert env.images.shape == (64, 28, 28)
    train_a_few_updates("MNISTBandit-bsuite")


@pytest.mark.parametrize(
    ("env_name", "continuous", "obs_shape"),
    [
        ("CartPole-v1", False, (4,)),
        ("Pendulum-v1", True, (3,)),
        ("Breakout-MinAtar", False, (10, 10, 4)),
        ("FrozenLake-misc", False, ()),
    ],
)
def test_space_info(env_name, continuous, obs_shape):
    env, params = ppo.make_env(env_name)
    info = space_info(env, params)
    assert info.continuous == continuous and info.obs_shape == obs_shape
    if continuous:
        assert info.action_low == (-2.0,) and info.action_high == (2.0,)


def test_network_flattens_and_one_hot_encodes():
    cfg = ppo.PPOConfig(env_name="Breakout-MinAtar")
    net = ppo.make_network(cfg)
    obs = np.zeros((3, 10, 10, 4), np.bool_)
    params = jax.jit(net.init)(jax.random.key(0), obs)
    dist, value = net.apply(params, obs)
    assert dist.logits.shape == (3, 3) and value.shape == (3,)
    lake = ppo.make_network(ppo.PPOConfig(env_name="FrozenLake-misc"))
    p = jax.jit(lake.init)(jax.random.key(0), np.zeros((), np.int32))
    dist, value = lake.apply(p, np.array([0, 5, 15], np.int32))
    assert dist.logits.shape == (3, 4) and value.shape == (3,)
    assert p["params"]["actor"]["Dense_0"]["kernel"].shape == (16, 64)
