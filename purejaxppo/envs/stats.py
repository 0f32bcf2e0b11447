"""Running statistics of observations and returns, and the normalisation they drive (pure).

`RunningStats` holds the running mean and variance of one array; `normalize_array` and
`scale_reward` apply them. Structured (pytree) observations keep one `RunningStats` per leaf
(`purejaxppo.envs.observations.ObsStats`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


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


def normalize_array(stats: RunningStats, obs: jax.Array) -> jax.Array:
    """`clip((obs - mean) / sqrt(var + 1e-8), -10, 10)`; obs `[..., *obs_shape]` (one array;
    `purejaxppo.normalize_observation` takes array and structured observations)."""
    z = (obs.astype(jnp.float32) - stats.mean) / jnp.sqrt(stats.var + STATS_EPS)
    return jnp.clip(z, -OBS_CLIP, OBS_CLIP)


def scale_reward(stats: RunningStats, reward: jax.Array) -> jax.Array:
    """Reward divided by the running std of the discounted return, clipped to +-10."""
    return jnp.clip(reward / jnp.sqrt(stats.var + STATS_EPS), -REWARD_CLIP, REWARD_CLIP)
