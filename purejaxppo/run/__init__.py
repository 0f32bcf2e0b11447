"""Host shell of one training run: YAML run config, chunked and checkpointed runner,
run-folder files, plots, progress display, evaluation, compile cache, host devices.

Imports the pure core (`purejaxppo.*`); the core never imports this package.
The Python API (loaded on first use, so `purejaxppo train` stays quick to start)::

    from purejaxppo.run import load_run, evaluate, load_run_config
    run = load_run("runs/CartPole-v1-...")          # config, seeds, state, network
    result = evaluate(run.trainer, run.params(0), obs_stats, key, num_episodes=10)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_run": "purejaxppo.run.load",
    "LoadedRun": "purejaxppo.run.load",
    "evaluate": "purejaxppo.run.evaluate",
    "EvalResult": "purejaxppo.run.evaluate",
    "load_run_config": "purejaxppo.run.config",
    "RunConfig": "purejaxppo.run.config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'purejaxppo.run' has no attribute {name!r}")
