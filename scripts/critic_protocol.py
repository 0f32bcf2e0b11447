"""A fair protocol for the critic-only ablation: PPO + GAE against critic-free group arms.

    .venv/bin/python scripts/critic_protocol.py [--out docs/critic-vs-group/protocol]
        [--envs CartPole-v1] [--budget 200000] [--tune-seeds 4] [--eval-seeds 12]
        [--learning-rates 1e-4,3e-4,1e-3] [--ent-coefs 0,0.01] [--arms ...]
        [--epochs 4,8] [--minibatches 4] [--normalization shipped|none|minibatch]

One fixed recipe for every arm: the env's shipped config (configs/<env>.yaml), the `clip`
objective, no KL term anywhere (`ref_kl_coef` 0, no KL objective), gamma 0.99. The arms
differ only in where the advantage comes from:

- `ppo_gae95` / `ppo_gae1`: PPO with its critic, GAE lambda 0.95 / 1 (lambda 1 is the
  discounted Monte-Carlo return minus V), advantages normalised per minibatch (shipped);
- `group_loo_rtg`: critic-free, `group_score: reward_to_go`: step t of episode i gets
  `G_i(t) - mean_{j != i} G_j(t)` (discounted reward-to-go, leave-one-out over the group
  at the same step), divided by the group's std of `G_j(0)`;
- `group_outcome`: critic-free, the current GRPO-style score: every step of episode i gets
  `(R_i - mean R) / std R` of the undiscounted returns.
- `group_loo_rtg_sync` / `group_outcome_sync` (opt-in, not in the default `--arms`): the
  same scores with `group_reset: longest`: rounds synced to the group's longest episode,
  scored per round, several rounds per update.

Group arms: 16 envs in groups of 8 (`group_size` 8) sharing one reset per update,
`num_steps` = the time limit (each env plays one whole episode, later steps are masked),
reward normalisation off, `group_aggregation` from `--aggregation` (default `token_mean`).

Advantage normalisation, `--normalization`: `shipped` (default) keeps each arm's own, PPO
per minibatch (`normalize_advantages`), the group arms per group (`group_normalize`);
`none` turns both off, so every arm trains on raw advantages (PPO: GAE advantages of the
unnormalised rewards; group arms: only the baseline subtracted) and the tuned learning rate
absorbs the scale; `minibatch` gives every arm PPO's normalisation: no reward
normalisation, no group std, and every arm's advantages normalised per minibatch
(`normalize_advantages`; the group arms' `group_minibatch_normalize`, over the counted
steps).

Two budgets, each at `--budget` simulated env steps per seed:

- `env_steps`: every arm in its own geometry: PPO the shipped envs x steps and
  epochs x minibatches; group arms 16 x time limit, the shipped epochs x minibatches.
  PPO then takes many more, smaller gradient steps.
- `grad_steps`: PPO in the group arms' geometry (16 envs x time limit, the same epochs x
  minibatches), so updates, minibatch size and gradient steps
  (updates x epochs x minibatches) are equal as well as env steps. The group arms are the
  same programs as under `env_steps` and are trained once.

Tuning: per arm and budget, every (learning rate, ent_coef) pair of the grid on
`--tune-seeds` seeds (0, 1, ...), all members in one `purejaxppo.sweep.train_population`
program; the pair with the highest IQM of final returns wins (ties: the first in grid
order). `--epochs` / `--minibatches` (default: the shipped values) add a static grid: every
(epochs, minibatches) combination is its own compiled program, tuned on the same traced grid,
and the arm's winner is the best (epochs, minibatches, lr, ent_coef) over all of them (ties:
the first combination). The winner's epochs and minibatches set its reported gradient steps,
so under a static grid the `grad_steps` budget equalises env steps, geometry and updates,
and the gradient steps of the winners are reported rather than equal. Evaluation: the
winner on `--eval-seeds` fresh seeds (1000, 1001, ...). Final return per seed:
`purejaxppo.run.rundir.final_return` (mean over the last 5% of updates). Reported: IQM
with a 95% stratified bootstrap CI (`purejaxppo.run.stats.iqm_ci`) and P(PPO arm > group
arm) with its CI (`probability_of_improvement`). Writes `results.json` and `table.md` into
`--out`. Bad input exits 2 with one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
ENVS = ("CartPole-v1", "Acrobot-v1", "Catch-bsuite")
EPISODE_BOUND = {"Catch-bsuite": 9}  # every Catch episode ends after 9 steps (see critic_vs_group)
NORMALIZATIONS = ("shipped", "none", "minibatch")
ARMS = ("ppo_gae95", "ppo_gae1", "group_loo_rtg", "group_outcome")
LABELS = {
    "ppo_gae95": "PPO + GAE λ=0.95",
    "ppo_gae1": "PPO + GAE λ=1",
    "group_loo_rtg": "group, leave-one-out reward-to-go",
    "group_outcome": "group, outcome only (GRPO-style)",
    "group_loo_rtg_sync": "group, leave-one-out reward-to-go, synced rounds",
    "group_outcome_sync": "group, outcome only, synced rounds",
}
SYNC_ARMS = ("group_loo_rtg_sync", "group_outcome_sync")  # opt-in: `group_reset: longest`
BUDGETS = ("env_steps", "grad_steps")
GROUP_NUM_ENVS = 16
GROUP_SIZE = 8
TUNE_SEED0 = 0
EVAL_SEED0 = 1000


class InputError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        raise InputError(message)


def _floats(text: str, name: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"{name}: expected comma-separated numbers, got {text!r}") from None
    if not values or not all(math.isfinite(v) and v >= 0 for v in values):
        raise InputError(f"{name}: expected non-negative numbers, got {text!r}")
    return values


def _names(text: str, allowed: Sequence[str], name: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    bad = [n for n in names if n not in allowed]
    if not names or bad or len(set(names)) != len(names):
        raise InputError(f"{name}: expected distinct names from {', '.join(allowed)}, got {text!r}")
    return names


def _ints(text: str, name: str) -> tuple[int, ...] | None:
    """Comma-separated positive integers, or None for an empty string (the shipped value)."""
    if not text.strip():
        return None
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputError(f"{name}: expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1 or len(set(values)) != len(values):
        raise InputError(f"{name}: expected distinct positive integers, got {text!r}")
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "critic-vs-group" / "protocol")
    parser.add_argument("--envs", default="CartPole-v1")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--budget", type=int, default=200_000, help="env steps per seed")
    parser.add_argument("--tune-seeds", type=int, default=4)
    parser.add_argument("--eval-seeds", type=int, default=12)
    parser.add_argument("--learning-rates", default="1e-4,3e-4,1e-3")
    parser.add_argument("--ent-coefs", default="0,0.01")
    parser.add_argument("--aggregation", default="token_mean")
    parser.add_argument("--normalization", default="shipped", help="shipped, none or minibatch")
    parser.add_argument("--epochs", default="", help="static grid; default: the shipped value")
    parser.add_argument("--minibatches", default="", help="static grid; default: shipped")
    parser.add_argument("--bootstrap-reps", type=int, default=2000)
    args = parser.parse_args(argv)
    args.envs = _names(args.envs, ENVS, "--envs")
    args.arms = _names(args.arms, (*ARMS, *SYNC_ARMS), "--arms")
    args.learning_rates = _floats(args.learning_rates, "--learning-rates")
    args.ent_coefs = _floats(args.ent_coefs, "--ent-coefs")
    args.epochs = _ints(args.epochs, "--epochs")
    args.minibatches = _ints(args.minibatches, "--minibatches")
    for name in ("budget", "tune_seeds", "eval_seeds", "bootstrap_reps"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')}: expected an integer >= 1")
    if args.aggregation not in ("token_mean", "sequence_mean"):
        raise InputError(
            f"--aggregation: expected token_mean or sequence_mean, got {args.aggregation!r}"
        )
    if args.normalization not in NORMALIZATIONS:
        raise InputError(
            f"--normalization: expected shipped, none or minibatch, got {args.normalization!r}"
        )
    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out: {args.out} exists and is not a folder")
    for env in args.envs:  # a minibatch count that does not divide a batch fails here, not later
        for program in make_programs(
            env, args.arms, args.budget, args.aggregation, args.normalization
        ):
            static_variants(program, args.epochs, args.minibatches)
    return args


def advantage_normalization(cfg: Any) -> str:
    """How `cfg` normalises its advantages: `minibatch`, `group_std`,
    `group_std+minibatch` or `none`."""
    if cfg.advantage == "group":
        kinds = [k for k, on in (("group_std", cfg.group_normalize),
                                 ("minibatch", cfg.group_minibatch_normalize)) if on]  # fmt: skip
        return "+".join(kinds) or "none"
    return "minibatch" if cfg.normalize_advantages else "none"


@dataclasses.dataclass(frozen=True)
class Program:
    """One static config of one arm (tuned and evaluated as its own population)."""

    arm: str
    budgets: tuple[str, ...]  # the budgets whose tables it appears in
    cfg: Any  # PPOConfig
    hparams: Any  # HParams: the shipped numbers; the grid replaces lr and ent_coef
    env_params: Any = None


def make_programs(
    env: str, arms: Sequence[str], budget: int, aggregation: str, normalization: str = "shipped"
) -> list[Program]:
    """Every (arm, geometry) program of `env` at `budget` env steps per seed, with the
    advantage normalisation `normalization` (`shipped`, `none` or `minibatch`, see the
    module doc)."""
    import gymnax

    from purejaxppo.run.config import load_run_config

    run = load_run_config(CONFIGS / f"{env}.yaml")
    base, hp = run.ppo, run.hparams.replace(gamma=0.99, ref_kl_coef=0.0)
    normalized = normalization == "shipped"
    per_minibatch = normalization == "minibatch"
    if not normalized:
        base = base.replace(normalize_advantages=per_minibatch, normalize_rewards=False)
    default_params = gymnax.make(env)[1]
    steps = EPISODE_BOUND.get(env, int(default_params.max_steps_in_episode))
    env_params = None
    if steps != int(default_params.max_steps_in_episode):
        env_params = default_params.replace(max_steps_in_episode=steps)
    group_geometry = {
        "num_envs": GROUP_NUM_ENVS,
        "num_steps": steps,
        "total_timesteps": max(budget, GROUP_NUM_ENVS * steps),
    }
    own = {"total_timesteps": max(budget, base.batch_size)}
    programs = []
    for arm in arms:
        if arm.startswith("ppo"):
            arm_hp = hp.replace(gae_lambda=0.95 if arm == "ppo_gae95" else 1.0)
            for name, geometry in (("env_steps", own), ("grad_steps", group_geometry)):
                cfg = base.replace(**geometry)
                programs.append(Program(arm, (name,), cfg, arm_hp, env_params))
        else:
            cfg = base.replace(
                **group_geometry,
                advantage="group",
                group_size=GROUP_SIZE,
                group_normalize=normalized,
                group_minibatch_normalize=per_minibatch,
                group_score="reward_to_go" if arm.startswith("group_loo_rtg") else "outcome",
                group_aggregation=aggregation,
                group_reset="longest" if arm in SYNC_ARMS else "update",
                normalize_rewards=False,
            )
            programs.append(Program(arm, BUDGETS, cfg, hp, env_params))
    return programs


def static_variants(
    program: Program, epochs: Sequence[int] | None, minibatches: Sequence[int] | None
) -> list[Program]:
    """`program` at every (update_epochs, num_minibatches) of the static grid, one compile
    each; None keeps the program's own value. Raises InputError for a minibatch count that
    does not divide the program's batch."""
    cfg = program.cfg
    variants = []
    for e in epochs or (cfg.update_epochs,):
        for m in minibatches or (cfg.num_minibatches,):
            try:
                variant = cfg.replace(update_epochs=e, num_minibatches=m)
            except ValueError as err:
                flag = "--minibatches" if "num_minibatches" in str(err) else "--epochs"
                raise InputError(f"{flag}: {err} (arm {program.arm})") from None
            variants.append(dataclasses.replace(program, cfg=variant))
    return variants


def train_members(program: Program, grid: Sequence[Any], seeds: Sequence[int]) -> np.ndarray:
    """Final returns `[len(grid), len(seeds)]`: every hparams of `grid` on every seed, all
    members in one `train_population` program."""
    from purejaxppo.run.rundir import final_return
    from purejaxppo.sweep import train_population

    hparams = [h for h in grid for _ in seeds]
    member_seeds = [s for _ in grid for s in seeds]
    out = train_population(
        program.cfg,
        hparams,
        member_seeds,
        members_per_device=len(hparams),
        env_params=program.env_params,
    )
    returns = np.asarray(out.metrics["episode_return"], np.float64)  # [P, U]
    finals = np.asarray([final_return(row) for row in returns])
    return finals.reshape(len(grid), len(seeds))


def run_program(
    program: Program, args: argparse.Namespace, log: Callable[[str], None]
) -> dict[str, Any]:
    """Tune `program` on the grid (traced lr x ent_coef inside each static
    epochs x minibatches variant), then evaluate the winner on fresh seeds."""
    pairs = [(lr, ent) for lr in args.learning_rates for ent in args.ent_coefs]
    grid = [program.hparams.replace(learning_rate=lr, ent_coef=ent) for lr, ent in pairs]
    start = time.perf_counter()
    tuned = [
        (variant, *tune_variant(variant, grid, args.tune_seeds))
        for variant in static_variants(program, args.epochs, args.minibatches)
    ]
    tune_s = time.perf_counter() - start
    winner, scores, _ = max(tuned, key=lambda t: max(t[1]))  # first variant wins ties
    best = int(np.argmax(scores))
    start = time.perf_counter()
    seeds = range(EVAL_SEED0, EVAL_SEED0 + args.eval_seeds)
    finals = train_members(winner, [grid[best]], seeds)[0]
    eval_s = time.perf_counter() - start
    cfg = winner.cfg
    row = {
        "arm": program.arm,
        "label": LABELS[program.arm],
        "budgets": list(program.budgets),
        "num_envs": cfg.num_envs,
        "num_steps": cfg.num_steps,
        "update_epochs": cfg.update_epochs,
        "num_minibatches": cfg.num_minibatches,
        "minibatch_size": cfg.minibatch_size,
        "num_updates": cfg.num_updates,
        "env_steps": cfg.num_updates * cfg.batch_size,
        "gradient_steps": cfg.num_updates * cfg.update_epochs * cfg.num_minibatches,
        "gae_lambda": float(program.hparams.gae_lambda) if cfg.advantage == "gae" else None,
        "group_score": cfg.group_score if cfg.advantage == "group" else None,
        "group_aggregation": cfg.group_aggregation if cfg.advantage == "group" else None,
        "advantage_normalization": advantage_normalization(cfg),
        "grid": [
            {
                "update_epochs": v.cfg.update_epochs,
                "num_minibatches": v.cfg.num_minibatches,
                "learning_rate": lr,
                "ent_coef": ent,
                "tune_iqm": s,
                "tune_finals": list(r),
            }
            for v, v_scores, v_tune in tuned
            for (lr, ent), s, r in zip(pairs, v_scores, v_tune.tolist(), strict=True)
        ],
        "best": {
            "learning_rate": pairs[best][0],
            "ent_coef": pairs[best][1],
            "update_epochs": cfg.update_epochs,
            "num_minibatches": cfg.num_minibatches,
        },
        "finals": finals.tolist(),
        "tune_s": tune_s,
        "eval_s": eval_s,
    }
    log(
        f"{program.arm} {'+'.join(program.budgets)}: best lr {pairs[best][0]:g} ent "
        f"{pairs[best][1]:g} epochs {cfg.update_epochs} minibatches {cfg.num_minibatches} "
        f"(tune {tune_s:.0f} s), eval IQM {_iqm_text(finals)} ({eval_s:.0f} s)"
    )
    return row


def tune_variant(
    variant: Program, grid: Sequence[Any], tune_seeds: int
) -> tuple[list[float], np.ndarray]:
    """Tuning IQM per grid point (-inf where every seed diverged) and the finals
    `[len(grid), tune_seeds]` of one static variant."""
    from purejaxppo.run.stats import iqm

    tune = train_members(variant, grid, range(TUNE_SEED0, TUNE_SEED0 + tune_seeds))
    scores = [
        iqm(np.nan_to_num(row, nan=-np.inf)) if np.isfinite(row).any() else -np.inf for row in tune
    ]
    return scores, tune


def _iqm_text(finals: np.ndarray) -> str:
    from purejaxppo.run.stats import iqm

    finite = np.asarray(finals)[np.isfinite(finals)]
    return f"{iqm(finite):.1f}" if finite.size else "n/a"


def summarize(rows: list[dict[str, Any]], reps: int) -> dict[str, Any]:
    """Per budget: each arm's IQM [CI], and P(PPO arm > group arm) for every pair."""
    from purejaxppo.run.stats import iqm_ci, probability_of_improvement

    out: dict[str, Any] = {}
    for budget in BUDGETS:
        arms = [r for r in rows if budget in r["budgets"]]
        cells = {}
        for r in arms:
            est = iqm_ci(np.asarray(r["finals"]), reps=reps)
            cells[r["arm"]] = {"iqm": est.point, "low": est.low, "high": est.high}
        pairs = {}
        for ppo_row in (r for r in arms if r["arm"].startswith("ppo")):
            for group_row in (r for r in arms if r["arm"].startswith("group")):
                est = probability_of_improvement(
                    np.asarray(ppo_row["finals"]), np.asarray(group_row["finals"]), reps=reps
                )
                key = f"{ppo_row['arm']}>{group_row['arm']}"
                pairs[key] = {"p": est.point, "low": est.low, "high": est.high}
        out[budget] = {"iqm": cells, "improvement": pairs}
    return out


def _num(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}"


def write_table(results: dict[str, Any], path: Path) -> None:
    lines = [
        f"IQM of final returns over {results['eval_seeds']} evaluation seeds "
        "[95% stratified bootstrap CI]; each arm's learning rate and ent_coef tuned on "
        f"{results['tune_seeds']} other seeds. Budget: {results['budget']:,} env steps per seed.",
    ]
    if results.get("normalization", "shipped") != "shipped":
        lines.append(f"Advantage normalisation: {results['normalization']} for every arm.")
    for env, data in results["envs"].items():
        for budget in BUDGETS:
            summary = data["summary"][budget]
            lines += [
                "",
                f"### {env}, {budget.replace('_', ' ')}",
                "",
                "| arm | IQM [95% CI] | lr, ent_coef | envs x steps | epochs x minibatches "
                "(size) | updates | grad steps |",
                "|---|---|---|---|---|---|---|",
            ]
            for r in (r for r in data["rows"] if budget in r["budgets"]):
                c = summary["iqm"][r["arm"]]
                lines.append(
                    f"| {r['label']} | {_num(c['iqm'])} [{_num(c['low'])}, {_num(c['high'])}] | "
                    f"{r['best']['learning_rate']:g}, {r['best']['ent_coef']:g} | "
                    f"{r['num_envs']} x {r['num_steps']} | {r['update_epochs']} x "
                    f"{r['num_minibatches']} ({r['minibatch_size']}) | {r['num_updates']} | "
                    f"{r['gradient_steps']:,} |"
                )
            if summary["improvement"]:
                lines += ["", "| P(X > Y) | estimate [95% CI] |", "|---|---|"]
                for key, p in summary["improvement"].items():
                    x, y = key.split(">")
                    lines.append(
                        f"| {LABELS[x]} > {LABELS[y]} | {p['p']:.2f} "
                        f"[{_num(p['low'])}, {_num(p['high'])}] |"
                    )
    path.write_text("\n".join(lines) + "\n")


def clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become null."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def machine() -> dict[str, Any]:
    import jax

    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cpu_cores": os.cpu_count(),
        "jax_version": jax.__version__,
        "jax_platform": jax.devices()[0].platform,
        "python": platform.python_version(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except InputError as err:
        print(f"critic_protocol.py: {err}", file=sys.stderr)
        return 2
    start = time.perf_counter()

    def log(line: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f}s] {line}", file=sys.stderr, flush=True)

    shown = sys.argv[1:] if argv is None else list(argv)
    results: dict[str, Any] = {
        "command": " ".join(["scripts/critic_protocol.py", *shown]),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "budget": args.budget,
        "tune_seeds": args.tune_seeds,
        "eval_seeds": args.eval_seeds,
        "learning_rates": list(args.learning_rates),
        "ent_coefs": list(args.ent_coefs),
        "aggregation": args.aggregation,
        "normalization": args.normalization,
        "epochs": list(args.epochs) if args.epochs else "shipped",
        "minibatches": list(args.minibatches) if args.minibatches else "shipped",
        "envs": {},
    }
    log(f"machine: {results['machine']}")
    args.out.mkdir(parents=True, exist_ok=True)
    for env in args.envs:
        rows = [
            run_program(p, args, log)
            for p in make_programs(
                env, args.arms, args.budget, args.aggregation, args.normalization
            )
        ]
        results["envs"][env] = {"rows": rows, "summary": summarize(rows, args.bootstrap_reps)}
        results["total_wall_s"] = time.perf_counter() - start
        (args.out / "results.json").write_text(json.dumps(clean(results), indent=1) + "\n")
        write_table(clean(results), args.out / "table.md")
    log(f"done in {time.perf_counter() - start:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
