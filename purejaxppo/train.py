"""The PPO trainer: rollout scan, GAE, minibatch epochs, `make_train`.

The rollout and its batch live in `rollout.py`; each objective's loss, the target-KL
stop and the adaptive beta in `objectives.py` (`Anchors` is re-exported here).

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
from typing import Any

import jax
import jax.numpy as jnp
import optax

from purejaxppo.config import HParams, PPOConfig, check_member_hparams
from purejaxppo.encoders import resolve_encoder
from purejaxppo.envs import (
    RunningStats,
    SpaceInfo,
    check_env_signature,
    resolve_env,
    space_info,
)
from purejaxppo.envs.observations import create_obs_stats
from purejaxppo.losses import LossMetrics, explained_variance
from purejaxppo.networks import ActorCritic, build_network, initial_hidden
from purejaxppo.objectives import (
    Anchors,
    OptCarry,
    loss_means,
    minibatch_loss,
    next_kl_coef,
    record_step,
    start_carry,
    take_step,
)
from purejaxppo.optim import make_optimizer
from purejaxppo.prng import permutation, use_unrolled_threefry
from purejaxppo.rollout import (
    Batch,
    EpisodeSums,
    Transition,
    group_reset,
    make_batch,
    make_group_batch,
    make_recurrent_batch,
    make_sync_group_batch,
    replay,
    rollout,
    sync_rollout,
)
from purejaxppo.schedule import HParamSchedule, fold_key_at, resolve_hparams
from purejaxppo.state import METRIC_NAMES, TrainOutput, TrainState
from purejaxppo.unused_settings import check_hparams


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
    def init(self, key: jax.Array, hparams: HParams | HParamSchedule) -> TrainState:
        """Reset `num_envs` environments and initialise the network and optimizer (a
        schedule's first segment gives the initial `kl_coef` and optimizer settings).

        Concrete (un-jitted) `hparams` are checked against the config (`check_hparams`)."""
        hparams = check_hparams(self.config, _as_float(resolve_hparams(hparams, 0)))
        cfg = self.config
        net_key, reset_key, run_key = jax.random.split(key, 3)
        reset_keys = jax.random.split(reset_key, cfg.num_envs)
        obs, env_state = jax.vmap(self.env.reset, (0, None))(reset_keys, self.env_params)
        params = self.network.init(net_key, jax.tree.map(lambda x: x[0], obs))
        opt_state = make_optimizer(hparams.learning_rate, hparams.max_grad_norm).init(params)
        obs_stats = create_obs_stats(self.space.obs_shape, self.space.obs_spec)
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
            kl_coef=hparams.kl_coef,
            ref_params=params if cfg.advantage == "group" else None,
            hidden=initial_hidden(cfg, cfg.num_envs),
            last_done=jnp.ones((cfg.num_envs,), jnp.bool_) if cfg.gru_size else None,
        )

    # -------------------------------------------------------------- rollout
    def rollout(
        self, state: TrainState, hparams: HParams, key: jax.Array
    ) -> tuple[TrainState, Transition, EpisodeSums]:
        """`num_steps` env steps with the current policy: a trajectory `[T, N, ...]`."""
        return rollout(self, state, _as_float(hparams), key)

    # --------------------------------------------------------------- update
    def make_batch(self, params: Any, trajectory: Transition, hparams: HParams) -> Batch:
        """Values, GAE advantages and returns for a trajectory, flattened to `[B, ...]`."""
        return make_batch(self, params, trajectory, hparams)

    def loss(
        self, params: Any, hparams: HParams, minibatch: Batch, anchors: Anchors | None = None
    ) -> tuple[jax.Array, LossMetrics]:
        """Loss of one minibatch `[b, ...]` under `params`: `(total, metrics)`.

        `anchors` holds beta and the reference policy (default: `hparams.kl_coef` and no
        reference policy, so no KL-to-reference term).

        The default (`clip` objective, GAE) is PPO-clip with the value loss and entropy
        bonus; the other objectives and `group` mode take `objective_loss`
        (`objectives.minibatch_loss`).
        """
        if anchors is None:
            anchors = Anchors(jnp.asarray(hparams.kl_coef, jnp.float32), None)
        dist, value, minibatch = self._forward(params, minibatch)
        return minibatch_loss(self.config, self.network, hparams, anchors, dist, value, minibatch)

    def _forward(self, params: Any, minibatch: Batch) -> tuple[Any, jax.Array, Batch]:
        """`(dist, value, minibatch)` with every leaf flat `[b, ...]`. A recurrent minibatch
        `[T, n, ...]` is replayed from its `hidden0` and then flattened to `b = T * n`."""
        if not self.config.gru_size:
            dist, value = self.network.apply(params, minibatch.obs)
            return dist, value, minibatch
        out = replay(self, params, minibatch.hidden0, minibatch.obs, minibatch.reset, minibatch.obs)
        flat = minibatch._replace(reset=None, hidden0=None)
        flat, dist, value = jax.tree.map(
            lambda x: x.reshape((-1, *x.shape[2:])), (flat, out.dist, out.value)
        )
        return dist, value, flat

    def _policy_over_batch(self, params: Any, batch: Batch) -> Any:
        """The policy's distribution at every step of a whole batch (replayed if recurrent)."""
        if not self.config.gru_size:
            return self.network.apply(params, batch.obs, method=ActorCritic.policy)
        return replay(self, params, batch.hidden0, batch.obs, batch.reset).dist

    def _minibatch_step(
        self, hparams: HParams, anchors: Anchors, carry: OptCarry, minibatch: Batch
    ) -> tuple[OptCarry, None]:
        """One gradient step on one minibatch, unless the target-KL stop has fired.

        The stop sees this minibatch's approximate KL (before its step): once the mean
        over the steps taken plus this one exceeds `early_stop_kl`, this and every later
        step of the update are skipped (a branch; under vmap a select, so a sweep vmaps
        over thresholds).
        """
        grad_fn = jax.grad(self.loss, has_aux=True)
        grads, metrics = grad_fn(carry.params, hparams, minibatch, anchors)
        tx = make_optimizer(hparams.learning_rate, hparams.max_grad_norm)
        take = take_step(carry, metrics.approx_kl, hparams.early_stop_kl)

        def optimizer_step(_: None) -> tuple[Any, Any]:
            updates, opt_state = tx.update(grads, carry.opt_state, carry.params)
            return optax.apply_updates(carry.params, updates), opt_state

        def skipped_step(_: None) -> tuple[Any, Any]:
            return carry.params, carry.opt_state

        # A real branch in a single run: no select over (and no copy of) the parameters
        # and Adam moments on every step, ~1.1x steps/s with one seed (docs/benchmark.md).
        # Under vmap (a batched `take`) JAX turns it into the same select as `record_step`.
        params, opt_state = jax.lax.cond(take, optimizer_step, skipped_step, None)
        return record_step(carry, take, params, opt_state, metrics), None

    def _epoch(
        self, hparams: HParams, anchors: Anchors, batch: Batch, carry: OptCarry, key: jax.Array
    ) -> tuple[OptCarry, None]:
        """One pass over the batch: permute once, reshape into minibatches, scan.

        A recurrent batch `[T, N, ...]` is permuted and split over envs: minibatches of
        whole sequences `[M, T, N/M, ...]`, each with its starting hidden state."""
        cfg = self.config
        if cfg.gru_size:
            minibatches = _split_envs(batch, permutation(key, cfg.num_envs), cfg)
        else:
            perm = permutation(key, cfg.batch_size)
            minibatches = jax.tree.map(
                lambda x: x[perm].reshape((cfg.num_minibatches, cfg.minibatch_size, *x.shape[1:])),
                batch,
            )
        step = functools.partial(self._minibatch_step, hparams, anchors)
        return jax.lax.scan(step, carry, minibatches)

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
        """One PPO update: rollout, advantages, `update_epochs` x `num_minibatches` steps."""
        hparams = _as_float(hparams)
        cfg = self.config
        if cfg.advantage == "group":
            key, rollout_key, epoch_key, reset_key = jax.random.split(state.key, 4)
            state = group_reset(self, state, reset_key)
            if cfg.group_reset == "longest":
                state, steps = sync_rollout(self, state, hparams, rollout_key)
                batch, group = make_sync_group_batch(self, steps, hparams)
            else:
                state, trajectory, _ = self.rollout(state, hparams, rollout_key)
                batch, group = make_group_batch(self, trajectory, hparams)
            episode_stats = (jnp.mean(group.returns), jnp.mean(group.lengths))
        else:
            key, rollout_key, epoch_key = jax.random.split(state.key, 3)
            hidden0 = state.hidden
            state, trajectory, episodes = self.rollout(state, hparams, rollout_key)
            if cfg.gru_size:
                batch = make_recurrent_batch(self, state.params, trajectory, hidden0, hparams)
            else:
                batch = self.make_batch(state.params, trajectory, hparams)
            count = episodes.count.astype(jnp.float32)
            episode_stats = (
                jnp.where(count > 0, episodes.returns / count, jnp.nan),
                jnp.where(count > 0, episodes.lengths / count, jnp.nan),
            )

        lr = self.learning_rate(hparams, state.update_step)
        carry = self._epochs(state, hparams, batch, lr, epoch_key)
        kl_coef, kl = self._next_kl_coef(state, hparams, batch, carry)
        metrics = {
            "episode_return": episode_stats[0],
            "episode_length": episode_stats[1],
            **loss_means(carry, cfg.update_epochs * cfg.num_minibatches),
            "explained_variance": explained_variance(batch.value, batch.returns)
            if cfg.advantage == "gae"
            else jnp.asarray(jnp.nan, jnp.float32),
            "learning_rate": lr,
            "kl": kl,
            "kl_coef": state.kl_coef,
            "minibatch_steps": carry.steps.astype(jnp.float32),
        }
        state = state.replace(
            params=carry.params,
            opt_state=carry.opt_state,
            key=key,
            update_step=state.update_step + 1,
            kl_coef=kl_coef,
        )
        return state, {name: metrics[name] for name in METRIC_NAMES}

    def _epochs(
        self, state: TrainState, hparams: HParams, batch: Batch, lr: jax.Array, key: jax.Array
    ) -> OptCarry:
        """`update_epochs` passes of minibatch steps from the state's params, at rate `lr`."""
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
        start = start_carry(state.params, opt_state)
        anchors = Anchors(state.kl_coef, state.ref_params)
        epoch_keys = jax.random.split(key, self.config.update_epochs)
        carry, _ = jax.lax.scan(
            functools.partial(self._epoch, hparams, anchors, batch), start, epoch_keys
        )
        return carry

    def _next_kl_coef(
        self, state: TrainState, hparams: HParams, batch: Batch, carry: OptCarry
    ) -> tuple[jax.Array, jax.Array]:
        """`(beta for the next update, measured KL)`. The KL objectives measure the exact KL
        between the rollout policy and the updated one over the whole batch (the PPO
        paper's `d`) and adapt beta by its rule, clipped into `[kl_coef_min, kl_coef_max]`;
        `clip` keeps beta and reports NaN."""
        if self.config.objective == "clip":
            return state.kl_coef, jnp.asarray(jnp.nan, jnp.float32)
        new = self._policy_over_batch(carry.params, batch)
        return next_kl_coef(self.config.kl_direction, state.kl_coef, hparams, new, batch)

    def _update_body(
        self, hparams: HParams | HParamSchedule, state: TrainState, _: None
    ) -> tuple[TrainState, dict[str, Any]]:
        if isinstance(hparams, HParamSchedule):  # a segment may refold the key where it starts
            state = state.replace(key=fold_key_at(hparams, state.update_step, state.key))
        return self.update(state, resolve_hparams(hparams, state.update_step))

    def run(
        self, state: TrainState, hparams: HParams | HParamSchedule, num_updates: int
    ) -> tuple[TrainState, dict[str, jax.Array]]:
        """`num_updates` updates as one scan; metrics have leading axis `num_updates`.

        `hparams` may be an `HParamSchedule` (purejaxppo/schedule.py): each update then
        uses the segment holding its `state.update_step`, without recompiling."""
        if isinstance(hparams, HParamSchedule):
            check_hparams(self.config, hparams.values)  # every segment ([K] leaves)
        else:
            check_hparams(self.config, _as_float(hparams))
        return jax.lax.scan(
            functools.partial(self._update_body, hparams), state, None, length=num_updates
        )

    def train(self, key: jax.Array, hparams: HParams | HParamSchedule) -> TrainOutput:
        """The whole run: `init`, then `config.num_updates` updates."""
        state = self.init(key, hparams)
        state, metrics = self.run(state, hparams, self.config.num_updates)
        return TrainOutput(params=state.params, metrics=metrics, state=state)


def _split_envs(batch: Batch, perm: jax.Array, cfg: PPOConfig) -> Batch:
    """A time-major recurrent batch `[T, N, ...]` (and `hidden0` `[N, H]`) permuted over
    envs and split into `[M, T, N/M, ...]` minibatches of whole sequences."""
    m, n = cfg.num_minibatches, cfg.num_envs // cfg.num_minibatches

    def split(x: jax.Array) -> jax.Array:
        x = x[:, perm].reshape((x.shape[0], m, n, *x.shape[2:]))
        return jnp.swapaxes(x, 0, 1)

    hidden0 = batch.hidden0[perm].reshape((m, n, *batch.hidden0.shape[1:]))
    return jax.tree.map(split, batch._replace(hidden0=None))._replace(hidden0=hidden0)


def _check_group_mode(config: PPOConfig, env_params: Any, label: str) -> None:
    """`group` advantages score whole episodes: every env must finish its first episode
    within the rollout, so `num_steps` must reach the env's time limit."""
    limit = getattr(env_params, "max_steps_in_episode", None)
    if limit is None:
        raise ValueError(
            f"advantage: group needs whole episodes, but {label} has no max_steps_in_episode "
            "time limit that bounds them"
        )
    # Traced env params (vmapped or jitted over) cannot be compared here: then keeping
    # num_steps >= every time limit is the caller's part (make_trainer's docstring).
    if not isinstance(limit, jax.core.Tracer) and config.num_steps < int(limit):
        raise ValueError(
            f"num_steps: advantage group needs whole episodes in every rollout: num_steps "
            f"({config.num_steps}) must be >= the env's time limit max_steps_in_episode "
            f"({int(limit)})"
        )
    if config.normalize_rewards:
        raise ValueError(
            "normalize_rewards: not with advantage group (the group scores are already "
            "normalised; the episode returns must be the env's); set it to false"
        )


def make_trainer(
    config: PPOConfig, env: Any = None, env_params: Any = None, encoder: Any = None
) -> Trainer:
    """Build the `Trainer` for `config`; `env`/`env_params` override construction by name;
    `encoder` (a zero-argument factory of a Flax module, `ActorCritic.encoder`) replaces the
    default observation features (or `config.encoder` names one by import string).

    Everything checked here is static. In `advantage: group` mode `num_steps` must reach the
    env's time limit `env_params.max_steps_in_episode`; when `env_params` is traced (e.g.
    `jax.vmap` over env params), that comparison is skipped and is the caller's to keep.
    """
    if not isinstance(config, PPOConfig):
        raise ValueError(f"config: expected a PPOConfig, got {type(config).__name__}")
    use_unrolled_threefry()
    env, env_params, label = resolve_env(config, env, env_params)
    space = space_info(env, env_params, label)
    check_env_signature(env, env_params, space, label)
    if config.advantage == "group":
        _check_group_mode(config, env_params, label)
    if config.normalize_observations and space.obs_categories:
        raise ValueError(
            f"normalize_observations: {label.partition(': ')[2] or label} has a Discrete "
            "observation space (one-hot encoded); normalising it makes no sense, set it to false"
        )
    if config.torso == "cnn" and space.obs_spec is not None:
        raise ValueError(
            f"torso: cnn needs [H, W, C] image observations; {label.partition(': ')[2] or label} "
            "observes a pytree; use torso: mlp (leaves flattened and concatenated) or an encoder "
            "of your own (ppo.encoder)"
        )
    if config.torso == "cnn" and (len(space.obs_shape) != 3 or space.obs_categories):
        raise ValueError(
            f"torso: cnn needs [H, W, C] image observations; {label.partition(': ')[2] or label} "
            f"observes shape {tuple(space.obs_shape)}; use torso: mlp"
        )
    network = build_network(config, space, resolve_encoder(config, encoder))
    return Trainer(config=config, env=env, env_params=env_params, space=space, network=network)


def make_train(config: PPOConfig, env: Any = None, env_params: Any = None, encoder: Any = None):
    """A pure `train(key, hparams) -> TrainOutput` for `config`. Apply `jax.jit` yourself.

    `env`/`env_params` accept any gymnax-1.x-style environment; without them the
    environment is made from `config.env_name`. Observations may be arrays or pytrees
    (`purejaxppo.envs.observations`); `encoder` is a zero-argument factory of a Flax module
    encoding them before each MLP (`ActorCritic.encoder`).
    """
    return make_trainer(config, env, env_params, encoder).train
