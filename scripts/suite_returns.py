"""Markdown rows of final returns from `purejaxppo train` run folders (docs/envs.md's
tables for the env suites: Jumanji, Navix, XLand-MiniGrid, Craftax).

    .venv/bin/python scripts/suite_returns.py RUN_DIR [RUN_DIR ...] [--first-update]

Per run folder (one env, several seeds): env steps per seed, seeds, the IQM of the seeds'
final returns (`summary.json`'s `final_return_per_seed`: each seed's mean return over the
last 5% of updates) with its 95% stratified bootstrap interval (`purejaxppo.run.stats`),
the per-seed values, and compile + train time. `--first-update` adds a column before the
time: the mean over seeds of the first update's return (`metrics.csv`, update 1; "n/a"
where no episode ended in it).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np

from purejaxppo.run.stats import iqm_ci


def first_update_return(run_dir: Path) -> str:
    """Mean over seeds of update 1's `episode_return` in `metrics.csv`, or "n/a" if NaN."""
    with (run_dir / "metrics.csv").open(encoding="utf-8", newline="") as f:
        values = [float(r["episode_return"]) for r in csv.DictReader(f) if r["update"] == "1"]
    finite = [v for v in values if math.isfinite(v)]
    return f"{np.mean(finite):.2f}" if finite else "n/a"


def row(run_dir: Path, first_update: bool = False) -> str:
    """One markdown row for the run folder `run_dir`."""
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    finals = np.asarray(summary["final_return_per_seed"], np.float64)
    est = iqm_ci(finals)
    per_seed = " / ".join(f"{v:.2f}" for v in finals)
    time_s = f"{summary['compile_time_s']:.0f} s + {summary['train_time_s']:.0f} s"
    first = f"{first_update_return(run_dir)} | " if first_update else ""
    return (
        f"| `{summary['env_name']}` | {summary['env_steps_per_seed']:,} | {len(finals)} | "
        f"{est.point:.2f} [{est.low:.2f}, {est.high:.2f}] | {per_seed} | {first}{time_s} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders written by train")
    parser.add_argument(
        "--first-update", action="store_true", help="add the first update's mean return"
    )
    args = parser.parse_args()
    for run_dir in args.runs:
        print(row(run_dir, args.first_update))


if __name__ == "__main__":
    main()
