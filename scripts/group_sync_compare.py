"""Synced group arms against the unsynced ones, from two `critic_protocol.py` outputs.

    .venv/bin/python scripts/group_sync_compare.py \
        [--synced docs/critic-vs-group/protocol-sync/results.json] \
        [--unsynced docs/critic-vs-group/protocol-sync/update-arms/results.json] \
        [--out docs/critic-vs-group/protocol-sync/compare.md]

For every env in both files and every score (leave-one-out reward-to-go, outcome): the
IQM [95% stratified bootstrap CI] of each arm's evaluation finals and P(synced > unsynced)
with its CI (`purejaxppo.run.stats`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "critic-vs-group" / "protocol-sync"
PAIRS = (("group_loo_rtg_sync", "group_loo_rtg"), ("group_outcome_sync", "group_outcome"))


def _text(est) -> str:
    return f"{est.point:.1f} [{est.low:.1f}, {est.high:.1f}]"


def main(argv: list[str] | None = None) -> int:
    from purejaxppo.run.stats import iqm_ci, probability_of_improvement

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synced", type=Path, default=OUT / "results.json")
    parser.add_argument("--unsynced", type=Path, default=OUT / "update-arms" / "results.json")
    parser.add_argument("--out", type=Path, default=OUT / "compare.md")
    parser.add_argument("--reps", type=int, default=2000)
    args = parser.parse_args(argv)
    synced = json.loads(args.synced.read_text())
    unsynced = json.loads(args.unsynced.read_text())
    lines = [
        "| env | score | synced (longest): IQM [95% CI], lr, ent | unsynced (update): IQM "
        "[95% CI], lr, ent | P(synced > unsynced) [95% CI] |",
        "|---|---|---|---|---|",
    ]
    for env, data in synced["envs"].items():
        if env not in unsynced["envs"]:
            continue
        rows = {r["arm"]: r for r in (*data["rows"], *unsynced["envs"][env]["rows"])}
        for sync_arm, base_arm in PAIRS:
            if sync_arm not in rows or base_arm not in rows:
                continue
            a = np.asarray(rows[sync_arm]["finals"], np.float64)
            b = np.asarray(rows[base_arm]["finals"], np.float64)
            p = probability_of_improvement(a, b, reps=args.reps)
            best_a, best_b = rows[sync_arm]["best"], rows[base_arm]["best"]
            lines.append(
                f"| {env} | {rows[base_arm]['group_score']} | {_text(iqm_ci(a, reps=args.reps))}, "
                f"{best_a['learning_rate']:g}, {best_a['ent_coef']:g} | "
                f"{_text(iqm_ci(b, reps=args.reps))}, {best_b['learning_rate']:g}, "
                f"{best_b['ent_coef']:g} | {p.point:.2f} [{p.low:.2f}, {p.high:.2f}] |"
            )
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
