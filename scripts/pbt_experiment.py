"""PBT vs successive halving vs random search vs the best grid point, at equal env steps.

Every method gets the same budget: 8 members x the env's run length (halving: 4 slots
and `rounds: 2`, at most the same 8 runs' worth). Each (env, method, repeat) is one
`purejaxppo sweep` in its own folder (skipped when it is already complete, so the script
resumes); repeat r uses training seed 100 r and sampler seed r. Per sweep it records the
selected member's final return (the best final return of the population), its env steps
to the threshold (moving average over 1/50 of the run), the population's IQM of final
returns, the env steps used and the wall clock; per env and method it reports the IQM
over repeats with a 95% stratified bootstrap CI (`purejaxppo.run.stats`).

    python scripts/pbt_experiment.py --out experiments/pbt            # all envs, 3 repeats
    python scripts/pbt_experiment.py --out /tmp/pbt --envs CartPole-v1 --repeats 1

Writes OUT/results.json (one record per sweep) and OUT/table.md (the docs/pbt.md tables).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
SPACE = {
    "hparams.learning_rate": {"log_uniform": [1.0e-4, 3.0e-3]},
    "hparams.ent_coef": {"log_uniform": [1.0e-4, 0.05]},
    "hparams.clip_eps": {"uniform": [0.1, 0.3]},
}
GRID = {"hparams.learning_rate": [1.0e-4, 3.0e-4, 1.0e-3, 3.0e-3], "hparams.ent_coef": [1e-3, 1e-2]}
# env -> (base config, total_timesteps per member, threshold, ppo overrides). MinAtar
# (CNN torso) runs ~1,000 env steps/s for 8 members on 2 CPU cores: a smaller batch and
# budget, so the updates are enough for 16 PBT intervals.
ENVS: dict[str, tuple[str, int, float, dict[str, int]]] = {
    "CartPole-v1": ("configs/CartPole-v1.yaml", 262_144, 475.0, {}),
    "Acrobot-v1": ("configs/Acrobot-v1.yaml", 262_144, -100.0, {}),
    "Pendulum-v1": ("configs/Pendulum-v1.yaml", 524_288, -200.0, {}),
    "Breakout-MinAtar": (
        "configs/Breakout-MinAtar.yaml",
        131_072,
        3.0,
        {"num_envs": 16, "num_steps": 64},
    ),
}
METHODS = ("grid", "random", "halving", "pbt")
MEMBERS = 8
FRESH_SEEDS = 5  # the selected config (PBT: its schedule) retrained from unseen seeds
FRESH_SEED = 10_000


def sweep_doc(env: str, method: str, repeat: int) -> dict[str, Any]:
    """The sweep file of one (env, method, repeat)."""
    base, steps, _, extra = ENVS[env]
    doc: dict[str, Any] = {
        "base": str(REPO / base),
        "ppo": {"total_timesteps": steps, **extra},
        "seed": 100 * repeat,
    }
    if method == "grid":
        doc["grid"] = GRID
        return doc
    count = MEMBERS // 2 if method == "halving" else MEMBERS
    doc["random"] = {"count": count, "seed": repeat, **SPACE}
    if method == "halving":
        doc["strategy"] = "halving"
        doc["halving"] = {"eta": 2, "rungs": 3, "rounds": 2}
    elif method == "pbt":
        doc["strategy"] = "pbt"
        doc["pbt"] = {"interval_updates": _updates(env) // 16, "truncation": 0.25, "seed": repeat}
    return doc


def _updates(env: str) -> int:
    base, steps, _, extra = ENVS[env]
    ppo = {**yaml.safe_load((REPO / base).read_text())["ppo"], **extra}
    return steps // (ppo["num_envs"] * ppo["num_steps"])


def run_one(
    out: Path, env: str, method: str, repeat: int, resummarize: bool = False
) -> dict[str, Any]:
    """Run (or reuse) one sweep; return its record (`resummarize`: recompute a finished
    sweep's figures from its folder, keeping its recorded wall clock and env steps)."""
    folder = out / env / f"{method}-{repeat}"
    record_path = folder / "experiment.json"
    if record_path.is_file():
        old = json.loads(record_path.read_text())
        if not resummarize:
            return old
        record = summarize_sweep(folder, env, method, repeat, old["wall_s"], "")
        record["env_steps"] = old["env_steps"]
        record_path.write_text(json.dumps(record, indent=1))
        return record
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder.parent / f"{method}-{repeat}.yaml"
    spec.write_text(yaml.safe_dump(sweep_doc(env, method, repeat), sort_keys=False))
    command = [sys.executable, "-m", "purejaxppo", "sweep", str(spec), "--out", str(folder),
               "--no-progress", "--members-per-device", "4", "--no-tensorboard"]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{env} {method} {repeat}: sweep failed:\n{proc.stderr[-3000:]}")
    record = summarize_sweep(folder, env, method, repeat, wall, proc.stdout)
    record_path.write_text(json.dumps(record, indent=1))
    return record


def fresh_seeds(folder: Path) -> list[float]:
    """Final returns of the sweep's `best.yaml` (PBT: the best member's schedule) retrained
    with `FRESH_SEEDS` seeds it never saw: the selected configuration without the winner's
    curse of picking the luckiest of 8 runs."""
    run = folder / "fresh"
    if not (run / "summary.json").is_file():
        command = [sys.executable, "-m", "purejaxppo", "train", str(folder / "best.yaml"),
                   "--seeds", str(FRESH_SEEDS), "--set", f"seed={FRESH_SEED}", "--out", str(run),
                   "--no-tensorboard", "--overwrite"]  # fmt: skip
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"{folder}: fresh-seed training failed:\n{proc.stderr[-3000:]}")
    summary = json.loads((run / "summary.json").read_text())
    return [float(x) for x in summary["final_return_per_seed"]]


def _curves(folder: Path, method: str) -> tuple[np.ndarray, int]:
    """Episode-return curves `[P, U]` of the final population and the batch size."""
    from purejaxppo.sweep.curves import folder_population

    spec = json.loads((folder / "sweep.json").read_text())["spec"]
    batch = spec["base"]["ppo"]["num_envs"] * spec["base"]["ppo"]["num_steps"]
    if method == "pbt":
        from purejaxppo.sweep.pbt_sweep import population_curves, read_records

        records = sorted((folder / "pbt" / "group-0").glob("interval-*.npz"))
        return population_curves(read_records(folder, 0, len(records))), batch
    if method == "halving":
        record = json.loads((folder / "halving" / "record.json").read_text())
        return _halving_curves(record), batch
    from purejaxppo.sweep.store import collect_results

    _, curves = collect_results(folder, folder_population(folder))
    return np.stack([curves[m] for m in sorted(curves)]), batch


def _halving_curves(record: dict[str, Any]) -> np.ndarray:
    """The curves of the candidates that completed the whole run (one row per seed)."""
    rows = []
    for cand in record.get("candidates", []):
        curves = cand.get("curves") or cand.get("returns")
        if cand.get("status") == "completed" and curves:
            rows += [np.asarray(c, np.float64) for c in curves]
    width = max((len(r) for r in rows), default=0)
    return np.stack([r for r in rows if len(r) == width]) if rows else np.zeros((0, 0))


def steps_to(curve: np.ndarray, threshold: float, batch: int) -> float:
    """Env steps until the moving average (1/50 of the run) first reaches `threshold`."""
    from purejaxppo.sweep.report import smooth

    smoothed = smooth(curve, max(1, curve.shape[0] // 50))
    hit = np.nonzero(np.nan_to_num(smoothed, nan=-np.inf) >= threshold)[0]
    return float((hit[0] + 1) * batch) if hit.size else math.nan


def summarize_sweep(
    folder: Path, env: str, method: str, repeat: int, wall: float, stdout: str
) -> dict[str, Any]:
    from purejaxppo.run.rundir import final_return
    from purejaxppo.run.stats import iqm

    curves, batch = _curves(folder, method)
    finals = np.array([final_return(c) for c in curves]) if curves.size else np.zeros(0)
    finite = finals[np.isfinite(finals)]
    best = int(np.nanargmax(np.where(np.isfinite(finals), finals, -np.inf))) if finals.size else -1
    used = MEMBERS * _updates(env) * batch
    for line in stdout.splitlines():
        if line.startswith("halving: ") and " env steps" in line:
            used = int(line.split()[1].replace(",", ""))
    return {
        "env": env,
        "method": method,
        "repeat": repeat,
        "best_final": float(finals[best]) if best >= 0 else math.nan,
        "steps_to_threshold": steps_to(curves[best], ENVS[env][2], batch)
        if best >= 0
        else math.nan,
        "population_iqm": iqm(finite) if finite.size else math.nan,
        "fresh": fresh_seeds(folder),
        "env_steps": used,
        "wall_s": wall,
    }


def table(records: list[dict[str, Any]], repeats: int) -> str:
    from purejaxppo.run.stats import iqm_ci

    lines = [
        "| env | method | selected member's final return, IQM [95% CI] | its config on "
        f"{FRESH_SEEDS} fresh seeds, IQM [95% CI] | population IQM | steps to threshold "
        "(mean, reached) | env steps | sweep wall clock |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for env in dict.fromkeys(r["env"] for r in records):
        for method in METHODS:
            rows = [r for r in records if r["env"] == env and r["method"] == method]
            if not rows:
                continue
            best = np.array([r["best_final"] for r in rows])
            est = iqm_ci(best[np.isfinite(best)]) if np.isfinite(best).any() else None
            cell = "n/a" if est is None else f"{est.point:.1f}"
            if est is not None and not math.isnan(est.low):
                cell += f" [{est.low:.1f}, {est.high:.1f}]"
            fresh = iqm_ci(np.array([r["fresh"] for r in rows]).reshape(-1))
            fresh_cell = f"{fresh.point:.1f} [{fresh.low:.1f}, {fresh.high:.1f}]"
            pop = np.nanmean([r["population_iqm"] for r in rows])
            hits = [r["steps_to_threshold"] for r in rows if np.isfinite(r["steps_to_threshold"])]
            steps = (
                f"{np.mean(hits):,.0f} ({len(hits)}/{len(rows)})" if hits else f"— (0/{len(rows)})"
            )
            used = np.mean([r["env_steps"] for r in rows])
            wall = [r["wall_s"] for r in rows]
            lines.append(
                f"| {env} | {method} | {cell} | {fresh_cell} | {pop:.1f} | {steps} | "
                f"{used / 1e6:.2f}M | "
                f"{np.mean(wall):.0f} s ({min(wall):.0f}–{max(wall):.0f}) |"
            )
    return "\n".join(lines) + (
        f"\n\n{repeats} repeats per cell (training seed 100 r, sampler seed r); fresh seeds: "
        f"{FRESH_SEEDS} per repeat, pooled ({FRESH_SEEDS * repeats} runs).\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("experiments/pbt"))
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--resummarize", action="store_true", help="recompute finished sweeps' figures"
    )
    args = parser.parse_args()
    records = []
    for env in args.envs:
        for repeat in range(args.repeats):
            for method in args.methods:
                rec = run_one(args.out, env, method, repeat, args.resummarize)
                print(json.dumps(rec), flush=True)
                records.append(rec)
        (args.out / "results.json").write_text(json.dumps(records, indent=1))
        (args.out / "table.md").write_text(table(records, args.repeats))
    print(table(records, args.repeats))


if __name__ == "__main__":
    main()
