"""The run folder: layout, `metrics.csv`, `summary.json`, atomic writes (host side).

A run folder `runs/<env>-<timestamp>/` holds `config.yaml` (the fully resolved
RunConfig), `metrics.csv` (one row per update and seed), `summary.json` (final
and best return, compile time, steps/s, versions, device), `curve.png` (mean
return ± 95% CI over seeds against env steps, `purejaxppo.run.plots`) and `checkpoint/` (orbax, see
`purejaxppo.run.checkpoint`).
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from purejaxppo.run.config import RunConfig

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.csv"
SUMMARY_FILE = "summary.json"
CURVE_FILE = "curve.png"
CHECKPOINT_DIR = "checkpoint"
SWEEP_MANIFEST = "sweep.json"  # marks a sweep output folder (purejaxppo.sweep.store)
INDEX_COLUMNS = ("update", "seed", "env_steps", "wall_time_s")


class RunDirError(ValueError):
    """The output or resume folder cannot be used; `str(err)` is one line."""


# --------------------------------------------------------------------------- files
def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` via a temporary file and `os.replace` (never half-written)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def default_run_dir(env_name: str, root: str | Path = "runs") -> Path:
    """`runs/<env>-<YYYYmmdd-HHMMSS>` (a `-2`, `-3`, ... suffix if that exists or another
    command holds its lock)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", env_name)  # an import string mod:Env -> mod-Env
    base = Path(root) / f"{safe}-{stamp}"
    from purejaxppo.run.outdir import lock_path  # outdir imports this module

    path, n = base, 1
    while path.exists() or lock_path(path).exists():  # taken, or being prepared by a run
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def read_run_config(run_dir: str | Path) -> tuple[Path, RunConfig]:
    """Check that `run_dir` is a run folder and load its config.yaml; `RunDirError` if not
    (a sweep output folder is named as such, with the command that trains its best set)."""
    from purejaxppo.run.config import load_run_config  # config imports this module's names
    from purejaxppo.run.envmodule import missing_env_module
    from purejaxppo.run.errors import ConfigError

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such run folder")
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        if (run_dir / SWEEP_MANIFEST).is_file():
            raise RunDirError(
                f"{run_dir}: a sweep output folder (purejaxppo sweep), not a run folder; "
                f"train its best set first: purejaxppo train {run_dir / 'best.yaml'}"
            )
        raise RunDirError(f"{run_dir}: not a purejaxppo run folder (no {CONFIG_FILE})")
    try:
        return run_dir, load_run_config(config_path)
    except ConfigError as err:
        missing = missing_env_module(config_path)
        if missing:
            raise RunDirError(f"{run_dir}: {missing}") from None
        if ": ppo.env_name: " in str(err):
            raise RunDirError(f"{run_dir}: cannot make the run's env ({err})") from None
        raise RunDirError(f"{run_dir}: corrupt run folder ({err})") from None


# --------------------------------------------------------------------------- metrics.csv
def _format(value: Any) -> str:
    """Exact text for a float32/int value (`repr` of the float round-trips to the same bits)."""
    if isinstance(value, int | np.integer):
        return str(int(value))
    value = float(value)
    if math.isnan(value):
        return "nan"
    return repr(value)


class MetricsLog:
    """Append-only `metrics.csv`: one row per (update, seed).

    Columns: `update` (1-based count of updates done), `seed`, `env_steps`
    (per seed), `wall_time_s` (training time when the row's chunk finished,
    compilation excluded), then every metric name.
    """

    def __init__(self, path: str | Path, metric_names: Sequence[str]) -> None:
        self.path = Path(path)
        self.columns = (*INDEX_COLUMNS, *metric_names)

    def start(self) -> None:
        """Create the file with its header row."""
        atomic_write_text(self.path, ",".join(self.columns) + "\n")

    def truncate_after(self, update: int) -> None:
        """Keep only complete rows with `update <= update` (used on resume), atomically.

        A missing file is started afresh; a file with other columns is an error.
        """
        if not self.path.exists():
            self.start()
            return
        lines = self.path.read_text(encoding="utf-8").split("\n")
        header = lines[0].split(",")
        if tuple(header) != self.columns:
            raise RunDirError(f"{self.path}: unexpected columns, not a metrics file of this run")
        kept = [lines[0]]
        for line in lines[1:-1]:  # the last piece is "" or a partial row from a crash
            cells = line.split(",")
            if len(cells) == len(self.columns) and int(cells[0]) <= update:
                kept.append(line)
        atomic_write_text(self.path, "\n".join(kept) + "\n")

    def append(
        self,
        first_update: int,
        seeds: Sequence[int],
        batch_size: int,
        wall_time_s: float,
        metrics: dict[str, np.ndarray],
    ) -> None:
        """Append a chunk: `metrics[name]` is `[S, K]` for updates `first_update .. +K-1`."""
        names = self.columns[len(INDEX_COLUMNS) :]
        num_updates = next(iter(metrics.values())).shape[1]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        for k in range(num_updates):
            update = first_update + k
            for s, seed in enumerate(seeds):
                row = [update, seed, update * batch_size, round(wall_time_s, 3)]
                row += [_format(metrics[name][s, k]) for name in names]
                writer.writerow(row)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(buf.getvalue())
            f.flush()


def read_metrics(path: str | Path) -> dict[str, np.ndarray]:
    """`metrics.csv` as columns of float64 arrays (ints for `update`, `seed`, `env_steps`)."""
    with Path(path).open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]
    out: dict[str, np.ndarray] = {}
    for i, name in enumerate(header):
        dtype = np.int64 if name in ("update", "seed", "env_steps") else np.float64
        out[name] = np.asarray([r[i] for r in body], dtype=dtype)
    return out


def metrics_matrix(columns: dict[str, np.ndarray], name: str, seeds: Sequence[int]) -> np.ndarray:
    """Column `name` as `[S, U]` (seed-major, updates in order)."""
    rows = []
    for seed in seeds:
        mask = columns["seed"] == seed
        order = np.argsort(columns["update"][mask], kind="stable")
        rows.append(columns[name][mask][order])
    return np.stack(rows)


# --------------------------------------------------------------------------- summary.json
def versions() -> dict[str, str]:
    """Versions of the libraries that decide the numbers."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("purejaxppo", "jax", "jaxlib", "flax", "optax", "gymnax", "orbax-checkpoint"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def device_description() -> dict[str, Any]:
    """The JAX backend and devices (e.g. `cpu`, 1 device, `cpu`), plus host CPU count and the
    cores this process may use (its affinity: XLA:CPU's thread pool has that many threads,
    and on CPU the bits of a large reduction depend on it)."""
    import jax

    from purejaxppo.run.devices import available_cores

    devices = jax.devices()
    return {
        "platform": devices[0].platform,
        "device_kind": devices[0].device_kind,
        "num_devices": len(devices),
        "host_cpus": os.cpu_count(),
        "usable_cpus": available_cores(),
    }


# `final_return` averages each seed's last `max(1, 5% of updates)` updates with episodes.
FINAL_WINDOW_FRACTION = 0.05


def final_window(num_updates: int) -> int:
    """Updates averaged for a final return: `max(1, 5%)` of the run's updates."""
    return max(1, int(num_updates * FINAL_WINDOW_FRACTION))


def final_return(returns: np.ndarray, window: int | None = None) -> float:
    """Mean of the last `window` finite returns of one seed's curve `[U]`.

    `window` defaults to `final_window(U)`: for a complete run this is the rule of
    `purejaxppo train`'s summary, the sweep results and the benchmark. Updates in
    which no episode ended (NaN) are skipped, so a policy that balances for whole
    windows is not lost. NaN if no episode ended at all.
    """
    r = np.asarray(returns, np.float64)
    window = final_window(r.shape[-1]) if window is None else window
    finite = r[np.isfinite(r)]
    return float(np.mean(finite[-window:])) if finite.size else math.nan


def _windowed_per_seed(returns: np.ndarray, window: int) -> np.ndarray | None:
    """`final_return(row, window)` of every seed of `[S, U]` returns, or None until every
    seed has finished an episode."""
    per_seed = np.array([final_return(row, window) for row in np.asarray(returns, np.float64)])
    return per_seed if per_seed.size and np.isfinite(per_seed).all() else None


def recent_mean(returns: np.ndarray, window: int) -> float:
    """Seed mean of `final_return(row, window)` over the seeds of `[S, U]` returns;
    NaN until every seed has finished an episode."""
    per_seed = _windowed_per_seed(returns, window)
    return math.nan if per_seed is None else float(np.mean(per_seed))


REACHED_RULE = (
    "reached when the mean over seeds of each seed's mean return over its last "
    "max(1, 5% of the run's updates) updates with finished episodes is >= expected_return"
)


def run_return(returns: np.ndarray, num_updates: int) -> float:
    """THE return of a run, the one `expected_return` is compared with, everywhere.

    The mean over seeds of each seed's mean return over its last
    `final_window(num_updates)` updates that had finished episodes, taken over all
    rows written so far (`returns` `[S, U]`, every session of a resumed run). NaN
    until every seed has finished an episode. At the end of a run this is the
    seed mean of `final_return`.
    """
    return recent_mean(returns, final_window(num_updates))


def reached_expected(returns: np.ndarray, num_updates: int, expected: float | None) -> bool | None:
    """Whether `run_return(returns, num_updates) >= expected` (None without a threshold
    or before every seed has finished an episode)."""
    value = run_return(returns, num_updates) if np.size(returns) else math.nan
    if expected is None or not math.isfinite(value):
        return None
    return bool(value >= expected)


def first_reached(
    returns: np.ndarray, num_updates: int, expected: float | None, start: int = 0
) -> int | None:
    """The first update `u > start` (1-based) at which `reached_expected(returns[:, :u],
    num_updates, expected)` holds, from the rows themselves (`returns` `[S, U]`); None if
    none does or there is no threshold. Vectorised: each seed's windowed mean of its last
    `final_window(num_updates)` finite returns, for every prefix at once."""
    r = np.asarray(returns, np.float64)
    if expected is None or r.ndim != 2 or r.size == 0:
        return None
    window = final_window(num_updates)
    finite = np.isfinite(r)
    n = np.cumsum(finite, axis=1)  # [S, U]: finite returns among the first u updates
    total = np.concatenate([np.zeros((r.shape[0], 1)), np.cumsum(np.where(finite, r, 0.0), 1)], 1)
    # the sum of the last `window` finite values of each prefix: the cumulative sum at the
    # prefix's end minus the one just before its (n - window + 1)-th finite value
    order = np.argsort(~finite, axis=1, kind="stable")  # positions of finite values first
    k = np.maximum(n - window, 0)  # finite values left out before the window
    before = np.take_along_axis(order, np.maximum(k - 1, 0), axis=1)  # [S, U]
    dropped = np.where(k > 0, np.take_along_axis(total, before + 1, axis=1), 0.0)
    with np.errstate(all="ignore"):
        per_seed = (total[:, 1:] - dropped) / np.minimum(n, window)
    ok = (n > 0).all(axis=0)
    mean = np.where(ok, per_seed.mean(axis=0), -np.inf)
    hits = np.flatnonzero(mean[start:] >= expected)
    return int(start + hits[0] + 1) if hits.size else None


def run_return_spread(returns: np.ndarray, num_updates: int) -> tuple[float, float]:
    """`(run_return, std over seeds of the per-seed windowed returns)`, for progress lines."""
    per_seed = _windowed_per_seed(returns, final_window(num_updates))
    if per_seed is None:
        return math.nan, math.nan
    return float(np.mean(per_seed)), float(np.std(per_seed))


def final_and_best(
    returns: np.ndarray, window_frac: float = FINAL_WINDOW_FRACTION
) -> dict[str, Any]:
    """Summary statistics of per-update episode returns `[S, U]` (NaN = no episode ended).

    `final_return` per seed is the mean over its last `max(1, 5% of U)` updates
    that had finished episodes; `best_return` is the highest mean-over-seeds
    return of any single update.
    """
    window = max(1, int(returns.shape[1] * window_frac))
    finals = [final_return(row, window) for row in returns]
    with np.errstate(all="ignore"):
        counts = np.isfinite(returns).sum(axis=0)
        mean_curve = np.where(
            counts > 0, np.nansum(returns, axis=0) / np.maximum(counts, 1), np.nan
        )
    best = float(np.nanmax(mean_curve)) if np.isfinite(mean_curve).any() else float("nan")
    best_update = int(np.nanargmax(mean_curve)) + 1 if np.isfinite(mean_curve).any() else None
    finite_finals = [f for f in finals if math.isfinite(f)]
    return {
        "final_return": float(np.mean(finite_finals)) if finite_finals else None,
        "final_return_std": float(np.std(finite_finals)) if finite_finals else None,
        "final_return_per_seed": [None if not math.isfinite(f) else f for f in finals],
        "final_window_updates": window,
        "best_return": None if not math.isfinite(best) else best,
        "best_update": best_update,
    }


def write_summary(path: str | Path, summary: dict[str, Any]) -> None:
    """Write `summary.json` atomically (NaN/inf written as null)."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    atomic_write_text(path, json.dumps(clean(summary), indent=2) + "\n")
