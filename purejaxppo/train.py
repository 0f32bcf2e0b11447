"""The PPO trainer: rollout scan, GAE, minibatch epochs, `make_train`.

`make_train(config)` returns a pure `train(key, hparams) -> TrainOutput`. The
caller applies `jax.jit` / `jax.vmap`. Layout is time-major: a rollout holds
`[T, N, ...]` arrays (T = `num_steps`, N = `num_envs`), flattened to a batch of
`B = T * N` transitions for the update epochs.

The pieces are public through `Trainer` (from `make_trainer`) for code that
wants to run in chunks (`trainer.init` once, then `trainer.run(state, hparams,
k)` repeatedly gives the same bits as one `trainer.train`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from purejaxppo.config import HParams, PPOConfig, check_member_hparams
from purejaxppo.envs import (
    RunningStats,
    SpaceInfo,
    check_env_signature,
    env_action,
    normalize_observation,
    resolve_env,
    scale_reward,
    space_info,
)
from purejaxppo.gae import compute_gae
from purejaxppo.losses import LossMetrics, explained_variance, normalize, ppo_loss
from purejaxppo.networks import ActorCritic
from purejaxppo.optim import make_optimizer

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


class TrainOutput(struct.PyTreeNode):
    """What `train` returns: final params, per-update metrics, and the final state.

    `metrics[name]` has leading axis `num_updates` (one row per update); names
    are `METRIC_NAMES`. `episode_return` / `episode_length` are means over the
    episodes that finished during the update (NaN if none did).
    """

    params: Any
    metrics: dict[str, jax.Array]
    state: TrainState


class Transition(NamedTuple):
    """One env step for all envs; stacked by the rollout scan into `[T, N, ...]`.

    `obs` and `next_obs` are what the network sees (normalised when that is on);
    `next_obs` is the true next observation (the final one on episode end).
    `reward` is the training reward (scaled when reward normalisation is on).
    """

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    reward: jax.Array
    terminated: jax.Array
    done: jax.Array
    next_obs: jax.Array


class EpisodeSums(NamedTuple):
    """Sums over episodes that ended during a rollout (scalars)."""

    returns: jax.Array
    lengths: jax.Array
    count: jax.Array


class RolloutCarry(NamedTuple):
    """Carry of the rollout scan."""

    state: TrainState
    episodes: EpisodeSums


class Batch(NamedTuple):
    """Flat training batch, leaves `[B, ...]` (or `[M, B/M, ...]` once split)."""

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    advantages: jax.Array
    returns: jax.Array


class OptCarry(NamedTuple):
    """Carry of the epoch and minibatch scans.

    `loss_sums` adds up each minibatch's `LossMetrics` in a fixed order, so the
    reported means are bit-identical with and without an outer `vmap` (a
    `jnp.mean` over the stacked `[epochs, minibatches]` values is not) and cost
    no extra loop.
    """

    params: Any
    opt_state: Any
    loss_sums: LossMetrics


def _as_float(hparams: HParams) -> HParams:
    """One member's hyperparameters as float32 scalars; wrong shapes raise `ValueError`.

    Runs at trace time, where shapes are known: a stacked `HParams` (leaves `[P]`)
    reaching the trainer was not vmapped, or was vmapped over the wrong axis.
    """
    check_member_hparams(hparams)
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), hparams)


@dataclasses.dataclass(frozen=True)
class Trainer:
    """PPO for one static configuration and environment. Build with `make_trainer`."""

    config: PPOConfig
    env: Any
    env_params: Any
    space: SpaceInfo
    network: ActorCritic

    # ----------------------------------------------------------------- init
    def init(self, key: jax.Array, hparams: HParams) -> TrainState:
        """Reset `num_envs` environments and initialise the network and optimizer."""
        hparams = _as_float(hparams)
        cfg = self.config
        net_key, reset_key, run_key = jax.random.split(key, 3)
        reset_keys = jax.random.split(reset_key, cfg.num_envs)
        obs, env_state = jax.vmap(self.env.reset, (0, None))(reset_keys, self.env_params)
        params = self.network.init(net_key, obs[0])
        opt_state = make_optimizer(hparams.learning_rate, hparams.max_grad_norm).init(params)
        obs_stats = RunningStats.create(self.space.obs_shape)
        if cfg.normalize_observations:
            obs_stats = obs_stats.update(obs)
        zeros = jnp.zeros((cfg.num_envs,), jnp.float32)
        return TrainState(
            params=params,
            opt_state=opt_state,
            env_state=env_state,
            obs=obs,
            obs_stats=obs_stats,
            return_stats=RunningStats.create(()),
            discounted_return=zeros,
            episode_return=zeros,
            episode_length=jnp.zeros((cfg.num_envs,), jnp.int32),
            key=run_key,
            update_step=jnp.zeros((), jnp.int32),
        )

    # -------------------------------------------------------------- rollout
    def _observe(self, stats: RunningStats, obs: jax.Array) -> jax.Array:
        if self.config.normalize_observations:
            return normalize_observation(stats, obs)
        return obs

    def _env_step(
        self, hparams: HParams, carry: RolloutCarry, key: jax.Array
    ) -> tuple[RolloutCarry, Transition]:
        """One vmapped env step of the rollout scan (all N envs)."""
        cfg, state = self.config, carry.state
        act_key, step_key = jax.random.split(key)
        obs_in = self._observe(state.obs_stats, state.obs)
        dist = self.network.apply(state.params, obs_in, method=ActorCritic.policy)
        action = dist.sample(seed=act_key)
        log_prob = dist.log_prob(action)
        step_keys = jax.random.split(step_key, cfg.num_envs)
        obs, env_state, reward, terminated, truncated, info = jax.vmap(
            self.env.step, (0, 0, 0, None)
        )(step_keys, state.env_state, env_action(self.space, action), self.env_params)
        reward = reward.astype(jnp.float32)
        terminated = jnp.asarray(terminated, jnp.bool_)
        done = jnp.logical_or(terminated, jnp.asarray(truncated, jnp.bool_))

        episode_return = state.episode_return + reward
        episode_length = state.episode_length + 1
        episodes = EpisodeSums(
            returns=carry.episodes.returns + jnp.sum(jnp.where(done, episode_return, 0.0)),
            lengths=carry.episodes.lengths + jnp.sum(jnp.where(done, episode_length, 0)),
            count=carry.episodes.count + jnp.sum(done),
        )

        obs_stats = state.obs_stats
        if cfg.normalize_observations:
            obs_stats = obs_stats.update(obs)
        next_obs_in = self._observe(obs_stats, info["final_observation"])

        return_stats, discounted_return, train_reward = (
            state.return_stats,
            state.discounted_return,
            reward,
        )
        if cfg.normalize_rewards:
            discounted_return = discounted_return * hparams.gamma + reward
            return_stats = return_stats.update(discounted_return)
            train_reward = scale_reward(return_stats, reward)
            discounted_return = jnp.where(done, 0.0, discounted_return)

        state = state.replace(
            env_state=env_state,
            obs=obs,
            obs_stats=obs_stats,
            return_stats=return_stats,
            discounted_return=discounted_return,
            episode_return=jnp.where(done, 0.0, episode_return),
            episode_length=jnp.where(done, 0, episode_length),
        )
        transition = Transition(
            obs=obs_in,
            action=action,
            log_prob=log_prob,
            reward=train_reward,
            terminated=terminated,
            done=done,
            next_obs=next_obs_in,
        )
        return RolloutCarry(state, episodes), transition

    def rollout(
        self, state: TrainState, hparams: HParams, key: jax.Array
    ) -> tuple[TrainState, Transition, EpisodeSums]:
        """`num_steps` env steps with the current policy: a trajectory `[T, N, ...]`."""
        hparams = _as_float(hparams)
        zero = jnp.zeros((), jnp.float32)
        carry = RolloutCarry(state, EpisodeSums(zero, zero, jnp.zeros((), jnp.int32)))
        keys = jax.random.split(key, self.config.num_steps)
        carry, trajectory = jax.lax.scan(functools.partial(self._env_step, hparams), carry, keys)
        return carry.state, trajectory, carry.episodes

    # --------------------------------------------------------------- update
    def make_batch(self, params: Any, trajectory: Transition, hparams: HParams) -> Batch:
        """Values, GAE advantages and returns for a trajectory, flattened to `[B, ...]`."""
        values = self.network.apply(params, trajectory.obs, method=ActorCritic.value)
        next_values = self.network.apply(params, trajectory.next_obs, method=ActorCritic.value)
        advantages, returns = compute_gae(
            trajectory.reward,
            values,
            next_values,
            trajectory.terminated,
            trajectory.done,
            hparams.gamma,
            hparams.gae_lambda,
        )
        batch = Batch(
            obs=trajectory.obs,
            action=trajectory.action,
            log_prob=trajectory.log_prob,
            value=values,
            advantages=advantages,
            returns=returns,
        )
        size = self.config.batch_size
        return jax.tree.map(lambda x: x.reshape((size, *x.shape[2:])), batch)

    def loss(
        self, params: Any, hparams: HParams, minibatch: Batch
    ) -> tuple[jax.Array, LossMetrics]:
        """PPO loss of one minibatch `[b, ...]` under `params`."""
        dist, value = self.network.apply(params, minibatch.obs)
        advantages = minibatch.advantages
        if self.config.normalize_advantages:
            advantages = normalize(advantages)
        return ppo_loss(
            log_prob=dist.log_prob(minibatch.action),
            entropy=dist.entropy(),
            value=value,
            old_log_prob=minibatch.log_prob,
            old_value=minibatch.value,
            advantages=advantages,
            returns=minibatch.returns,
            clip_eps=hparams.clip_eps,
            vf_coef=hparams.vf_coef,
            ent_coef=hparams.ent_coef,
            clip_value=self.config.clip_value_loss,
        )

    def _minibatch_step(
        self, hparams: HParams, carry: OptCarry, minibatch: Batch
    ) -> tuple[OptCarry, None]:
        """One gradient step on one minibatch; adds its loss metrics to the carry."""
        grads, metrics = jax.grad(self.loss, has_aux=True)(carry.params, hparams, minibatch)
        tx = make_optimizer(hparams.learning_rate, hparams.max_grad_norm)
        updates, opt_state = tx.update(grads, carry.opt_state, carry.params)
        loss_sums = LossMetrics(*(a + b for a, b in zip(carry.loss_sums, metrics, strict=True)))
        return OptCarry(optax.apply_updates(carry.params, updates), opt_state, loss_sums), None

    def _epoch(
        self, hparams: HParams, batch: Batch, carry: OptCarry, key: jax.Array
    ) -> tuple[OptCarry, None]:
        """One pass over the batch: permute once, reshape into minibatches, scan."""
        cfg = self.config
        perm = jax.random.permutation(key, cfg.batch_size)
        minibatches = jax.tree.map(
            lambda x: x[perm].reshape((cfg.num_minibatches, cfg.minibatch_size, *x.shape[1:])),
            batch,
        )
        return jax.lax.scan(functools.partial(self._minibatch_step, hparams), carry, minibatches)

    def learning_rate(self, hparams: HParams, update_step: jax.Array) -> jax.Array:
        """Learning rate of update `update_step` (linear decay to 0 when `anneal_lr`).

        The decay reaches 0 at `config.num_updates` and stays there: updates past the
        horizon do not move the policy. To continue a run with a decaying rate, build a
        trainer for a longer `total_timesteps` and pass it the old state (README,
        "Continuing a run"): the decay then runs to the new horizon.
        """
        if not self.config.anneal_lr:
            return jnp.asarray(hparams.learning_rate, jnp.float32)
        frac = 1.0 - update_step.astype(jnp.float32) / self.config.num_updates
        return hparams.learning_rate * jnp.maximum(frac, 0.0)

    def update(self, state: TrainState, hparams: HParams) -> tuple[TrainState, dict[str, Any]]:
        """One PPO update: rollout, GAE, `update_epochs` x `num_minibatches` steps."""
        hparams = _as_float(hparams)
        cfg = self.config
        key, rollout_key, epoch_key = jax.random.split(state.key, 3)
        state, trajectory, episodes = self.rollout(state, hparams, rollout_key)
        batch = self.make_batch(state.params, trajectory, hparams)

        lr = self.learning_rate(hparams, state.update_step)
        opt_state = state.opt_state
        opt_state = opt_state._replace(
            hyperparams={
                **opt_state.hyperparams,
                "learning_rate": lr.astype(opt_state.hyperparams["learning_rate"].dtype),
                "max_grad_norm": hparams.max_grad_norm.astype(
                    opt_state.hyperparams["max_grad_norm"].dtype
                ),
            }
        )
        epoch_keys = jax.random.split(epoch_key, cfg.update_epochs)
        zero = jnp.zeros((), jnp.float32)
        carry, _ = jax.lax.scan(
            functools.partial(self._epoch, hparams, batch),
            OptCarry(state.params, opt_state, LossMetrics(*([zero] * len(LossMetrics._fields)))),
            epoch_keys,
        )
        steps = cfg.update_epochs * cfg.num_minibatches
        count = episodes.count.astype(jnp.float32)
        metrics = {
            "episode_return": jnp.where(count > 0, episodes.returns / count, jnp.nan),
            "episode_length": jnp.where(count > 0, episodes.lengths / count, jnp.nan),
            **{name: total / steps for name, total in carry.loss_sums._asdict().items()},
            "explained_variance": explained_variance(batch.value, batch.returns),
            "learning_rate": lr,
        }
        state = state.replace(
            params=carry.params,
            opt_state=carry.opt_state,
            key=key,
            update_step=state.update_step + 1,
        )
        return state, {name: metrics[name] for name in METRIC_NAMES}

    def _update_body(
        self, hparams: HParams, state: TrainState, _: None
    ) -> tuple[TrainState, dict[str, Any]]:
        return self.update(state, hparams)

    def run(
        self, state: TrainState, hparams: HParams, num_updates: int
    ) -> tuple[TrainState, dict[str, jax.Array]]:
        """`num_updates` updates as one scan; metrics have leading axis `num_updates`."""
        return jax.lax.scan(
            functools.partial(self._update_body, hparams), state, None, length=num_updates
        )

    def train(self, key: jax.Array, hparams: HParams) -> TrainOutput:
        """The whole run: `init`, then `config.num_updates` updates."""
        state = self.init(key, hparams)
        state, metrics = self.run(state, hparams, self.config.num_updates)
        return TrainOutput(params=state.params, metrics=metrics, state=state)


def make_trainer(config: PPOConfig, env: Any = None, env_params: Any = None) -> Trainer:
    """Build the `Trainer` for `config`; `env`/`env_params` override construction by name."""
    if not isinstance(config, PPOConfig):
        raise ValueError(f"config: expected a PPOConfig, got {type(config).__name__}")
    env, env_params, label = resolve_env(config, env, env_params)
    space = space_info(env, env_params, label)
    check_env_signature(env, env_params, space, label)
    if config.normalize_observations and space.obs_categories:
        raise ValueError(
            f"normalize_observations: {label.partition(': ')[2] or label} has a Discrete "
            "observation space (one-hot encoded); normalising it makes no sense, set it to false"
        )
    network = ActorCritic(
        space=space, hidden_sizes=config.hidden_sizes, activation=config.activation
    )
    return Trainer(config=config, env=env, env_params=env_params, space=space, network=network)


def make_train(config: PPOConfig, env: Any = None, env_params: Any = None):
    """A pure `train(key, hparams) -> TrainOutput` for `config`. Apply `jax.jit` yourself.

    `env`/`env_params` accept any gymnax-1.x-style environment; without them the
    environment is made from `config.env_name`.
    """
    return make_trainer(config, env, env_params).train
