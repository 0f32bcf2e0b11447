"""Evaluate a trained policy on fresh episodes (pure; the caller jits and vmaps over seeds).

Runs `E` environments from reset until each has finished one episode (gymnax
environments truncate at `max_steps_in_episode`), with the observation
normaliser statistics of the run applied and frozen.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purejaxppo.envs import RunningStats, env_action, normalize_observation
from purejaxppo.networks import ActorCritic, initial_hidden
from purejaxppo.train import Trainer


class EvalResult(NamedTuple):
    """Per-episode results: `returns` `[E]` float32, `lengths` `[E]` int32."""

    returns: jax.Array
    lengths: jax.Array


class EvalCarry(NamedTuple):
    """Carry of the evaluation loop; leaves `[E, ...]` except `key` and `step`."""

    env_state: Any
    obs: jax.Array
    returns: jax.Array
    lengths: jax.Array
    alive: jax.Array
    key: jax.Array
    step: jax.Array
    hidden: Any = None  # [E, 2 * gru_size] GRU state of a recurrent policy, else None


def max_episode_steps(trainer: Trainer) -> int:
    """Upper bound on an episode's length (the env's truncation limit)."""
    limit = getattr(trainer.env_params, "max_steps_in_episode", None)
    if limit is None:
        raise ValueError("eval: the env has no max_steps_in_episode, so episodes may not end")
    return int(limit)


class PolicyStep(NamedTuple):
    """One step of `E` environments under the policy: leaves `[E, ...]` except `key`."""

    env_state: Any
    obs: jax.Array  # the observations after the step
    reward: jax.Array  # float32
    done: jax.Array  # terminated or truncated
    key: jax.Array  # the key to draw the next step from
    hidden: Any = None  # the new GRU state of a recurrent policy, else None


def policy_step(
    trainer: Trainer,
    params: Any,
    obs_stats: RunningStats,
    deterministic: bool,
    env_state: Any,
    obs: jax.Array,
    key: jax.Array,
    hidden: Any = None,
    reset: jax.Array | None = None,
) -> PolicyStep:
    """Act in `E` environments (observations `[E, ...]`, normalised with the run's frozen
    statistics when it normalised them) and step them; a recurrent policy starts from
    `hidden`, zeroed where `reset` `[E]` is True. Takes the mode when `deterministic`."""
    obs_in = obs
    if trainer.config.normalize_observations:
        obs_in = normalize_observation(obs_stats, obs)
    if trainer.config.gru_size:
        hidden, dist, _ = trainer.network.apply(
            params, hidden, obs_in, reset, method=ActorCritic.step
        )
    else:
        dist = trainer.network.apply(params, obs_in, method=ActorCritic.policy)
    key, act_key, step_key = jax.random.split(key, 3)
    action = dist.mode() if deterministic else dist.sample(seed=act_key)
    step_keys = jax.random.split(step_key, jax.tree.leaves(obs)[0].shape[0])
    obs, env_state, reward, terminated, truncated, _ = jax.vmap(trainer.env.step, (0, 0, 0, None))(
        step_keys, env_state, env_action(trainer.space, action), trainer.env_params
    )
    done = jnp.logical_or(jnp.asarray(terminated, jnp.bool_), jnp.asarray(truncated, jnp.bool_))
    return PolicyStep(env_state, obs, reward.astype(jnp.float32), done, key, hidden)


def reset_episodes(trainer: Trainer, key: jax.Array, num: int) -> tuple[Any, jax.Array, jax.Array]:
    """`(env_state, obs [E, ...], key)`: `num` environments reset from `key`, and the key
    left for the steps."""
    reset_key, run_key = jax.random.split(key)
    obs, env_state = jax.vmap(trainer.env.reset, (0, None))(
        jax.random.split(reset_key, num), trainer.env_params
    )
    return env_state, obs, run_key


def _eval_step(
    trainer: Trainer,
    params: Any,
    obs_stats: RunningStats,
    deterministic: bool,
    carry: EvalCarry,
) -> EvalCarry:
    """One step of all `E` environments; finished ones keep their totals."""
    # A recurrent policy plays one episode per env: only the first step resets its state.
    first = jnp.broadcast_to(carry.step == 0, carry.alive.shape)
    out = policy_step(
        trainer,
        params,
        obs_stats,
        deterministic,
        carry.env_state,
        carry.obs,
        carry.key,
        hidden=carry.hidden,
        reset=first,
    )
    alive = carry.alive
    return EvalCarry(
        env_state=out.env_state,
        obs=out.obs,
        returns=carry.returns + jnp.where(alive, out.reward, 0.0),
        lengths=carry.lengths + alive.astype(jnp.int32),
        alive=jnp.logical_and(alive, jnp.logical_not(out.done)),
        key=out.key,
        step=carry.step + 1,
        hidden=out.hidden,
    )


def evaluate(
    trainer: Trainer,
    params: Any,
    obs_stats: RunningStats,
    key: jax.Array,
    num_episodes: int,
    deterministic: bool = False,
) -> EvalResult:
    """Returns and lengths of `num_episodes` fresh episodes under `params`.

    Args:
      trainer: the `Trainer` the params were trained with (env, network, config).
      params: actor-critic parameters (one seed).
      obs_stats: the run's observation statistics (used when it normalised observations).
      key: PRNG key for resets, actions and env steps.
      num_episodes: E, static.
      deterministic: take the distribution's mode instead of sampling.
    """
    env_state, obs, run_key = reset_episodes(trainer, key, num_episodes)
    carry = EvalCarry(
        env_state=env_state,
        obs=obs,
        returns=jnp.zeros((num_episodes,), jnp.float32),
        lengths=jnp.zeros((num_episodes,), jnp.int32),
        alive=jnp.ones((num_episodes,), jnp.bool_),
        key=run_key,
        step=jnp.zeros((), jnp.int32),
        hidden=initial_hidden(trainer.config, num_episodes),
    )
    limit = max_episode_steps(trainer) + 1
    step = functools.partial(_eval_step, trainer, params, obs_stats, deterministic)
    carry = jax.lax.while_loop(lambda c: jnp.any(c.alive) & (c.step < limit), step, carry)
    return EvalResult(returns=carry.returns, lengths=carry.lengths)
