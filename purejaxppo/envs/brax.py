"""Brax environments behind the gymnax 1.x interface: `env_name: brax/<name>`.

`make_brax_env("brax/hopper")` builds `brax.envs.get_environment("hopper", backend=...)`
and wraps it in `BraxEnv`, which the trainer drives like any gymnax env:

- `reset(key, params) -> (obs [O] float32, BraxEnvState)`;
- `step(key, state, action [A], params) -> (obs [O], state, reward [], terminated [],
  truncated [], info)` with an auto-reset inside `step` and `info["final_observation"]`
  `[O]`, the observation before that reset (what a truncated episode bootstraps from);
- `observation_space` is a `Box(-inf, inf, (O,))`, `action_space` a `Box(-1, 1, (A,))`
  (Brax envs scale `[-1, 1]` to their actuators' range themselves).

Time limit and end of episode, as Brax's `EpisodeWrapper` reports them: after
`params.max_steps_in_episode` steps (default 1000) an episode is *truncated*
(`truncated=True, terminated=False`, Brax's `state.info["truncation"]`); the env's own
`state.done` (the hopper falling, the pendulum tipping over) is a *termination*
(`terminated=True, truncated=False`), also when it falls on the last allowed step.

brax is imported only when a `brax/` name is built or checked, never by
`import purejaxppo`; without it the error says which extra to install.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import io
import warnings
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

PREFIX = "brax/"
# MuJoCo's own JAX physics (MJX): the same model and timestep as Brax's default
# `generalized`, and as fast (hopper) to 2.7x faster on 2 CPU cores (docs/brax.md);
# `spring`/`positional` are faster on some envs but change the timestep and the contact
# model, so the task differs.
DEFAULT_BACKEND = "mjx"
# Brax envs that have only Brax's own `generalized` backend.
GENERALIZED_ONLY = ("swimmer",)
EXTRA = "pip install -e '.[brax]'"


def is_brax_name(env_name: Any) -> bool:
    """True for an `env_name` of the form `brax/<name>`."""
    return isinstance(env_name, str) and env_name.startswith(PREFIX)


def _brax_envs(env_name: str) -> Any:
    """The `brax.envs` module, or a one-line `ValueError` naming the extra to install.

    MJX prints that its optional GPU backend (warp) is missing when brax is imported;
    that line is swallowed so that command output stays clean.
    """
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return importlib.import_module("brax.envs")
    except ImportError as err:
        missing = (err.name or "").partition(".")[0] == "brax"
        why = "" if missing else f" (importing brax failed: {_first_line(err)})"
        raise ValueError(f"env_name: {env_name} needs the brax extra: {EXTRA}{why}") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def brax_registry(env_name: str = "brax/NAME") -> dict[str, Any]:
    """Brax's registry, `{name: env class}` (imports brax; `env_name` is only the name shown
    when brax is missing). Brax has no public list; this reads `brax.envs._envs`."""
    return dict(getattr(_brax_envs(env_name), "_envs", {}))


def brax_env_names(env_name: str = "brax/NAME") -> list[str]:
    """Every `brax/<name>` that `make_brax_env` builds (imports brax; `env_name` is only
    the name shown when brax is missing)."""
    return [f"{PREFIX}{name}" for name in sorted(brax_registry(env_name))]


def check_brax_name(env_name: str) -> None:
    """Raise a one-line `ValueError("env_name: ...")` unless `env_name` is a known
    `brax/<name>` and brax is installed; an unknown name lists close matches."""
    known = brax_env_names(env_name)
    if env_name not in known:
        close = difflib.get_close_matches(env_name, known, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
        raise ValueError(f"env_name: unknown Brax environment {env_name!r}; {hint}")


@struct.dataclass
class BraxParams:
    """Env params of a `BraxEnv`: only the time limit (steps per episode, like gymnax's)."""

    max_steps_in_episode: int = 1000


@struct.dataclass
class BraxEnvState:
    """`leaves`: the non-empty arrays of Brax's `State` (physics, obs `[O]`, reward, done,
    metrics, info) in tree order; `time`: int32 `[]`, steps taken in the current episode.

    The zero-size arrays of Brax's state (MJX keeps several, such as `act` `[0]`) are left
    out, so that the state can be checkpointed (orbax refuses zero-size arrays);
    `BraxEnv.brax_state` puts them back.
    """

    leaves: tuple[jax.Array, ...]
    time: jax.Array


class BraxEnv:
    """A Brax env with the gymnax 1.x interface (see the module docstring).

    `step` and `reset` are pure and unjitted: the trainer jits, vmaps and scans them.
    """

    def __init__(self, name: str, env: Any, backend: str) -> None:
        self.name = name
        self.env = env  # the unwrapped brax.envs.Env
        self.backend = backend
        # An abstract reset (traced, nothing computed) fixes the state's tree and shapes.
        abstract = jax.eval_shape(env.reset, jax.random.key(0))
        leaves, self._treedef = jax.tree.flatten(abstract)
        self._empty = {i: leaf for i, leaf in enumerate(leaves) if leaf.size == 0}
        self.observation_size = int(abstract.obs.shape[-1])  # `O`

    def __repr__(self) -> str:
        return f"BraxEnv({self.name!r}, backend={self.backend!r})"

    @property
    def default_params(self) -> BraxParams:
        return BraxParams()

    @property
    def action_size(self) -> int:
        """`A`, the number of actuators."""
        return int(self.env.action_size)

    def brax_state(self, state: BraxEnvState) -> Any:
        """Brax's `State` inside `state`, its zero-size arrays put back."""
        kept = iter(state.leaves)
        count = self._treedef.num_leaves
        leaves = [
            jnp.zeros(self._empty[i].shape, self._empty[i].dtype)
            if i in self._empty
            else next(kept)
            for i in range(count)
        ]
        return jax.tree.unflatten(self._treedef, leaves)

    def _pack(self, brax_state: Any, time: jax.Array) -> BraxEnvState:
        leaves = jax.tree.leaves(brax_state)
        kept = tuple(jnp.asarray(x) for i, x in enumerate(leaves) if i not in self._empty)
        return BraxEnvState(leaves=kept, time=time)

    def observation_space(self, params: BraxParams) -> Any:
        from gymnax.environments import spaces

        del params
        return spaces.Box(-jnp.inf, jnp.inf, (self.observation_size,), jnp.float32)

    def action_space(self, params: BraxParams) -> Any:
        from gymnax.environments import spaces

        del params
        return spaces.Box(-1.0, 1.0, (self.action_size,), jnp.float32)

    def reset(self, key: jax.Array, params: BraxParams) -> tuple[jax.Array, BraxEnvState]:
        """A fresh episode: obs `[O]` float32 and the state at step 0."""
        del params
        brax_state = self.env.reset(key)
        obs = brax_state.obs.astype(jnp.float32)
        return obs, self._pack(brax_state, jnp.zeros((), jnp.int32))

    def step(
        self, key: jax.Array, state: BraxEnvState, action: jax.Array, params: BraxParams
    ) -> tuple[jax.Array, BraxEnvState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """One step with action `[A]` in `[-1, 1]`; an ended episode restarts from a reset
        made with `key`. Returns obs `[O]`, state, reward, terminated, truncated (all `[]`)
        and info holding `final_observation` `[O]` (the obs before the reset)."""
        stepped = self.env.step(self.brax_state(state), action)
        time = state.time + 1
        terminated = jnp.asarray(stepped.done, jnp.float32) > 0.5
        at_limit = time >= params.max_steps_in_episode
        truncated = jnp.logical_and(at_limit, jnp.logical_not(terminated))
        done = jnp.logical_or(terminated, at_limit)
        final_obs = stepped.obs.astype(jnp.float32)

        reset_obs, reset_state = self.reset(key, params)
        # Brax sometimes returns a Python float (weak type) where reset made a float32
        # array: keep every leaf's reset dtype so the scan carry never changes type.
        next_state = jax.tree.map(
            lambda fresh, old: jnp.where(done, fresh, old).astype(fresh.dtype),
            reset_state,
            self._pack(stepped, time),
        )
        obs = jnp.where(done, reset_obs, final_obs)
        reward = jnp.asarray(stepped.reward, jnp.float32)
        info = {"final_observation": final_obs, "terminated": terminated, "truncated": truncated}
        return obs, next_state, reward, terminated, truncated, info


def make_brax_env(env_name: str, backend: str | None = None) -> tuple[BraxEnv, BraxParams]:
    """`(BraxEnv, BraxParams())` for `env_name = "brax/<name>"` on the physics `backend`
    (`mjx`, `generalized`, `spring` or `positional`; None: `DEFAULT_BACKEND`, or
    `generalized` for the envs that have only that one).

    Brax warns on every load that it is no longer maintained (docs/brax.md says what that
    means here); that warning is not repeated.
    """
    check_brax_name(env_name)
    name = env_name.removeprefix(PREFIX)
    if backend is None:
        backend = "generalized" if name in GENERALIZED_ONLY else DEFAULT_BACKEND
    brax_envs = _brax_envs(env_name)
    try:
        with _quiet_loading():
            env = brax_envs.get_environment(name, backend=backend)
    except ValueError as err:  # an unknown or unsupported backend
        raise ValueError(f"env_name: {env_name} with backend {backend!r}: {err}") from None
    wrapped = BraxEnv(env_name, env, backend)
    return wrapped, wrapped.default_params


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """While Brax loads a model: its "not maintained" warning hidden, and MuJoCo's own
    warnings, which by default go to stderr and to a MUJOCO_LOG.TXT file in the current
    folder, turned into Python warnings (a deprecation notice into a DeprecationWarning)."""
    import mujoco

    messages: list[str] = []
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(messages.append)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Brax System", category=UserWarning)
            yield
    finally:
        mujoco.set_mju_user_warning(previous)
    for message in messages:
        category = DeprecationWarning if "deprecated" in message else UserWarning
        warnings.warn(f"MuJoCo: {message}", category, stacklevel=3)
