"""`purejaxppo sweep SWEEP.yaml`: run a population, resumably, and report (host side).

    purejaxppo sweep configs/sweeps/cartpole_lr.yaml [--out DIR] [--members-per-device W]
        [--max-batch N]
        [--coordinator HOST:PORT --num-processes N --process-id I | --distributed]

The output folder holds:

    sweep.json        what is being swept (refuses a changed search space on rerun)
    SWEEP.yaml        a copy of the sweep file it holds
    chunks/gGG-cCCCC.npz   one per finished chunk (written atomically)
    results.csv summary.csv best.yaml curves.png sensitivity.png

Each device trains a fixed number of members at once (`--members-per-device`,
capped by `--max-batch` and by memory), never derived from the device count, so
the results are the same bits on any number of devices or processes.

Re-running the command trains only the members that no chunk file holds, so a
killed sweep loses at most the chunk in flight, and more `seeds` train only the
new seeds' members. With several processes, each writes the rows its devices
trained (`gGG-cCCCC.pPPP.npz`) and process 0 merges them; the output folder
must then be on a filesystem every process sees.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from purejaxppo.run.config import ConfigError
from purejaxppo.run.guards import Interrupted, interrupts_raise
from purejaxppo.run.rundir import RunDirError
from purejaxppo.sweep.command import run_sweep
from purejaxppo.sweep.store import SweepError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


# =========================================================================== argparse
def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `sweep` subcommand to the `purejaxppo` parser's subparsers (sets `func=run`)."""
    p = subparsers.add_parser(
        "sweep",
        help="run a hyperparameter sweep (hparam sets x seeds) and rank the sets",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("sweep", help="SWEEP.yaml: base config, search space, seeds")
    p.add_argument("--out", default=None, help="output folder (default runs/sweeps/NAME)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override the sweep file: seeds=8, or a run-config key over its base "
        "(ppo.total_timesteps=100000, hparams.gamma=0.98); repeatable. A rerun into the same "
        "folder must give the same sweep (only seeds may change)",
    )
    p.add_argument(
        "--members-per-device",
        type=int,
        default=None,
        metavar="W",
        help="members each device trains at once (the vmap width; default 16 on a CPU, 1024 "
        "on a GPU/TPU). Members run in balanced groups of at most W, one group per device per "
        "chunk; the same W gives the same bits on any number of devices or processes",
    )
    p.add_argument(
        "--max-batch",
        type=int,
        default=None,
        help="cap on the members per device (default: as many as fit in device memory)",
    )
    p.add_argument(
        "--segment-updates",
        type=int,
        default=None,
        help="PPO updates per device call (default 32; progress and metrics arrive per segment)",
    )
    p.add_argument("--top", type=int, default=5, help="sets to print and plot (default 5)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--no-tensorboard",
        action="store_true",
        help="no TensorBoard files (default: OUT/tensorboard/, one folder per set, seed means)",
    )
    g = p.add_argument_group("several processes (hosts); see docs/sweeps.md")
    g.add_argument("--coordinator", default=None, help="HOST:PORT of process 0")
    g.add_argument("--num-processes", type=int, default=None, help="processes in the run")
    g.add_argument("--process-id", type=int, default=None, help="this process's rank")
    g.add_argument(
        "--distributed",
        action="store_true",
        help="join a multi-process run detected by JAX (SLURM, Open MPI, TPU pod, ...)",
    )
    p.set_defaults(func=run)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m purejaxppo.sweep.cli ...`: the `sweep` subcommand on its own."""
    from purejaxppo.run.devices import use_all_cores

    use_all_cores()
    parser = argparse.ArgumentParser(prog="purejaxppo")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def run(args: argparse.Namespace) -> int:
    """Run the sweep described by `args`; returns the exit status (2: bad input)."""
    try:
        with interrupts_raise():
            return run_sweep(args, sys.stdout, sys.stderr)
    except (ConfigError, SweepError, RunDirError) as err:
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"purejaxppo sweep: error: {text}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as stop:
        name = stop.name if isinstance(stop, Interrupted) else "SIGINT"
        print(
            f"purejaxppo sweep: interrupted ({name}); finished chunks are kept, rerun the "
            "command to resume",
            file=sys.stderr,
            flush=True,
        )
        sys.stdout.flush()
        # XLA may still run the chunk in its threads: exit without tearing them down (the
        # folder's lock and files were released on the way here)
        os._exit(stop.exit_code if isinstance(stop, Interrupted) else EXIT_INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
