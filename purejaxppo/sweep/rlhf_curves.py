"""`purejaxppo plot` of RLHF run folders (written by `purejaxppo rlhf`, recognised by their
`rlhf.yaml`): per-iteration metrics of the population, against iterations (host side).

A folder's `metrics.csv` has one row per member and iteration (`purejaxppo.rlhf.report`).
Members whose labels differ only in `seed=N` form one line: the mean over those seeds with
its 95% CI, after the same moving average as the training curves. By default three panels
are drawn, gold reward, proxy reward and KL to the reference; `--metric` picks one field of
`RLMetrics` instead.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np

from purejaxppo.run.errors import UsageError

RLHF_CONFIG = "rlhf.yaml"
RLHF_METRICS_FILE = "metrics.csv"
DEFAULT_PANELS = ("gold_reward", "proxy_reward", "kl")
_ID_COLUMNS = ("member", "label", "iteration")
_SEED = re.compile(r"(^| )seed=\d+( |$)")


def is_rlhf_folder(folder: Path) -> bool:
    """A run folder of `purejaxppo rlhf` (it holds `rlhf.yaml`)."""
    return (folder / RLHF_CONFIG).is_file()


def rlhf_metric_names() -> tuple[str, ...]:
    """The per-iteration metrics an RLHF `metrics.csv` holds (`RLMetrics` fields)."""
    from purejaxppo.rlhf.trainer import RLMetrics

    return tuple(RLMetrics._fields)


def read_rlhf_metrics(folder: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """`(labels [M], {column: float64 [M, I]})` of an RLHF folder's `metrics.csv`; a file
    that is empty, truncated or not in that layout is a one-line `UsageError`."""
    path = folder / RLHF_METRICS_FILE
    where = f"{folder}: {RLHF_METRICS_FILE}"
    if not path.is_file():
        raise UsageError(f"{folder}: an RLHF run folder without {RLHF_METRICS_FILE}")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UsageError(f"{where}: cannot be read ({type(err).__name__})") from None
    if not rows:
        raise UsageError(f"{where}: is empty")
    header, body = rows[0], rows[1:]
    if tuple(header[:3]) != _ID_COLUMNS:
        raise UsageError(f"{where}: expected the columns {', '.join(_ID_COLUMNS)} first")
    if not body:
        raise UsageError(f"{where}: holds no rows")
    try:
        members = np.asarray([int(r[0]) for r in body])
        iterations = np.asarray([int(r[2]) for r in body])
        values = np.asarray([[float(x) for x in r[3:]] for r in body], np.float64)
    except (ValueError, IndexError):
        raise UsageError(f"{where}: holds rows that are not numbers in its columns") from None
    if values.shape[1:] != (len(header) - 3,):
        raise UsageError(f"{where}: holds rows that are not numbers in its columns")
    if members.min() < 0:
        raise UsageError(f"{where}: holds a negative member number")
    count = members.max() + 1
    order = np.lexsort((iterations, members))
    per_member = np.bincount(members, minlength=count)
    if len(set(per_member.tolist())) != 1:
        raise UsageError(f"{where}: members hold different numbers of iterations")
    labels = {int(m): r[1] for m, r in zip(members, body, strict=True)}
    table = values[order].reshape(count, per_member[0], -1)
    columns = {name: table[:, :, i] for i, name in enumerate(header[3:])}
    return [labels[m] for m in range(count)], columns


def _set_label(label: str) -> str:
    """A member's label without its `seed=N` part: `kl_target=1 seed=0` -> `kl_target=1`."""
    return " ".join(_SEED.sub(" ", label).split())


def _train_seconds(folder: Path) -> float:
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        return float(summary["timings_s"]["train"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UsageError(f"--x time: {folder}: summary.json records no training time") from None


def rlhf_curves(folder: Path, metric: str, x_axis: str, prefix: bool) -> list:
    """The lines (`compare.Curve`) of one RLHF folder for `metric`: one per member set
    (labels without the seed), mean and 95% CI over its seeds, against iteration 1..I, or
    with `x_axis="time"` the run's training time spread evenly over the iterations."""
    from purejaxppo.sweep.compare import Curve, mean_ci, smoothing_window

    labels, columns = read_rlhf_metrics(folder)
    if metric not in columns:
        raise UsageError(f"{folder}: {RLHF_METRICS_FILE} has no column {metric}")
    values = columns[metric]
    num = values.shape[1]
    x = np.arange(1, num + 1, dtype=np.float64)
    if x_axis == "time":
        x = _train_seconds(folder) * x / num
    sets: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        sets.setdefault(_set_label(label), []).append(i)
    curves = []
    for name, rows in sets.items():
        mean, low, high = mean_ci(values[rows], smoothing_window(num))
        if prefix or not name:
            name = f"{folder.name}: {name}" if name else folder.name
        curves.append(Curve(name, x, mean, low, high, len(rows)))
    return curves
