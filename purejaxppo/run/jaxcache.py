"""JAX's persistent compilation cache in a user cache folder (host side).

The CLI compiles the same chunk function every time a config is rerun; with
the cache on, the second run of the same shapes loads the executable from disk
instead of compiling it.

Where: `$PUREJAXPPO_CACHE_DIR` if set (`off` disables the cache), else
`$XDG_CACHE_HOME/purejaxppo/jax`, else `~/.cache/purejaxppo/jax`.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "PUREJAXPPO_CACHE_DIR"
DISABLED = ("off", "none", "0", "false", "")
off_reason = ""  # why `enable` left the cache off although one was configured


def cache_dir() -> Path | None:
    """The cache folder to use, or None when disabled."""
    value = os.environ.get(ENV_VAR)
    if value is not None:
        return None if value.strip().lower() in DISABLED else Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "purejaxppo" / "jax"


def enable() -> Path | None:
    """Point JAX's persistent compilation cache at `cache_dir()`; cache every executable.

    Returns the folder, or None if disabled or it cannot be created or written (then
    compilation simply is not cached, and `off_reason` says why).
    """
    import jax

    path = cache_dir()
    if path is None:
        return None
    global off_reason
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:  # read-only: JAX would warn on every compile and cache nothing
        off_reason = f"{path} is not writable: {err.strerror or type(err).__name__}"
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def count_entries(path: Path | None) -> int:
    """Number of files in the cache folder (new files after compiling = cache misses)."""
    if path is None or not path.is_dir():
        return 0
    return sum(1 for p in path.rglob("*") if p.is_file())
