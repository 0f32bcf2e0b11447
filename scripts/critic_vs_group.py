"""Can PPO drop its critic like GRPO? PPO with GAE against critic-free group advantages.

    .venv/bin/python scripts/critic_vs_group.py [--out docs/critic-vs-group] [--seeds 4]
        [--envs CartPole-v1,Acrobot-v1,...] [--budget-scale 1.0]

For every env, at one environment-step budget per env, it trains nine variants with
`--seeds` seeds vmapped in one compiled program each
(`jax.jit(jax.vmap(make_train(cfg), (0, None)))(keys, hparams)`, member i has
`jax.random.key(i)`):

- `gae`: PPO with its critic and GAE, the env's shipped config (configs/<env>.yaml)
  with `total_timesteps` set to the budget;
- `group{G}_std` / `group{G}_mean` for G in 2, 4, 8, 16: critic-free group advantages
  (`advantage: group`), with (GRPO) and without (Dr. GRPO) the group-std division.
  16 envs (every G divides it), `num_steps` = the env's episode bound (gymnax's
  `max_steps_in_episode`; see EPISODE_BOUND for the one exception), reward
  normalisation off (required), everything else from the shipped config
  (`num_minibatches` lowered to a divisor of the batch where needed, and recorded).

Final return: per seed `purejaxppo.run.rundir.final_return` (mean over the last 5%
of updates with finished episodes), then the mean and a 95% Student-t CI over seeds.
Writes `results.json` (settings, per-seed finals, compile and run wall time, learning
curves), `table.md` and one `<env>.png` per env into `--out`. `--budget-scale` shrinks
every budget (smoke runs; each run still takes at least one batch) and
`--fast-compile` halves compile time at the cost of run speed (smoke runs). Bad input
exits 2 with one line.
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
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"

# Environment steps per seed for every variant of an env (at --budget-scale 1), sized so
# that the default run (5 envs x 9 programs x 4 seeds, 45 compiles of 5-15 s each) takes
# about 20 min on 2 CPU cores: twice the shipped budget for CartPole and Acrobot (so the
# group runs, at 8,000 steps per update, get 125 updates), less than shipped for the rest
# (PPO + GAE has reached its shipped final return by then).
# MountainCar-v0 is the long-horizon, sparse-reward test: 200-step episodes of -1 per
# step until the car, by a long pumping sequence, reaches the flag. While unsolved every
# episode runs to the 200-step limit, so whole-episode rollouts waste no steps there.
BUDGETS = {
    "CartPole-v1": 1_000_000,
    "Acrobot-v1": 1_000_000,
    "Catch-bsuite": 100_000,
    "Pendulum-v1": 800_000,
    "MountainCar-v0": 500_000,
}
DEFAULT_ENVS = tuple(BUDGETS)
GROUP_SIZES = (2, 4, 8, 16)
GROUP_NUM_ENVS = 16
# Envs whose own dynamics end every episode well before gymnax's time limit. Catch:
# the ball falls one row per step and the episode terminates after exactly rows - 1 = 9
# steps, whatever the actions; the 1000-step limit never binds. The group runs use the
# bound as their time limit (and num_steps), so 16 x 1000-step rollouts do not spend
# 99% of the budget on masked steps after the first episode.
EPISODE_BOUND = {"Catch-bsuite": 9}


class InputError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        raise InputError(message)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One trained program: a static config, its hyperparameters and how it was set up."""

    name: str
    label: str
    cfg: Any  # PPOConfig
    hparams: Any  # HParams
    env_params: Any = None  # None: the env's defaults
    notes: tuple[str, ...] = ()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "critic-vs-group")
    parser.add_argument("--seeds", type=int, default=4, help="seeds per variant (default 4)")
    parser.add_argument("--envs", default=",".join(DEFAULT_ENVS), help="comma-separated envs")
    parser.add_argument(
        "--budget-scale", type=float, default=1.0, help="multiply every budget (smoke runs)"
    )
    parser.add_argument(
        "--fast-compile",
        action="store_true",
        help="XLA backend optimisation level 0: about half the compile time, slower runs "
        "(smoke runs only; wall times are then not comparable)",
    )
    args = parser.parse_args(argv)
    if args.seeds < 1:
        raise InputError(f"--seeds: expected an integer >= 1, got {args.seeds}")
    if not (math.isfinite(args.budget_scale) and args.budget_scale > 0):
        raise InputError(f"--budget-scale: expected a number > 0, got {args.budget_scale:g}")
    envs = [e.strip() for e in args.envs.split(",") if e.strip()]
    if not envs:
        raise InputError("--envs: expected at least one env")
    for env in envs:
        if env not in BUDGETS:
            raise InputError(f"--envs: unknown env {env!r}; expected some of {', '.join(BUDGETS)}")
    if len(set(envs)) != len(envs):
        raise InputError(f"--envs: an env is listed twice in {args.envs!r}")
    args.envs = envs
    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out: {args.out} exists and is not a folder")
    return args


def _divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def make_variants(env: str, budget: int) -> list[Variant]:
    """The nine variants of `env` at `budget` steps per seed (each at least one batch)."""
    import gymnax

    from purejaxppo.run.config import load_run_config

    run = load_run_config(CONFIGS / f"{env}.yaml")
    base, hp = run.ppo, run.hparams
    gae = base.replace(total_timesteps=max(budget, base.batch_size))
    variants = [Variant("gae", "PPO + GAE (critic)", gae, hp)]
    default_params = gymnax.make(env)[1]
    limit = int(default_params.max_steps_in_episode)
    steps = EPISODE_BOUND.get(env, limit)
    env_params, notes = None, []
    if steps != limit:
        env_params = default_params.replace(max_steps_in_episode=steps)
        notes.append(
            f"num_steps {steps}: every episode ends after {steps} steps, so the "
            f"{limit}-step time limit was lowered to {steps} (it never binds)"
        )
    batch = GROUP_NUM_ENVS * steps
    minibatches = _divisor_at_most(batch, base.num_minibatches)
    if minibatches != base.num_minibatches:
        notes.append(f"num_minibatches {base.num_minibatches} -> {minibatches} (divides {batch})")
    for size in GROUP_SIZES:
        for normalize in (True, False):
            cfg = base.replace(
                advantage="group",
                group_size=size,
                group_normalize=normalize,
                num_envs=GROUP_NUM_ENVS,
                num_steps=steps,
                num_minibatches=minibatches,
                normalize_rewards=False,
                total_timesteps=max(budget, batch),
            )
            name = f"group{size}_{'std' if normalize else 'mean'}"
            label = f"{'GRPO' if normalize else 'Dr. GRPO'} G={size}"
            variants.append(Variant(name, label, cfg, hp, env_params, tuple(notes)))
    return variants


def train_variant(variant: Variant, seeds: int, fast_compile: bool = False) -> dict[str, Any]:
    """Compile and run one variant's seeds as one vmapped program; its returns `[S, U]`."""
    import jax
    import jax.numpy as jnp

    from purejaxppo import make_train

    keys = jnp.stack([jax.random.key(s) for s in range(seeds)])
    train = make_train(variant.cfg, env_params=variant.env_params)
    start = time.perf_counter()
    options = {"xla_backend_optimization_level": 0} if fast_compile else None
    lowered = jax.jit(jax.vmap(train, (0, None))).lower(keys, variant.hparams)
    compiled = lowered.compile(compiler_options=options)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    out = compiled(keys, variant.hparams)
    returns = np.asarray(out.metrics["episode_return"], np.float64)
    lengths = np.asarray(out.metrics["episode_length"], np.float64)
    run_s = time.perf_counter() - start
    return {"compile_s": compile_s, "run_s": run_s, "returns": returns, "lengths": lengths}


def ci95(values: Sequence[float]) -> float:
    """Half-width of the 95% Student-t confidence interval of the mean (NaN for 1 value)."""
    from purejaxppo.sweep.results import t_quantile_975

    v = np.asarray(values, np.float64)
    if v.size < 2 or not np.all(np.isfinite(v)):
        return math.nan
    return t_quantile_975(v.size - 1) * float(np.std(v, ddof=1)) / math.sqrt(v.size)


def summarize(variant: Variant, trained: dict[str, Any]) -> dict[str, Any]:
    """One variant's row of results.json."""
    from purejaxppo.run.rundir import final_return

    cfg, returns = variant.cfg, trained["returns"]
    finals = [final_return(row) for row in returns]
    with warnings.catch_warnings():  # "Mean of empty slice": no episode ended anywhere
        warnings.simplefilter("ignore", RuntimeWarning)
        curve = np.nanmean(returns, axis=0)
        used = float(np.nanmean(trained["lengths"])) / cfg.num_steps
    return {
        "name": variant.name,
        "label": variant.label,
        "advantage": cfg.advantage,
        "group_size": cfg.group_size if cfg.advantage == "group" else None,
        "group_normalize": cfg.group_normalize if cfg.advantage == "group" else None,
        "num_envs": cfg.num_envs,
        "num_steps": cfg.num_steps,
        "update_epochs": cfg.update_epochs,
        "num_minibatches": cfg.num_minibatches,
        "minibatch_size": cfg.minibatch_size,
        "normalize_observations": cfg.normalize_observations,
        "normalize_rewards": cfg.normalize_rewards,
        "hparams": {f.name: float(getattr(variant.hparams, f.name)) for f in _fields()},
        "total_timesteps": cfg.total_timesteps,
        "num_updates": cfg.num_updates,
        "env_steps": cfg.num_updates * cfg.batch_size,
        "gradient_steps": cfg.num_updates * cfg.update_epochs * cfg.num_minibatches,
        "used_step_fraction": used if cfg.advantage == "group" else 1.0,
        "notes": list(variant.notes),
        "compile_s": trained["compile_s"],
        "run_s": trained["run_s"],
        "final_mean": float(np.mean(finals)),
        "final_ci95": ci95(finals),
        "finals": finals,
        "curve": {
            "env_steps": [(u + 1) * cfg.batch_size for u in range(cfg.num_updates)],
            "return_mean": curve.tolist(),
        },
    }


def _fields() -> tuple[dataclasses.Field, ...]:
    from purejaxppo import HParams

    return dataclasses.fields(HParams)


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
    """The host this ran on (for results.json and the write-up)."""
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
        "jax_platform": jax.devices()[0].platform,
        "jax_devices": len(jax.devices()),
        "jax_version": jax.__version__,
        "python": platform.python_version(),
    }


def _fmt(mean: float | None, ci: float | None) -> str:
    if mean is None or not math.isfinite(mean):
        return "n/a"
    digits = 1 if abs(mean) >= 10 else 2
    if ci is None or not math.isfinite(ci):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {ci:.{digits}f}"


def write_table(results: dict[str, Any], path: Path) -> None:
    """table.md: a summary matrix (variants x envs) and one detailed table per env."""
    envs = results["envs"]
    names = [v["name"] for v in next(iter(envs.values()))["variants"]] if envs else []
    labels = {v["name"]: v["label"] for e in envs.values() for v in e["variants"]}
    lines = [
        f"Final return, mean ± 95% CI over {results['seeds']} seeds (per seed: mean over the "
        "last 5% of updates); the best mean per env (at the precision shown) in bold.",
        "",
        "| variant | " + " | ".join(f"{e} ({d['budget']:,} steps)" for e, d in envs.items()) + " |",
        "|---" * (len(envs) + 1) + "|",
    ]
    best = {e: _fmt(_best(d["variants"]), None) for e, d in envs.items()}
    for name in names:
        cells = []
        for env, data in envs.items():
            row = next(v for v in data["variants"] if v["name"] == name)
            text = _fmt(row["final_mean"], row["final_ci95"])
            top = row["final_mean"] is not None and _fmt(row["final_mean"], None) == best[env]
            cells.append(f"**{text}**" if top else text)
        lines.append(f"| {labels[name]} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Per env below: *steps to X* = env steps per seed at which the mean over seeds "
        "(trailing mean over 2.5% of updates, as in the plots) first reaches the shipped "
        "config's expected_return X; *steps used* = share of the rollout steps inside each "
        "env's first episode (group mode masks the rest); wall times are for all seeds together.",
    ]
    for env, data in envs.items():
        lines += _env_table(env, data)
    path.write_text("\n".join(lines) + "\n")


def _best(variants: list[dict[str, Any]]) -> float | None:
    """The highest finite final mean (None if there is none)."""
    means = [v["final_mean"] for v in variants if v["final_mean"] is not None]
    return max(means) if means else None


def _env_table(env: str, data: dict[str, Any]) -> list[str]:
    target = "n/a" if data["expected_return"] is None else f"{data['expected_return']:g}"
    lines = [
        "",
        f"### {env}: {data['budget']:,} env steps per seed (time limit "
        f"{data['max_steps_in_episode']}, group num_steps {data['group_num_steps']})",
        "",
        f"| variant | final return | per-seed finals | steps to {target} "
        "| envs x steps | updates | grad steps | steps used | compile s | run s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in data["variants"]:
        finals = ", ".join(_fmt(f, None) for f in v["finals"])
        reached = v["steps_to_expected"]
        lines.append(
            f"| {v['label']} | {_fmt(v['final_mean'], v['final_ci95'])} | {finals} | "
            f"{'never' if reached is None else f'{reached:,}'} | "
            f"{v['num_envs']} x {v['num_steps']} | {v['num_updates']} | {v['gradient_steps']} | "
            f"{100 * v['used_step_fraction']:.0f}% | {v['compile_s']:.1f} | {v['run_s']:.1f} |"
        )
    return lines


def _window(updates: int) -> int:
    """Smoothing window of the curves: 2.5% of the updates."""
    return max(1, round(updates / 40))


def steps_to_target(curve: dict[str, list], target: float | None) -> int | None:
    """Env steps at the first update where the seed-mean curve, smoothed as in the plots,
    reaches `target` (None if it never does or there is no target)."""
    if target is None:
        return None
    y = np.asarray([np.nan if r is None else r for r in curve["return_mean"]], np.float64)
    hits = np.nonzero(_smooth(y, _window(y.size)) >= target)[0]
    return int(curve["env_steps"][hits[0]]) if hits.size else None


def _smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last `window` finite points (NaN stays where no data yet)."""
    out = np.full_like(y, np.nan)
    for i in range(y.size):
        seg = y[max(0, i - window + 1) : i + 1]
        seg = seg[np.isfinite(seg)]
        if seg.size:
            out[i] = seg.mean()
    return out


def plot_env(env: str, data: dict[str, Any], seeds: int, path: Path) -> None:
    """All nine learning curves of one env (mean over seeds) against env steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = dict(zip(GROUP_SIZES, ("tab:blue", "tab:orange", "tab:green", "tab:red"), strict=True))
    fig, ax = plt.subplots(figsize=(10, 5.5))
    for v in data["variants"]:
        x = np.asarray(v["curve"]["env_steps"], np.float64)
        y = np.asarray([np.nan if r is None else r for r in v["curve"]["return_mean"]], float)
        y = _smooth(y, _window(y.size))
        if v["advantage"] == "gae":
            style = {"color": "black", "linewidth": 2.6, "zorder": 5}
        else:
            style = {
                "color": colors[v["group_size"]],
                "linestyle": "-" if v["group_normalize"] else "--",
                "linewidth": 1.6,
            }
        final = _fmt(v["final_mean"], v["final_ci95"])
        ax.plot(x, y, label=f"{v['label']} ({v['num_updates']} upd.): {final}", **style)
    ax.set_title(
        f"{env}: PPO + GAE vs critic-free group advantages "
        f"({seeds} seeds, {data['budget']:,} env steps each)"
    )
    ax.set_xlabel("environment steps per seed")
    ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1000:g}k" if x else "0")
    ax.set_ylabel("episode return (mean over seeds,\ntrailing mean over 2.5% of updates)")
    ax.grid(alpha=0.3)
    ax.legend(
        title="variant (updates): final ± 95% CI",
        fontsize=8,
        title_fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_env(env: str, args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    """Train every variant of `env`; its entry of results.json."""
    import gymnax

    from purejaxppo.run.config import load_run_config

    budget = max(1, int(BUDGETS[env] * args.budget_scale))
    limit = int(gymnax.make(env)[1].max_steps_in_episode)
    expected = load_run_config(CONFIGS / f"{env}.yaml").expected_return
    variants = make_variants(env, budget)
    rows = []
    for variant in variants:
        trained = train_variant(variant, args.seeds, args.fast_compile)
        row = summarize(variant, trained)
        row["steps_to_expected"] = steps_to_target(row["curve"], expected)
        rows.append(row)
        log(
            f"{env} {variant.label}: compile {row['compile_s']:.1f} s, run {row['run_s']:.1f} s, "
            f"{row['num_updates']} updates, final {_fmt(row['final_mean'], row['final_ci95'])}"
        )
    return {
        "budget": budget,
        "max_steps_in_episode": limit,
        "group_num_steps": variants[-1].cfg.num_steps,
        "group_notes": list(variants[-1].notes),
        "shipped_config": f"configs/{env}.yaml",
        "expected_return": expected,
        "variants": rows,
    }


def write_outputs(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(clean(results), indent=1) + "\n")
    write_table(clean(results), out / "table.md")
    for env, data in clean(results)["envs"].items():
        plot_env(env, data, results["seeds"], out / f"{env}.png")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except InputError as err:
        print(f"critic_vs_group.py: {err}", file=sys.stderr)
        return 2
    start = time.perf_counter()

    def log(line: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f}s] {line}", file=sys.stderr, flush=True)

    shown = sys.argv[1:] if argv is None else list(argv)
    results: dict[str, Any] = {
        "command": " ".join(["scripts/critic_vs_group.py", *shown]),
        "machine": machine(),
        "seeds": args.seeds,
        "budget_scale": args.budget_scale,
        "fast_compile": args.fast_compile,
        "group_sizes": list(GROUP_SIZES),
        "group_num_envs": GROUP_NUM_ENVS,
        "final_return_rule": "per seed: mean over the last max(1, 5% of updates) updates with "
        "finished episodes; then mean and 95% Student-t CI over seeds",
        "envs": {},
    }
    log(f"machine: {results['machine']}")
    for env in args.envs:
        results["envs"][env] = run_env(env, args, log)
        results["total_wall_s"] = time.perf_counter() - start
        write_outputs(results, args.out)
    log(f"done in {time.perf_counter() - start:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
