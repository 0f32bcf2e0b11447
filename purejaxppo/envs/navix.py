"""Navix environments (MiniGrid in JAX) behind the gymnax 1.x interface:
`env_name: navix/<name>`, e.g. `navix/Navix-Empty-8x8-v0`.

`make_navix_env("navix/Navix-Empty-8x8-v0")` builds `navix.make("Navix-Empty-8x8-v0")` and
wraps it in `NavixEnv` (a `purejaxppo.envs.suite.SuiteEnv`):

- observations: navix's default for the env (for most, `symbolic`: the whole grid as
  `[H, W, 3]` object, colour and state indices), as float32; `torso: cnn` reads them as an
  image, the default MLP flattens them;
- actions: `Discrete(7)` (navix's action set: turn left/right, forward, pick up, drop,
  toggle, done);
- `terminated`: navix's own termination (goal reached, lava); the time limit
  `params.max_steps_in_episode` (default navix's `max_steps`, `4 * H * W` for most) is a
  truncation. navix's own step auto-resets one step late (the step after the last one
  returns the reset); the adapter calls navix's inner `_step` and resets in the same step.

navix is imported only when a `navix/` name is built or checked, never by
`import purejaxppo`; without it the error says which extra to install.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from purejaxppo.envs.suite import SuiteEnv, SuiteParams, check_suite_name, import_suite

PREFIX = "navix/"
EXTRA = "navix"
TERMINATION = 2  # navix's StepType: 0 transition, 1 truncation, 2 termination


def is_navix_name(env_name: Any) -> bool:
    """True for an `env_name` of the form `navix/<name>`."""
    return isinstance(env_name, str) and env_name.startswith(PREFIX)


def _navix(env_name: str) -> Any:
    return import_suite(env_name, "navix", EXTRA)


def navix_env_names(env_name: str = "navix/NAME") -> list[str]:
    """Every `navix/<name>` that `make_navix_env` builds (imports navix; `env_name` is only
    the name shown when navix is missing)."""
    return [f"{PREFIX}{name}" for name in _navix(env_name).registry()]


def check_navix_name(env_name: str) -> None:
    """A one-line `ValueError("env_name: ...")` unless `env_name` is a known `navix/<name>`
    and navix is installed."""
    check_suite_name(env_name, navix_env_names(env_name), "navix")


class NavixEnv(SuiteEnv):
    """A navix env with the gymnax 1.x interface (see the module docstring)."""

    def _reset_inner(self, key: jax.Array) -> tuple[jax.Array, Any]:
        timestep = self.env.reset(key)
        return timestep.observation, timestep

    def _step_inner(
        self, key: jax.Array, inner: Any, action: jax.Array
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array]:
        del key  # navix keeps its own key in its state
        timestep = self.env._step(inner, jnp.asarray(action, jnp.int32))
        terminated = timestep.step_type == TERMINATION
        return timestep.observation, timestep, timestep.reward, terminated


def make_navix_env(env_name: str) -> tuple[NavixEnv, SuiteParams]:
    """`(NavixEnv, params)` for `env_name = "navix/<name>"`; params hold the time limit."""
    check_navix_name(env_name)
    navix = _navix(env_name)
    env = navix.make(env_name.removeprefix(PREFIX))
    space = env.observation_space
    wrapped = NavixEnv(
        env_name,
        env,
        obs_shape=tuple(space.shape),
        num_actions=len(env.action_set),
        max_steps=int(env.max_steps),
        obs_bounds=(float(space.minimum), float(space.maximum)),
    )
    return wrapped, wrapped.default_params
