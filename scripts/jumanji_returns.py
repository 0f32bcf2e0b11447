"""Markdown rows of final returns from `purejaxppo train` run folders (docs/envs.md's
Jumanji table).

    .venv/bin/python scripts/jumanji_returns.py RUN_DIR [RUN_DIR ...]

Per run folder (one env, several seeds): env steps per seed, seeds, the IQM of the seeds'
final returns (`summary.json`'s `final_return_per_seed`: each seed's mean return over the
last 5% of updates) with its 95% stratified bootstrap interval (`purejaxppo.run.stats`),
the per-seed values, and compile + train time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from purejaxppo.run.stats import iqm_ci


def row(run_dir: Path) -> str:
    """One markdown row for the run folder `run_dir`."""
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    finals = np.asarray(summary["final_return_per_seed"], np.float64)
    est = iqm_ci(finals)
    per_seed = " / ".join(f"{v:.2f}" for v in finals)
    time_s = f"{summary['compile_time_s']:.0f} s + {summary['train_time_s']:.0f} s"
    return (
        f"| `{summary['env_name']}` | {summary['env_steps_per_seed']:,} | {len(finals)} | "
        f"{est.point:.2f} [{est.low:.2f}, {est.high:.2f}] | {per_seed} | {time_s} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders written by train")
    for run_dir in parser.parse_args().runs:
        print(row(run_dir))


if __name__ == "__main__":
    main()
