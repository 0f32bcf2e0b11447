"""Environments: construction by name, space handling, running statistics.

Pure helpers used by the rollout. Any environment with the gymnax 1.x interface
works: `reset(key, params) -> (obs, state)` and
`step(key, state, action, params) -> (obs, state, reward, terminated, truncated, info)`
with `info["final_observation"]`, plus `observation_space(params)` and
`action_space(params)` (Discrete or Box).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def mnist_dir() -> Path:
    """Where `MNISTBandit-bsuite` reads MNIST: `$PUREJAXPPO_MNIST_DIR` or gymnax's `/tmp/mnist`."""
    return Path(os.environ.get("PUREJAXPPO_MNIST_DIR", "/tmp/mnist"))


def _make_mnist_bandit() -> Any:
    """`MNISTBandit-bsuite` from local files only: purejaxppo never downloads data."""
    from gymnax.environments.bsuite import mnist
    from gymnax.utils import load_mnist

    directory = mnist_dir()
    missing = [f for f in MNIST_FILES if not (directory / f).is_file()]
    if missing:
        raise ValueError(
            f"env_name: MNISTBandit-bsuite needs the MNIST files in {directory} "
            f"(missing {', '.join(missing)}); purejaxppo never downloads data, so put them "
            "there or set PUREJAXPPO_MNIST_DIR"
        )
    env = mnist.MNISTBandit.__new__(mnist.MNISTBandit)
    mnist.environment.Environment.__init__(env)
    (images, labels), _ = load_mnist.load_mnist(str(directory))
    env.num_data = len(labels)
    env.image_shape = images.shape[1:]
    env.images = jnp.array(images)
    env.labels = jnp.array(labels)
    return env


def make_env(env_name: str) -> tuple[Any, Any]:
    """Build `(env, env_params)` for a gymnax id or a purejaxppo probe env."""
    import gymnax

    from purejaxppo.probe_envs import PROBE_ENVS

    if env_name in PROBE_ENVS:
        env = PROBE_ENVS[env_name]()
        return env, env.default_params
    if env_name == "MNISTBandit-bsuite":
        env = _make_mnist_bandit()
        return env, env.default_params
    return gymnax.make(env_name)


def resolve_env(config: Any, env: Any = None, env_params: Any = None) -> tuple[Any, Any, str]:
    """`(env, env_params, label)`: the given env, or one made from `config.env_name`."""
    label = config.env_name or type(env).__name__
    if env is None:
        if config.env_name is None:
            raise ValueError("env_name: is None, so pass env= (and env_params=)")
        env, default_params = make_env(config.env_name)
        env_params = default_params if env_params is None else env_params
    elif env_params is None:
        env_params = env.default_params
    return env, env_params, label


def is_discrete(space: Any) -> bool:
    """True for a gymnax `Discrete` space (has `n`, scalar shape)."""
    return hasattr(space, "n") and tuple(getattr(space, "shape", ())) == ()


def is_box(space: Any) -> bool:
    """True for a gymnax `Box` space (has `low`, `high`, `shape`)."""
    return all(hasattr(space, a) for a in ("low", "high", "shape"))


class SpaceInfo(NamedTuple):
    """What the trainer needs to know about an environment's spaces (all static)."""

    obs_shape: tuple[int, ...]  # shape of one raw observation
    obs_categories: int  # > 0: observation is a Discrete index, one-hot encoded
    action_dim: int  # number of categories (discrete) or vector size (continuous)
    continuous: bool
    action_low: tuple[float, ...] | None  # [action_dim] bounds (continuous only)
    action_high: tuple[float, ...] | None


def space_info(env: Any, env_params: Any, env_name: str = "environment") -> SpaceInfo:
    """Read and check an environment's spaces; unsupported ones raise `ValueError`."""
    import numpy as np

    obs_space = env.observation_space(env_params)
    act_space = env.action_space(env_params)
    if is_discrete(obs_space):
        obs_shape, obs_categories = (), int(obs_space.n)
    elif hasattr(obs_space, "shape"):
        obs_shape, obs_categories = tuple(int(d) for d in obs_space.shape), 0
    else:
        raise ValueError(
            f"env_name: {env_name} has an unsupported observation space {obs_space!r} "
            "(expected Discrete or Box)"
        )
    if is_discrete(act_space):
        return SpaceInfo(obs_shape, obs_categories, int(act_space.n), False, None, None)
    if is_box(act_space) and len(tuple(act_space.shape)) == 1:
        dim = int(act_space.shape[0])
        low = tuple(np.broadcast_to(np.asarray(act_space.low, np.float32), (dim,)).tolist())
        high = tuple(np.broadcast_to(np.asarray(act_space.high, np.float32), (dim,)).tolist())
        return SpaceInfo(obs_shape, obs_categories, dim, True, low, high)
    raise ValueError(
        f"env_name: {env_name} has an unsupported action space {act_space!r} "
        "(expected Discrete or a 1-D Box)"
    )


def env_action(info: SpaceInfo, action: jax.Array) -> jax.Array:
    """The action sent to the env: continuous actions clipped to the space's bounds.

    The unclipped sample is what the trainer stores and scores; only the env sees this.
    """
    if info.continuous:
        low = jnp.asarray(info.action_low, jnp.float32)
        high = jnp.asarray(info.action_high, jnp.float32)
        return jnp.clip(action, low, high)
    return action


@struct.dataclass
class RunningStats:
    """Running mean and variance (parallel algorithm of Chan et al.).

    `mean` and `var` have the shape of one sample (`[*obs_shape]` for
    observations, `[]` for returns); `count` is a float scalar.
    """

    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, shape: tuple[int, ...]) -> RunningStats:
        """Empty statistics: mean 0, variance 1, a tiny pseudo-count."""
        return cls(
            mean=jnp.zeros(shape, jnp.float32),
            var=jnp.ones(shape, jnp.float32),
            count=jnp.asarray(1e-4, jnp.float32),
        )

    def update(self, batch: jax.Array) -> RunningStats:
        """Fold in a batch `[B, *shape]` of samples."""
        batch = batch.astype(jnp.float32)
        batch_mean = jnp.mean(batch, axis=0)
        batch_var = jnp.var(batch, axis=0)
        batch_count = jnp.asarray(batch.shape[0], jnp.float32)
        delta = batch_mean - self.mean
        total = self.count + batch_count
        mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count
        m2 = m2 + jnp.square(delta) * self.count * batch_count / total
        return RunningStats(mean=mean, var=m2 / total, count=total)


OBS_CLIP = 10.0
REWARD_CLIP = 10.0
STATS_EPS = 1e-8


def normalize_observation(stats: RunningStats, obs: jax.Array) -> jax.Array:
    """`clip((obs - mean) / sqrt(var + 1e-8), -10, 10)`; obs `[..., *obs_shape]`.

    Use this at inference with `TrainOutput.state.obs_stats` when the run had
    `normalize_observations=True`, before `net.apply(params, obs)`.
    """
    z = (obs.astype(jnp.float32) - stats.mean) / jnp.sqrt(stats.var + STATS_EPS)
    return jnp.clip(z, -OBS_CLIP, OBS_CLIP)


def scale_reward(stats: RunningStats, reward: jax.Array) -> jax.Array:
    """Reward divided by the running std of the discounted return, clipped to +-10."""
    return jnp.clip(reward / jnp.sqrt(stats.var + STATS_EPS), -REWARD_CLIP, REWARD_CLIP)
