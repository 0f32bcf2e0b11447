"""Write a benchmark's `bench.json`, `BENCHMARKS.md` and PNG plots (host side)."""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from pathlib import Path
from typing import Any

from purejaxppo.bench.measure import BenchResult, EnvResult, ScalingPoint, reference_recipe

JSON_FILE = "bench.json"
MARKDOWN_FILE = "BENCHMARKS.md"
PLOT_NUM_ENVS = "scaling_num_envs.png"
PLOT_POPULATION = "scaling_population.png"
PLOT_CURVES = "learning_curves.png"
FORMAT = 1


# =========================================================================== headline
@dataclasses.dataclass(frozen=True)
class Headline:
    """The reference-recipe figures set against issue 5's reference figures (None: not measured).

    Attributes:
      single_seed_steps_per_s: reference recipe, 1 seed, one device: median over the timed
        calls of the `num_envs=4` and `population=1` points (the same program).
      single_seed_compile_s: its compile time.
      multi_seed_steps_per_s: reference recipe, several seeds over all devices.
      multi_seed_members: the seed count of that figure.
      multi_seed_source: `env suite` or `population scaling`.
      speedup_vs_purejaxrl: `multi_seed_steps_per_s` / the issue's PureJaxRL figure.
      utilisation: fraction of the matmul peak at `multi_seed_steps_per_s`.
      sb3_steps_per_s: measured Stable-Baselines3 steps/s, if installed.
      ratio_vs_sb3: `single_seed_steps_per_s / sb3_steps_per_s`.
      solve_wall_s: the fastest CartPole-v1 time to threshold in the env suite.
      solve_seeds: seeds of that run.
      solve_entry: its suite entry (`CartPole-v1`, or a fast config's name).
    """

    single_seed_steps_per_s: float | None
    single_seed_compile_s: float | None
    multi_seed_steps_per_s: float | None
    multi_seed_members: int | None
    multi_seed_source: str | None
    speedup_vs_purejaxrl: float | None
    utilisation: float | None
    sb3_steps_per_s: float | None
    ratio_vs_sb3: float | None
    solve_wall_s: float | None
    solve_seeds: int | None
    solve_entry: str | None


def _reference_env(result: BenchResult) -> EnvResult | None:
    """The suite's run of the exact reference recipe, if there is one."""
    ref, _ = reference_recipe()
    for env in result.envs:
        same = (
            env.env_name == ref.env_name
            and env.num_envs == ref.num_envs
            and env.num_steps == ref.num_steps
            and env.hidden_sizes == ref.hidden_sizes
            and env.update_epochs == ref.update_epochs
            and env.num_minibatches == ref.num_minibatches
        )
        if same:
            return env
    return None


def headline(result: BenchResult) -> Headline:
    """Pick the reference-recipe figures out of a result."""
    ref = result.reference
    # `num_envs=4` and `population=1` are the same program measured twice: pool their calls.
    singles = [
        p
        for p in result.scaling
        if (p.axis == "population" and p.members == 1) or (p.axis == "num_envs" and p.value == 4)
    ]
    single_rate = statistics.median([r for p in singles for r in p.call_rates]) if singles else None
    single_compile = min(p.compile_s for p in singles) if singles else None
    env = _reference_env(result)
    multi_rate = multi_members = multi_source = utilisation = None
    if env is not None and env.seeds >= 2:
        multi_rate, multi_members, multi_source = env.steps_per_s, env.seeds, "env suite"
        utilisation = env.utilisation
    else:
        pops = [p for p in result.scaling if p.axis == "population" and p.members >= 2]
        if pops:
            best = max(pops, key=lambda p: p.members)
            multi_rate, multi_members, multi_source = best.steps_per_s, best.members, "scaling"
            utilisation = best.utilisation
    sb3 = next((p for p in result.peers if p.name == "stable-baselines3" and p.available), None)
    # The fastest CartPole solve in the suite (e.g. a shipped fast config beside the reference).
    cartpoles = [e for e in result.envs if e.env_name == "CartPole-v1"]
    solved = [e for e in cartpoles if e.solve_wall_s is not None]
    solve_env = (
        min(solved, key=lambda e: e.solve_wall_s or 0.0)
        if solved
        else (cartpoles[0] if cartpoles else None)
    )
    return Headline(
        single_seed_steps_per_s=single_rate,
        single_seed_compile_s=single_compile,
        multi_seed_steps_per_s=multi_rate,
        multi_seed_members=multi_members,
        multi_seed_source=multi_source,
        speedup_vs_purejaxrl=multi_rate / ref.purejaxrl_steps_per_s if multi_rate else None,
        utilisation=utilisation,
        sb3_steps_per_s=sb3.steps_per_s if sb3 else None,
        ratio_vs_sb3=single_rate / sb3.steps_per_s if (sb3 and single_rate) else None,
        solve_wall_s=solve_env.solve_wall_s if solve_env else None,
        solve_seeds=solve_env.seeds if solve_env else None,
        solve_entry=solve_env.name if solve_env else None,
    )


# =========================================================================== JSON
def clean_json(value: Any) -> Any:
    """JSON-safe: NaN/inf to None, tuples to lists, dataclasses to dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return clean_json(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_json(result: BenchResult) -> dict[str, Any]:
    """The `bench.json` document."""
    doc = {"format": FORMAT, **dataclasses.asdict(result), "headline": headline(result)}
    return clean_json(doc)


# =========================================================================== markdown
def _num(value: float | None, fmt: str = ",.0f", none: str = "n/a") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return none
    return format(value, fmt)


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _return_text(env: EnvResult) -> str:
    mean = _num(env.final_return, ".1f")
    if math.isfinite(env.final_return_ci95):
        mean += f" ± {env.final_return_ci95:.1f}"
    return mean


def _solve_text(env: EnvResult) -> str:
    if env.threshold is None:
        return "no threshold"
    if env.solve_wall_s is None:
        return f"not reached in {env.env_steps:,} steps"
    return f"{env.solve_wall_s:.1f} s ({env.solve_env_steps:,} steps)"


def _solve_headline(head: Headline) -> str:
    if head.solve_seeds is None:
        return "not run"
    if head.solve_wall_s is None:
        return "not reached in this run"
    return f"{head.solve_wall_s:.1f}"


def _reference_rows(result: BenchResult, head: Headline) -> list[list[str]]:
    ref = result.reference
    multi = f"{head.multi_seed_members} seeds" if head.multi_seed_members else "2+ seeds"
    rows = [
        [
            "steps/s, 1 seed",
            _num(head.single_seed_steps_per_s),
            f"PureJaxRL {ref.purejaxrl_steps_per_s:,.0f}",
            _num(
                head.single_seed_steps_per_s / ref.purejaxrl_steps_per_s
                if head.single_seed_steps_per_s
                else None,
                ".2f",
            )
            + "x",
        ],
        [
            f"steps/s, {multi}, all devices",
            _num(head.multi_seed_steps_per_s),
            f"target {ref.target_speedup:g}x PureJaxRL = "
            f"{ref.target_speedup * ref.purejaxrl_steps_per_s:,.0f}",
            _num(head.speedup_vs_purejaxrl, ".2f") + "x",
        ],
        [
            "compile, 1 seed (s)",
            _num(head.single_seed_compile_s, ".1f"),
            f"PureJaxRL {ref.purejaxrl_compile_s:g}",
            "",
        ],
        [
            f"matmul {result.matmul.size}^3 f32 (GFLOP/s)",
            _num(result.matmul.best_gflops, ".1f"),
            f"{ref.matmul_gflops:g}",
            "",
        ],
        [
            f"utilisation of the matmul peak, {multi}",
            _pct(head.utilisation),
            f"PureJaxRL {_pct(ref.purejaxrl_utilisation)}; target {_pct(ref.target_utilisation)}",
            "",
        ],
        [
            "Stable-Baselines3 steps/s",
            _num(head.sb3_steps_per_s) if head.sb3_steps_per_s else "not installed",
            f"{ref.sb3_steps_per_s:,.0f}",
            (_num(head.ratio_vs_sb3, ",.0f") + "x (1 seed vs SB3)") if head.ratio_vs_sb3 else "",
        ],
        [
            f"CartPole time to 475 ({head.solve_entry or 'CartPole-v1'}, "
            f"{head.solve_seeds or 8} seeds), incl. compile (s)",
            _solve_headline(head),
            f"target {ref.target_solve_s:g}",
            "",
        ],
    ]
    return rows


def _env_rows(result: BenchResult) -> list[list[str]]:
    rows = []
    for e in result.envs:
        steps = f"{e.env_steps:,}" + ("" if e.complete else f" of {e.total_timesteps:,} (budget)")
        rows.append(
            [
                e.name,
                e.source,
                f"{e.num_envs}x{e.num_steps}, {'x'.join(map(str, e.hidden_sizes))}",
                str(e.seeds),
                steps,
                f"{e.compile_s:.1f}",
                _num(e.steps_per_s),
                _num(e.steps_per_s_per_seed),
                _num(e.threshold, "g", "none"),
                _solve_text(e),
                _return_text(e),
                _num(e.flops.per_step),
                f"{e.gflops:.1f}",
                _pct(e.utilisation),
            ]
        )
    return rows


def _scaling_rows(points: list[ScalingPoint]) -> list[list[str]]:
    return [
        [
            str(p.value),
            str(p.devices),
            str(p.updates_per_call),
            f"{p.compile_s:.1f}",
            _num(p.steps_per_s),
            _num(p.steps_per_s_best),
            f"{p.gflops:.1f}",
            _pct(p.utilisation),
        ]
        for p in points
    ]


def to_markdown(result: BenchResult) -> str:
    """The `BENCHMARKS.md`-style report."""
    d, plan, head = result.device, result.plan, headline(result)
    versions = ", ".join(f"{k} {v}" for k, v in result.versions.items() if v is not None)
    lines = [
        f"# purejaxppo benchmark ({plan.mode})",
        "",
        f"- command: `{result.command}`, started {result.started}, took {result.wall_s:.0f} s",
        f"- device: {d.describe()}; {d.cpu_cores} CPU cores; {d.os}",
        f"- versions: {versions}, python {d.python}",
        "- timings: throughput is the median over timed calls (after a warm-up call); "
        "compile time is `lower + compile` without the persistent cache. A shared or busy "
        "machine makes every figure slower, never faster.",
        "",
        "## Reference recipe (PureJaxRL's CartPole) against issue 5's figures",
        "",
        "The reference column is quoted from issue 5 (measured by its author on a 2-core CPU); "
        "it was **not measured in this run** unless a peer row says so.",
        "",
        *_table(
            ["figure", "measured here", "reference (issue 5)", "ratio"],
            _reference_rows(result, head),
        ),
        "",
        "## Environments",
        "",
        f"{plan.seeds} seeds per env, vmapped and sharded over {d.device_count} device(s). "
        "Steps/s counts all seeds. Recent return: per seed the mean of its last W per-update "
        "returns (W = 5% of the config's updates); final return: the recent return at the end "
        "of training, mean ± 95% CI (Student t) over seeds. Time to threshold: wall clock from "
        "before compilation to the end of the first chunk of updates after which the seed mean "
        "of the recent return reaches the threshold.",
        "",
        *_table(
            [
                "env",
                "recipe",
                "envs x steps, net",
                "seeds",
                "env steps/seed",
                "compile s",
                "steps/s",
                "steps/s/seed",
                "threshold",
                "time to threshold",
                "final return",
                "FLOPs/step",
                "GFLOP/s",
                "% peak",
            ],
            _env_rows(result),
        ),
        "",
        "### FLOP count cross-check",
        "",
        "Analytic network FLOPs per env step (docs/benchmark.md) against XLA's "
        "`cost_analysis()` of the compiled acting, value and gradient programs (all ops).",
        "",
        *_table(
            ["env", "analytic", "XLA", "XLA / analytic"],
            [
                [
                    e.name,
                    _num(e.flops.per_step),
                    _num(e.xla_flops.per_step if e.xla_flops else None),
                    _num(e.xla_flops.ratio if e.xla_flops else None, ".3f"),
                ]
                for e in result.envs
            ],
        ),
        "",
    ]
    header = [
        "value",
        "devices",
        "updates/call",
        "compile s",
        "steps/s",
        "best",
        "GFLOP/s",
        "% peak",
    ]
    for axis, title, plot in (
        ("num_envs", "Scaling with num_envs (reference recipe, 1 seed)", PLOT_NUM_ENVS),
        ("population", "Scaling with population size (reference recipe)", PLOT_POPULATION),
    ):
        points = [p for p in result.scaling if p.axis == axis]
        if points:
            lines += [f"## {title}", "", *_table([axis, *header[1:]], _scaling_rows(points))]
            lines += ["", f"![{axis}]({plot})", ""]
    lines += ["## Peers (reference recipe)", ""]
    peer_rows = []
    for p in result.peers:
        if p.available:
            ratio = (
                f"{head.single_seed_steps_per_s / p.steps_per_s:,.0f}x"
                if head.single_seed_steps_per_s
                else "n/a"
            )
            peer_rows.append([p.name, p.version or "", _num(p.steps_per_s), ratio, p.note])
        else:
            peer_rows.append([p.name, "", "skipped", "", p.note])
    lines += _table(["peer", "version", "steps/s", "purejaxppo 1 seed / peer", "note"], peer_rows)
    if result.envs:
        lines += ["", f"![learning curves]({PLOT_CURVES})"]
    return "\n".join(lines) + "\n"


# =========================================================================== plots
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


def write_report(result: BenchResult, out_dir: Path) -> list[Path]:
    """Write bench.json, BENCHMARKS.md and the plots into `out_dir`; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    path = out_dir / JSON_FILE
    path.write_text(json.dumps(to_json(result), indent=2, allow_nan=False) + "\n")
    written.append(path)
    path = out_dir / MARKDOWN_FILE
    path.write_text(to_markdown(result))
    written.append(path)
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
