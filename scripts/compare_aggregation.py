"""Token mean against sequence mean: the group arms of two `critic_protocol.py` runs.

    .venv/bin/python scripts/compare_aggregation.py TOKEN/results.json SEQUENCE/results.json
        [--out table.md] [--bootstrap-reps 2000]

Reads the `results.json` of a run with `--aggregation token_mean` and one with
`--aggregation sequence_mean`. For every env and group arm that both hold, it writes one
row: each run's tuned winner (lr, ent_coef), the IQM of its evaluation finals with a 95%
stratified bootstrap CI (`purejaxppo.run.stats.iqm_ci`), and P(sequence mean > token mean)
with its CI (`probability_of_improvement`). The two runs must share the budget, the seeds
and the tuning grid. Prints the table, or writes it to `--out`. Bad input exits 2 with one line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np

AGGREGATIONS = ("token_mean", "sequence_mean")


class InputError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        raise InputError(message)


def load(path: Path, aggregation: str, name: str) -> dict[str, Any]:
    """The parsed `results.json` at `path`, checked to be a run with `aggregation`."""
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"{name}: expected a critic_protocol results.json ({err})") from None
    if not isinstance(results, dict) or "envs" not in results:
        raise InputError(f"{name}: {path} is not a critic_protocol results.json")
    if results.get("aggregation") != aggregation:
        raise InputError(
            f"{name}: expected a run with --aggregation {aggregation}, "
            f"got {results.get('aggregation')!r}"
        )
    return results


def group_rows(results: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(env, arm) -> the row of every group arm in `results`."""
    return {
        (env, row["arm"]): row
        for env, data in results["envs"].items()
        for row in data["rows"]
        if row["arm"].startswith("group")
    }


def compare(token: dict[str, Any], sequence: dict[str, Any], reps: int) -> list[dict[str, Any]]:
    """One entry per (env, group arm) in both runs: each side's winner and IQM [CI], and
    P(sequence > token) [CI] over the evaluation finals `[eval_seeds]`."""
    from purejaxppo.run.stats import iqm_ci, probability_of_improvement

    for key in ("budget", "eval_seeds", "tune_seeds", "learning_rates", "ent_coefs"):
        if token.get(key) != sequence.get(key):
            raise InputError(
                f"{key}: the two runs differ ({token.get(key)} against {sequence.get(key)})"
            )
    a, b = group_rows(token), group_rows(sequence)
    shared = [k for k in a if k in b]
    if not shared:
        raise InputError("results: the two runs share no (env, group arm)")
    out = []
    for env, arm in shared:
        x, y = np.asarray(b[env, arm]["finals"], float), np.asarray(a[env, arm]["finals"], float)
        entry: dict[str, Any] = {"env": env, "arm": arm, "label": a[env, arm]["label"]}
        for name, row, finals in (
            ("token_mean", a[env, arm], y),
            ("sequence_mean", b[env, arm], x),
        ):
            est = iqm_ci(finals, reps=reps)
            entry[name] = {"iqm": est.point, "low": est.low, "high": est.high, "best": row["best"]}
        est = probability_of_improvement(x, y, reps=reps)
        entry["p_sequence_better"] = {"p": est.point, "low": est.low, "high": est.high}
        out.append(entry)
    return out


def table(entries: Sequence[dict[str, Any]]) -> str:
    """Markdown: one row per (env, group arm)."""

    def cell(c: dict[str, Any]) -> str:
        best = c["best"]
        return (
            f"{c['iqm']:.1f} [{c['low']:.1f}, {c['high']:.1f}] | "
            f"{best['learning_rate']:g}, {best['ent_coef']:g}"
        )

    lines = [
        "| env | arm | token mean: IQM [95% CI] | lr, ent | sequence mean: IQM [95% CI] "
        "| lr, ent | P(sequence > token) [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        p = e["p_sequence_better"]
        lines.append(
            f"| {e['env']} | {e['label']} | {cell(e['token_mean'])} | "
            f"{cell(e['sequence_mean'])} | {p['p']:.2f} [{p['low']:.2f}, {p['high']:.2f}] |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(description=__doc__.splitlines()[0])
    parser.add_argument("token", type=Path, help="results.json of the token_mean run")
    parser.add_argument("sequence", type=Path, help="results.json of the sequence_mean run")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--bootstrap-reps", type=int, default=2000)
    try:
        args = parser.parse_args(argv)
        if args.bootstrap_reps < 1:
            raise InputError("--bootstrap-reps: expected an integer >= 1")
        token = load(args.token, "token_mean", "token")
        sequence = load(args.sequence, "sequence_mean", "sequence")
        text = table(compare(token, sequence, args.bootstrap_reps))
    except InputError as err:
        print(f"compare_aggregation.py: {err}", file=sys.stderr)
        return 2
    if args.out is None:
        print(text, end="")
    else:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
