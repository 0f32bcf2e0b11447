"""Sweep outputs: results.csv, summary.csv, best.yaml, curves.png, sensitivity.png (host side).

Pure functions of the results (`purejaxppo.sweep.results.MemberResult`, `SetSummary`)
and the per-member learning curves; no JAX. Plots use matplotlib's
object-oriented API (`Figure`), so no global pyplot state or display is needed.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from purejaxppo.config import HParams
from purejaxppo.run.config import dump_run_config
from purejaxppo.run.progress import count
from purejaxppo.run.stats import Estimate
from purejaxppo.sweep.population import Population
from purejaxppo.sweep.results import MemberResult, SetSummary, best_run_config

HPARAM_FIELDS = tuple(f.name for f in dataclasses.fields(HParams))
TOP_CURVES = 5
SMOOTH_DIVISOR = 50  # curves.png: moving average over 2% of the updates


def smooth(curve: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average of `curve` `[U]` over `window` updates, NaNs (no episode) skipped.

    NaN where the whole window is NaN.
    """
    x = np.asarray(curve, np.float64)
    ok = np.isfinite(x)
    sums = np.cumsum(np.where(ok, x, 0.0))
    counts = np.cumsum(ok)
    sums[window:] = sums[window:] - sums[:-window]
    counts[window:] = counts[window:] - counts[:-window]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file and `os.replace` (never half-written)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, tuple | list):
        return "x".join(str(v) for v in value)
    return str(value)


def _csv_bytes(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return buf.getvalue().encode()


def results_csv(results: Sequence[MemberResult], swept: Sequence[str]) -> bytes:
    """`results.csv`: one row per member, in member order.

    Columns: member, set, seed, group, chunk, the swept static keys (`ppo.*`),
    every `hparams.*` field, env_steps, final_return, auc, wall_time_s.
    """
    static = [k for k in swept if k.startswith("ppo.")]
    header = [
        "member",
        "set",
        "seed",
        "group",
        "chunk",
        *static,
        *(f"hparams.{n}" for n in HPARAM_FIELDS),
        "env_steps",
        "final_return",
        "auc",
        "wall_time_s",
    ]
    rows = []
    for r in sorted(results, key=lambda r: r.member):
        values = dict(r.values)
        rows.append(
            [
                r.member,
                r.set_index,
                r.seed,
                r.group,
                r.chunk,
                *(values[k] for k in static),
                *(float(getattr(r.hparams, n)) for n in HPARAM_FIELDS),
                r.env_steps,
                r.final_return,
                r.auc,
                r.wall_time_s,
            ]
        )
    return _csv_bytes(header, rows)


# summary.csv's robust statistics (`SetSummary.iqm`, `.improvement`), after its first columns
SUMMARY_STATS = (
    "iqm",
    "iqm_ci95_low",
    "iqm_ci95_high",
    "p_improve",
    "p_improve_low",
    "p_improve_high",
)


def summary_csv(summary: Sequence[SetSummary], swept: Sequence[str]) -> bytes:
    """`summary.csv`: hyperparameter sets ranked by mean final return, with a 95% CI.

    Then the IQM of the seeds' final returns with its 95% bootstrap CI and
    `p_improve`: P(a seed of the rank-1 set ends above a seed of this set) with its
    95% CI, for ranks 2 to `IMPROVEMENT_TOP` (`purejaxppo.sweep.results.SetSummary`);
    `nan` where undefined (one seed: no interval; rank 1 and lower ranks: no `p_improve`).
    """
    header = [
        "rank",
        "set",
        *swept,
        "seeds",
        "mean_return",
        "ci95_low",
        "ci95_high",
        "std_return",
        "mean_auc",
        *SUMMARY_STATS,
    ]
    rows = []
    for s in summary:
        values = dict(s.values)
        rows.append(
            [
                s.rank,
                s.set_index,
                *(values[k] for k in swept),
                s.num_seeds,
                s.mean_return,
                s.mean_return - s.ci95,
                s.mean_return + s.ci95,
                s.std_return,
                s.mean_auc,
                *s.iqm,
                *s.improvement,
            ]
        )
    return _csv_bytes(header, rows)


def best_yaml(population: Population, summary: Sequence[SetSummary]) -> bytes:
    """`best.yaml`: the top set as a run config for `purejaxppo train`."""
    rc = best_run_config(population, summary)
    top = summary[0]
    sets = count(len(summary), "hyperparameter set")
    expected = (
        "expected_return: null (one seed says nothing about reruns)"
        if rc.expected_return is None
        else "expected_return: the lowest seed's final return (every seed reached it)"
    )
    note = (
        f"# best of {sets}: {population.sets[top.set_index].label()}\n"
        f"# mean final return {top.mean_return:.2f} over {count(top.num_seeds, 'seed')}"
        + ("" if math.isnan(top.ci95) else f" (95% CI +-{top.ci95:.2f})")
        + f"; {expected}\n"
    )
    return (note + dump_run_config(rc)).encode()


def _estimate_text(name: str, e: Estimate) -> str:
    """`name point [low, high]`, without the interval where it is NaN; '' if no point."""
    if math.isnan(e.point):
        return ""
    ci = "" if math.isnan(e.low) else f" [{e.low:.2f}, {e.high:.2f}]"
    return f"{name} {e.point:.2f}{ci}"


def format_top(summary: Sequence[SetSummary], population: Population, top: int) -> str:
    """A small text table of the best sets: mean +- 95% CI, IQM [95% bootstrap CI] and
    P(#1 > set) [95% CI] of their final returns."""
    head = f"top {min(top, len(summary))} of {count(len(summary), 'set')}"
    lines = [f"{head} (final return, 95% CI over seeds; IQM and P(#1 > set), 95% bootstrap CIs):"]
    shown = summary[:top]
    iqms = [_estimate_text("IQM", s.iqm) for s in shown]
    ps = [_estimate_text("P(#1 better)", s.improvement) for s in shown]
    wi, wp = (max(map(len, texts), default=0) for texts in (iqms, ps))
    for s, iqm, p in zip(shown, iqms, ps, strict=True):
        ci = "" if math.isnan(s.ci95) else f" +- {s.ci95:.2f}"
        label = population.sets[s.set_index].label()
        stats = f"{iqm:{wi}s}  " + (f"{p:{wp}s}  " if wp else "")
        lines.append(
            f"  #{s.rank:<3d} {s.mean_return:9.2f}{ci:10s}  {stats}set {s.set_index}: {label}"
        )
    return "\n".join(lines)


def plot_curves(
    population: Population,
    summary: Sequence[SetSummary],
    curves: Mapping[int, np.ndarray],
    top: int = TOP_CURVES,
) -> bytes:
    """`curves.png`: mean episode return of the `top` sets with its 95% CI over seeds,
    clipped to the seeds' range (`purejaxppo.run.plots.mean_ci`, the convention of every
    curve plot); y-limits from the curves and bands.

    Args:
      curves: member index -> episode-return curve `[U]` (NaN where no episode ended).
    """
    from matplotlib.figure import Figure

    from purejaxppo.run.plots import band_label, data_ylim, mean_ci

    fig = Figure(figsize=(8, 5), dpi=110)
    ax = fig.add_subplot()
    n = len(population.seeds)
    drawn: list[np.ndarray] = []
    for s in summary[:top]:
        hs = population.sets[s.set_index]
        rows = np.stack([curves[s.set_index * n + k] for k in range(n)]).astype(np.float64)
        steps = (np.arange(rows.shape[1]) + 1) * hs.config.batch_size
        mean, lo, hi = mean_ci(rows, max(1, rows.shape[1] // SMOOTH_DIVISOR))
        label = f"#{s.rank} {hs.label()} ({s.mean_return:.1f})"
        (line,) = ax.plot(steps, mean, label=label, linewidth=1.6)
        if n > 1:
            ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
        drawn += [mean, lo, hi]
    ylim = data_ylim(*drawn) if drawn else None
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("episode return")
    shown = min(top, len(summary))
    ax.set_title(
        f"learning curves of the top {count(shown, 'set') if shown > 1 else 'set'} "
        f"({band_label(n)};\nmoving average over 1/{SMOOTH_DIVISOR} of the updates)",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _png(fig)


def _is_numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def plot_sensitivity(
    population: Population, results: Sequence[MemberResult], summary: Sequence[SetSummary]
) -> bytes:
    """`sensitivity.png`: final return against each swept key (dots: members, line: set means).

    Numeric keys spanning more than a factor 20 (all positive) get a log axis;
    other keys (lists, strings, booleans) are shown as categories.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    keys = list(population.swept) or ["seed"]
    cols = min(3, len(keys))
    rows_n = math.ceil(len(keys) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.4 * rows_n), dpi=110)
    means = {s.set_index: s.mean_return for s in summary}
    for i, key in enumerate(keys):
        ax = fig.add_subplot(rows_n, cols, i + 1)
        if key == "seed":
            xs = [r.seed for r in results]
            ax.scatter(xs, [r.final_return for r in results], s=14)
            ax.set_xlabel("seed (nothing swept)")
        else:
            member_x = [dict(r.values)[key] for r in results]
            set_x = [dict(s.values)[key] for s in population.sets]
            numeric = _is_numeric(set_x)
            if numeric:
                xs, sx = list(member_x), list(set_x)
            else:
                cats = sorted({_label(v) for v in set_x})
                xs = [cats.index(_label(v)) for v in member_x]
                sx = [cats.index(_label(v)) for v in set_x]
                ax.set_xticks(range(len(cats)), cats, rotation=20, fontsize=8)
            ax.scatter(xs, [r.final_return for r in results], s=12, alpha=0.45, label="member")
            by_x: dict[Any, list[float]] = {}
            for x, s in zip(sx, population.sets, strict=True):
                by_x.setdefault(x, []).append(means.get(s.index, math.nan))
            order = sorted(by_x)
            with _quiet_nan_warnings():
                best = [np.nanmax(by_x[x]) if np.isfinite(by_x[x]).any() else np.nan for x in order]
            ax.plot(order, best, "o-", color="black", markersize=4, label="best set mean")
            positive = numeric and min(set_x) > 0
            if positive and max(set_x) / min(set_x) > 20:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())  # no overlapping minor labels
            ax.set_xlabel(key)
        ax.set_ylabel("final return")
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7, loc="best")
    fig.suptitle("sensitivity: final return against each swept hyperparameter", fontsize=10)
    fig.tight_layout()
    return _png(fig)


def _label(value: Any) -> str:
    if isinstance(value, tuple | list):
        return "x".join(str(v) for v in value)
    return str(value)


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


@contextlib.contextmanager
def _quiet_nan_warnings() -> Iterator[None]:
    """Silence numpy's 'mean of empty slice' warnings for all-NaN columns."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


# What `write_report` writes (and the sweep's TensorBoard folder): derived from the chunk
# files, removed when a rerun has members left to train, rewritten at its end.
REPORT_FILES = ("results.csv", "summary.csv", "best.yaml", "curves.png", "sensitivity.png")


def write_report(
    out: Path,
    population: Population,
    results: Sequence[MemberResult],
    summary: Sequence[SetSummary],
    curves: Mapping[int, np.ndarray],
) -> list[Path]:
    """Write all five outputs into `out` (each atomically); returns their paths."""
    out = Path(out)
    contents = (
        results_csv(results, population.swept),
        summary_csv(summary, population.swept),
        best_yaml(population, summary),
        plot_curves(population, summary, curves),
        plot_sensitivity(population, results, summary),
    )
    files = dict(zip(REPORT_FILES, contents, strict=True))
    for name, data in files.items():
        atomic_write_bytes(out / name, data)
    return [out / name for name in files]
