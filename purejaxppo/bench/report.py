"""A benchmark's report files: `bench.json` and `BENCHMARKS.md` (host side).

`write_report` writes both and the PNG plots (`purejaxppo.bench.plots`); the
headline figures both files lead with come from `purejaxppo.bench.headline`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from purejaxppo.bench.headline import Headline, headline
from purejaxppo.bench.plots import PLOT_CURVES, write_plots
from purejaxppo.bench.results import BenchResult, EnvResult
from purejaxppo.bench.tables import (
    compute_section,
    device_split_section,
    flops_section,
    num,
    pct,
    scaling_sections,
    table,
)
from purejaxppo.run.stats import iqm_ci

JSON_FILE = "bench.json"
MARKDOWN_FILE = "BENCHMARKS.md"
FORMAT = 2  # 2: device_split, compute; EnvResult.init_compile_s dropped


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


def _return_text(env: EnvResult) -> str:
    mean = num(env.final_return, ".1f")
    if math.isfinite(env.final_return_ci95):
        mean += f" ± {env.final_return_ci95:.1f}"
    return mean


def _iqm_text(env: EnvResult) -> str:
    """IQM of the seeds' final returns [95% stratified bootstrap CI]; n/a if a seed has none."""
    finals = np.asarray(env.final_returns, np.float64)
    if finals.size == 0 or not np.isfinite(finals).all():
        return "n/a"
    e = iqm_ci(finals)
    return f"{e.point:.1f}" + ("" if math.isnan(e.low) else f" [{e.low:.1f}, {e.high:.1f}]")


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


def _multi_label(head: Headline) -> str:
    return f"{head.multi_seed_members} seeds" if head.multi_seed_members else "2+ seeds"


def _per_device_row(head: Headline) -> list[str]:
    rounds = head.per_device_rounds
    how = f", {rounds} round{'s' if rounds != 1 else ''} per call" if rounds else ""
    return [
        f"steps/s, {_multi_label(head)}, per device (1 device{how})",
        num(head.per_device_steps_per_s),
        "PureJaxRL with the same seeds vmapped on 1 device: not quoted "
        "(scripts/time_purejaxrl.py --seeds N)",
        (num(head.device_efficiency, ".2f") + " device efficiency")
        if head.device_efficiency
        else "",
    ]


def _compute_row(head: Headline, result: BenchResult) -> list[str]:
    ref = result.reference
    net = "x".join(map(str, head.compute_hidden_sizes or ()))
    return [
        f"compute-bound point ({net} net, 1 seed): share of the matmul peak",
        f"{pct(head.compute_utilisation)} ({num(head.compute_gflops, '.1f')} GFLOP/s)",
        f"target {pct(ref.target_utilisation)}",
        "",
    ]


def _reference_rows(result: BenchResult, head: Headline) -> list[list[str]]:
    ref = result.reference
    multi = _multi_label(head)
    devices = f"{head.multi_seed_devices} device" + ("s" if head.multi_seed_devices != 1 else "")
    rows = [
        [
            "steps/s, 1 seed",
            num(head.single_seed_steps_per_s),
            f"PureJaxRL {ref.purejaxrl_steps_per_s:,.0f}",
            num(
                head.single_seed_steps_per_s / ref.purejaxrl_steps_per_s
                if head.single_seed_steps_per_s
                else None,
                ".2f",
            )
            + "x",
        ],
        [
            f"steps/s, {multi}, whole machine"
            + (f" ({devices})" if head.multi_seed_devices else ""),
            num(head.multi_seed_steps_per_s),
            f"target {ref.target_speedup:g}x PureJaxRL = "
            f"{ref.target_speedup * ref.purejaxrl_steps_per_s:,.0f}",
            num(head.speedup_vs_purejaxrl, ".2f") + "x",
        ],
    ]
    if head.per_device_steps_per_s is not None:
        rows.append(_per_device_row(head))
    rows += [
        [
            "compile, 1 seed (s)",
            num(head.single_seed_compile_s, ".1f"),
            f"PureJaxRL {ref.purejaxrl_compile_s:g}",
            "",
        ],
        [
            f"matmul {result.matmul.size}^3 f32 (GFLOP/s)",
            num(result.matmul.best_gflops, ".1f"),
            f"{ref.matmul_gflops:g}",
            "",
        ],
        [
            f"utilisation of the matmul peak, {multi}, whole machine",
            pct(head.utilisation),
            f"PureJaxRL {pct(ref.purejaxrl_utilisation)}; target {pct(ref.target_utilisation)}",
            "",
        ],
    ]
    if head.compute_utilisation is not None:
        rows.append(_compute_row(head, result))
    rows += [
        [
            "Stable-Baselines3 steps/s",
            num(head.sb3_steps_per_s) if head.sb3_steps_per_s else "not installed",
            f"{ref.sb3_steps_per_s:,.0f}",
            (num(head.ratio_vs_sb3, ",.0f") + "x (1 seed vs SB3)") if head.ratio_vs_sb3 else "",
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
                str(e.updates_per_call)
                + ("" if e.updates_per_call == e.train_chunk else f" (train: {e.train_chunk})"),
                f"{e.compile_s:.1f}",
                num(e.steps_per_s),
                num(e.steps_per_s_per_seed),
                num(e.threshold, "g", "none"),
                _solve_text(e),
                _return_text(e),
                _iqm_text(e),
                num(e.flops.per_step),
                f"{e.gflops:.1f}",
                pct(e.utilisation),
            ]
        )
    return rows


ENV_HEADER = [
    "env",
    "recipe",
    "envs x steps, net",
    "seeds",
    "env steps/seed",
    "updates/call",
    "compile s",
    "steps/s",
    "steps/s/seed",
    "threshold",
    "time to threshold",
    "final return",
    "final return IQM [95% CI]",
    "FLOPs/step",
    "GFLOP/s",
    "% peak",
]


def _peer_rows(result: BenchResult, head: Headline) -> list[list[str]]:
    rows = []
    for p in result.peers:
        if p.available:
            ratio = (
                f"{head.single_seed_steps_per_s / p.steps_per_s:,.0f}x"
                if head.single_seed_steps_per_s
                else "n/a"
            )
            rows.append([p.name, p.version or "", num(p.steps_per_s), ratio, p.note])
        else:
            rows.append([p.name, "", "skipped", "", p.note])
    return rows


def _preamble(result: BenchResult) -> list[str]:
    """Title, command, device, versions and how timings are taken."""
    d = result.device
    versions = ", ".join(f"{k} {v}" for k, v in result.versions.items() if v is not None)
    return [
        f"# purejaxppo benchmark ({result.plan.mode})",
        "",
        f"- command: `{result.command}`, started {result.started}, took {result.wall_s:.0f} s",
        f"- device: {d.describe()}; {d.cpu_cores} CPU cores; {d.os}",
        f"- versions: {versions}, python {d.python}",
        "- timings: throughput is the median over timed calls (after a warm-up call), each "
        "call a chunk of updates followed by the host read of its metrics, as "
        "`purejaxppo train` runs it; compile time is `lower + compile` of the init and chunk "
        "programs in parallel threads (one total, as train reports it), without the persistent "
        "cache. A shared or busy machine makes every figure slower, never faster.",
        "",
    ]


def _reference_section(result: BenchResult, head: Headline) -> list[str]:
    """The reference recipe against issue 5's (quoted, not measured) figures."""
    return [
        "## Reference recipe (PureJaxRL's CartPole) against issue 5's figures",
        "",
        "The reference column is quoted from issue 5 (measured by its author on a 2-core CPU); "
        "it was **not measured in this run** unless a peer row says so.",
        "",
        *table(
            ["figure", "measured here", "reference (issue 5)", "ratio"],
            _reference_rows(result, head),
        ),
        "",
    ]


def _envs_section(result: BenchResult) -> list[str]:
    """One row per suite env, with the definitions of its columns."""
    mpd = ""
    if result.envs:
        mpd = (
            f" (at most {result.envs[0].members_per_device} seeds per device, "
            f"{result.device.device_count} device(s) here)"
        )
    return [
        "## Environments",
        "",
        f"{result.plan.seeds} seeds per env, compiled and run as `purejaxppo train --seeds "
        f"{result.plan.seeds}` runs them: its grouping{mpd}, its programs and its chunk size "
        "(`default_chunk`: about 1/25 of the config's updates per call; fewer, marked, when "
        "a call of that size would take over half the time budget). "
        "Steps/s counts all seeds. Recent return: per seed the mean of its last W per-update "
        "returns (W = 5% of the config's updates); final return: the recent return at the end "
        "of training, mean ± 95% CI (Student t) over seeds, and its interquartile mean (the mean "
        "of the middle 50% of the seeds) with a 95% percentile bootstrap CI (2,000 resamples of "
        "the seeds, seed 0; none with one seed). Time to threshold: wall clock from "
        "before compilation to the end of the first chunk of updates after which the seed mean "
        "of the recent return reaches the threshold.",
        "",
        *table(ENV_HEADER, _env_rows(result)),
        "",
    ]


def _peers_section(result: BenchResult, head: Headline) -> list[str]:
    """Installed peers on the reference recipe (skipped ones listed too)."""
    header = ["peer", "version", "steps/s", "purejaxppo 1 seed / peer", "note"]
    return ["## Peers (reference recipe)", "", *table(header, _peer_rows(result, head))]


def to_markdown(result: BenchResult) -> str:
    """The `BENCHMARKS.md`-style report."""
    head = headline(result)
    lines = [
        *_preamble(result),
        *_reference_section(result, head),
        *_envs_section(result),
        *flops_section(result),
        *device_split_section(result),
        *compute_section(result),
        *scaling_sections(result),
        *_peers_section(result, head),
    ]
    if result.envs:
        lines += ["", f"![learning curves]({PLOT_CURVES})"]
    return "\n".join(lines) + "\n"


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
    return written + write_plots(result, out_dir)
