"""`purejaxppo envs`: the table of environments, as the command prints it and as markdown for
docs/cli.md (host side).

One row per env: `(environment, actions, obs, config, expected, note)`. The gymnax rows build
each env (cheap). A Brax env's spaces are only known once the env is built through MJX, about
1-4 s each (~20 s for the 12 on 2 CPU cores); they are cached in `brax-spaces.json` next to
the JAX compilation cache (`purejaxppo.run.jaxcache`; `~/.cache/purejaxppo/` by default),
keyed by the brax, mujoco and mujoco-mjx versions, the backend and the env's class, so only
the first listing after installing or upgrading brax builds them, after one line on stderr
saying so. The cache only feeds this table; training always builds its env. The other
suites (navix, xminigrid, craftax) get one line each under the table, from the installed
packages' metadata (nothing imported).

    python -m purejaxppo.run.envs_table docs/cli.md    # regenerate the table in the doc
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

Row = tuple[str, str, str, str, str, str]
HEADERS: Row = ("environment", "actions", "obs", "config", "expected", "note")
SPACES_FILE = "brax-spaces.json"
MNIST_NAME = "MNISTBandit-bsuite"
DOC_START = "<!-- envs-table:start (python -m purejaxppo.run.envs_table docs/cli.md) -->"
DOC_END = "<!-- envs-table:end -->"
ShowPath = Callable[[Path], str]


def shown_path(path: Path) -> str:
    """`path` relative to the current folder when under it, else absolute: a path that
    `purejaxppo train PATH` finds from where the user is."""
    path = path.resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def action_text(space: Any) -> str:
    """`Discrete(n)`, `Box(shape) [low, high]`, or the space's class name."""
    import numpy as np

    from purejaxppo.envs import is_box, is_discrete

    if is_discrete(space):
        return f"Discrete({int(space.n)})"
    if is_box(space):
        low, high = np.min(np.asarray(space.low)), np.max(np.asarray(space.high))
        return f"Box{tuple(int(d) for d in space.shape)} [{low:g}, {high:g}]"
    return type(space).__name__


def expected_text(config: Path) -> tuple[str, str]:
    """`(expected return, note)` of a shipped config, both "" when there is none."""
    from purejaxppo.run.config import ConfigError, load_run_config

    if not config.is_file():
        return "", ""
    try:
        expected = load_run_config(config).expected_return
    except ConfigError:
        return "", "config does not load"
    return ("" if expected is None else f"{expected:g}"), ""


def spaces_text(name: str) -> tuple[str, str]:
    """`(actions, obs)` of the env `make_env(name)` builds; `ValueError` if it cannot."""
    from purejaxppo.envs import make_env

    env, params = make_env(name)
    obs_space = env.observation_space(params)
    obs = "x".join(str(int(d)) for d in obs_space.shape) or action_text(obs_space)
    return action_text(env.action_space(params)), obs


def env_row(
    name: str, config_dir: Path, show: ShowPath = shown_path, spaces: tuple[str, str] | None = None
) -> Row:
    """The row of one env name; its config is `configs/<name>.yaml` (`configs/brax/<name>.yaml`
    for `brax/<name>`). `spaces`: `(actions, obs)` when already known (not built again)."""
    from purejaxppo.envs import MNIST_FILES, mnist_dir

    config = config_dir / f"{name}.yaml"
    expected, note = expected_text(config)
    try:
        action, obs = spaces if spaces is not None else spaces_text(name)
    except ValueError as err:
        if name != MNIST_NAME:
            return (name, "?", "?", "-", expected, str(err))
        action, obs = "Discrete(10)", "28x28"
        missing = [f for f in MNIST_FILES if not (mnist_dir() / f).is_file()]
        note = f"needs the MNIST files in {mnist_dir()} ({len(missing)} missing)"
    shipped = show(config) if config.is_file() else "-"
    return (name, action, obs, shipped, expected, note)


def gymnax_rows(config_dir: Path, show: ShowPath = shown_path) -> list[Row]:
    """Rows of every registered gymnax env."""
    import gymnax

    return [env_row(name, config_dir, show) for name in gymnax.registered_envs]


def family_line(rows: Sequence[Row], family: str, where: str, detail: str = "") -> str:
    """The line under the table for one family: "26 gymnax environments, 26 with a config
    in configs" (`detail` goes after "environments")."""
    shipped = sum(r[3] != "-" for r in rows)
    return f"{len(rows)} {family} environments{detail}, {shipped} with a config in {where}"


# --------------------------------------------------------------------------- brax
def spaces_cache_file() -> Path | None:
    """`brax-spaces.json`: inside `$PUREJAXPPO_CACHE_DIR` when that names a folder, else next
    to the default JAX cache folder; None when the cache is off."""
    from purejaxppo.run.jaxcache import ENV_VAR, cache_dir

    folder = cache_dir()
    if folder is None:
        return None
    return (folder if os.environ.get(ENV_VAR) is not None else folder.parent) / SPACES_FILE


def _cache_key(name: str, registry: dict[str, Any]) -> str:
    from purejaxppo.envs.brax import DEFAULT_BACKEND, GENERALIZED_ONLY, PREFIX

    short = name.removeprefix(PREFIX)
    backend = "generalized" if short in GENERALIZED_ONLY else DEFAULT_BACKEND
    cls = registry.get(short)
    where = f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', '?')}"
    versions = []
    for package in ("brax", "mujoco", "mujoco-mjx"):
        try:
            versions.append(f"{package}={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package}=?")
    return "|".join([name, backend, where, *versions])


def _read_cache(path: Path | None) -> dict[str, list[str]]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path | None, data: dict[str, list[str]]) -> None:
    """Write atomically; a cache that cannot be written is simply not kept."""
    if path is None:
        return
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def brax_spaces(
    names: Sequence[str], progress: TextIO | None = None, build: bool = True
) -> dict[str, tuple[str, str]]:
    """`{name: (actions, obs)}` of the `brax/<name>` envs, from the cache; the ones missing
    are built (after one line on `progress`, default stderr) and cached, or left out when
    `build` is false."""
    from purejaxppo.envs.brax import brax_registry

    registry = brax_registry()
    path = spaces_cache_file()
    cache = _read_cache(path)
    keys = {name: _cache_key(name, registry) for name in names}
    cached = {n: cache.get(k) for n, k in keys.items()}
    found = {
        n: (v[0], v[1])
        for n, v in cached.items()
        if isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v)
    }
    missing = [n for n in names if n not in found]
    if missing and build:
        where = f"; cached in {path}" if path is not None else ""
        print(
            f"building {len(missing)} Brax environments to read their spaces "
            f"(~2 s each{where}) ...",
            file=progress if progress is not None else sys.stderr,
            flush=True,
        )
        for name in missing:
            try:
                found[name] = spaces_text(name)
            except ValueError:
                continue  # env_row reports it
            cache[keys[name]] = list(found[name])
        _write_cache(path, cache)
    return {n: found[n] for n in names if n in found}


def brax_rows(
    config_dir: Path,
    show: ShowPath = shown_path,
    progress: TextIO | None = None,
    build: bool = True,
) -> tuple[list[Row], str]:
    """Rows of the `brax/<name>` envs and the `detail` of their `family_line`; without the
    brax extra no rows, and the line saying how to install it instead.
    `build=False`: nothing is built; spaces that are not cached show as "?"."""
    from purejaxppo.envs.brax import DEFAULT_BACKEND, GENERALIZED_ONLY, brax_env_names

    try:
        names = brax_env_names("brax/NAME")
    except ValueError as err:  # env_name: brax/NAME needs the brax extra: pip install ...
        return [], str(err).removeprefix("env_name: ")
    spaces = brax_spaces(names, progress, build)
    unknown = None if build else ("?", "?")
    rows = [env_row(n, config_dir, show, spaces.get(n, unknown)) for n in names]
    return rows, f" ({DEFAULT_BACKEND} backend; {', '.join(GENERALIZED_ONLY)}: generalized)"


def _lines(
    gymnax: list[Row], brax: list[Row], brax_detail: str, where: Path, show: ShowPath
) -> list[str]:
    """The lines under the table: one per family (or the brax extra's install hint)."""
    if brax_detail.startswith("brax/NAME"):
        brax_line = brax_detail
    else:
        brax_line = family_line(brax, "Brax", show(where / "brax"), brax_detail)
    return [family_line(gymnax, "gymnax", show(where)), brax_line]


# --------------------------------------------------------------------------- other suites
# `(prefix, distribution, an env it has)` of the suites with an adapter (docs/envs.md).
SUITES = (
    ("navix", "navix", "Navix-Empty-8x8-v0"),
    ("xminigrid", "xminigrid", "MiniGrid-Empty-8x8"),
    ("craftax", "craftax", "Craftax-Symbolic-v1"),
    ("jumanji", "jumanji", "Snake-v1"),
)


def suite_lines() -> list[str]:
    """One line per suite of `SUITES` (installed: its version and an example name; else how
    to install it). Read from the installed packages' metadata: nothing is
    imported or built, so the listing stays fast."""
    lines = []
    for prefix, dist, example in SUITES:
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            lines.append(f"{prefix}/NAME needs the {prefix} extra: pip install -e '.[{prefix}]'")
            continue
        lines.append(f"{prefix}/NAME: {dist} {version} installed (e.g. {prefix}/{example})")
    return lines


# --------------------------------------------------------------------------- rendering
def text_table(rows: Sequence[Row]) -> list[str]:
    """The rows under `HEADERS`, columns padded to their widest cell."""
    table = (HEADERS, *rows)
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADERS))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]


def print_envs(config_dir: Path, out: TextIO | None = None) -> None:
    """What `purejaxppo envs` prints: the table, then one line per family (config paths as
    `shown_path` gives them, the folders in full)."""
    out = out or sys.stdout
    rows = gymnax_rows(config_dir)
    brax, family = brax_rows(config_dir)
    print("\n".join(text_table([*rows, *brax])), file=out)
    print("\n" + "\n".join(_lines(rows, brax, family, config_dir, str)), file=out)
    print("\nOther suites (docs/envs.md):\n" + "\n".join(suite_lines()), file=out)


def markdown_rows(root: Path, build: bool = True) -> tuple[list[Row], list[str]]:
    """The rows of `purejaxppo envs` for the doc (config paths relative to `root`, the MNIST
    note independent of this machine's files) and the lines under the table."""
    config_dir = root / "configs"

    def show(path: Path) -> str:
        return path.resolve().relative_to(root.resolve()).as_posix()

    rows = [
        (*r[:5], "needs the MNIST files ($PUREJAXPPO_MNIST_DIR, default /tmp/mnist)")
        if r[0] == MNIST_NAME
        else r
        for r in gymnax_rows(config_dir, show)
    ]
    brax, family = brax_rows(config_dir, show, build=build)
    return [*rows, *brax], _lines(rows, brax, family, config_dir, show)


def markdown(rows: Sequence[Row], lines: Sequence[str]) -> str:
    """A markdown table of `rows` (config paths as code), then `lines`, one paragraph each."""

    def cells(row: Sequence[str]) -> str:
        return "| " + " | ".join(row) + " |"

    def code(row: Row) -> Row:
        config = f"`{row[3]}`" if row[3] not in ("", "-") else row[3]
        return (*row[:3], config, *row[4:])

    body = [cells(HEADERS), "|" + "---|" * len(HEADERS), *(cells(code(r)) for r in rows)]
    return "\n".join(body) + "\n\n" + "\n\n".join(lines) + "\n"


def doc_table(text: str) -> str:
    """The generated part of a doc: what lies between `DOC_START` and `DOC_END`."""
    start, end = text.index(DOC_START) + len(DOC_START), text.index(DOC_END)
    return text[start:end].strip("\n") + "\n"


def update_doc(path: Path, root: Path) -> bool:
    """Regenerate the table between the markers of `path`; True if the file changed."""
    text = path.read_text(encoding="utf-8")
    new = markdown(*markdown_rows(root))
    start, end = text.index(DOC_START) + len(DOC_START), text.index(DOC_END)
    updated = f"{text[:start]}\n{new}{text[end:]}"
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    return updated != text


if __name__ == "__main__":
    doc = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/cli.md")
    changed = update_doc(doc, Path(__file__).resolve().parents[2])
    print(f"{doc}: {'regenerated' if changed else 'already up to date'}")
