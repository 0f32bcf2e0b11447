"""TensorBoard event files of a sweep: one folder per hyperparameter set (host side).

    OUT/tensorboard/set_<i>_<label>/events.out.tfevents.*   tags: the metric names

Each set's per-update metrics are averaged over its seeds (NaN-aware: an update in which
no seed finished an episode has no `episode_return` point), x = env steps per seed, so
`tensorboard --logdir OUT/tensorboard` overlays the sets. Written with the sweep's report,
after every chunk is in; the folder is rebuilt beside the old one and swapped in, so a
rerun that adds seeds replaces it whole.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from purejaxppo.run.tensorboard_log import TB_DIR, replace_folder, write_scalars
from purejaxppo.sweep.curves import SetCurves, folder_population, set_curves
from purejaxppo.sweep.population import Population


def set_folder(curves: SetCurves) -> str:
    """`set_03_learning_rate=0.001_ent_coef=0.01`: a file-system safe name per set."""
    label = re.sub(r"[^A-Za-z0-9.=+-]+", "_", curves.label).strip("_")
    return f"set_{curves.set_index:02d}_{label}"


def seed_means(curves: SetCurves) -> dict[str, np.ndarray]:
    """Every metric `[U]`, the mean over the set's seeds (NaN where no seed has a value)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        return {name: np.nanmean(rows, axis=0) for name, rows in curves.metrics.items()}


def write_sweep_tensorboard(out: Path, population: Population | None = None) -> Path:
    """(Re)write `out/tensorboard/` from the chunk files; returns the folder."""
    out = Path(out)
    population = population or folder_population(out)
    sets = set_curves(out, population)

    def build(tmp: Path) -> None:
        for curves in sets:
            write_scalars(tmp / set_folder(curves), curves.env_steps, seed_means(curves))

    replace_folder(out / TB_DIR, build)
    return out / TB_DIR
