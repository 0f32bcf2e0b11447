"""The `purejaxppo` command: argument parsing and dispatch to each part's CLI.

    purejaxppo train | eval | envs ...   (purejaxppo.run.cli)
    purejaxppo sweep SWEEP.yaml ...      (purejaxppo.sweep.cli)
    purejaxppo bench ...                 (purejaxppo.bench.cli)
    purejaxppo rlhf RLHF.yaml ...        (purejaxppo.rlhf.cli)
    purejaxppo plot RUN_OR_SWEEP... ...  (purejaxppo.sweep.compare)

Every part registers its subcommands (`register(subparsers)`, setting `func`).
User errors print one line on stderr and exit with status 2; see docs/cli.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (usage is in `--help`), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _version() -> str:
    """`purejaxppo 0.1.0 (jax 0.10.2, flax ..., gymnax ...)` from the installed metadata."""
    from importlib import metadata

    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    libs = ", ".join(f"{n} {installed(n)}" for n in ("jax", "flax", "optax", "gymnax"))
    return f"purejaxppo {installed('purejaxppo')} ({libs})"


def build_parser() -> argparse.ArgumentParser:
    """The `purejaxppo` argument parser (all subcommands)."""
    from purejaxppo.bench import cli as bench_cli
    from purejaxppo.rlhf import cli as rlhf_cli
    from purejaxppo.run import cli as run_cli
    from purejaxppo.sweep import cli as sweep_cli
    from purejaxppo.sweep import compare as compare_cli

    parser = _Parser(
        prog="purejaxppo",
        description="PPO as one pure JAX function: train from YAML configs, evaluate runs, list "
        "environments, sweep hyperparameters, benchmark, RLHF in miniature.",
        epilog="Docs: docs/cli.md and docs/configs.md. Exit status: 0 ok, 1 NaN/inf stop, "
        "2 bad input, 130/143 interrupted (checkpoint saved).",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run_cli.register(sub)
    sweep_cli.register(sub)
    bench_cli.register(sub)
    rlhf_cli.register(sub)
    compare_cli.register(sub)
    return parser


def _quiet_orbax() -> None:
    """Keep orbax's absl log lines off stderr ("directory is read only", parse errors of a
    damaged checkpoint): the CLI reports every failure itself, in one line."""
    import logging

    logging.getLogger("absl").setLevel(logging.CRITICAL)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `purejaxppo` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Custom envs are import strings (`env_name: mypkg.envs:Corridor`): find modules in the
    # current folder as `python -m purejaxppo` would, also from the `purejaxppo` script.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    if args.command in ("sweep", "train"):
        # One XLA host device per core, fixed before JAX starts its backends: a sweep's
        # population and train's seeds are split over them.
        from purejaxppo.run.devices import use_all_cores

        use_all_cores()
    _quiet_orbax()
    from purejaxppo.run.checkpoint import CheckpointError
    from purejaxppo.run.config import ConfigError
    from purejaxppo.run.errors import UsageError
    from purejaxppo.run.guards import Interrupted, interrupts_raise
    from purejaxppo.run.rundir import RunDirError

    try:
        with interrupts_raise():  # train's run installs its own checkpointing handlers
            return args.func(args)
    except (UsageError, ConfigError, RunDirError, CheckpointError) as err:
        print(f"purejaxppo {args.command}: error: {err}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    except Interrupted as stop:
        kept = INTERRUPTED_KEEPS.get(args.command, "nothing was written")
        print(f"purejaxppo {args.command}: interrupted ({stop.name}); {kept}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        # compiled code may still run in XLA's threads: exit without tearing them down
        # (locks and temporary files were released on the way here)
        os._exit(stop.exit_code)
    except OSError as err:  # a disk that fills or a place that turns read-only mid-write
        where = f"{err.filename}: " if err.filename else ""
        reason = err.strerror or type(err).__name__
        print(f"purejaxppo {args.command}: error: {where}{reason}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT


# What an interrupted command leaves behind (said when SIGINT/SIGTERM stops it).
INTERRUPTED_KEEPS = {
    "train": "nothing more was written",
    "sweep": "finished chunks are kept, rerun the command to resume",
    "rlhf": "nothing was written (an RLHF run folder is written when the run ends)",
    "bench": "the report is written at the end; nothing was kept",
    "eval": "nothing was written",
    "plot": "the figure was not written",
    "envs": "nothing was written",
}


if __name__ == "__main__":
    sys.exit(main())
