"""An arm of `critic_protocol.py` rerun (e.g. after a fix), read against the first run.

    .venv/bin/python scripts/protocol_rerun_arm.py --base RUN/results.json \
        --rerun RUN/loo-fixed/results.json [--out RUN/loo-fixed/compare.md]

For every env and budget of `--base` and every arm of `--rerun` that `--base` also has:
the IQM [95% stratified bootstrap CI] of the arm's evaluation finals in both runs, with
the tuned learning rate and ent_coef, P(rerun > base), and P(X > rerun arm) for every
other arm X of that budget in `--base` (`purejaxppo.run.stats`). Exits 2 with one line if
the two runs differ in budget, seeds or grid.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

MATCHED = ("budget", "tune_seeds", "eval_seeds", "learning_rates", "ent_coefs")


def _iqm(finals: list[float], reps: int) -> str:
    from purejaxppo.run.stats import iqm_ci

    est = iqm_ci(np.asarray(finals, np.float64), reps=reps)
    return f"{est.point:.1f} [{est.low:.1f}, {est.high:.1f}]"


def _p(x: list[float], y: list[float], reps: int) -> str:
    from purejaxppo.run.stats import probability_of_improvement

    est = probability_of_improvement(
        np.asarray(x, np.float64), np.asarray(y, np.float64), reps=reps
    )
    return f"{est.point:.2f} [{est.low:.2f}, {est.high:.2f}]"


def _hp(row: dict[str, Any]) -> str:
    return f"{row['best']['learning_rate']:g}, {row['best']['ent_coef']:g}"


def compare(base: dict[str, Any], rerun: dict[str, Any], reps: int) -> list[str]:
    """Markdown lines: one section per env and budget."""
    lines: list[str] = []
    for env, data in rerun["envs"].items():
        base_rows = base["envs"].get(env, {}).get("rows", [])
        for new in data["rows"]:
            for budget in new["budgets"]:
                rows = [r for r in base_rows if budget in r["budgets"]]
                old = next((r for r in rows if r["arm"] == new["arm"]), None)
                if old is None:
                    continue
                lines += [
                    f"### {env}, {budget}: {new['label']}",
                    "",
                    "| run | IQM [95% CI] | lr, ent_coef |",
                    "|---|---|---|",
                    f"| first | {_iqm(old['finals'], reps)} | {_hp(old)} |",
                    f"| rerun | {_iqm(new['finals'], reps)} | {_hp(new)} |",
                    "",
                    "| P(X > Y) | estimate [95% CI] |",
                    "|---|---|",
                    f"| rerun > first | {_p(new['finals'], old['finals'], reps)} |",
                ]
                lines += [
                    f"| {r['label']} > rerun | {_p(r['finals'], new['finals'], reps)} |"
                    for r in rows
                    if r["arm"] != new["arm"]
                ]
                lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--rerun", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--reps", type=int, default=2000)
    args = parser.parse_args(argv)
    try:
        base, rerun = (json.loads(p.read_text()) for p in (args.base, args.rerun))
    except (OSError, ValueError) as err:
        print(
            f"protocol_rerun_arm.py: --base/--rerun: expected results.json files ({err})",
            file=sys.stderr,
        )
        return 2
    for key in MATCHED:
        if base.get(key) != rerun.get(key):
            print(
                f"protocol_rerun_arm.py: {key}: the runs differ "
                f"({base.get(key)} vs {rerun.get(key)})",
                file=sys.stderr,
            )
            return 2
    text = "\n".join(compare(base, rerun, args.reps))
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
