"""The YAML dialect of run configs and sweep files: YAML 1.2 floats (`1e-3` is a
float), `1_000` integers, duplicate keys refused, lists dumped in flow style."""

from __future__ import annotations

import re
from typing import Any

import yaml

from purejaxppo.run.errors import ConfigError


class _Loader(yaml.SafeLoader):
    """Safe loader with YAML 1.2 floats (`1e-3` is a float) and duplicate-key errors."""


_FLOAT_12 = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


class DuplicateKeyError(yaml.YAMLError):
    """A mapping names the same key twice."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise DuplicateKeyError(
                f"line {mark.line + 1}: key {key!r} appears twice (the second would win silently)"
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _Dumper(yaml.SafeDumper):
    """Safe dumper writing lists of scalars in flow style (`hidden_sizes: [64, 64]`), lists
    of mappings (a run's `schedule:`) in block style."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = not any(isinstance(item, dict) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text; syntax errors become a one-line `ConfigError` with the position."""
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except DuplicateKeyError as err:
        raise ConfigError(f"{source}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{source}: {where}invalid YAML ({problem})") from None
