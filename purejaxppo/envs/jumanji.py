"""Jumanji environments behind the gymnax 1.x interface: `env_name: jumanji/<name>`, e.g.
`jumanji/Snake-v1`.

`make_jumanji_env("jumanji/Snake-v1")` builds `jumanji.make("Snake-v1")` and wraps it in
`JumanjiEnv` (a `purejaxppo.envs.suite.SuiteEnv`):

- observations: jumanji's own `Observation` NamedTuple, kept as a pytree (dtypes as
  jumanji gives them; `purejaxppo.envs.observations`): e.g. Snake's `grid [12, 12, 5]
  float32, step_count [] int32, action_mask [4] bool`. Its `action_mask` leaf is the
  trainer's action mask; `observation_space` is a gymnax `Dict` of one `Box` per leaf;
- actions: `Discrete(n)` for the envs whose action spec is one `DiscreteArray` (Snake,
  Maze, Game2048, Knapsack, ...); envs with multi-dimensional actions (BinPack, ...) are
  refused with a one-line error;
- `terminated`: jumanji's last step with `discount == 0`; the time limit
  `params.max_steps_in_episode` (default jumanji's `time_limit` where the env has one, else
  `DEFAULT_TIME_LIMIT`) is a truncation. jumanji's own time limit ends an episode with
  `discount == 1`, which the adapter does not count as a termination, so keep the limit at
  or below jumanji's. jumanji's step does not auto-reset; the wrapper resets in the same
  step.

jumanji is imported only when a `jumanji/` name is built or checked, never by
`import purejaxppo`; without it the error says which extra to install.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from purejaxppo.envs.suite import SuiteEnv, SuiteParams, check_suite_name, import_suite

PREFIX = "jumanji/"
EXTRA = "jumanji"
LAST = 2  # jumanji's StepType.LAST
DEFAULT_TIME_LIMIT = 1000  # envs whose episodes jumanji does not bound (Game2048, Knapsack)
# Registered envs that purejaxppo cannot build, and why.
REFUSED = {
    "Sokoban-v0": "its levels are downloaded on first use, and purejaxppo never downloads data"
}


def is_jumanji_name(env_name: Any) -> bool:
    """True for an `env_name` of the form `jumanji/<name>`."""
    return isinstance(env_name, str) and env_name.startswith(PREFIX)


def _jumanji(env_name: str) -> Any:
    return import_suite(env_name, "jumanji", EXTRA)


def jumanji_env_names(env_name: str = "jumanji/NAME") -> list[str]:
    """Every registered `jumanji/<name>` (imports jumanji; `env_name` is only the name shown
    when jumanji is missing). Envs with multi-dimensional actions are listed and refused when
    built."""
    return sorted(f"{PREFIX}{name}" for name in _jumanji(env_name).registered_environments())


def check_jumanji_name(env_name: str) -> None:
    """A one-line `ValueError("env_name: ...")` unless `env_name` is a known
    `jumanji/<name>` and jumanji is installed."""
    check_suite_name(env_name, jumanji_env_names(env_name), "jumanji")
    name = env_name.removeprefix(PREFIX)
    if name in REFUSED:
        raise ValueError(f"env_name: {env_name} is not supported: {REFUSED[name]}")


class JumanjiEnv(SuiteEnv):
    """A jumanji env with the gymnax 1.x interface (see the module docstring)."""

    def _observation(self, obs: Any) -> Any:
        return obs  # the library's pytree as it is

    def _reset_inner(self, key: jax.Array) -> tuple[Any, Any]:
        state, timestep = self.env.reset(key)
        return timestep.observation, state

    def _step_inner(
        self, key: jax.Array, inner: Any, action: jax.Array
    ) -> tuple[Any, Any, jax.Array, jax.Array]:
        del key  # jumanji keeps its own key in its state
        state, timestep = self.env.step(inner, jnp.asarray(action, jnp.int32))
        terminated = (timestep.step_type == LAST) & (timestep.discount == 0)
        return timestep.observation, state, timestep.reward, terminated

    def observation_space(self, params: SuiteParams) -> Any:
        """A gymnax `Dict` with one unbounded `Box` per leaf, keyed by the leaf's path."""
        from gymnax.environments import spaces

        obs, _ = jax.eval_shape(self.reset, jax.random.key(0), params)
        leaves = jax.tree_util.tree_flatten_with_path(obs)[0]
        return spaces.Dict(
            {
                jax.tree_util.keystr(path): spaces.Box(-jnp.inf, jnp.inf, leaf.shape, leaf.dtype)
                for path, leaf in leaves
            }
        )


def make_jumanji_env(env_name: str) -> tuple[JumanjiEnv, SuiteParams]:
    """`(JumanjiEnv, params)` for `env_name = "jumanji/<name>"`; params hold the time
    limit."""
    check_jumanji_name(env_name)
    env = _jumanji(env_name).make(env_name.removeprefix(PREFIX))
    spec = env.action_spec
    num_actions = getattr(spec, "num_values", None)
    if num_actions is None or tuple(spec.shape) != ():
        raise ValueError(
            f"env_name: {env_name} is not supported: its actions are {type(spec).__name__} "
            f"of shape {tuple(spec.shape)}; purejaxppo takes one discrete action per step"
        )
    limit = getattr(env, "time_limit", None) or DEFAULT_TIME_LIMIT
    wrapped = JumanjiEnv(env_name, env, obs_shape=(), num_actions=int(num_actions), max_steps=limit)
    return wrapped, wrapped.default_params
