"""What the navix, xminigrid, craftax and jumanji adapters share: `SuiteEnv`, a gymnax 1.x
wrapper with its own time limit and auto-reset, and the one-line error of a missing extra.

A suite adapter subclasses `SuiteEnv` and gives three things: `_reset_inner(key) -> (obs,
inner_state)`, `_step_inner(key, inner_state, action) -> (obs, inner_state, reward,
terminated)` (the library's step *without* its own auto-reset, `terminated` true only on a
true end of episode: goal reached, death) and the spaces. `SuiteEnv` then gives

- `reset(key, params) -> (obs, SuiteEnvState)`, obs float32 `[*obs_shape]`;
- `step(key, state, action [], params) -> (obs, state, reward [], terminated [],
  truncated [], info)`: after `params.max_steps_in_episode` steps the episode is
  *truncated* (`truncated=True, terminated=False`; a termination on the last allowed step
  stays a termination), and an ended episode restarts from a reset inside `step`;
  `info["final_observation"]` is the observation before that reset;
- `observation_space(params)`: a `Box` of `obs_shape` (float32), `action_space(params)`:
  `Discrete(num_actions)`.

The time limit is counted here, not by the library (each library's own limit only marks a
step and is otherwise ignored), so it is a traced parameter like gymnax's; its default is the
library's own limit for that env.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


def import_suite(env_name: str, module: str, extra: str) -> Any:
    """`module` imported, or a one-line `ValueError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        missing = (err.name or "").partition(".")[0] == module.partition(".")[0]
        why = "" if missing else f" (importing {module} failed: {_first_line(err)})"
        hint = f"pip install -e '.[{extra}]'"
        raise ValueError(f"env_name: {env_name} needs the {extra} extra: {hint}{why}") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def check_suite_name(env_name: str, known: list[str], suite: str) -> None:
    """A one-line `ValueError("env_name: ...")` unless `env_name` is in `known`."""
    if env_name not in known:
        close = difflib.get_close_matches(env_name, known, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
        raise ValueError(f"env_name: unknown {suite} environment {env_name!r}; {hint}")


@struct.dataclass
class SuiteParams:
    """Env params of a `SuiteEnv`: only the time limit (steps per episode, like gymnax's)."""

    max_steps_in_episode: int = 100


@struct.dataclass
class SuiteEnvState:
    """`leaves`: the arrays of the library's own state in tree order, its PRNG keys as their
    raw `uint32` data (orbax, and so the run's checkpoints, refuse typed keys); `time`: int32
    `[]`, steps taken in this episode. `SuiteEnv.inner(state)` gives the library's state."""

    leaves: tuple[jax.Array, ...]
    time: jax.Array


class SuiteEnv:
    """A discrete-action env of another JAX library behind the gymnax 1.x interface (see
    the module docstring). `step` and `reset` are pure and unjitted."""

    def __init__(
        self,
        name: str,
        env: Any,
        obs_shape: tuple[int, ...],
        num_actions: int,
        max_steps: int,
        obs_bounds: tuple[float, float] = (-jnp.inf, jnp.inf),
    ) -> None:
        self.name = name
        self.env = env  # the library's env object
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.num_actions = int(num_actions)
        self.max_steps = int(max_steps)  # the library's own limit: the default time limit
        self.obs_bounds = obs_bounds
        self._treedef: Any = None  # the library state's tree, known after the first reset
        self._key_impls: dict[int, Any] = {}  # leaf index -> PRNG impl of its typed key

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    @property
    def default_params(self) -> SuiteParams:
        return SuiteParams(max_steps_in_episode=self.max_steps)

    def observation_space(self, params: SuiteParams) -> Any:
        from gymnax.environments import spaces

        del params
        low, high = self.obs_bounds
        return spaces.Box(low, high, self.obs_shape, jnp.float32)

    def action_space(self, params: SuiteParams) -> Any:
        from gymnax.environments import spaces

        del params
        return spaces.Discrete(self.num_actions)

    def _reset_inner(self, key: jax.Array) -> tuple[jax.Array, Any]:
        raise NotImplementedError

    def _step_inner(
        self, key: jax.Array, inner: Any, action: jax.Array
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array]:
        raise NotImplementedError

    def _pack(self, inner: Any, time: jax.Array) -> SuiteEnvState:
        """`inner` as arrays (craftax's reset leaves some Python bools), typed keys as data."""
        leaves, treedef = jax.tree.flatten(inner)
        if self._treedef is None:
            self._treedef = treedef
            self._key_impls = {
                i: jax.random.key_impl(x)
                for i, x in enumerate(leaves)
                if jnp.issubdtype(jnp.asarray(x).dtype, jax.dtypes.prng_key)
            }
        packed = tuple(
            jax.random.key_data(x) if i in self._key_impls else jnp.asarray(x)
            for i, x in enumerate(leaves)
        )
        return SuiteEnvState(packed, time)

    def inner(self, state: SuiteEnvState) -> Any:
        """The library's own state inside `state`, its keys typed again."""
        if self._treedef is None:  # the layout is learnt from a reset: trace one
            jax.eval_shape(self.reset, jax.random.key(0), self.default_params)
        leaves = [
            jax.random.wrap_key_data(x, impl=self._key_impls[i]) if i in self._key_impls else x
            for i, x in enumerate(state.leaves)
        ]
        return jax.tree.unflatten(self._treedef, leaves)

    def replace_inner(self, state: SuiteEnvState, inner: Any) -> SuiteEnvState:
        """`state` holding the library's state `inner` instead (same tree and types)."""
        return self._pack(inner, state.time)

    def _observation(self, obs: Any) -> Any:
        """The library's observation as this env gives it: float32 `[*obs_shape]` (a
        structured-observation adapter keeps the library's pytree)."""
        return obs.astype(jnp.float32)

    def reset(self, key: jax.Array, params: SuiteParams) -> tuple[Any, SuiteEnvState]:
        """A fresh episode: obs float32 `[*obs_shape]` and the state at step 0."""
        del params
        obs, inner = self._reset_inner(key)
        return self._observation(obs), self._pack(inner, jnp.zeros((), jnp.int32))

    def step(
        self, key: jax.Array, state: SuiteEnvState, action: jax.Array, params: SuiteParams
    ) -> tuple[jax.Array, SuiteEnvState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """One step; an ended episode restarts from a reset. Returns obs, state, reward,
        terminated, truncated (all `[]`) and info holding `final_observation` (the obs
        before the reset)."""
        step_key, reset_key = jax.random.split(key)
        obs, inner, reward, terminated = self._step_inner(step_key, self.inner(state), action)
        time = state.time + 1
        terminated = jnp.asarray(terminated, jnp.bool_)
        at_limit = time >= params.max_steps_in_episode
        truncated = jnp.logical_and(at_limit, jnp.logical_not(terminated))
        done = jnp.logical_or(terminated, at_limit)
        final_obs = self._observation(obs)

        reset_obs, reset_state = self.reset(reset_key, params)
        next_state = jax.tree.map(
            lambda fresh, old: jnp.where(done, fresh, old).astype(fresh.dtype),
            reset_state,
            self._pack(inner, time),
        )
        obs = jax.tree.map(lambda fresh, old: jnp.where(done, fresh, old), reset_obs, final_obs)
        reward = jnp.asarray(reward, jnp.float32)
        info = {"final_observation": final_obs, "terminated": terminated, "truncated": truncated}
        return obs, next_state, reward, terminated, truncated, info
