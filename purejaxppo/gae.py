"""Advantages: generalised advantage estimation as a reverse `lax.scan`, and the
critic-free group-relative scores of GRPO (time-major `[T, N]`)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


def _gae_step(next_advantage: jax.Array, step: tuple[jax.Array, jax.Array]):
    """One backward step: `A_t = delta_t + decay_t * A_{t+1}`, decay = gamma*lambda*(1-done)."""
    delta, decay = step
    advantage = delta + decay * next_advantage
    return advantage, advantage


def compute_gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    done: jax.Array,
    gamma: jax.Array | float,
    gae_lambda: jax.Array | float,
) -> tuple[jax.Array, jax.Array]:
    """Advantages and returns, time-major `[T, ...]`.

    `delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t`
    `A_t = delta_t + gamma * gae_lambda * (1 - done_t) * A_{t+1}`, `A_T = 0`.

    Args:
      rewards: `[T, ...]` rewards of each transition.
      values: `[T, ...]` V(s_t).
      next_values: `[T, ...]` V of the true next observation: on a time-limit
        truncation the episode's final observation, not the reset one.
      terminated: `[T, ...]` bool or 0/1: the episode really ended (no bootstrap).
      done: `[T, ...]` bool or 0/1: terminated or truncated (the trace is cut).
      gamma, gae_lambda: scalars (traced; vmap over them freely).

    Returns:
      `(advantages, returns)`, both `[T, ...]`, `returns = advantages + values`.
    """
    dtype = jnp.result_type(values.dtype, jnp.float32)
    values = values.astype(dtype)
    not_terminated = 1.0 - jnp.asarray(terminated).astype(dtype)
    not_done = 1.0 - jnp.asarray(done).astype(dtype)
    deltas = rewards.astype(dtype) + gamma * not_terminated * next_values.astype(dtype) - values
    decays = gamma * gae_lambda * not_done
    _, advantages = jax.lax.scan(
        _gae_step, jnp.zeros_like(deltas[0]), (deltas, decays), reverse=True
    )
    return advantages, advantages + values


def first_episode_mask(done: jax.Array) -> jax.Array:
    """`[T, N]` float32: 1 for the steps of each env's first episode in the rollout (up to
    and including its first `done`), 0 after it."""
    done = done.astype(jnp.int32)
    ended_before = (jnp.cumsum(done, axis=0) - done) > 0
    return jnp.logical_not(ended_before).astype(jnp.float32)


def group_advantages(
    returns: jax.Array, group_size: int, normalize: bool, eps: float = 1e-8
) -> jax.Array:
    """GRPO scores of episode returns `[N]`, envs grouped in consecutive blocks of
    `group_size`: `(R_i - mean_group R) / (std_group R + eps)`, or only the mean
    subtracted (`normalize=False`, Dr. GRPO); a group of tied returns is not divided
    (`divide_by_spread`). Returns `[N]`."""
    grouped = returns.reshape((-1, group_size))
    centred = grouped - jnp.mean(grouped, axis=1, keepdims=True)
    if normalize:
        spread = jnp.std(grouped, axis=1, keepdims=True)
        centred = divide_by_spread(centred, spread, _magnitude(grouped, axis=1), eps)
    return centred.reshape(returns.shape)


SPREAD_RTOL = 1e-5
"""A group's std at or below `SPREAD_RTOL * (max |x| + 1)` is a tie: float32 rounding
(about 1.2e-7 relative) cannot separate it from 0."""


def _magnitude(values: jax.Array, axis: int) -> jax.Array:
    return jnp.max(jnp.abs(values), axis=axis, keepdims=True)


def spread_is_resolvable(spread: jax.Array, magnitude: jax.Array) -> jax.Array:
    """True where a group's std `spread` is more than a tie: above `SPREAD_RTOL` of its
    values' `magnitude` (max |x|) plus 1."""
    return spread > SPREAD_RTOL * (magnitude + 1.0)


def divide_by_spread(
    advantages: jax.Array, spread: jax.Array, magnitude: jax.Array, eps: float = 1e-8
) -> jax.Array:
    """`advantages / (spread + eps)` where the group's std `spread` is resolvable, else the
    advantages unchanged (broadcasting shapes). A group of tied scores has a std that is 0
    or a few float32 rounding steps of its values' `magnitude`, and centred scores that are
    rounding noise of the same size: dividing them by `eps` (or by that std) would turn the
    noise into advantages of order 1. Left undivided, they stay at rounding size."""
    resolvable = spread_is_resolvable(spread, magnitude)
    return jnp.where(resolvable, advantages / (spread + eps), advantages)


def _reward_to_go_step(
    next_value: jax.Array, step: tuple[jax.Array, jax.Array, jax.Array]
) -> tuple[jax.Array, jax.Array]:
    """One backward step: `G_t = mask_t * (r_t + gamma * G_{t+1})`."""
    reward, mask, gamma = step
    value = mask * (reward + gamma * next_value)
    return value, value


def reward_to_go(rewards: jax.Array, mask: jax.Array, gamma: jax.Array | float) -> jax.Array:
    """Discounted reward-to-go of each env's first episode, time-major `[T, N]`:
    `G_t = sum_{k>=t, mask_k=1} gamma^(k-t) r_k` inside the episode (`mask`, from
    `first_episode_mask`), 0 after it. `gamma` is a scalar (traced), or a per-step
    discount `[T, N]` (`gamma * (1 - done)` cuts the sum at every episode end)."""
    dtype = jnp.result_type(rewards.dtype, jnp.float32)
    gammas = jnp.broadcast_to(jnp.asarray(gamma, dtype), rewards.shape)
    _, values = jax.lax.scan(
        _reward_to_go_step,
        jnp.zeros_like(rewards[0], dtype),
        (rewards.astype(dtype), mask.astype(dtype), gammas),
        reverse=True,
    )
    return values


def leave_one_out_advantages(
    returns_to_go: jax.Array, group_size: int, normalize: bool, eps: float = 1e-8
) -> jax.Array:
    """Per-step leave-one-out group advantages `[T, N]` from reward-to-go `[T, N]` (envs
    grouped in consecutive blocks of `group_size >= 2`):
    `A_i(t) = G_i(t) - (1 / (g - 1)) sum_{j != i} G_j(t)`, the other episodes of the group
    at the same step t (0 where they have ended). With `normalize`, divided by the std over
    the group of the episodes' discounted returns `G_j(0)` (plus `eps`), unless that std
    is a tie (`divide_by_spread`)."""
    steps = returns_to_go.shape[0]
    grouped = returns_to_go.reshape((steps, -1, group_size))
    others = (jnp.sum(grouped, axis=2, keepdims=True) - grouped) / (group_size - 1)
    advantages = grouped - others
    if normalize:
        spread = jnp.std(grouped[0], axis=1, keepdims=True)[None]  # [1, B, 1]
        magnitude = _magnitude(grouped[0], axis=1)[None]
        advantages = divide_by_spread(advantages, spread, magnitude, eps)
    return advantages.reshape(returns_to_go.shape)


def sequence_weights(mask: jax.Array) -> jax.Array:
    """`[T, N]` loss weights of the per-sequence mean (DeepSeekMath's GRPO): step t of env
    n's first episode weighs `mean_n |o_n| / |o_n|`, 0 after it. Every episode's weights
    sum to the mean length, so `sum(w x) / sum(w)` over the batch is
    `(1/N) sum_n (1/|o_n|) sum_t x_n(t)`, and the weights sum to the counted steps, as the
    0/1 mask of the token mean does."""
    lengths = jnp.sum(mask, axis=0)
    return mask * (jnp.mean(lengths) / jnp.maximum(lengths, 1.0))[None, :]


class Rounds(NamedTuple):
    """Where the synced rounds of `group_reset: longest` lie in a rollout, `[T, N]` each.

    `start` is the index of the step that starts the round holding step t (all envs of a
    group share it); `complete` is True where that round ends inside the rollout (an
    unfinished round cannot be scored)."""

    start: jax.Array
    complete: jax.Array


def find_rounds(round_end: jax.Array) -> Rounds:
    """Rounds from `round_end` `[T, N]` (True at the step where the env's group finished
    its round: the last of its envs ended its episode). A round starts at step 0 and after
    every round end."""
    steps = round_end.shape[0]
    starts = jnp.concatenate([jnp.ones_like(round_end[:1]), round_end[:-1]], axis=0)
    index = jnp.where(starts, jnp.arange(steps, dtype=jnp.int32)[:, None], 0)
    start = jax.lax.cummax(index, axis=0)
    complete = jax.lax.cummax(round_end.astype(jnp.int32), axis=0, reverse=True) > 0
    return Rounds(start, complete)


def at_round_start(values: jax.Array, rounds: Rounds) -> jax.Array:
    """`values` `[T, N]` read at the start step of each step's round: `[T, N]`."""
    return jnp.take_along_axis(values, rounds.start, axis=0)


def round_advantages(
    rewards: jax.Array,
    active: jax.Array,
    done: jax.Array,
    rounds: Rounds,
    gamma: jax.Array | float,
    group_size: int,
    normalize: bool,
    score: str,
    eps: float = 1e-8,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Group scores of synced rounds (`group_reset: longest`), time-major `[T, N]`.

    Every env plays one episode per round; `active` `[T, N]` is 1 on its steps and 0 while
    it waits for the rest of its group, `done` `[T, N]` marks its last step (terminated or
    truncated). Per round: `score == "reward_to_go"`: `G_i(t)` (discounted, 0 on waiting
    steps) minus the mean of the other envs' `G_j(t)` at the same step, divided (with
    `normalize`) by the group's std of `G_j` at the round's start; `score == "outcome"`:
    every step of episode i gets `(R_i - mean R) / std R` over the round's undiscounted
    returns. A round whose std is a tie (0 up to rounding, `divide_by_spread`) is not
    divided: its outcome scores are 0 (all returns equal) and its reward-to-go advantages
    stay unnormalised. Returns `(advantages, episode_returns,
    episode_lengths)`, the last two the undiscounted return and length of the episode
    holding each step (read at the round's start). Waiting steps and the steps of an
    unfinished round are not zeroed here; the caller masks them."""
    active = active.astype(jnp.float32)
    cut = 1.0 - done.astype(jnp.float32)
    undiscounted = reward_to_go(rewards, active, cut)
    returns = at_round_start(undiscounted, rounds)
    lengths = at_round_start(reward_to_go(active, active, cut), rounds)
    steps = rewards.shape[0]
    if score == "reward_to_go":
        to_go = reward_to_go(rewards, active, gamma * cut)
        advantages = leave_one_out_advantages(to_go, group_size, normalize=False)
        values = to_go.reshape((steps, -1, group_size))
    else:
        values = returns.reshape((steps, -1, group_size))
        advantages = values - jnp.mean(values, axis=2, keepdims=True)
        advantages = advantages.reshape(returns.shape)
    if normalize:
        spread = jnp.std(values, axis=2)
        resolvable = spread_is_resolvable(spread, jnp.max(jnp.abs(values), axis=2))
        spread, resolvable = (
            at_round_start(jnp.repeat(x, group_size, axis=1), rounds) for x in (spread, resolvable)
        )  # [T, N]
        advantages = jnp.where(resolvable, advantages / (spread + eps), advantages)
        if score == "outcome":
            advantages = jnp.where(resolvable, advantages, 0.0)
    return advantages, returns, lengths


def episode_weights(mask: jax.Array, lengths: jax.Array) -> jax.Array:
    """`[T, N]` per-sequence loss weights when envs play several episodes: step t of a
    counted episode of length `lengths[t, n]` weighs `mean |o| / |o|` (mean over the
    counted episodes, `mask` `[T, N]` 0/1), 0 elsewhere; as in `sequence_weights`, every
    episode's weights sum to the mean length and all weights to the counted steps."""
    per_step = mask / jnp.maximum(lengths, 1.0)
    episodes = jnp.sum(per_step)
    mean_length = jnp.sum(mask) / jnp.maximum(episodes, 1e-12)
    return per_step * mean_length
