"""What a run carries and returns: `TrainState`, `TrainOutput` and the per-update
metric names (pure; re-exported by `purejaxppo.train` and `purejaxppo`)."""

from __future__ import annotations

from typing import Any

import jax
from flax import struct

from purejaxppo.envs import RunningStats

METRIC_NAMES = (
    "episode_return",
    "episode_length",
    "policy_loss",
    "value_loss",
    "entropy",
    "total_loss",
    "approx_kl",
    "clip_fraction",
    "explained_variance",
    "learning_rate",
    "kl",
    "kl_coef",
    "minibatch_steps",
)


class TrainState(struct.PyTreeNode):
    """Everything needed to continue a run. Leading axes are per env where noted.

    Attributes:
      params: actor-critic parameters.
      opt_state: optax state; `opt_state.hyperparams["learning_rate"]` holds the
        learning rate of the last update (`optax.inject_hyperparams`).
      env_state: gymnax env state, leaves `[N, ...]`.
      obs: last raw observation `[N, *obs_shape]`.
      obs_stats: running observation statistics (`[*obs_shape]`; unused when off).
      return_stats: running statistics of the discounted return (`[]`).
      discounted_return: `[N]` per-env discounted return for reward scaling.
      episode_return: `[N]` undiscounted, unscaled return of the running episode.
      episode_length: `[N]` int32 length of the running episode.
      key: PRNG key for the next update.
      update_step: int32 number of updates done (drives LR annealing).
      kl_coef: beta of the KL objectives (`[]`), adapted after every update.
      ref_params: the frozen initial policy (`group` mode, for `ref_kl_coef`), else None.
      hidden: the GRU state `[N, 2 * gru_size]` after the last step (`gru_size > 0`), else None.
      last_done: `[N]` bool, True where the last step ended an episode (so `obs` starts one;
        the recurrent policy zeroes its hidden state there), else None.
    """

    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array
    obs_stats: RunningStats
    return_stats: RunningStats
    discounted_return: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array
    key: jax.Array
    update_step: jax.Array
    kl_coef: jax.Array
    ref_params: Any = None
    hidden: Any = None
    last_done: Any = None


class TrainOutput(struct.PyTreeNode):
    """What `train` returns: final params, per-update metrics, and the final state.

    `metrics[name]` has leading axis `num_updates` (one row per update); names
    are `METRIC_NAMES`. `episode_return` / `episode_length` are means over the
    episodes that finished during the update (NaN if none did).
    """

    params: Any
    metrics: dict[str, jax.Array]
    state: TrainState
