"""Where a run's custom env module came from (host side): training notes it in the run's
config.yaml, and a run whose module is not importable later is named as such (the module
is not on `PYTHONPATH`) instead of as a corrupt run folder."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import yaml

_ENV_MODULE_NOTE = "# env module {module} was imported from {path}\n"
_ENV_MODULE_RE = re.compile(r"^# env module (\S+) was imported from (.+)$", re.MULTILINE)


def env_module_note(env_name: str | None) -> str:
    """A config.yaml comment line saying where a custom env's module (`module:Env`) was
    imported from when training, or "" (not an import string, or no file)."""
    if not env_name or ":" not in env_name:
        return ""
    module = env_name.partition(":")[0]
    path = getattr(sys.modules.get(module), "__file__", None)
    return _ENV_MODULE_NOTE.format(module=module, path=Path(path).resolve()) if path else ""


def missing_env_module(config_path: Path) -> str | None:
    """What to say when a run's custom env module cannot be found (it is not on
    `PYTHONPATH`), with where training found it; None when that is not the problem."""
    try:
        text = config_path.read_text(encoding="utf-8")
        env_name = str(yaml.safe_load(text)["ppo"]["env_name"])
    except Exception:  # an unreadable config is reported as corrupt by the caller
        return None
    module = env_name.partition(":")[0]
    if ":" not in env_name or not module:
        return None
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if found:
        return None
    seen = _ENV_MODULE_RE.search(text)
    where = f"; training imported it from {seen.group(2)}" if seen else ""
    return (
        f"the run's env module {module} (ppo.env_name {env_name}) is not on PYTHONPATH: add "
        f"the folder that holds it to PYTHONPATH or run from that folder{where}"
    )
