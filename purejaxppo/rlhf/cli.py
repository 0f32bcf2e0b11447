"""Host shell: `purejaxppo rlhf CONFIG.yaml --out DIR` runs the RLHF pipeline in miniature
(SFT reference, noisy preference pairs, Bradley–Terry reward model, then PPO or GRPO for a
population of seeds x hyperparameters in one compiled program) and writes summary.json,
metrics.csv and plots into DIR.

The folder is written under a temporary name next to DIR and renamed when the run is done,
so an interrupted or failed run leaves an old DIR (with --overwrite) untouched.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from purejaxppo.run.rundir import RunDirError

MARKER = "rlhf.yaml"  # the file that makes a folder an RLHF run folder


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `rlhf` subcommand to the `purejaxppo` parser's subparsers (sets `func`)."""
    p = subparsers.add_parser(
        "rlhf",
        help="RLHF in miniature: SFT, a reward model, then PPO or GRPO against it",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("config", help="RLHF.yaml, e.g. configs/rlhf/ppo.yaml (see docs/rlhf.md)")
    p.add_argument("--out", default=None, help="output folder (default runs/rlhf-NAME-STAMP)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value, e.g. --set rl.iterations=50 (repeatable)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an RLHF run folder at --out")
    p.set_defaults(func=run_command)
    return p


def check_out(path: Path, overwrite: bool) -> None:
    """Refuse an `--out` that would clobber something (nothing is touched here)."""
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--out {path}: exists and is not a folder")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise RunDirError(
                f"--out {path}: folder exists and is not empty; pass --overwrite to replace it"
            )
        if not (path / MARKER).is_file():
            raise RunDirError(
                f"--out {path}: --overwrite only replaces an RLHF run folder (with {MARKER}); "
                "this folder is not one"
            )


def default_out(config: Path) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"rlhf-{config.stem}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def _say(text: str) -> None:
    print(text, flush=True)


def _member_table(summary: dict[str, Any]) -> str:
    lines = [f"{'member':<28} {'gold':>6} {'proxy':>7} {'KL':>7} {'win rate':>9}"]
    for row in summary["members"]:
        lines.append(
            f"{row['label']:<28} {row['gold_reward_final']:6.2f} {row['proxy_reward_final']:7.2f} "
            f"{row['kl_to_reference_final']:7.2f} {row['win_rate_vs_reference']:9.3f}"
        )
    return "\n".join(lines)


def run_command(args: argparse.Namespace) -> int:
    """`purejaxppo rlhf`: validate everything, run, write the folder, print the result."""
    from purejaxppo.rlhf.yamlconfig import dump_rlhf_config, load_rlhf_config

    config_path = Path(args.config)
    cfg = load_rlhf_config(config_path, args.set)
    out = Path(args.out) if args.out else default_out(config_path)
    check_out(out, args.overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.parent.is_dir():
        raise RunDirError(f"--out {out}: its parent is not a folder")
    summary = _run(cfg, out, dump_rlhf_config(cfg))
    gold_ref = summary["gold_reward_reference"]
    _say(
        f"done: gold reward {gold_ref:.2f} (reference) -> {summary['gold_reward_final']:.2f}, "
        f"win rate vs reference {summary['win_rate_vs_reference']:.3f}, KL "
        f"{summary['kl_to_reference_final']:.2f} nats, reward model accuracy "
        f"{summary['reward_model_accuracy']:.3f} ({summary['timings_s']['total']:.0f} s) -> {out}"
    )
    return 0


def _run(cfg: Any, out: Path, cfg_yaml: str) -> dict[str, Any]:
    from purejaxppo.rlhf.config import population_members
    from purejaxppo.rlhf.report import build_summary, write_run_folder
    from purejaxppo.rlhf.runner import run_population, run_prepare

    start = time.perf_counter()
    _say(
        f"prepare: SFT {cfg.sft.steps} steps, {cfg.reward.train_pairs} preference pairs "
        f"(gold {cfg.language.gold!r}, {cfg.reward.flip_prob:.0%} flipped), reward model "
        f"{cfg.reward.steps} steps"
    )
    prepared, t_prepare = run_prepare(cfg)
    _say(
        f"  reward model held-out accuracy {float(prepared.reward_model_accuracy):.3f} "
        f"(train {float(prepared.reward_model_train_accuracy):.3f}) [{t_prepare:.0f} s]"
    )
    n = len(population_members(cfg))
    _say(
        f"{cfg.rl.algorithm.upper()}: {n} member{'s' if n != 1 else ''} x {cfg.rl.iterations} "
        f"iterations x {cfg.rl.completions_per_iteration} completions, one program"
    )
    run = run_population(cfg, prepared)
    members, output, evaluation = run.members, run.output, run.evaluation
    timings = {
        "prepare": t_prepare,
        "compile": run.compile_s,
        "train": run.run_s,
        "total": time.perf_counter() - start,
    }
    summary = build_summary(cfg, members, prepared, output.metrics, evaluation, timings)
    _say(_member_table(summary))
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        write_run_folder(tmp, cfg_yaml, summary, members, output.metrics, evaluation)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run it as: purejaxppo rlhf CONFIG.yaml")
