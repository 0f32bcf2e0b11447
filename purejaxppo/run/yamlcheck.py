"""The pieces of a one-line config error that run configs (`run/config.py`) and RLHF
configs (`rlhf/yamlconfig.py`) share: a value as the message shows it, the unknown-key
error with its suggestion, and a constructor's `ValueError` placed at its field."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

import yaml

from purejaxppo.run.errors import ConfigError


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def describe(value: Any) -> str:
    """A value read from YAML as an error shows it: `1.5 (a number)`, `'x' (a string)`,
    `[1, 2] (a list)`; cut to 40 characters."""
    if isinstance(value, str):
        text = repr(value)
    else:
        text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
        text = " ".join(text.removesuffix("...").split())
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({_type_name(value)})"


def closest(word: str, options: Sequence[str]) -> str | None:
    """The option nearest to `word` (difflib, cutoff 0.6), or None."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_key(where: str, suggestion: str | None, valid: Sequence[str]) -> ConfigError:
    """`WHERE: unknown key; did you mean SUGGESTION?`, or the valid keys without one."""
    if suggestion:
        return ConfigError(f"{where}: unknown key; did you mean {suggestion}?")
    return ConfigError(f"{where}: unknown key; valid keys: {', '.join(valid)}")


def field_error(
    source: str, section: str, err: ValueError, overridden: frozenset[str] = frozenset()
) -> ConfigError:
    """A config section's `ValueError` ("field: text") as `FILE: section.field: text`
    (`FILE: --set section.field: text` when `--set` gave that field)."""
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    head, sep, rest = text.partition(": ")
    if sep and head.isidentifier():
        key = f"{section}.{head}"
        where = f"{source}: --set {key}" if key in overridden else f"{source}: {key}"
        return ConfigError(f"{where}: {rest}")
    return ConfigError(f"{source}: {section}: {text}")
