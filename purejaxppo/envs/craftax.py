"""Craftax environments behind the gymnax 1.x interface: `env_name: craftax/<name>`, e.g.
`craftax/Craftax-Symbolic-v1`.

`make_craftax_env("craftax/Craftax-Symbolic-v1")` builds craftax's env without its own
auto-reset (`make_craftax_env_from_name(name, auto_reset=False)`) and wraps it in
`CraftaxEnv` (a `purejaxppo.envs.suite.SuiteEnv`):

- observations: the symbolic envs' flat float32 vector (`[8268]` for Craftax, `[1345]` for
  Craftax-Classic); the pixel envs' `[H, W, 3]` image (not tested here);
- actions: `Discrete(43)` (Craftax) or `Discrete(17)` (Classic);
- `terminated`: the player's death (and, in Craftax, the final boss beaten); craftax's own
  `is_terminal` also ends an episode at `max_timesteps`, which is kept apart here: the time
  limit `params.max_steps_in_episode` (default craftax's `max_timesteps`: 100000 for
  Craftax, 10000 for Classic) is a truncation. craftax's other params (day length, the
  classic world's guaranteed diamond) stay at their defaults.

Compiling one step of Craftax (not Classic) takes ~35 s on 2 CPU cores, a reset ~10 s.

craftax is imported only when a `craftax/` name is built or checked, never by
`import purejaxppo`; without it the error says which extra to install.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from purejaxppo.envs.suite import SuiteEnv, SuiteParams, check_suite_name, import_suite

PREFIX = "craftax/"
EXTRA = "craftax"
NAMES = (
    "Craftax-Symbolic-v1",
    "Craftax-Pixels-v1",
    "Craftax-Classic-Symbolic-v1",
    "Craftax-Classic-Pixels-v1",
)
NO_TIME_LIMIT = 2**30  # craftax's max_timesteps while asking it for a true termination


def is_craftax_name(env_name: Any) -> bool:
    """True for an `env_name` of the form `craftax/<name>`."""
    return isinstance(env_name, str) and env_name.startswith(PREFIX)


def _craftax_env(env_name: str) -> Any:
    return import_suite(env_name, "craftax.craftax_env", EXTRA)


def craftax_env_names(env_name: str = "craftax/NAME") -> list[str]:
    """Every `craftax/<name>` that `make_craftax_env` builds (imports craftax; `env_name`
    is only the name shown when craftax is missing)."""
    _craftax_env(env_name)
    return [f"{PREFIX}{name}" for name in NAMES]


def check_craftax_name(env_name: str) -> None:
    """A one-line `ValueError("env_name: ...")` unless `env_name` is a known
    `craftax/<name>` and craftax is installed."""
    check_suite_name(env_name, craftax_env_names(env_name), "craftax")


class CraftaxEnv(SuiteEnv):
    """A craftax env with the gymnax 1.x interface (see the module docstring).
    `env_params`: craftax's own params (fixed at their defaults)."""

    env_params: Any

    def _reset_inner(self, key: jax.Array) -> tuple[jax.Array, Any]:
        obs, state = self.env.reset_env(key, self.env_params)
        return obs, state

    def _step_inner(
        self, key: jax.Array, inner: Any, action: jax.Array
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array]:
        action = jnp.asarray(action, jnp.int32)
        obs, state, reward, _, _ = self.env.step_env(key, inner, action, self.env_params)
        unlimited = self.env_params.replace(max_timesteps=NO_TIME_LIMIT)
        terminated = self.env.is_terminal(state, unlimited)
        return obs, state, reward, terminated


def make_craftax_env(env_name: str) -> tuple[CraftaxEnv, SuiteParams]:
    """`(CraftaxEnv, params)` for `env_name = "craftax/<name>"`; params hold the time
    limit."""
    check_craftax_name(env_name)
    env = _craftax_env(env_name).make_craftax_env_from_name(
        env_name.removeprefix(PREFIX), auto_reset=False
    )
    env_params = env.default_params
    space = env.observation_space(env_params)
    wrapped = CraftaxEnv(
        env_name,
        env,
        obs_shape=tuple(space.shape),
        num_actions=env.num_actions,
        max_steps=int(env_params.max_timesteps),
        obs_bounds=(float(jnp.min(space.low)), float(jnp.max(space.high))),
    )
    wrapped.env_params = env_params
    return wrapped, wrapped.default_params
