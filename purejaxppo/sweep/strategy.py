"""Search strategies of a sweep file: `strategy:` and its settings section (host side).

    strategy: pbt            # grid (default) | pbt | halving | optuna
    pbt: {interval_updates: 10, ...}

`grid` trains the fixed population (the grid crossed with the `random:` draws) to the
end. The adaptive strategies each live in their own module, imported only when a sweep
file names them:

| strategy | module | settings section |
|---|---|---|
| `pbt` | `purejaxppo.sweep.pbt_sweep` | `pbt:` |
| `halving` | `purejaxppo.sweep.halving` | `halving:` |
| `optuna` | `purejaxppo.sweep.optuna_search` | `optuna:` |

Each module provides `settings_from_dict(raw, source, spec) -> settings` (a frozen
dataclass with `to_dict()`; raises a one-line `ConfigError`) and
`run_strategy(sweep, err_stream) -> None` (trains, resumes and reports in the sweep
folder; `sweep` is `purejaxppo.sweep.command`'s `_Sweep`).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from purejaxppo.run.config import ConfigError

if TYPE_CHECKING:
    from purejaxppo.sweep.spec import SweepSpec

MODULES = {
    "pbt": "purejaxppo.sweep.pbt_sweep",
    "halving": "purejaxppo.sweep.halving",
    "optuna": "purejaxppo.sweep.optuna_search",
}
STRATEGIES = ("grid", *MODULES)


def strategy_module(name: str) -> ModuleType:
    """The module that runs strategy `name` (not `grid`)."""
    return importlib.import_module(MODULES[name])


def parse_strategy(data: Mapping[str, Any], source: str, spec: SweepSpec) -> tuple[str, Any]:
    """`(strategy name, its settings or None)` from a sweep document; `spec` is the sweep
    parsed without its strategy (the search space the strategy draws from).

    Raises:
      ConfigError: an unknown strategy, a settings section of another strategy, or what the
        strategy's own `settings_from_dict` refuses.
    """
    name = data.get("strategy", "grid")
    if name == "random":
        raise ConfigError(
            f"{source}: strategy: random: the default strategy grid already trains the "
            "random: draws to the end; leave strategy out"
        )
    if not isinstance(name, str) or name not in STRATEGIES:
        raise ConfigError(
            f"{source}: strategy: expected one of {', '.join(STRATEGIES)}, got {name!r}"
        )
    for other in MODULES:
        if other != name and other in data:
            raise ConfigError(
                f"{source}: {other}: settings of strategy {other}, but strategy is {name}; "
                f"add strategy: {other} or remove the {other}: section"
            )
    if name == "grid":
        return name, None
    raw = data.get(name)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: {name}: expected a mapping of settings, got {raw!r}")
    return name, strategy_module(name).settings_from_dict(dict(raw), source, spec)
