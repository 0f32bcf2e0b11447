"""Probe environments: tiny gymnax-1.x environments whose right answer is known.

Each isolates one part of PPO, so a bug shows up as a wrong number in seconds
instead of a flat learning curve after an hour (the idea of Andy Jones' "debug
RL" probes). They subclass `gymnax.environments.environment.Environment`, so
they auto-reset and report `info["final_observation"]` exactly like the real
gymnax environments.

- `ConstantReward-probe`: observation always 1, reward +1 every step, never
  terminates, truncated after `max_steps_in_episode`. The critic must learn
  `V = 1 / (1 - gamma)`; treating truncation as termination gives far less.
- `SignAction-probe`: observation is +1 or -1 at random, two actions, reward +1
  for the action matching the sign (0 = negative, 1 = positive) else -1; the
  episode terminates after one step. Tests that the policy gradient points the
  right way.
- `ContinuousTarget-probe`: observation is a target `x` uniform in [-0.8, 0.8],
  one continuous action in [-1, 1], reward `-(a - x)^2`, one step. Tests the
  Gaussian policy head.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class ProbeState(environment.EnvState):
    """State of a probe: the current observation value and the step counter."""

    value: jax.Array
    time: int


@struct.dataclass
class ProbeParams(environment.EnvParams):
    """Probe parameters: only the time limit."""

    max_steps_in_episode: int = 50


class ConstantReward(environment.Environment[ProbeState, ProbeParams]):
    """Reward +1 forever; only time-limit truncation ends an episode."""

    @property
    def default_params(self) -> ProbeParams:
        return ProbeParams(max_steps_in_episode=50)

    def step_env(self, key, state, action, params):
        del key, action
        state = ProbeState(value=state.value, time=state.time + 1)
        obs = self.get_obs(state)
        return obs, state, jnp.float32(1.0), jnp.array(False), {}

    def reset_env(self, key, params):
        del key
        state = ProbeState(value=jnp.float32(1.0), time=0)
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None) -> jax.Array:
        return jnp.full((1,), state.value, dtype=jnp.float32)

    def is_terminated(self, state, params) -> jax.Array:
        return jnp.array(False)

    @property
    def name(self) -> str:
        return "ConstantReward-probe"

    @property
    def num_actions(self) -> int:
        return 2

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(2)

    def observation_space(self, params=None) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (1,), jnp.float32)


class SignAction(environment.Environment[ProbeState, ProbeParams]):
    """One step: +1 for the action matching the observation's sign, else -1."""

    @property
    def default_params(self) -> ProbeParams:
        return ProbeParams(max_steps_in_episode=1)

    def step_env(self, key, state, action, params):
        correct = (action == 1) == (state.value > 0)
        reward = jnp.where(correct, 1.0, -1.0).astype(jnp.float32)
        state = ProbeState(value=state.value, time=state.time + 1)
        return self.get_obs(state), state, reward, jnp.array(True), {}

    def reset_env(self, key, params):
        value = jnp.where(jax.random.bernoulli(key), 1.0, -1.0).astype(jnp.float32)
        state = ProbeState(value=value, time=0)
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None) -> jax.Array:
        return jnp.reshape(state.value, (1,))

    def is_terminated(self, state, params) -> jax.Array:
        return jnp.array(True)

    @property
    def name(self) -> str:
        return "SignAction-probe"

    @property
    def num_actions(self) -> int:
        return 2

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(2)

    def observation_space(self, params=None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)


class ContinuousTarget(environment.Environment[ProbeState, ProbeParams]):
    """One step: reward `-(a - x)^2` for a target `x` shown as the observation."""

    @property
    def default_params(self) -> ProbeParams:
        return ProbeParams(max_steps_in_episode=1)

    def step_env(self, key, state, action, params):
        reward = -jnp.sum((action - state.value) ** 2).astype(jnp.float32)
        state = ProbeState(value=state.value, time=state.time + 1)
        return self.get_obs(state), state, reward, jnp.array(True), {}

    def reset_env(self, key, params):
        value = jax.random.uniform(key, (), jnp.float32, -0.8, 0.8)
        state = ProbeState(value=value, time=0)
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None) -> jax.Array:
        return jnp.reshape(state.value, (1,))

    def is_terminated(self, state, params) -> jax.Array:
        return jnp.array(True)

    @property
    def name(self) -> str:
        return "ContinuousTarget-probe"

    @property
    def num_actions(self) -> int:
        return 1

    def action_space(self, params=None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)

    def observation_space(self, params=None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)


PROBE_ENVS: dict[str, Any] = {
    "ConstantReward-probe": ConstantReward,
    "SignAction-probe": SignAction,
    "ContinuousTarget-probe": ContinuousTarget,
}
