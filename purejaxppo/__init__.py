"""purejaxppo: PPO as one pure JAX function `train(key, hparams)`.

import jax, purejaxppo as ppo
cfg = ppo.PPOConfig(env_name="CartPole-v1")
out = jax.jit(ppo.make_train(cfg))(jax.random.key(0), ppo.HParams())
"""

from purejaxppo.config import HParams, PPOConfig, stack_hparams
from purejaxppo.envs import RunningStats, env_action, make_env, normalize_observation
from purejaxppo.gae import compute_gae
from purejaxppo.networks import ActorCritic, Categorical, DiagGaussian, make_network
from purejaxppo.schedule import HParamSchedule, hparams_at
from purejaxppo.train import (
    METRIC_NAMES,
    Trainer,
    TrainOutput,
    TrainState,
    make_train,
    make_trainer,
)
from purejaxppo.unused_settings import check_hparams

__version__ = "0.1.0"

__all__ = [
    "METRIC_NAMES",
    "ActorCritic",
    "Categorical",
    "DiagGaussian",
    "HParamSchedule",
    "HParams",
    "PPOConfig",
    "RunningStats",
    "TrainOutput",
    "TrainState",
    "Trainer",
    "check_hparams",
    "compute_gae",
    "env_action",
    "hparams_at",
    "make_env",
    "make_network",
    "make_train",
    "make_trainer",
    "normalize_observation",
    "stack_hparams",
]
