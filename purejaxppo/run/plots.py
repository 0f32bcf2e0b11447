"""`curve.png` and the one band convention of every learning-curve plot (host side).

Every curve figure (`curve.png` of a run, a sweep's `curves.png`, `purejaxppo plot`) draws
the mean over seeds with its 95% confidence interval: Student t with n - 1 degrees of
freedom over the seeds that have a value (`mean_ci`), no band with one seed, and the band
clipped to the range the seeds' own values span at that point, since a mean's interval
beyond every seed's value says nothing (CartPole's band stops at 500). `BAND_LABEL` names
the convention in the legends; the y-range comes from the curves and the clipped bands.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from purejaxppo.run.progress import count


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """NaN-aware trailing moving average over the last axis (`[..., U]` -> `[..., U]`)."""
    if window <= 1:
        return values.astype(np.float64)
    finite = np.isfinite(values)
    filled = np.where(finite, values, 0.0)
    kernel = np.ones(window)

    def conv(x: np.ndarray) -> np.ndarray:
        return np.apply_along_axis(lambda r: np.convolve(r, kernel)[: r.shape[0]], -1, x)

    sums, counts = conv(filled), conv(finite.astype(np.float64))
    with np.errstate(all="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def mean_ci(rows: np.ndarray, window: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(mean, low, high)` `[U]` of `[S, U]` per-seed values after a trailing moving average
    over `window` updates.

    `mean`: over the seeds with a finite value (NaN where none has one). `low..high`: its 95%
    CI (t quantile, n - 1 degrees of freedom), clipped to the smallest..largest seed value;
    `low = high = mean` where fewer than two seeds have a value.
    """
    from scipy import stats

    rows = smooth(np.asarray(rows, np.float64), window)
    finite = np.isfinite(rows)
    n = finite.sum(axis=0)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN
        mean = np.nanmean(rows, axis=0)
        sd = np.nanstd(rows, axis=0, ddof=1)
        half = stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
        low = np.fmax(mean - half, np.nanmin(rows, axis=0))
        high = np.fmin(mean + half, np.nanmax(rows, axis=0))
    banded = n >= 2
    return mean, np.where(banded, low, mean), np.where(banded, high, mean)


def band_label(num_seeds: int) -> str:
    """The legend text of the convention: "mean ± 95% CI over 4 seeds" ("1 seed": no band)."""
    if num_seeds < 2:
        return f"{count(num_seeds, 'seed')} (no band)"
    return f"mean ± 95% CI over {count(num_seeds, 'seed')}"


def data_ylim(*arrays: np.ndarray, margin: float = 0.05) -> tuple[float, float] | None:
    """y-limits spanning the finite values of `arrays` (curves and clipped bands) plus
    `margin` of their range on each side; None when there is no finite value."""
    values = np.concatenate([np.ravel(np.asarray(a, np.float64)) for a in arrays])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    lo, hi = float(values.min()), float(values.max())
    pad = margin * (hi - lo) if hi > lo else max(abs(hi), 1.0) * margin
    return lo - pad, hi + pad


def _steps_text(steps: float) -> str:
    """Axis label for a step count: 0, 500, 20k, 1.5M."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(steps) >= scale:
            return f"{steps / scale:g}{suffix}"
    return f"{steps:g}"


def curve_figure(
    env_steps: np.ndarray,
    returns: np.ndarray,
    title: str,
    expected_return: float | None = None,
) -> tuple[Any, int]:
    """The learning-curve figure and its smoothing window in updates (see `plot_curve`)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    num_seeds, num_updates = returns.shape
    window = max(1, num_updates // 50)
    mean, low, high = mean_ci(returns, window)
    ok = np.isfinite(mean)

    fig = Figure(figsize=(7.0, 4.2), dpi=120)
    ax = fig.add_subplot()
    label = band_label(num_seeds)
    if window > 1:
        label += f" ({window}-update moving average)"
    (line,) = ax.plot(env_steps[ok], mean[ok], color="tab:blue", lw=2.0)
    handle: Any = line
    if num_seeds > 1:
        band = ax.fill_between(env_steps[ok], low[ok], high[ok], color="tab:blue", alpha=0.25, lw=0)
        handle = (band, line)
    handles, labels = [handle], [label]
    limits = [mean[ok], low[ok], high[ok]]
    if expected_return is not None:
        handles.append(ax.axhline(expected_return, color="tab:green", ls="--", lw=1.2))
        labels.append(f"expected return ({expected_return:g})")
        limits.append(np.array([expected_return]))
    ylim = data_ylim(*limits)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel("environment steps (per seed)")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _steps_text(x)))
    ax.legend(handles, labels, loc="best", fontsize=9)
    fig.tight_layout()
    return fig, window


def plot_curve(
    path: str | Path,
    env_steps: np.ndarray,
    returns: np.ndarray,
    title: str,
    expected_return: float | None = None,
) -> int:
    """Write the learning curve PNG: the mean return over seeds with its clipped 95% CI
    (`mean_ci`) after a moving average over 2% of the updates.

    Args:
      path: output file.
      env_steps: `[U]` env steps per seed after each update.
      returns: `[S, U]` mean return of the episodes finished in each update (NaN: none).
      title: plot title (env name, seeds).
      expected_return: drawn as a dashed line when given.

    Returns:
      The smoothing window in updates.
    """
    fig, window = curve_figure(env_steps, returns, title, expected_return)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    tmp.replace(path)
    return window
