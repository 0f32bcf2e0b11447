"""The rollout scan and the training batch it makes (pure JAX, time-major).

`rollout` runs `num_steps` vmapped env steps with the current policy, giving a
trajectory `[T, N, ...]`. `make_batch` turns it into a flat batch `[B, ...]`
(B = T * N): GAE advantages from the critic, or, in `group` mode, the
group-relative scores of each env's first episode with the later steps masked
out. `group_reset` starts every env of a group from one shared reset. With
`group_reset: longest`, `sync_rollout` plays synced rounds instead (an env that ended
waits for its group, then the group resets together) and `make_sync_group_batch` scores
every complete round.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.config import HParams
from purejaxppo.envs import RunningStats, env_action, normalize_observation, scale_reward
from purejaxppo.gae import (
    compute_gae,
    episode_weights,
    find_rounds,
    first_episode_mask,
    group_advantages,
    leave_one_out_advantages,
    reward_to_go,
    round_advantages,
    sequence_weights,
)
from purejaxppo.networks import ActorCritic

if TYPE_CHECKING:
    from purejaxppo.state import TrainState
    from purejaxppo.train import Trainer


class Transition(NamedTuple):
    """One env step for all envs; stacked by the rollout scan into `[T, N, ...]`.

    `obs` and `next_obs` are what the network sees (normalised when that is on);
    `next_obs` is the true next observation (the final one on episode end).
    `reward` is the training reward (scaled when reward normalisation is on).
    `old_dist` is the acting distribution (its parameters `[T, N, ...]`), kept only
    for the KL objectives. `reset` (recurrent policies) is True where `obs` starts an
    episode, i.e. where the policy zeroed its hidden state before acting.
    """

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    reward: jax.Array
    terminated: jax.Array
    done: jax.Array
    next_obs: jax.Array
    old_dist: Any = None
    reset: Any = None


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
    """Flat training batch, leaves `[B, ...]` (or `[M, B/M, ...]` once split).

    `mask` (`group` mode) weighs each step in the loss's masked means: 1 for steps that
    count and 0 after an episode (`token_mean`), or per-sequence weights (`sequence_mean`);
    `old_dist` (KL objectives) the acting distribution; both None otherwise.

    Recurrent policies keep the batch time-major, leaves `[T, N, ...]` (split over envs
    into `[M, T, N/M, ...]`), with `reset` `[T, N]` and the GRU state at the start of the
    rollout `hidden0` `[N, 2 * gru_size]` to replay the sequences from.
    """

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    advantages: jax.Array
    returns: jax.Array
    mask: jax.Array | None = None
    old_dist: Any = None
    reset: Any = None
    hidden0: Any = None


def observe(trainer: Trainer, stats: RunningStats, obs: jax.Array) -> jax.Array:
    """What the network sees: `obs`, normalised when the config says so."""
    if trainer.config.normalize_observations:
        return normalize_observation(stats, obs)
    return obs


def env_step(
    trainer: Trainer, hparams: HParams, carry: RolloutCarry, key: jax.Array
) -> tuple[RolloutCarry, Transition]:
    """One vmapped env step of the rollout scan (all N envs)."""
    cfg, state = trainer.config, carry.state
    act_key, step_key = jax.random.split(key)
    obs_in = observe(trainer, state.obs_stats, state.obs)
    hidden = state.hidden
    if cfg.gru_size:
        hidden, dist, _ = trainer.network.apply(
            state.params, state.hidden, obs_in, state.last_done, method=ActorCritic.step
        )
    else:
        dist = trainer.network.apply(state.params, obs_in, method=ActorCritic.policy)
    action = dist.sample(seed=act_key)
    log_prob = dist.log_prob(action)
    step_keys = jax.random.split(step_key, cfg.num_envs)
    obs, env_state, reward, terminated, truncated, info = jax.vmap(
        trainer.env.step, (0, 0, 0, None)
    )(step_keys, state.env_state, env_action(trainer.space, action), trainer.env_params)
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
    next_obs_in = observe(trainer, obs_stats, info["final_observation"])

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
    if cfg.gru_size:
        state = state.replace(hidden=hidden, last_done=done)
    transition = Transition(
        obs=obs_in,
        action=action,
        log_prob=log_prob,
        reward=train_reward,
        terminated=terminated,
        done=done,
        next_obs=next_obs_in,
        old_dist=dist.batched() if cfg.objective != "clip" else None,
        reset=carry.state.last_done,
    )
    return RolloutCarry(state, episodes), transition


def rollout(
    trainer: Trainer, state: TrainState, hparams: HParams, key: jax.Array
) -> tuple[TrainState, Transition, EpisodeSums]:
    """`num_steps` env steps with the current policy: a trajectory `[T, N, ...]`."""
    zero = jnp.zeros((), jnp.float32)
    carry = RolloutCarry(state, EpisodeSums(zero, zero, jnp.zeros((), jnp.int32)))
    keys = jax.random.split(key, trainer.config.num_steps)
    carry, trajectory = jax.lax.scan(functools.partial(env_step, trainer, hparams), carry, keys)
    return carry.state, trajectory, carry.episodes


def shared_reset(trainer: Trainer, key: jax.Array) -> tuple[jax.Array, Any]:
    """Reset observations `[N, ...]` and env states (leaves `[N, ...]`), the `group_size`
    envs of a group from one shared key (common random numbers: the same start state)."""
    cfg = trainer.config
    group_keys = jax.random.split(key, cfg.num_envs // cfg.group_size)
    keys = group_keys[jnp.arange(cfg.num_envs) // cfg.group_size]
    return jax.vmap(trainer.env.reset, (0, None))(keys, trainer.env_params)


def group_reset(trainer: Trainer, state: TrainState, key: jax.Array) -> TrainState:
    """Reset every env, the `group_size` envs of a group from one shared key (common random
    numbers: they start from the same state), and clear the running episode sums."""
    cfg = trainer.config
    obs, env_state = shared_reset(trainer, key)
    obs_stats = state.obs_stats.update(obs) if cfg.normalize_observations else state.obs_stats
    zeros = jnp.zeros((cfg.num_envs,), jnp.float32)
    return state.replace(
        env_state=env_state,
        obs=obs,
        obs_stats=obs_stats,
        discounted_return=zeros,
        episode_return=zeros,
        episode_length=jnp.zeros((cfg.num_envs,), jnp.int32),
    )


class SyncCarry(NamedTuple):
    """Carry of the synced rollout scan (`group_reset: longest`): the rollout carry and
    `waiting` `[N]` bool, True for envs whose episode of the current round has ended."""

    rollout: RolloutCarry
    waiting: jax.Array


class SyncStep(NamedTuple):
    """Per-step output of the synced rollout (stacked to `[T, N, ...]`): the transition
    (its `done` / `terminated` only on active steps), `active` (the env played a step of
    its round, False while it waits) and `round_end` (its group finished the round here)."""

    transition: Transition
    active: jax.Array
    round_end: jax.Array


def _select(where: jax.Array, new: Any, old: Any) -> Any:
    """Per env: leaves `[N, ...]` of `new` where `where` `[N]` is True, else of `old`."""

    def pick(a: jax.Array, b: jax.Array) -> jax.Array:
        return jnp.where(where.reshape(where.shape + (1,) * (a.ndim - 1)), a, b)

    return jax.tree.map(pick, new, old)


def sync_env_step(
    trainer: Trainer, hparams: HParams, carry: SyncCarry, key: jax.Array
) -> tuple[SyncCarry, SyncStep]:
    """One step of the synced rollout: every env steps (`env_step`), but a waiting env keeps
    its old state (it is not moved into a new episode); once all envs of a group have
    ended their episode, the group resets together from one shared key."""
    cfg = trainer.config
    step_key, reset_key = jax.random.split(key)
    before = carry.rollout.state
    stepped, transition = env_step(trainer, hparams, carry.rollout, step_key)
    active = jnp.logical_not(carry.waiting)
    done = jnp.logical_and(transition.done, active)
    waiting = jnp.logical_or(carry.waiting, done)
    group_done = jnp.all(waiting.reshape((-1, cfg.group_size)), axis=1)
    round_end = jnp.repeat(group_done, cfg.group_size)  # [N]
    state = stepped.state
    frozen = _select(
        carry.waiting,
        (before.env_state, before.obs, before.episode_return, before.episode_length),
        (state.env_state, state.obs, state.episode_return, state.episode_length),
    )
    reset_obs, reset_env_state = shared_reset(trainer, reset_key)
    zeros = jnp.zeros_like(state.episode_return)
    env_state, obs, episode_return, episode_length = _select(
        round_end,
        (reset_env_state, reset_obs, zeros, jnp.zeros_like(state.episode_length)),
        frozen,
    )
    state = state.replace(
        env_state=env_state, obs=obs, episode_return=episode_return, episode_length=episode_length
    )
    transition = transition._replace(
        done=done, terminated=jnp.logical_and(transition.terminated, active)
    )
    carry = SyncCarry(RolloutCarry(state, stepped.episodes), jnp.logical_and(waiting, ~round_end))
    return carry, SyncStep(transition, active, round_end)


def sync_rollout(
    trainer: Trainer, state: TrainState, hparams: HParams, key: jax.Array
) -> tuple[TrainState, SyncStep]:
    """`num_steps` synced steps (`group_reset: longest`) from a fresh group reset: the
    trajectory `[T, N, ...]` with its `active` and `round_end` flags `[T, N]`."""
    zero = jnp.zeros((), jnp.float32)
    episodes = EpisodeSums(zero, zero, jnp.zeros((), jnp.int32))
    waiting = jnp.zeros((trainer.config.num_envs,), jnp.bool_)
    carry = SyncCarry(RolloutCarry(state, episodes), waiting)
    keys = jax.random.split(key, trainer.config.num_steps)
    body = functools.partial(sync_env_step, trainer, hparams)
    carry, steps = jax.lax.scan(body, carry, keys)
    return carry.rollout.state, steps


def _flatten(trainer: Trainer, batch: Batch) -> Batch:
    size = trainer.config.batch_size
    return jax.tree.map(lambda x: x.reshape((size, *x.shape[2:])), batch)


def make_batch(trainer: Trainer, params: Any, trajectory: Transition, hparams: HParams) -> Batch:
    """Values, GAE advantages and returns for a trajectory, flattened to `[B, ...]`."""
    values = trainer.network.apply(params, trajectory.obs, method=ActorCritic.value)
    next_values = trainer.network.apply(params, trajectory.next_obs, method=ActorCritic.value)
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
        old_dist=trajectory.old_dist,
    )
    return _flatten(trainer, batch)


class ReplayOut(NamedTuple):
    """Per-step output of `replay` (stacked to `[T, N, ...]`)."""

    dist: Any
    value: jax.Array
    next_value: jax.Array


def _replay_step(
    trainer: Trainer, params: Any, hidden: jax.Array, xs: tuple[jax.Array, ...]
) -> tuple[jax.Array, ReplayOut]:
    """One recurrent step over `[N, ...]` inputs; also the value of the true next
    observation from the new hidden state (the bootstrap on truncation)."""
    obs, reset, next_obs = xs
    net = trainer.network
    hidden, dist, value = net.apply(params, hidden, obs, reset, method=ActorCritic.step)
    next_value = value
    if next_obs is not None:
        no_reset = jnp.zeros_like(reset)
        _, _, next_value = net.apply(params, hidden, next_obs, no_reset, method=ActorCritic.step)
    return hidden, ReplayOut(dist.batched(), value, next_value)


def replay(
    trainer: Trainer,
    params: Any,
    hidden0: jax.Array,
    obs: jax.Array,
    reset: jax.Array,
    next_obs: jax.Array | None = None,
) -> ReplayOut:
    """Run the recurrent policy over stored sequences `[T, n, ...]` from `hidden0` `[n, H]`:
    distributions, values and next values `[T, n]` (a `lax.scan` over time). Without
    `next_obs` the next values are not computed (they repeat the values)."""
    body = functools.partial(_replay_step, trainer, params)
    _, out = jax.lax.scan(body, hidden0, (obs, reset, next_obs))
    return out


def make_recurrent_batch(
    trainer: Trainer, params: Any, trajectory: Transition, hidden0: jax.Array, hparams: HParams
) -> Batch:
    """Like `make_batch` for a recurrent policy, time-major `[T, N, ...]`: the values are
    replayed from the rollout's starting GRU state `hidden0` `[N, 2G]`."""
    out = replay(trainer, params, hidden0, trajectory.obs, trajectory.reset, trajectory.next_obs)
    advantages, returns = compute_gae(
        trajectory.reward,
        out.value,
        out.next_value,
        trajectory.terminated,
        trajectory.done,
        hparams.gamma,
        hparams.gae_lambda,
    )
    return Batch(
        obs=trajectory.obs,
        action=trajectory.action,
        log_prob=trajectory.log_prob,
        value=out.value,
        advantages=advantages,
        returns=returns,
        old_dist=trajectory.old_dist,
        reset=trajectory.reset,
        hidden0=hidden0,
    )


class GroupEpisodes(NamedTuple):
    """Each env's first episode of a `group` rollout: return and length `[N]`."""

    returns: jax.Array
    lengths: jax.Array


def make_group_batch(
    trainer: Trainer, trajectory: Transition, hparams: HParams
) -> tuple[Batch, GroupEpisodes]:
    """Critic-free batch, flattened to `[B, ...]`; steps after each env's first episode are
    masked out. `group_score: outcome`: every step of env n's first episode gets the group
    score of its return `R_n`; `reward_to_go`: step t gets the leave-one-out advantage of
    its discounted reward-to-go (`leave_one_out_advantages`, gamma = `hparams.gamma`).
    `mask` is the 0/1 first-episode mask (`token_mean`) or its per-sequence weights
    (`sequence_mean`, `sequence_weights`)."""
    cfg = trainer.config
    mask = first_episode_mask(trajectory.done)  # [T, N]
    episode_returns = jnp.sum(mask * trajectory.reward, axis=0)  # [N]
    if cfg.group_score == "reward_to_go":
        to_go = reward_to_go(trajectory.reward, mask, hparams.gamma)  # [T, N]
        advantages = mask * leave_one_out_advantages(to_go, cfg.group_size, cfg.group_normalize)
    else:
        scores = group_advantages(episode_returns, cfg.group_size, cfg.group_normalize)
        advantages = mask * scores[None, :]
    weights = sequence_weights(mask) if cfg.group_aggregation == "sequence_mean" else mask
    zeros = jnp.zeros_like(trajectory.reward)
    batch = Batch(
        obs=trajectory.obs,
        action=trajectory.action,
        log_prob=trajectory.log_prob,
        value=zeros,
        advantages=advantages,
        returns=zeros,
        mask=weights,
        old_dist=trajectory.old_dist,
    )
    episodes = GroupEpisodes(episode_returns, jnp.sum(mask, axis=0))
    return _flatten(trainer, batch), episodes


def make_sync_group_batch(
    trainer: Trainer, steps: SyncStep, hparams: HParams
) -> tuple[Batch, GroupEpisodes]:
    """Critic-free batch of a synced rollout (`group_reset: longest`), flattened to
    `[B, ...]`: the scores of every complete round (`round_advantages`, `group_score` and
    `group_normalize` as in `make_group_batch`); waiting steps and the steps of a round
    still running at the buffer's end weigh 0. `GroupEpisodes` holds scalars here: the
    mean return and length of the counted episodes (NaN if none)."""
    cfg = trainer.config
    trajectory = steps.transition
    rounds = find_rounds(steps.round_end)
    advantages, returns, lengths = round_advantages(
        trajectory.reward,
        steps.active,
        trajectory.done,
        rounds,
        hparams.gamma,
        cfg.group_size,
        cfg.group_normalize,
        cfg.group_score,
    )
    mask = jnp.logical_and(steps.active, rounds.complete).astype(jnp.float32)  # [T, N]
    advantages = mask * advantages
    per_sequence = cfg.group_aggregation == "sequence_mean"
    weights = episode_weights(mask, lengths) if per_sequence else mask
    zeros = jnp.zeros_like(trajectory.reward)
    batch = Batch(
        obs=trajectory.obs,
        action=trajectory.action,
        log_prob=trajectory.log_prob,
        value=zeros,
        advantages=advantages,
        returns=zeros,
        mask=weights,
        old_dist=trajectory.old_dist,
    )
    starts = rounds.start == jnp.arange(mask.shape[0], dtype=jnp.int32)[:, None]  # [T, N]
    counted = jnp.logical_and(starts, rounds.complete).astype(jnp.float32)
    count = jnp.sum(counted)
    episodes = GroupEpisodes(
        jnp.where(count > 0, jnp.sum(counted * returns) / count, jnp.nan),
        jnp.where(count > 0, jnp.sum(counted * lengths) / count, jnp.nan),
    )
    return _flatten(trainer, batch), episodes
