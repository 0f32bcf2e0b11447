"""The benchmark's PNG plots: steps/s against `num_envs` and population size, learning curves.

matplotlib (Agg backend) is imported only when a plot is written.
"""

from __future__ import annotations

from pathlib import Path

from purejaxppo.bench.results import BenchResult, EnvResult, ScalingPoint

PLOT_NUM_ENVS = "scaling_num_envs.png"
PLOT_POPULATION = "scaling_population.png"
PLOT_CURVES = "learning_curves.png"


def _plot_scaling(points: list[ScalingPoint], xlabel: str, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    xs = [p.value for p in points]
    ax.plot(xs, [p.steps_per_s for p in points], "o-", label="median")
    ax.plot(xs, [p.steps_per_s_best for p in points], "x--", alpha=0.6, label="best call")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("env steps / s (all members)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_curves(envs: tuple[EnvResult, ...], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(len(envs), 2)
    rows = -(-len(envs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.5 * rows), dpi=100, squeeze=False)
    for ax, env in zip(axes.ravel(), envs, strict=False):
        ax.plot([c.wall_s for c in env.curve], [c.mean_return for c in env.curve], "-")
        if env.threshold is not None:
            ax.axhline(env.threshold, color="grey", ls="--", lw=1, label="threshold")
            ax.legend(loc="lower right")
        ax.axvline(env.compile_s, color="red", ls=":", lw=1)
        ax.set_title(f"{env.name} ({env.seeds} seeds)")
        ax.set_xlabel("wall clock incl. compile (s)")
        ax.set_ylabel("recent return, seed mean")
        ax.grid(True, alpha=0.3)
    for ax in axes.ravel()[len(envs) :]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_plots(result: BenchResult, out_dir: Path) -> list[Path]:
    """Write the scaling plots (axes that were measured) and the learning curves (if any envs)."""
    written = []
    for axis, xlabel, title, name in (
        ("num_envs", "num_envs (1 seed)", "Reference recipe: steps/s vs num_envs", PLOT_NUM_ENVS),
        (
            "population",
            "population size (seeds over all devices)",
            "Reference recipe: steps/s vs population",
            PLOT_POPULATION,
        ),
    ):
        points = [p for p in result.scaling if p.axis == axis]
        if points:
            _plot_scaling(points, xlabel, title, out_dir / name)
            written.append(out_dir / name)
    if result.envs:
        _plot_curves(result.envs, out_dir / PLOT_CURVES)
        written.append(out_dir / PLOT_CURVES)
    return written
