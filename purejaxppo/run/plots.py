"""`curve.png`: episode return against env steps, mean +- std over seeds (host side)."""

from __future__ import annotations

import warnings
from pathlib import Path

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


def _steps_text(steps: float) -> str:
    """Axis label for a step count: 0, 500, 20k, 1.5M."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(steps) >= scale:
            return f"{steps / scale:g}{suffix}"
    return f"{steps:g}"


def plot_curve(
    path: str | Path,
    env_steps: np.ndarray,
    returns: np.ndarray,
    title: str,
    expected_return: float | None = None,
) -> int:
    """Write the learning curve PNG.

    Args:
      path: output file.
      env_steps: `[U]` env steps per seed after each update.
      returns: `[S, U]` mean return of the episodes finished in each update (NaN: none).
      title: plot title (env name, seeds).
      expected_return: drawn as a dashed line when given.

    Returns:
      The smoothing window in updates.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    num_seeds, num_updates = returns.shape
    window = max(1, num_updates // 50)
    per_seed = smooth(returns, window)
    with warnings.catch_warnings():  # all-NaN columns (no episode ended yet) give NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(per_seed, axis=0)
        std = np.nanstd(per_seed, axis=0)
    ok = np.isfinite(mean)

    fig, ax = plt.subplots(figsize=(7.0, 4.2), dpi=120)
    label = f"mean over {count(num_seeds, 'seed')}"
    if window > 1:
        label += f" ({window}-update moving average)"
    ax.plot(env_steps[ok], mean[ok], color="tab:blue", lw=2.0, label=label)
    if num_seeds > 1:
        ax.fill_between(
            env_steps[ok],
            (mean - std)[ok],
            (mean + std)[ok],
            color="tab:blue",
            alpha=0.25,
            lw=0,
            label="± std over seeds",
        )
    if expected_return is not None:
        ax.axhline(
            expected_return,
            color="tab:green",
            ls="--",
            lw=1.2,
            label=f"expected return ({expected_return:g})",
        )
    ax.set_xlabel("environment steps (per seed)")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _steps_text(x)))
    ax.legend(loc="best", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return window
