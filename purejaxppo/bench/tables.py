"""Markdown tables of a benchmark's throughput measurements (host side).

The FLOP cross-check, the whole-machine / per-device split, the compute-bound
points and the scaling sweeps, for `BENCHMARKS.md` (`purejaxppo.bench.report`),
and the small formatting helpers the report shares.
"""

from __future__ import annotations

import math

from purejaxppo.bench.plots import PLOT_NUM_ENVS, PLOT_POPULATION
from purejaxppo.bench.results import BenchResult, ScalingPoint, ThroughputPoint


def num(value: float | None, fmt: str = ",.0f", none: str = "n/a") -> str:
    """`value` formatted with `fmt`; `none` for None, NaN or inf."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return none
    return format(value, fmt)


def pct(value: float | None) -> str:
    """A fraction as `12.3%` (`n/a` when missing)."""
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table's lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def flops_section(result: BenchResult) -> list[str]:
    """The analytic FLOP count against XLA's cost analysis, per env."""
    return [
        "### FLOP count cross-check",
        "",
        "Analytic network FLOPs per env step (docs/benchmark.md) against XLA's "
        "`cost_analysis()` of the compiled acting, value and gradient programs (all ops).",
        "",
        *table(
            ["env", "analytic", "XLA", "XLA / analytic"],
            [
                [
                    e.name,
                    num(e.flops.per_step),
                    num(e.xla_flops.per_step if e.xla_flops else None),
                    num(e.xla_flops.ratio if e.xla_flops else None, ".3f"),
                ]
                for e in result.envs
            ],
        ),
        "",
    ]


def _layout_text(p: ThroughputPoint) -> str:
    groups = f"{p.groups} group{'s' if p.groups != 1 else ''} of {p.width}"
    return f"{groups} on {p.devices}, {p.rounds} round{'s' if p.rounds != 1 else ''}"


def device_split_section(result: BenchResult) -> list[str]:
    """Whole machine against one device, the reference recipe with the plan's seeds."""
    if not result.device_split:
        return []
    header = ["", "seeds", "groups on devices, rounds/call", "updates/call", "compile s"]
    header += ["steps/s", "best", "steps/s per device", "GFLOP/s", "% peak"]
    rows = [
        [
            p.name,
            str(p.members),
            _layout_text(p),
            str(p.updates_per_call),
            f"{p.compile_s:.1f}" + ("" if p.compiled_here else " (reused)"),
            num(p.steps_per_s),
            num(p.steps_per_s_best),
            num(p.steps_per_s_per_device),
            f"{p.gflops:.1f}",
            pct(p.utilisation),
        ]
        for p in result.device_split
    ]
    return [
        "## Whole machine and per device (reference recipe)",
        "",
        "The seeds run as `purejaxppo train --seeds N` runs them: groups of at most "
        "`--members-per-device` seeds, one vmapped group per device per call, the groups in "
        "rounds; train's chunk size, the metrics read back after every call. *Whole machine*: "
        "every device; *per device*: the same seeds and groups on one device (the same "
        "per-device program, groups in rounds), i.e. one device's throughput, the figure to set "
        "against another trainer's seeds vmapped on one device. The matmul peak uses one "
        "device with XLA's whole thread pool (on a CPU: every core).",
        "",
        *table(header, rows),
        "",
    ]


def compute_section(result: BenchResult) -> list[str]:
    """The compute-bound points: wide layers, one seed, one device."""
    if not result.compute:
        return []
    header = ["network", "envs x steps", "epochs x minibatches", "updates/call", "compile s"]
    header += ["steps/s", "FLOPs/step", "GFLOP/s", "peak GFLOP/s", "% peak", "% peak, best call"]
    rows = [
        [
            "x".join(map(str, p.hidden_sizes)),
            f"{p.num_envs}x{p.num_steps}",
            f"{p.update_epochs}x{p.num_minibatches}",
            str(p.updates_per_call),
            f"{p.compile_s:.1f}",
            num(p.steps_per_s),
            num(p.flops_per_step),
            f"{p.gflops:.1f}",
            f"{p.peak_gflops:.1f}",
            pct(p.utilisation),
            pct(p.utilisation_best),
        ]
        for p in result.compute
    ]
    env = result.compute[0].env_name
    return [
        "## Compute-bound point",
        "",
        f"{env} with wide layers and a wide batch (1 seed, one device): the epochs' "
        "minibatch matmuls, not per-op dispatch, take the time. FLOPs are the analytic count; "
        "the peak is the best of the run's matmul measurement and those taken before these "
        "points and after each.",
        "",
        *table(header, rows),
        "",
    ]


SCALING_HEADER = [
    "devices",
    "group x rounds",
    "updates/call",
    "compile s",
    "steps/s",
    "best",
    "GFLOP/s",
    "% peak",
]


SCALING_SECTIONS = (
    ("num_envs", "Scaling with num_envs (reference recipe, 1 seed)", PLOT_NUM_ENVS),
    ("population", "Scaling with population size (reference recipe)", PLOT_POPULATION),
)


def _scaling_rows(points: list[ScalingPoint]) -> list[list[str]]:
    return [
        [
            str(p.value),
            str(p.devices),
            f"{p.width} x {p.rounds}",
            str(p.updates_per_call),
            f"{p.compile_s:.1f}",
            num(p.steps_per_s),
            num(p.steps_per_s_best),
            f"{p.gflops:.1f}",
            pct(p.utilisation),
        ]
        for p in points
    ]


def scaling_sections(result: BenchResult) -> list[str]:
    """One table and plot per scaling axis that was measured."""
    lines: list[str] = []
    for axis, title, plot in SCALING_SECTIONS:
        points = [p for p in result.scaling if p.axis == axis]
        if points:
            lines += [f"## {title}", "", *table([axis, *SCALING_HEADER], _scaling_rows(points))]
            lines += ["", f"![{axis}]({plot})", ""]
    return lines
