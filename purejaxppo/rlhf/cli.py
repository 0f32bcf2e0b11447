"""Host shell: `purejaxppo rlhf CONFIG.yaml --out DIR` runs the RLHF pipeline in miniature
(SFT reference, noisy preference pairs, Bradley–Terry reward model, then PPO, GRPO or DPO on
the pairs for a population of seeds x hyperparameters in one compiled program) and writes
summary.json, metrics.csv and plots into DIR.

The folder is written under a temporary name next to DIR and renamed when the run is done,
so an interrupted or failed run leaves an old DIR (with --overwrite) untouched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MARKER = "rlhf.yaml"  # the file that makes a folder an RLHF run folder (run/outdir.py)
EXIT_NONFINITE = 1


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `rlhf` subcommand to the `purejaxppo` parser's subparsers (sets `func`)."""
    p = subparsers.add_parser(
        "rlhf",
        help="RLHF in miniature: SFT, a reward model, then PPO or GRPO against it (or DPO)",
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


def default_out(config: Path) -> Path:
    """`runs/rlhf-<config stem>-<YYYYmmdd-HHMMSS>` (suffixed when taken)."""
    from purejaxppo.run.rundir import default_run_dir

    return default_run_dir(f"rlhf-{config.stem}")


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
    """`purejaxppo rlhf`: validate everything, take the output folder, run, write the folder,
    print the result. Exit 1 when a stage produced NaN/inf (nothing is written then)."""
    from purejaxppo.rlhf.yamlconfig import dump_rlhf_config, load_rlhf_config
    from purejaxppo.run import jaxcache, outdir
    from purejaxppo.run.errors import ConfigError

    config_path = Path(args.config)
    if config_path.is_dir():
        hint = (
            f"; its config is {config_path / MARKER}: purejaxppo rlhf "
            f"{config_path / MARKER} --out NEW_FOLDER"
            if (config_path / MARKER).is_file()
            else ""
        )
        raise ConfigError(f"{config_path}: a folder, not a config file{hint}")
    cfg = load_rlhf_config(config_path, args.set)
    out = Path(args.out) if args.out else default_out(config_path)
    outdir.check_out(out, "rlhf", overwrite=args.overwrite)
    with outdir.FolderLock(out, "rlhf"):  # also proves the place is writable, before any work
        outdir.check_out(out, "rlhf", overwrite=args.overwrite)
        jaxcache.enable()  # before anything compiles
        try:
            summary = _run(cfg, out, dump_rlhf_config(cfg))
        except NonFiniteError as err:
            print(f"purejaxppo rlhf: error: {err}; nothing was written", file=sys.stderr)
            return EXIT_NONFINITE
    gold_ref = summary["gold_reward_reference"]
    _say(
        f"done: gold reward {gold_ref:.2f} (reference) -> {summary['gold_reward_final']:.2f}, "
        f"win rate vs reference {summary['win_rate_vs_reference']:.3f}, KL "
        f"{summary['kl_to_reference_final']:.2f} nats, reward model accuracy "
        f"{summary['reward_model_accuracy']:.3f} ({summary['timings_s']['total']:.0f} s) -> {out}"
    )
    gain = summary["gold_gain_within_length"]
    _say(
        f"  content length {summary['content_length_reference']:.1f} (reference) -> "
        f"{summary['content_length_final']:.1f}; gold gain at equal lengths "
        + (f"{gain:+.2f}" if gain is not None else "n/a")
        + " (summary.json: gold_by_length, length_controlled)"
    )
    return 0


class NonFiniteError(RuntimeError):
    """A stage of the pipeline produced NaN/inf; `str(err)` names the stage and metric."""


def check_finite(stage: str, metrics: dict[str, Any], labels: list[str] | None = None) -> None:
    """Raise `NonFiniteError` at the first non-finite value of `metrics` (name -> `[N]` steps,
    or `[M, N]` per member labelled by `labels`)."""
    import numpy as np

    first = None
    for name, values in metrics.items():
        values = np.asarray(values, np.float64)
        values = values.reshape(1, -1) if values.ndim < 2 else values
        bad = np.argwhere(~np.isfinite(values))
        if bad.size:
            m, step = bad[np.argmin(bad[:, 1])]
            if first is None or step < first[0]:
                first = (int(step), int(m), name)
    if first is not None:
        step, m, name = first
        who = f" (member {labels[m]})" if labels else ""
        raise NonFiniteError(
            f"{stage}: non-finite {name} at {'iteration' if labels else 'step'} {step}{who}; "
            "try a lower learning rate"
        )


def _run(cfg: Any, out: Path, cfg_yaml: str) -> dict[str, Any]:
    from purejaxppo.rlhf.config import population_members
    from purejaxppo.rlhf.report import build_summary, write_run_folder
    from purejaxppo.rlhf.runner import run_population, run_prepare
    from purejaxppo.run import outdir

    start = time.perf_counter()
    _say(
        f"prepare: SFT {cfg.sft.steps} steps, {cfg.reward.train_pairs} preference pairs "
        f"(gold {cfg.language.gold!r}, {cfg.reward.flip_prob:.0%} flipped), reward model "
        f"{cfg.reward.steps} steps"
    )
    prepared, t_prepare = run_prepare(cfg, _say)
    check_finite("SFT (sft.learning_rate)", {"loss": prepared.sft_losses})
    check_finite("reward model (reward.learning_rate)", {"loss": prepared.reward_losses})
    _say(
        f"  reward model held-out accuracy {float(prepared.reward_model_accuracy):.3f} "
        f"(train {float(prepared.reward_model_train_accuracy):.3f}; the longer answer wins: "
        f"{float(prepared.length_rule_accuracy):.3f}) [{t_prepare:.0f} s]"
    )
    n = len(population_members(cfg))
    if cfg.rl.algorithm == "dpo":
        _say(
            f"DPO: {n} member{'s' if n != 1 else ''} x {cfg.rl.iterations} passes over "
            f"{cfg.reward.train_pairs} pairs ({cfg.rl.minibatches} minibatches), one program"
        )
    else:
        _say(
            f"{cfg.rl.algorithm.upper()}: {n} member{'s' if n != 1 else ''} x "
            f"{cfg.rl.iterations} iterations x {cfg.rl.completions_per_iteration} completions, "
            "one program"
        )
    run = run_population(cfg, prepared, _say)
    members, output, evaluation = run.members, run.output, run.evaluation
    labels = [m.label for m in members]
    check_finite("RL (hparams.learning_rate)", output.metrics._asdict(), labels)
    timings = {
        "prepare": t_prepare,
        "compile": run.compile_s,
        "train": run.run_s,
        "total": time.perf_counter() - start,
    }
    summary = build_summary(cfg, members, prepared, output.metrics, evaluation, timings)
    _say(_member_table(summary))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    aside = None
    try:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes 0700; a run folder gets the usual mode
        write_run_folder(tmp, cfg_yaml, summary, members, output.metrics, evaluation)
        if out.exists():
            aside = outdir.set_aside(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if aside is not None and not out.exists():
            aside.rename(out)
        raise
    if aside is not None:
        outdir.drop_aside(aside)
    return summary


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run it as: purejaxppo rlhf CONFIG.yaml")
