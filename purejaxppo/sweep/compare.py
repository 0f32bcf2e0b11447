"""`purejaxppo plot RUN_OR_SWEEP... --out cmp.png`: learning curves of runs and sweeps, overlaid.

    purejaxppo plot runs/a runs/b runs/sweeps/lr --out cmp.png [--metric NAME] [--x steps|time]

One line per run folder (labelled by its folder name) and one per hyperparameter set of a
sweep folder (labelled `SWEEP: <set label>`): the mean over seeds of a per-update metric
with its 95% confidence interval (Student t, n - 1 degrees of freedom over the seeds that
have a value; no band with one seed), after a trailing moving average over 2% of the
updates. x is env steps per seed, or with `--x time` training time in seconds:
`metrics.csv`'s `wall_time_s` (compilation excluded; recorded per chunk and spread evenly
over the chunk's updates) for a run, the wall time of the chunk that trained a member
(spread evenly over its updates) for a sweep. The figure is written atomically (host side).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from purejaxppo.run.errors import UsageError
from purejaxppo.run.plots import mean_ci  # the shared band convention of every curve plot
from purejaxppo.run.progress import count
from purejaxppo.run.rundir import METRICS_FILE, SWEEP_MANIFEST, read_metrics
from purejaxppo.state import METRIC_NAMES
from purejaxppo.sweep.report import atomic_write_bytes
from purejaxppo.sweep.rlhf_curves import RLHF_CONFIG, is_rlhf_folder

SMOOTH_FRACTION = 0.02
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


@dataclasses.dataclass(frozen=True)
class Curve:
    """One line of the figure: `x`, `mean`, `low`, `high` `[U]` over `seeds` seeds."""

    label: str
    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    seeds: int


def _spread_in_chunks(chunk_end: np.ndarray) -> np.ndarray:
    """Per-update times from chunk-end times `[U]` (equal within a chunk): each chunk's
    time spread evenly over its updates, from the previous chunk's end."""
    out = np.asarray(chunk_end, np.float64).copy()
    start, prev = 0, 0.0
    for i in range(1, len(out) + 1):
        if i == len(out) or chunk_end[i] != chunk_end[start]:
            k = i - start
            out[start:i] = prev + (chunk_end[start] - prev) * np.arange(1, k + 1) / k
            prev, start = float(chunk_end[start]), i
    return out


def smoothing_window(num_updates: int) -> int:
    """Updates (or iterations) of the trailing moving average: 2% of them, at least 1."""
    return max(1, int(num_updates * SMOOTH_FRACTION))


def _read_run_metrics(folder: Path) -> dict[str, np.ndarray]:
    """A run folder's `metrics.csv` columns; an empty or garbled file is a one-line error."""
    path = folder / METRICS_FILE
    try:
        columns = read_metrics(path)
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: cannot be read ({type(err).__name__})") from None
    except IndexError:
        raise UsageError(f"{path}: is empty") from None
    except ValueError as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UsageError(f"{path}: not a metrics file of purejaxppo train ({detail})") from None
    for name in ("seed", "update", "env_steps"):
        if name not in columns:
            raise UsageError(f"{path}: not a metrics file of purejaxppo train (no column {name})")
    return columns


def _run_curve(folder: Path, metric: str, x_axis: str) -> Curve:
    """The line of a run folder, from its `metrics.csv`."""
    columns = _read_run_metrics(folder)
    if metric not in columns:
        raise UsageError(f"{folder}: {METRICS_FILE} has no column {metric}")
    if x_axis == "time" and "wall_time_s" not in columns:
        raise UsageError(f"--x time: {folder / METRICS_FILE} records no wall_time_s")
    seeds = sorted({int(s) for s in columns["seed"]})
    if not seeds:
        raise UsageError(f"{folder}: {METRICS_FILE} holds no rows yet")
    per_seed = []
    for seed in seeds:
        mask = columns["seed"] == seed
        order = np.argsort(columns["update"][mask], kind="stable")
        per_seed.append({k: v[mask][order] for k, v in columns.items()})
    length = min(len(p["update"]) for p in per_seed)  # a seed cut short by a NaN stop
    rows = np.stack([p[metric][:length] for p in per_seed])
    first = per_seed[0]
    if x_axis == "time":
        x = _spread_in_chunks(first["wall_time_s"][:length])
    else:
        x = first["env_steps"][:length].astype(np.float64)
    mean, low, high = mean_ci(rows, smoothing_window(length))
    return Curve(folder.name, x, mean, low, high, len(seeds))


def _sweep_curves(folder: Path, metric: str, x_axis: str, prefix: bool) -> list[Curve]:
    """One line per hyperparameter set of a sweep folder, from its chunk files."""
    from purejaxppo.sweep.curves import folder_population, set_curves

    try:
        sets = set_curves(folder, folder_population(folder))
    except ValueError as err:
        raise UsageError(str(err).splitlines()[0]) from None
    if not sets:
        raise UsageError(f"{folder}: a sweep folder with no finished chunk yet")
    curves = []
    for s in sets:
        if metric not in s.metrics:
            raise UsageError(f"{folder}: its chunk files hold no metric {metric}")
        rows = s.metrics[metric]
        num = rows.shape[1]
        if x_axis == "time":
            if not np.isfinite(s.run_s).all():
                raise UsageError(f"--x time: {folder}: its chunk files record no wall time")
            x = float(np.mean(s.run_s)) * np.arange(1, num + 1) / num
        else:
            x = s.env_steps.astype(np.float64)
        mean, low, high = mean_ci(rows, smoothing_window(num))
        label = f"{folder.name}: {s.label}" if prefix else s.label
        curves.append(Curve(label, x, mean, low, high, len(s.seeds)))
    return curves


@dataclasses.dataclass(frozen=True)
class Panel:
    """One plot of the figure: the lines of one metric."""

    metric: str
    curves: list[Curve]


def load_curves(paths: Sequence[str | Path], metric: str, x_axis: str = "steps") -> list[Curve]:
    """The lines for run and sweep folders; `UsageError` (one line) for anything else."""
    if metric not in METRIC_NAMES:
        raise UsageError(
            f"--metric {metric}: unknown metric; expected one of {', '.join(METRIC_NAMES)}"
        )
    curves: list[Curve] = []
    for given in paths:
        folder = Path(given)
        if not folder.exists():
            raise UsageError(f"{folder}: no such run or sweep folder")
        if (folder / SWEEP_MANIFEST).is_file():
            curves += _sweep_curves(folder, metric, x_axis, prefix=len(paths) > 1)
        elif is_rlhf_folder(folder):
            raise UsageError(
                f"{folder}: an RLHF run folder ({RLHF_CONFIG}); plot it with `purejaxppo plot` "
                "on its own or beside other RLHF folders (load_panels)"
            )
        elif (folder / METRICS_FILE).is_file():
            curves.append(_run_curve(folder, metric, x_axis))
        else:
            raise UsageError(
                f"{folder}: not a run folder (no {METRICS_FILE}), a sweep output folder "
                f"(no {SWEEP_MANIFEST}) or an RLHF run folder (no {RLHF_CONFIG})"
            )
    return curves


def load_panels(
    paths: Sequence[str | Path], metric: str | None, x_axis: str = "steps"
) -> list[Panel]:
    """What `plot` draws: one panel of `metric` (default `episode_return`) for run and sweep
    folders; for RLHF run folders (only those) one panel per `metric`, by default gold
    reward, proxy reward and KL. `UsageError` (one line) for anything else."""
    from purejaxppo.sweep.rlhf_curves import DEFAULT_PANELS, rlhf_curves, rlhf_metric_names

    folders = [Path(p) for p in paths]
    if not any(f.is_dir() and is_rlhf_folder(f) for f in folders):
        metric = metric or "episode_return"
        return [Panel(metric, load_curves(folders, metric, x_axis))]
    for folder in folders:
        if not folder.exists():
            raise UsageError(f"{folder}: no such run or sweep folder")
    others = [f for f in folders if not is_rlhf_folder(f)]
    if others:
        rlhf = next(f for f in folders if is_rlhf_folder(f))
        raise UsageError(
            f"{rlhf}: an RLHF run folder ({RLHF_CONFIG}) is plotted against iterations, "
            f"{others[0]} (not one) against env steps; plot them in separate figures"
        )
    names = rlhf_metric_names()
    if metric is not None and metric not in names:
        raise UsageError(
            f"--metric {metric}: unknown RLHF metric; expected one of {', '.join(names)}"
        )
    prefix = len(folders) > 1
    return [
        Panel(m, [c for f in folders for c in rlhf_curves(f, m, x_axis, prefix)])
        for m in ((metric,) if metric else DEFAULT_PANELS)
    ]


def check_out(out: str | Path) -> Path:
    """`--out`: a .png/.pdf/.svg file name in an existing folder (`UsageError` otherwise)."""
    path = Path(out)
    if path.suffix.lower() not in FIGURE_SUFFIXES:
        raise UsageError(
            f"--out {path}: expected a file name ending in {', '.join(FIGURE_SUFFIXES)}"
        )
    if path.is_dir():
        raise UsageError(f"--out {path}: is a folder; expected a figure file name")
    if not path.parent.is_dir():
        raise UsageError(f"--out {path}: no such folder {path.parent}")
    return path


def plot_curves(curves: Sequence[Curve], path: Path, metric: str, x_axis: str) -> None:
    """Draw the lines of one metric with their bands into `path` (temporary file, then
    rename)."""
    plot_panels([Panel(metric, list(curves))], path, _x_label(x_axis, "env steps per seed"))


def _x_label(x_axis: str, steps: str) -> str:
    return steps if x_axis == "steps" else "training time (s)"


def plot_panels(panels: Sequence[Panel], path: Path, x_label: str, steps: str = "updates") -> None:
    """Draw the panels side by side, each line with its band, into `path` (atomically);
    `steps`: what the moving average runs over (updates, iterations)."""
    from matplotlib.figure import Figure

    smoothing = f"moving average over {SMOOTH_FRACTION:.0%} of the {steps}"
    fig = Figure(figsize=(8, 5) if len(panels) == 1 else (5 * len(panels), 4.5), dpi=110)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=True):
        for c in panel.curves:
            label = f"{c.label} ({count(c.seeds, 'seed')})"
            (line,) = ax.plot(c.x, c.mean, linewidth=1.6, label=label)
            if c.seeds > 1:
                ax.fill_between(c.x, c.low, c.high, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_xlabel(x_label)
        ax.set_ylabel(panel.metric)
        ax.grid(alpha=0.3)
    if len(panels) == 1:
        title = f"{panels[0].metric}: mean ± 95% CI over seeds ({smoothing})"
        axes[0].set_title(title, fontsize=10)
    else:
        for ax, panel in zip(axes, panels, strict=True):
            ax.set_title(panel.metric, fontsize=10)
        fig.suptitle(f"mean ± 95% CI over seeds ({smoothing})", fontsize=10)
    axes[-1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".").lower())
    atomic_write_bytes(path, buf.getvalue())


def _plot(args: argparse.Namespace) -> int:
    path = check_out(args.out)
    panels = load_panels(args.folders, args.metric, args.x)
    rlhf = any(is_rlhf_folder(Path(f)) for f in args.folders)  # then all are (load_panels)
    x_label = _x_label(args.x, "iteration" if rlhf else "env steps per seed")
    plot_panels(panels, path, x_label, "iterations" if rlhf else "updates")
    curves = panels[0].curves
    shown = ", ".join(f"{c.label} ({count(c.seeds, 'seed')})" for c in curves)
    metrics = ", ".join(p.metric for p in panels)
    x_name = "iterations" if rlhf and args.x == "steps" else args.x
    print(f"wrote {path}: {metrics} against {x_name}, {count(len(curves), 'line')}: {shown}")
    return 0


def register(sub: Any) -> None:
    """Add the `plot` subcommand to the `purejaxppo` parser."""
    p = sub.add_parser(
        "plot",
        help="overlay the learning curves of runs and sweeps (mean ± 95%% CI over seeds)",
        description=(__doc__ or "").split("\n\n")[0] + "\n\n" + (__doc__ or "").split("\n\n")[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "folders",
        nargs="+",
        metavar="RUN_OR_SWEEP",
        help="run or sweep output folders, or RLHF run folders (on their own)",
    )
    p.add_argument("--out", required=True, metavar="FILE", help="the figure (.png, .pdf or .svg)")
    p.add_argument(
        "--metric",
        default=None,
        help=(
            f"a per-update metric (default episode_return; any of {', '.join(METRIC_NAMES)}); "
            "for RLHF run folders a per-iteration metric (default: gold_reward, proxy_reward "
            "and kl, side by side)"
        ),
    )
    p.add_argument(
        "--x",
        choices=("steps", "time"),
        default="steps",
        help="x axis: env steps per seed (default) or training time in seconds",
    )
    p.set_defaults(func=_plot)
