"""The two experiments of docs/rlhf.md, on the RLHF pipeline in miniature.

    .venv/bin/python scripts/rlhf_experiments.py overopt [--out docs/rlhf] [--seeds 3]
        [--kl-targets 0.5 1 2 4 8 16 32 64]
    .venv/bin/python scripts/rlhf_experiments.py critic [--out docs/rlhf] [--seeds 8]
    .venv/bin/python scripts/rlhf_experiments.py g2 [--out docs/rlhf] [--seeds 10]
    .venv/bin/python scripts/rlhf_experiments.py dpo [--out docs/rlhf] [--seeds 10]
    .venv/bin/python scripts/rlhf_experiments.py long [--out docs/rlhf] [--seeds 4]
        [--prepare-seeds 3] [--config configs/rlhf/long.yaml]
    .venv/bin/python scripts/rlhf_experiments.py placement [--out docs/rlhf] [--seeds 10]

Both start from configs/rlhf/ppo.yaml (the shipped run's language, models, SFT and reward
settings) and share one reference policy and one reward model per reward-model setting (the
`prepare` stage, seed 0), as in Gao et al. (2022): one proxy, many policies.

`overopt` (over-optimisation): for two reward models — the shipped one (`--pairs-strong`
pairs) and a weaker one (`--pairs-weak` pairs, 20% label noise) — PPO runs with the adaptive
KL controller at KL targets 0.5 ... 64 nats, `--seeds` seeds each, all members of one reward
model vmapped in one program. Writes `overopt.json` (per-member final evaluation and
per-iteration gold / proxy / KL) and `overoptimisation.png` (gold and proxy reward against
sqrt(KL) at the end of training, each member a dot, the mean per target a line).

`critic` (the note's question): PPO with its token-level critic and GAE against GRPO with
group sizes 2, 4, 8 and 16 (and Dr. GRPO, no std, at G = 4), all at 64 sampled completions
per iteration for the same number of iterations (so the same number of sampled completions;
the tokens actually sampled are counted and reported), the same KL target, `--seeds` seeds
vmapped per variant. Writes `critic.json` and `critic.md` (a table: gold reward, win rate
vs the reference, KL, tokens, compile and run wall time; mean and 95% t-interval over seeds)
and `critic.png` (gold reward over iterations). `critic.json` also keeps each member's gold
and content length per evaluation prompt: `scripts/rlhf_analysis.py critic` reads them at
equal completion lengths.

`g2` (the note's case head-on: "only a chosen and a rejected sample"): PPO with its critic
against GRPO and Dr. GRPO (no std) at G = 2, at two budgets per iteration — equal prompts
(64 prompts each: G = 2 samples 128 completions to PPO's 64) and equal completions (64
completions each: G = 2 sees 32 prompts). The PPO arm (64 prompts, 64 completions) is the
same run in both budgets. Same KL target, learning rate, iterations, epochs and minibatches
(so the same number of Adam steps; G = 2 at equal prompts has minibatches twice as large).
Writes `g2.json` (per arm: its budget, prompts and completions per iteration, per-seed
evaluation and per-prompt gold and content length); `scripts/rlhf_analysis.py g2` reads it
at equal lengths. docs/rlhf.md's table is `g2 --seeds 20` (about 16 min on 2 shared cores).

`dpo` (the offline counterpart of "only chosen and rejected"): DPO trained on the reward
model's own training pairs (the same `prepare`: one SFT reference, one set of pairs, one
reward model), beside the PPO arm of `g2`. First DPO at the betas `--dpo-betas` on
`DPO_TUNING_SEEDS` (seeds not used after); the beta kept is the one with the highest gold of
the monitoring samples (64 completions of fresh prompts, not the evaluation's) averaged over
the last `DPO_TUNING_LAST` passes and the tuning seeds. Then that beta and PPO, `--seeds`
seeds each (0 .. seeds-1), evaluated by the same `evaluate`. Writes `dpo.json` (the tuning
rows; per arm its per-seed evaluation and per-prompt gold and content length, as `g2.json`);
`scripts/rlhf_analysis.py dpo` reads it at equal lengths and writes `dpo.md`.

`long` (when length is not gold): configs/rlhf/long.yaml — the `ascending_fraction` gold
(rising pairs per adjacent pair, not monotone in length) and completions of up to 32 tokens —
with `--prepare-seeds` references and reward models (`prepare_seed` 0, 1, ...), each paired
with the same `--seeds` RL seeds, for PPO with its critic, GRPO G = 4 and GRPO G = 2 (±1), all
at 64 sampled completions per iteration and one KL target. Each arm is compiled once and run
against every prepared reference (the programs take the frozen parameters as arguments).
Writes `long.json` (per arm and prepare seed: per-seed evaluation and per-prompt gold and
content length; per prepare seed the reward model's accuracy and the reference's per-prompt
data); `scripts/rlhf_analysis.py long` reads it. `--config` runs the same arms and prepare
seeds on another config (`--config configs/rlhf/ppo.yaml`: the 8-token `ascending` runs,
over several references and reward models).

`placement` (the KL placement swapped): PPO with its critic and GRPO G = 4, each with beta's
KL where it has it (`rl.kl_placement: own`: PPO's per-token k1 in the reward, GRPO's k3 in
the loss) and swapped (PPO's in the loss, GRPO's in the reward), on ppo.yaml's one
`prepare`, at 64 sampled completions per iteration, the same KL target, learning rate,
iterations, epochs and minibatches. Writes `placement.json` (per arm as in `dpo.json`, with
its placement); `scripts/rlhf_analysis.py placement` reads it at equal lengths.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np

from purejaxppo.rlhf import analysis, runner
from purejaxppo.rlhf.config import (
    RLHFConfig,
    hparams_dict,
    population_members,
    stack_rlhf_hparams,
)
from purejaxppo.rlhf.pipeline import Prepared, make_pipeline, member_keys
from purejaxppo.rlhf.runner import run_prepare
from purejaxppo.rlhf.yamlconfig import load_rlhf_config

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "configs" / "rlhf" / "ppo.yaml"
LONG = ROOT / "configs" / "rlhf" / "long.yaml"
KL_TARGETS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
CRITIC_VARIANTS = (  # (name, algorithm, group_size, group_normalize)
    ("PPO + GAE (token-level critic)", "ppo", 1, True),
    ("GRPO G=2", "grpo", 2, True),
    ("GRPO G=4", "grpo", 4, True),
    ("GRPO G=8", "grpo", 8, True),
    ("GRPO G=16", "grpo", 16, True),
    ("Dr. GRPO G=4 (no std)", "grpo", 4, False),
)

PPO_NAME = "PPO + GAE (token-level critic)"
G2_ARMS = (  # (name, budget, algorithm, group_size, group_normalize, completions per iteration)
    (PPO_NAME, "both", "ppo", 1, True, 64),
    ("GRPO G=2, equal prompts", "prompts", "grpo", 2, True, 128),
    ("Dr. GRPO G=2 (no std), equal prompts", "prompts", "grpo", 2, False, 128),
    ("GRPO G=2, equal completions", "completions", "grpo", 2, True, 64),
    ("Dr. GRPO G=2 (no std), equal completions", "completions", "grpo", 2, False, 64),
)


def t_interval(values: list[float]) -> tuple[float, float]:
    """Mean and 95% Student-t half-width over seeds."""
    from scipy import stats

    x = np.asarray(values, float)
    if len(x) < 2:
        return float(x.mean()), float("nan")
    return float(x.mean()), float(
        stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    )


def prepare(cfg: RLHFConfig) -> Prepared:
    return run_prepare(cfg)[0]


def run_population(cfg: RLHFConfig, prepared: Prepared) -> dict[str, Any]:
    """Run `cfg`'s population against `prepared`; arrays as numpy, with wall times."""
    run = runner.run_population(cfg, prepared)
    return {
        "labels": [m.label for m in run.members],
        "hparams": [hparams_dict(m.hparams) for m in run.members],
        "metrics": {k: np.asarray(v) for k, v in run.output.metrics._asdict().items()},
        "eval": {k: np.asarray(v) for k, v in run.evaluation._asdict().items()},
        "compile_s": run.compile_s,
        "run_s": run.run_s,
    }


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, float | np.floating):
        return None if not math.isfinite(float(x)) else round(float(x), 5)
    return x


def _results_head(args: argparse.Namespace, accuracy: float) -> dict[str, Any]:
    """The first keys of `g2.json`, `dpo.json` and `placement.json`."""
    return {
        "seeds": args.seeds,
        "iterations": args.iterations,
        "kl_target": args.kl_target,
        "reward_model_accuracy": accuracy,
    }


def _reference_per_prompt(ev: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The reference's per-prompt gold and content length `[E]` from an evaluation `[M, E]`
    (the same for every member of a population: the first member's)."""
    return {"gold": ev["gold_per_prompt_reference"][0], "length": ev["content_length_reference"][0]}


def _say_arm(name: str, res: dict[str, Any]) -> None:
    """One line per finished arm: its mean gold, KL, content length and wall times."""
    ev = res["eval"]
    print(
        f"{name:<42} gold {ev['gold_reward'].mean():.2f} KL "
        f"{ev['kl_to_reference'].mean():.2f} length {ev['content_length'].mean():.2f} "
        f"compile {res['compile_s']:.0f} s run {res['run_s']:.0f} s",
        flush=True,
    )


def overopt(args: argparse.Namespace, base: RLHFConfig) -> None:
    settings = {
        "strong": dataclasses.replace(base.reward, train_pairs=args.pairs_strong),
        "weak": dataclasses.replace(base.reward, train_pairs=args.pairs_weak, flip_prob=0.2),
    }
    targets = tuple(args.kl_targets)
    results: dict[str, Any] = {
        "kl_targets": targets,
        "seeds": args.seeds,
        "iterations": args.iterations,
        "rm": {},
    }
    for name, reward in settings.items():
        population = dataclasses.replace(
            base.population, seeds=args.seeds, grid=(("kl_target", targets),)
        )
        rl = dataclasses.replace(base.rl, iterations=args.iterations)
        cfg = dataclasses.replace(base, reward=reward, population=population, rl=rl)
        prepared = prepare(cfg)
        acc = float(prepared.reward_model_accuracy)
        print(
            f"[{name}] reward model: {reward.train_pairs} pairs, flip {reward.flip_prob}, "
            f"held-out accuracy {acc:.3f}",
            flush=True,
        )
        res = run_population(cfg, prepared)
        res["reward_model_accuracy"] = acc
        res["train_pairs"], res["flip_prob"] = reward.train_pairs, reward.flip_prob
        print(
            f"[{name}] {len(res['labels'])} members: compile {res['compile_s']:.0f} s, "
            f"run {res['run_s']:.0f} s",
            flush=True,
        )
        ev = res["eval"]
        for k, target in enumerate(targets):
            rows = slice(k * args.seeds, (k + 1) * args.seeds)
            print(
                f"  kl_target {target:5.1f}: KL {ev['kl_to_reference'][rows].mean():6.2f}  gold "
                f"{ev['gold_reward'][rows].mean():.2f}  "
                f"proxy {ev['proxy_reward'][rows].mean():.2f}  "
                f"win {ev['win_rate_vs_reference'][rows].mean():.3f}",
                flush=True,
            )
        keep = ("gold_reward", "proxy_reward", "kl", "kl_coef")  # per iteration, [M, iterations]
        res["metrics"] = {k: np.round(res["metrics"][k], 3) for k in keep}
        # per evaluation prompt [M, E], for the length-controlled reading (rlhf_analysis gao)
        res["per_prompt"] = {"gold": ev["gold_per_prompt"], "length": ev["content_length"]}
        res["reference_per_prompt"] = _reference_per_prompt(ev)
        for key in (
            "gold_per_prompt",
            "content_length",
            "gold_per_prompt_reference",
            "content_length_reference",
        ):
            ev.pop(key, None)  # kept once, in per_prompt
        results["rm"][name] = res
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "overopt.json").write_text(json.dumps(_jsonable(results)) + "\n")
    plot_overopt(results, out / "overoptimisation.png")


def plot_overopt(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds, targets = results["seeds"], results["kl_targets"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for ax, (name, res) in zip(axes, results["rm"].items(), strict=True):
        ev = {k: np.asarray(v, float) for k, v in res["eval"].items()}
        x = np.sqrt(np.maximum(ev["kl_to_reference"], 0.0))
        proxy_ax = ax.twinx()
        # a target whose runs reached the same KL as the target below (the controller could
        # reach neither) is the same run: drawn as x, left out of the mean lines
        keep = analysis.distinct_targets(ev["kl_to_reference"].reshape(len(targets), seeds))
        kept = np.isin(np.arange(len(x)) // seeds, keep)
        for mask, marker in ((kept, "o"), (~kept, "x")):
            ax.scatter(x[mask], ev["gold_reward"][mask], color="C0", s=12, alpha=0.6, marker=marker)
            proxy_ax.scatter(
                x[mask], ev["proxy_reward"][mask], color="C3", s=12, alpha=0.6, marker=marker
            )
        means = [slice(k * seeds, (k + 1) * seeds) for k in keep]
        means.sort(key=lambda s: x[s].mean())
        ax.plot(
            [x[s].mean() for s in means],
            [ev["gold_reward"][s].mean() for s in means],
            "C0-",
            label="gold (left axis)",
        )
        proxy_ax.plot(
            [x[s].mean() for s in means],
            [ev["proxy_reward"][s].mean() for s in means],
            "C3--",
            label="proxy (right axis)",
        )
        ax.axhline(ev["gold_reward_reference"][0], color="C0", ls=":", lw=0.8)
        ax.set_xlabel("sqrt(KL(pi || pi_ref)) at the end of training [sqrt(nats)]")
        ax.set_ylabel("gold reward", color="C0")
        proxy_ax.set_ylabel("proxy reward (reward model)", color="C3")
        ax.set_title(
            f"{name} reward model: {res['train_pairs']} pairs, {res['flip_prob']:.0%} flipped, "
            f"acc {res['reward_model_accuracy']:.2f}",
            fontsize=9,
        )
        ax.grid(alpha=0.3)
        handles = ax.get_legend_handles_labels()[0] + proxy_ax.get_legend_handles_labels()[0]
        ax.legend(handles=handles, fontsize=8, loc="lower right")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def critic(args: argparse.Namespace, base: RLHFConfig) -> None:
    population = dataclasses.replace(base.population, seeds=args.seeds, grid=())
    hparams = base.hparams.replace(kl_target=args.kl_target)
    prepared = prepare(dataclasses.replace(base, population=population))
    print(f"reward model held-out accuracy {float(prepared.reward_model_accuracy):.3f}", flush=True)
    results: dict[str, Any] = {"seeds": args.seeds, "kl_target": args.kl_target, "variants": {}}
    results["reward_model_accuracy"] = float(prepared.reward_model_accuracy)
    for name, algorithm, group, normalize in CRITIC_VARIANTS:
        rl = dataclasses.replace(
            base.rl,
            algorithm=algorithm,
            group_size=group,
            group_normalize=normalize,
            iterations=args.iterations,
        )
        cfg = dataclasses.replace(base, rl=rl, population=population, hparams=hparams)
        res = run_population(cfg, prepared)
        ev = res["eval"]
        row = {
            key: t_interval(list(ev[field]))
            for key, field in (
                ("gold", "gold_reward"),
                ("win", "win_rate_vs_reference"),
                ("kl", "kl_to_reference"),
                ("proxy", "proxy_reward"),
            )
        }
        row["tokens"] = float(res["metrics"]["tokens"].sum(axis=1).mean())
        row["compile_s"], row["run_s"] = res["compile_s"], res["run_s"]
        row["gold_reference"] = float(ev["gold_reward_reference"][0])
        row["gold_curve"] = res["metrics"]["gold_reward"].mean(axis=0)
        row["per_seed"] = {
            k: ev[k]
            for k in ("gold_reward", "win_rate_vs_reference", "kl_to_reference", "proxy_reward")
        }
        # per evaluation prompt [seeds, E], for scripts/rlhf_analysis.py (gold at equal lengths)
        row["per_prompt"] = {"gold": ev["gold_per_prompt"], "length": ev["content_length"]}
        results["reference_per_prompt"] = _reference_per_prompt(ev)
        results["variants"][name] = row
        print(
            f"{name:<32} gold {row['gold'][0]:.2f}±{row['gold'][1]:.2f} "
            f"win {row['win'][0]:.3f} KL {row['kl'][0]:.2f} "
            f"length {ev['content_length'].mean():.2f} run {row['run_s']:.0f} s",
            flush=True,
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "critic.json").write_text(json.dumps(_jsonable(results)) + "\n")
    (out / "critic.md").write_text(critic_table(results))
    plot_critic(results, out / "critic.png")


def g2_configs(
    base: RLHFConfig, seeds: int, iterations: int, kl_target: float
) -> list[tuple[str, str, RLHFConfig]]:
    """`(name, budget, config)` of every arm of `g2`: only the algorithm, the group size,
    the std normalisation and the completions per iteration differ."""
    population = dataclasses.replace(base.population, seeds=seeds, grid=())
    hparams = base.hparams.replace(kl_target=kl_target)
    arms = []
    for name, budget, algorithm, group, normalize, completions in G2_ARMS:
        rl = dataclasses.replace(
            base.rl,
            algorithm=algorithm,
            group_size=group,
            group_normalize=normalize,
            completions_per_iteration=completions,
            iterations=iterations,
        )
        cfg = dataclasses.replace(base, rl=rl, population=population, hparams=hparams)
        arms.append((name, budget, cfg))
    return arms


def g2(args: argparse.Namespace, base: RLHFConfig) -> None:
    arms = g2_configs(base, args.seeds, args.iterations, args.kl_target)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prepared = prepare(arms[0][2])
    acc = float(prepared.reward_model_accuracy)
    print(f"reward model held-out accuracy {acc:.3f}", flush=True)
    results: dict[str, Any] = {
        **_results_head(args, acc),
        "arms": {},
    }
    for name, budget, cfg in arms:
        res = run_population(cfg, prepared)
        ev, m = res["eval"], res["metrics"]
        row: dict[str, Any] = {
            "budget": budget,
            "algorithm": cfg.rl.algorithm,
            "group_size": cfg.rl.group_size,
            "group_normalize": cfg.rl.group_normalize,
            "prompts_per_iteration": cfg.rl.prompts_per_iteration,
            "completions_per_iteration": cfg.rl.completions_per_iteration,
            "tokens": float(m["tokens"].sum(axis=1).mean()),
            "compile_s": res["compile_s"],
            "run_s": res["run_s"],
            "gold_reference": float(ev["gold_reward_reference"][0]),
            "gold_curve": m["gold_reward"].mean(axis=0),
            "per_seed": {
                k: ev[k]
                for k in ("gold_reward", "win_rate_vs_reference", "kl_to_reference", "proxy_reward")
            },
            "per_prompt": {"gold": ev["gold_per_prompt"], "length": ev["content_length"]},
        }
        results["reference_per_prompt"] = _reference_per_prompt(ev)
        results["arms"][name] = row
        _say_arm(name, res)
        # after every arm, so an interrupted run keeps the arms it finished
        (out / "g2.json").write_text(json.dumps(_jsonable(results)) + "\n")


LONG_ARMS = (  # (name, algorithm, group_size); every arm samples 64 completions per iteration
    (PPO_NAME, "ppo", 1),
    ("GRPO G=4", "grpo", 4),
    ("GRPO G=2 (±1)", "grpo", 2),
)


def long_configs(
    base: RLHFConfig, seeds: int, iterations: int, kl_target: float
) -> list[tuple[str, RLHFConfig]]:
    """`(name, config)` of every arm of `long`: only the algorithm and group size differ."""
    population = dataclasses.replace(base.population, seeds=seeds, grid=())
    hparams = base.hparams.replace(kl_target=kl_target)
    arms = []
    for name, algorithm, group in LONG_ARMS:
        rl = dataclasses.replace(
            base.rl, algorithm=algorithm, group_size=group, iterations=iterations
        )
        arms.append(
            (name, dataclasses.replace(base, rl=rl, population=population, hparams=hparams))
        )
    return arms


def long(args: argparse.Namespace, base: RLHFConfig) -> None:
    import time

    import jax

    from purejaxppo.rlhf.config import population_members, stack_rlhf_hparams
    from purejaxppo.rlhf.pipeline import make_pipeline, member_keys

    arms = long_configs(base, args.seeds, args.iterations, args.kl_target)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "seeds": args.seeds,
        "prepare_seeds": args.prepare_seeds,
        "iterations": args.iterations,
        "kl_target": args.kl_target,
        "gold": base.language.gold,
        "max_completion_len": base.language.max_completion_len,
        "prepare": [],
        "arms": {},
    }
    prepared = []
    for p in range(args.prepare_seeds):
        prep, seconds = run_prepare(dataclasses.replace(arms[0][1], prepare_seed=p))
        prepared.append(prep)
        acc = float(prep.reward_model_accuracy)
        results["prepare"].append(
            {
                "prepare_seed": p,
                "reward_model_accuracy": acc,
                "reward_model_train_accuracy": float(prep.reward_model_train_accuracy),
                "preference_ties": float(prep.preference_ties),
                "seconds": seconds,
            }
        )
        print(
            f"prepare seed {p}: reward model held-out accuracy {acc:.3f}, {seconds:.0f} s",
            flush=True,
        )
    compiled = {}
    for name, cfg in arms:
        members = population_members(cfg)
        keys = member_keys(cfg, [m.seed for m in members])
        hparams = stack_rlhf_hparams([m.hparams for m in members])
        start = time.perf_counter()
        program = jax.jit(make_pipeline(cfg).population)
        compiled[name] = (program.lower(keys, hparams, prepared[0].frozen).compile(), keys, hparams)
        results["arms"][name] = {
            "algorithm": cfg.rl.algorithm,
            "group_size": cfg.rl.group_size,
            "prompts_per_iteration": cfg.rl.prompts_per_iteration,
            "completions_per_iteration": cfg.rl.completions_per_iteration,
            "compile_s": time.perf_counter() - start,
            "per_prepare": [],
        }
    # prepare seeds outermost, so an interrupted run holds every arm of the seeds it finished
    for p, prep in enumerate(prepared):
        for name, _ in arms:
            program, keys, hparams = compiled[name]
            row = results["arms"][name]
            start = time.perf_counter()
            output, evaluation = jax.block_until_ready(program(keys, hparams, prep.frozen))
            ev = {k: np.asarray(v) for k, v in evaluation._asdict().items()}
            m = {k: np.asarray(v) for k, v in output.metrics._asdict().items()}
            row["per_prepare"].append(
                {
                    "prepare_seed": p,
                    "run_s": time.perf_counter() - start,
                    "tokens": float(m["tokens"].sum(axis=1).mean()),
                    "gold_curve": m["gold_reward"].mean(axis=0),
                    "kl_curve": m["kl"].mean(axis=0),
                    "per_seed": {
                        k: ev[k]
                        for k in (
                            "gold_reward",
                            "win_rate_vs_reference",
                            "kl_to_reference",
                            "proxy_reward",
                            "length",
                        )
                    },
                    "per_prompt": {"gold": ev["gold_per_prompt"], "length": ev["content_length"]},
                }
            )
            results["prepare"][p]["reference_per_prompt"] = _reference_per_prompt(ev)
            print(
                f"{name:<32} prepare {p}: gold {ev['gold_reward'].mean():.3f} (reference "
                f"{ev['gold_reward_reference'][0]:.3f}) KL {ev['kl_to_reference'].mean():.2f} "
                f"length {ev['content_length'].mean():.1f} "
                f"run {row['per_prepare'][-1]['run_s']:.0f} s",
                flush=True,
            )
            # after every population, so an interrupted run keeps what it finished
            (out / "long.json").write_text(json.dumps(_jsonable(results)) + "\n")


def critic_table(results: dict[str, Any]) -> str:
    n = results["seeds"]
    lines = [
        "| variant | gold reward | win rate vs reference | KL to reference (nats) "
        f"| proxy reward | completion tokens sampled | compile (s) | run, {n} seeds (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in results["variants"].items():
        cells = [f"{row[k][0]:.2f} ± {row[k][1]:.2f}" for k in ("gold",)]
        cells += [
            f"{row['win'][0]:.3f} ± {row['win'][1]:.3f}",
            f"{row['kl'][0]:.2f} ± {row['kl'][1]:.2f}",
        ]
        cells += [f"{row['proxy'][0]:.2f} ± {row['proxy'][1]:.2f}", f"{row['tokens']:,.0f}"]
        cells += [f"{row['compile_s']:.0f}", f"{row['run_s']:.0f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    ref = next(iter(results["variants"].values()))["gold_reference"]
    lines.append("")
    lines.append(
        f"Reference (SFT) policy gold reward: {ref:.2f}. ± is the 95% t-interval over {n} seeds."
    )
    return "\n".join(lines) + "\n"


def plot_critic(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    for name, row in results["variants"].items():
        curve = np.asarray(row["gold_curve"], float)
        kernel = np.ones(10) / 10
        ax.plot(np.convolve(curve, kernel, mode="valid"), label=name, lw=1.2)
    ax.set_xlabel("iteration (64 sampled completions each)")
    ax.set_ylabel("gold reward (training batch, 10-iter. mean)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


DPO_BASE = ROOT / "configs" / "rlhf" / "dpo.yaml"
DPO_TUNING_SEEDS = (100, 101, 102)
DPO_TUNING_LAST = 5  # passes whose monitoring gold picks the beta


PLACEMENT_ARMS = (  # (name, algorithm, group_size, kl_placement)
    ("PPO, KL in the reward (own)", "ppo", 1, "own"),
    ("PPO, KL in the loss", "ppo", 1, "loss"),
    ("GRPO G=4, KL in the loss (own)", "grpo", 4, "own"),
    ("GRPO G=4, KL in the reward", "grpo", 4, "reward"),
)


def placement_configs(
    base: RLHFConfig, seeds: int, iterations: int, kl_target: float
) -> list[tuple[str, RLHFConfig]]:
    """`(name, config)` of every arm of `placement`: only the algorithm, the group size and
    `rl.kl_placement` differ."""
    population = dataclasses.replace(base.population, seeds=seeds, grid=())
    hparams = base.hparams.replace(kl_target=kl_target)
    arms = []
    for name, algorithm, group, placement in PLACEMENT_ARMS:
        rl = dataclasses.replace(
            base.rl,
            algorithm=algorithm,
            group_size=group,
            kl_placement=placement,
            iterations=iterations,
        )
        cfg = dataclasses.replace(base, rl=rl, population=population, hparams=hparams)
        arms.append((name, cfg))
    return arms


def placement(args: argparse.Namespace, base: RLHFConfig) -> None:
    arms = placement_configs(base, args.seeds, args.iterations, args.kl_target)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prepared = prepare(arms[0][1])
    acc = float(prepared.reward_model_accuracy)
    print(f"reward model held-out accuracy {acc:.3f}", flush=True)
    results: dict[str, Any] = {
        **_results_head(args, acc),
        "arms": {},
    }
    for name, cfg in arms:
        res = run_population(cfg, prepared)
        row = _arm_row(cfg, res)
        row["kl_in_reward"] = cfg.rl.kl_in_reward
        row["group_size"] = cfg.rl.group_size
        results["arms"][name] = row
        ev = res["eval"]
        results["reference_per_prompt"] = _reference_per_prompt(ev)
        _say_arm(name, res)
        (out / "placement.json").write_text(json.dumps(_jsonable(results)) + "\n")


def dpo_config(base: RLHFConfig, beta: float, seeds: int) -> RLHFConfig:
    """configs/rlhf/dpo.yaml's RL stage on `base`'s language, models, SFT and pairs, at one
    `dpo_beta`, seeds 0 .. seeds-1."""
    dpo = load_rlhf_config(DPO_BASE)
    hparams = dpo.hparams.replace(dpo_beta=beta)
    population = dataclasses.replace(base.population, seeds=seeds, grid=())
    return dataclasses.replace(base, rl=dpo.rl, hparams=hparams, population=population)


def run_seeds(cfg: RLHFConfig, prepared: Prepared, seeds: tuple[int, ...]) -> dict[str, Any]:
    """`run_population` for the members `seeds` (any seeds, not 0 .. n-1) of a one-member
    config, vmapped in one program."""
    import time

    import jax

    hparams = stack_rlhf_hparams([population_members(cfg)[0].hparams] * len(seeds))
    keys = member_keys(cfg, list(seeds))
    start = time.perf_counter()
    compiled = jax.jit(make_pipeline(cfg).population).lower(keys, hparams, prepared.frozen)
    compiled = compiled.compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    output, evaluation = jax.block_until_ready(compiled(keys, hparams, prepared.frozen))
    return {
        "metrics": {k: np.asarray(v) for k, v in output.metrics._asdict().items()},
        "eval": {k: np.asarray(v) for k, v in evaluation._asdict().items()},
        "compile_s": compile_s,
        "run_s": time.perf_counter() - start,
    }


def _arm_row(cfg: RLHFConfig, res: dict[str, Any]) -> dict[str, Any]:
    """One arm's entry of `dpo.json` (`res` from `run_population` or `run_seeds`)."""
    ev, m = res["eval"], res["metrics"]
    return {
        "algorithm": cfg.rl.algorithm,
        "dpo_beta": float(cfg.hparams.dpo_beta),
        "prompts_per_iteration": cfg.rl.prompts_per_iteration,
        "completions_per_iteration": cfg.rl.completions_per_iteration,
        "iterations": cfg.rl.iterations,
        "tokens": float(m["tokens"].sum(axis=1).mean()),
        "compile_s": res["compile_s"],
        "run_s": res["run_s"],
        "gold_reference": float(ev["gold_reward_reference"][0]),
        "gold_curve": m["gold_reward"].mean(axis=0),
        "kl_curve": m["kl"].mean(axis=0),
        "per_seed": {
            k: ev[k]
            for k in (
                "gold_reward",
                "win_rate_vs_reference",
                "kl_to_reference",
                "proxy_reward",
                "length",
            )
        },
        "per_prompt": {"gold": ev["gold_per_prompt"], "length": ev["content_length"]},
    }


def dpo(args: argparse.Namespace, base: RLHFConfig) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ppo_cfg = g2_configs(base, args.seeds, args.iterations, args.kl_target)[0][2]
    # one prepare for both arms: the DPO program also returns the pairs; PPO gets none
    prepared = prepare(dpo_config(base, args.dpo_betas[0], 1))
    ppo_prepared = prepared._replace(frozen=prepared.frozen._replace(pairs=None))
    acc = float(prepared.reward_model_accuracy)
    print(f"reward model held-out accuracy {acc:.3f}", flush=True)
    results: dict[str, Any] = {
        **_results_head(args, acc),
        "tuning_seeds": list(DPO_TUNING_SEEDS),
        "tuning_last_passes": DPO_TUNING_LAST,
        "tuning": {},
        "arms": {},
    }
    for beta in args.dpo_betas:
        cfg = dpo_config(base, beta, 1)
        res = run_seeds(cfg, prepared, DPO_TUNING_SEEDS)
        row = _arm_row(cfg, res)
        row["selection_gold"] = float(res["metrics"]["gold_reward"][:, -DPO_TUNING_LAST:].mean())
        results["tuning"][f"{beta:g}"] = row
        print(
            f"tuning dpo_beta={beta:g}: monitoring gold {row['selection_gold']:.3f}, eval gold "
            f"{row['per_seed']['gold_reward'].mean():.2f} KL "
            f"{row['per_seed']['kl_to_reference'].mean():.2f} "
            f"compile {res['compile_s']:.0f} s run {res['run_s']:.0f} s",
            flush=True,
        )
        (out / "dpo.json").write_text(json.dumps(_jsonable(results)) + "\n")
    best = max(results["tuning"].values(), key=lambda r: r["selection_gold"])["dpo_beta"]
    results["dpo_beta"] = best
    arms = [
        (f"DPO (beta {best:g})", dpo_config(base, best, args.seeds), prepared),
        (PPO_NAME, ppo_cfg, ppo_prepared),
    ]
    for name, cfg, prep in arms:
        res = run_population(cfg, prep)
        row = _arm_row(cfg, res)
        results["arms"][name] = row
        ev = res["eval"]
        results["reference_per_prompt"] = _reference_per_prompt(ev)
        _say_arm(name, res)
        (out / "dpo.json").write_text(json.dumps(_jsonable(results)) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("experiment", choices=("overopt", "critic", "g2", "dpo", "long", "placement"))
    p.add_argument("--out", default=str(ROOT / "docs" / "rlhf"))
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="RL seeds per setting (overopt 3, critic 8, g2 10, dpo 10, placement 10, long 4 "
        "per prepare seed)",
    )
    p.add_argument(
        "--prepare-seeds",
        type=int,
        default=3,
        help="long: references / reward models (prepare_seed 0 .. n-1)",
    )
    p.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="RL iterations (default: overopt 250, critic, g2, dpo and placement 150, long 40)",
    )
    p.add_argument(
        "--kl-targets",
        type=float,
        nargs="+",
        default=list(KL_TARGETS),
        help="overopt: the KL targets (nats), ascending",
    )
    p.add_argument(
        "--config", default=None, help="long: the config of the arms (default long.yaml)"
    )
    p.add_argument("--pairs-strong", type=int, default=1000)
    p.add_argument("--pairs-weak", type=int, default=150)
    p.add_argument(
        "--kl-target",
        type=float,
        default=4.0,
        help="critic, g2, dpo, placement: the KL target of every variant",
    )
    p.add_argument(
        "--dpo-betas",
        type=float,
        nargs="+",
        default=[0.1, 0.3, 1.0],
        help="dpo: the betas tried on the tuning seeds",
    )
    args = p.parse_args(argv)
    if any(t <= 0 for t in args.kl_targets) or list(args.kl_targets) != sorted(
        set(args.kl_targets)
    ):
        print(
            "rlhf_experiments: --kl-targets: expected distinct positive numbers, ascending",
            file=sys.stderr,
        )
        return 2
    if any(v is not None and v < 1 for v in (args.seeds, args.iterations, args.prepare_seeds)):
        print(
            "rlhf_experiments: --seeds, --prepare-seeds and --iterations: expected integers >= 1",
            file=sys.stderr,
        )
        return 2
    if args.config is not None and args.experiment != "long":
        print(
            f"rlhf_experiments: --config: only long takes a config ({args.experiment} runs "
            "configs/rlhf/ppo.yaml)",
            file=sys.stderr,
        )
        return 2
    if args.experiment == "long":
        args.seeds, args.iterations = args.seeds or 4, args.iterations or 40
        try:
            config = load_rlhf_config(args.config or LONG)
        except (OSError, ValueError) as err:
            print(f"rlhf_experiments: --config: {err}", file=sys.stderr)
            return 2
        long(args, config)
        return 0
    base = load_rlhf_config(BASE)
    if args.experiment == "overopt":
        args.seeds, args.iterations = args.seeds or 3, args.iterations or 250
        overopt(args, base)
    elif args.experiment == "critic":
        args.seeds, args.iterations = args.seeds or 8, args.iterations or 150
        critic(args, base)
    elif args.experiment == "g2":
        args.seeds, args.iterations = args.seeds or 10, args.iterations or 150
        g2(args, base)
    elif args.experiment == "placement":
        args.seeds, args.iterations = args.seeds or 10, args.iterations or 150
        placement(args, base)
    else:
        args.seeds, args.iterations = args.seeds or 10, args.iterations or 150
        dpo(args, base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
