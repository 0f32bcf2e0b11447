"""A tiny pure-JAX env with a pytree observation and an action mask, for the tests.

The agent walks on a 3x3 grid from the top-left corner to the bottom-right one. Actions:
0 up, 1 down, 2 left, 3 right, 4 "forbidden" (always invalid). Moves off the grid are
invalid too, so the mask depends on the state. The observation is a dict (or a NamedTuple
with `MaskedGrid(named=True)`): `grid` float32 `[3, 3]` (1 where the agent is), `steps`
int32 `[]`, `action_mask` bool `[5]`. Taking an invalid action ends the episode with reward
-100 and is counted in the state's `invalid` (never reset), so a test can tell whether one
was ever taken; reaching the goal gives +1 and ends the episode.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

SIZE = 3
MOVES = jnp.array([[-1, 0], [1, 0], [0, -1], [0, 1], [0, 0]], jnp.int32)


class GridObs(NamedTuple):
    grid: jax.Array
    steps: jax.Array
    action_mask: jax.Array


@struct.dataclass
class GridState:
    pos: jax.Array  # int32 [2]
    time: jax.Array  # int32 []
    invalid: jax.Array  # int32 [], invalid actions taken so far (all episodes)


@struct.dataclass
class GridParams:
    max_steps_in_episode: int = 12


class MaskedGrid:
    def __init__(self, named: bool = False) -> None:
        self.named = named

    @property
    def default_params(self) -> GridParams:
        return GridParams()

    def _mask(self, pos: jax.Array) -> jax.Array:
        nxt = pos[None, :] + MOVES[:4]
        inside = jnp.all((nxt >= 0) & (nxt < SIZE), axis=-1)
        return jnp.concatenate([inside, jnp.zeros((1,), jnp.bool_)])

    def _obs(self, state: GridState) -> Any:
        grid = jnp.zeros((SIZE, SIZE), jnp.float32).at[state.pos[0], state.pos[1]].set(1.0)
        parts = (grid, state.time, self._mask(state.pos))
        if self.named:
            return GridObs(*parts)
        return dict(zip(("grid", "steps", "action_mask"), parts, strict=True))

    def reset(self, key: jax.Array, params: GridParams) -> tuple[Any, GridState]:
        del key, params
        state = GridState(
            jnp.zeros((2,), jnp.int32), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32)
        )
        return self._obs(state), state

    def step(self, key: jax.Array, state: GridState, action: jax.Array, params: GridParams):
        valid = self._mask(state.pos)[action]
        pos = jnp.clip(state.pos + MOVES[action], 0, SIZE - 1)
        goal = jnp.all(pos == SIZE - 1)
        time = state.time + 1
        terminated = goal | ~valid
        truncated = (time >= params.max_steps_in_episode) & ~terminated
        reward = jnp.where(valid, goal.astype(jnp.float32), -100.0)
        invalid = state.invalid + (~valid).astype(jnp.int32)
        final = GridState(pos, time, invalid)
        final_obs = self._obs(final)
        reset_obs, reset_state = self.reset(key, params)
        done = terminated | truncated
        state = jax.tree.map(
            lambda r, f: jnp.where(done, r, f), reset_state.replace(invalid=invalid), final
        )
        obs = jax.tree.map(lambda r, f: jnp.where(done, r, f), reset_obs, final_obs)
        return obs, state, reward, terminated, truncated, {"final_observation": final_obs}

    def observation_space(self, params: GridParams) -> Any:
        del params
        return spaces.Dict(
            {
                "grid": spaces.Box(0.0, 1.0, (SIZE, SIZE), jnp.float32),
                "steps": spaces.Discrete(100),
                "action_mask": spaces.Box(0, 1, (5,), jnp.bool_),
            }
        )

    def action_space(self, params: GridParams) -> Any:
        del params
        return spaces.Discrete(5)
