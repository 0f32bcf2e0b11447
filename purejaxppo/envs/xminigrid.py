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

XLand envs take one fixed ruleset of one of xminigrid's benchmarks, named in the env name:
`xminigrid/<XLand env>/<benchmark>/<ruleset id>`, e.g.
`xminigrid/XLand-MiniGrid-R1-9x9/trivial-21k/0`. The benchmark is read from the file
xminigrid itself would cache it in (`$XLAND_MINIGRID_DATA`, default `~/.xland_minigrid`,
file name as in `xminigrid.benchmarks.NAME2HFFILENAME`); purejaxppo never downloads data,
so a missing file is a one-line error saying how to fetch it once. The ruleset sets the
goal, the rules and the objects placed at reset; the layout (rooms, size) comes from the
env. A bare `XLand-MiniGrid-*` name (xminigrid's empty ruleset: no goal, no reward) is
refused.

xminigrid is imported only when an `xminigrid/` name is built or checked, never by
`import purejaxppo`; without it the error says which extra to install.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from purejaxppo.envs.suite import SuiteEnv, SuiteParams, check_suite_name, import_suite

PREFIX = "xminigrid/"
EXTRA = "xminigrid"
XLAND = "XLand-MiniGrid-"


def is_xminigrid_name(env_name: Any) -> bool:
    """True for an `env_name` of the form `xminigrid/<name>`."""
    return isinstance(env_name, str) and env_name.startswith(PREFIX)


def _xminigrid(env_name: str) -> Any:
    return import_suite(env_name, "xminigrid", EXTRA)


def xminigrid_env_names(env_name: str = "xminigrid/NAME") -> list[str]:
    """Every `xminigrid/<name>` of a MiniGrid env that `make_xminigrid_env` builds (imports
    xminigrid; `env_name` is only the name shown when it is missing). The XLand envs take a
    ruleset as well: `xland_env_names`."""
    return _registered(env_name, "MiniGrid-")


def xland_env_names(env_name: str = "xminigrid/NAME") -> list[str]:
    """Every `xminigrid/XLand-MiniGrid-*` env, without its `/<benchmark>/<ruleset id>`."""
    return _registered(env_name, XLAND)


def _registered(env_name: str, start: str) -> list[str]:
    """`xminigrid/<name>` for every registered xminigrid env whose name begins `start`."""
    names = _xminigrid(env_name).registered_environments()
    return [f"{PREFIX}{name}" for name in names if name.startswith(start)]


def split_xland_name(env_name: str) -> tuple[str, str, int] | None:
    """`(env, benchmark, ruleset id)` of `xminigrid/<env>/<benchmark>/<id>`, None for a
    name without a ruleset; a one-line `ValueError` for a malformed one."""
    parts = env_name.removeprefix(PREFIX).split("/")
    if len(parts) == 1:
        return None
    if len(parts) != 3 or not parts[0].startswith(XLAND) or not parts[2].isdigit():
        raise ValueError(
            f"env_name: expected xminigrid/<XLand env>/<benchmark>/<ruleset id> (e.g. "
            f"xminigrid/XLand-MiniGrid-R1-9x9/trivial-21k/0), got {env_name!r}"
        )
    return parts[0], parts[1], int(parts[2])


def benchmark_path(env_name: str, benchmark: str) -> Path:
    """Where xminigrid caches `benchmark`: `$XLAND_MINIGRID_DATA` (default
    `~/.xland_minigrid`) / its file name. A one-line `ValueError` for an unknown one."""
    files = _xminigrid(env_name).benchmarks.NAME2HFFILENAME
    if benchmark not in files:
        raise ValueError(
            f"env_name: {env_name}: unknown xminigrid benchmark {benchmark!r}; known: "
            f"{', '.join(files)}"
        )
    root = os.environ.get("XLAND_MINIGRID_DATA", os.path.expanduser("~/.xland_minigrid"))
    return Path(root) / files[benchmark]


@functools.lru_cache(maxsize=2)
def _load_benchmark(env_name: str, path: str) -> Any:
    """The benchmark file at `path`, read once per process (a large one takes seconds)."""
    return _xminigrid(env_name).benchmarks.load_benchmark_from_path(path)


def require_benchmark_file(env_name: str, benchmark: str) -> Path:
    """The local file of `benchmark`, or a one-line `ValueError` saying how to fetch it."""
    path = benchmark_path(env_name, benchmark)
    if not path.is_file():
        raise ValueError(
            f"env_name: {env_name} needs xminigrid's {benchmark} benchmark at {path}; "
            'purejaxppo never downloads data, so fetch it once with python -c "import '
            f"xminigrid; xminigrid.load_benchmark('{benchmark}')\" or set XLAND_MINIGRID_DATA"
        )
    return path


def load_ruleset(env_name: str, benchmark: str, ruleset_id: int) -> Any:
    """Ruleset `ruleset_id` of `benchmark`, read from its local file (never downloaded);
    one-line `ValueError`s for a missing file or an id out of range."""
    path = require_benchmark_file(env_name, benchmark)
    bench = _load_benchmark(env_name, str(path))
    count = bench.num_rulesets()
    if ruleset_id >= count:
        raise ValueError(
            f"env_name: {env_name}: ruleset id {ruleset_id} out of range; {benchmark} has "
            f"{count} rulesets (0 to {count - 1})"
        )
    return bench.get_ruleset(ruleset_id)


def check_xminigrid_name(env_name: str) -> None:
    """A one-line `ValueError("env_name: ...")` unless `env_name` is a known
    `xminigrid/<name>` (or `xminigrid/<XLand env>/<benchmark>/<id>` with the benchmark's
    file present; its id is checked when the env is built) and xminigrid is installed."""
    xland = split_xland_name(env_name)
    if xland is None:
        if env_name.removeprefix(PREFIX).startswith(XLAND):
            raise ValueError(
                f"env_name: {env_name} needs a ruleset: {env_name}/<benchmark>/<ruleset id>, "
                f"e.g. {env_name}/trivial-21k/0"
            )
        check_suite_name(env_name, xminigrid_env_names(env_name), "xminigrid")
        return
    check_suite_name(PREFIX + xland[0], xland_env_names(env_name), "xminigrid XLand")
    require_benchmark_file(env_name, xland[1])  # the id is checked against it when built


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
    xland = split_xland_name(env_name)
    if xland is None:
        env, env_params = xminigrid.make(env_name.removeprefix(PREFIX))
    else:
        env, env_params = xminigrid.make(xland[0])
        env_params = env_params.replace(ruleset=load_ruleset(env_name, *xland[1:]))
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
