"""XLand-MiniGrid's MiniGrid environments behind the gymnax 1.x interface:
`env_name: xminigrid/<name>`, e.g. `xminigrid/MiniGrid-Empty-8x8`.

`make_xminigrid_env("xminigrid/MiniGrid-Empty-8x8")` builds
`xminigrid.make("MiniGrid-Empty-8x8")` and wraps it in `XMiniGridEnv` (a
`purejaxppo.envs.suite.SuiteEnv`):

- observations: the agent's partial view, `[V, V, 2]` (tile and colour indices, V = 7 for
  the MiniGrid envs), as float32; `torso: cnn` reads it as an image, the default MLP
  flattens it;
- actions: `Discrete(6)` (forward, turn right/left, pick up, put down, toggle);
- `terminated`: the goal reached (xminigrid's `discount == 0`); the time limit
  `params.max_steps_in_episode` (default xminigrid's `max_steps`) is a truncation.
  xminigrid's reward on reaching the goal, `1 - 0.9 * t / max_steps`, keeps using
  xminigrid's own `max_steps`.

Only the `MiniGrid-*` names: the `XLand-MiniGrid-*` envs need a ruleset from one of
xminigrid's benchmarks, which it downloads (purejaxppo never downloads data).

xminigrid is imported only when an `xminigrid/` name is built or checked, never by
`import purejaxppo`; without it the error says which extra to install.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from purejaxppo.envs.suite import SuiteEnv, SuiteParams, check_suite_name, import_suite

PREFIX = "xminigrid/"
EXTRA = "xminigrid"


def is_xminigrid_name(env_name: Any) -> bool:
    """True for an `env_name` of the form `xminigrid/<name>`."""
    return isinstance(env_name, str) and env_name.startswith(PREFIX)


def _xminigrid(env_name: str) -> Any:
    return import_suite(env_name, "xminigrid", EXTRA)


def xminigrid_env_names(env_name: str = "xminigrid/NAME") -> list[str]:
    """Every `xminigrid/<name>` that `make_xminigrid_env` builds (imports xminigrid;
    `env_name` is only the name shown when it is missing)."""
    names = _xminigrid(env_name).registered_environments()
    return [f"{PREFIX}{name}" for name in names if name.startswith("MiniGrid-")]


def check_xminigrid_name(env_name: str) -> None:
    """A one-line `ValueError("env_name: ...")` unless `env_name` is a known
    `xminigrid/<name>` and xminigrid is installed."""
    check_suite_name(env_name, xminigrid_env_names(env_name), "xminigrid")


class XMiniGridEnv(SuiteEnv):
    """An xminigrid env with the gymnax 1.x interface (see the module docstring).
    `env_params`: xminigrid's own params (static: they fix the grid's shape)."""

    env_params: Any

    def _reset_inner(self, key: jax.Array) -> tuple[jax.Array, Any]:
        timestep = self.env.reset(self.env_params, key)
        return timestep.observation, timestep

    def _step_inner(
        self, key: jax.Array, inner: Any, action: jax.Array
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array]:
        del key  # xminigrid's MiniGrid steps are deterministic
        timestep = self.env.step(self.env_params, inner, jnp.asarray(action, jnp.int32))
        terminated = timestep.discount == 0.0
        return timestep.observation, timestep, timestep.reward, terminated


def make_xminigrid_env(env_name: str) -> tuple[XMiniGridEnv, SuiteParams]:
    """`(XMiniGridEnv, params)` for `env_name = "xminigrid/<name>"`; params hold the time
    limit."""
    check_xminigrid_name(env_name)
    xminigrid = _xminigrid(env_name)
    env, env_params = xminigrid.make(env_name.removeprefix(PREFIX))
    wrapped = XMiniGridEnv(
        env_name,
        env,
        obs_shape=tuple(env.observation_shape(env_params)),
        num_actions=env.num_actions(env_params),
        max_steps=int(env_params.max_steps),
        obs_bounds=(0.0, 255.0),
    )
    wrapped.env_params = env_params
    return wrapped, wrapped.default_params
