"""`purejaxppo bench`: the single-command benchmark (host side).

    purejaxppo bench [--quick | --full] [--envs A,B,...] [--seeds N] [--out DIR] [--overwrite]

Default mode fits in about 5 minutes on a 2-core CPU, `--quick` in about one,
`--full` trains every suite config to its end. The output folder (default
`runs/bench-<YYYYmmdd-HHMMSS>`) receives bench.json, BENCHMARKS.md and PNG
plots. Bad input (unknown env, unusable --out) prints one line and exits 2
before anything is measured.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

EXIT_BAD_INPUT = 2


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `bench` subcommand to the `purejaxppo` parser's subparsers (sets `func=run`)."""
    from purejaxppo.bench.suite import PLANS

    quick, default = PLANS["quick"], PLANS["default"]
    p = subparsers.add_parser(
        "bench",
        help="benchmark speed, scaling, utilisation and returns; write a report",
        description="Measure compile time, steady steps/s, time to the solve threshold and\n"
        "final return per env, each run as `purejaxppo train --seeds N` runs it; the\n"
        "reference recipe's steps/s over the whole machine and per device; steps/s\n"
        "against num_envs and population size; FLOP utilisation against a matmul peak\n"
        "measured in the same run, also of a compute-bound wide network; installed peers\n"
        "(Stable-Baselines3; rejax with --rejax) on the same recipe. Writes bench.json,\n"
        "BENCHMARKS.md and PNGs.",
        epilog="Examples:\n"
        "  purejaxppo bench --quick\n"
        "  purejaxppo bench --envs CartPole-v1,Acrobot-v1 --out runs/bench-cartpole\n"
        "  purejaxppo bench --full\n"
        "Docs: docs/benchmark.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        action="store_true",
        help=f"about a minute: {', '.join(quick.envs)} only, {quick.seeds} seeds, short runs",
    )
    mode.add_argument(
        "--full",
        action="store_true",
        help="train every suite config to total_timesteps with more seeds and finer scaling "
        "(as long as it takes)",
    )
    p.add_argument(
        "--envs",
        metavar="A,B",
        help="comma-separated env ids, configs/ names or YAML paths "
        f"(default: {', '.join(default.envs)}; --quick: {', '.join(quick.envs)})",
    )
    p.add_argument("--seeds", type=int, metavar="N", help="seeds per env (default by mode)")
    p.add_argument(
        "--out", metavar="DIR", help="report folder (default runs/bench-<YYYYmmdd-HHMMSS>)"
    )
    p.add_argument(
        "--rejax",
        metavar="PYTHON",
        help="time rejax as a peer with this interpreter (rejax's own venv, which needs "
        "gymnax 0.0.x); skipped when not given",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the report in an existing benchmark folder given with --out",
    )
    p.set_defaults(func=run)
    return p


def _take_out(out: Path, overwrite: bool) -> Any:
    """Check --out (empty, new, or a benchmark folder with --overwrite), lock it for the
    whole run and check that it is writable; returns the held `FolderLock`. Nothing on disk
    changes when it is refused."""
    from purejaxppo.bench.suite import BenchInputError
    from purejaxppo.run import outdir
    from purejaxppo.run.rundir import RunDirError

    lock = None
    try:
        outdir.check_out(out, "bench", overwrite=overwrite)
        lock = outdir.FolderLock(out, "bench")
        outdir.check_out(out, "bench", overwrite=overwrite)
        out.mkdir(parents=True, exist_ok=True)
        outdir.check_writable(out)
    except (RunDirError, OSError) as err:
        if lock is not None:
            lock.release()
        text = str(err) if isinstance(err, RunDirError) else f"--out {out}: {err.strerror}"
        raise BenchInputError(text) from None
    return lock


def _command(args: argparse.Namespace, out: Path) -> str:
    """The command line that reproduces this run (with the --out actually used)."""
    words = ["purejaxppo", "bench"]
    words += ["--quick"] if args.quick else ["--full"] if args.full else []
    words += ["--envs", args.envs] if args.envs else []
    words += ["--seeds", str(args.seeds)] if args.seeds is not None else []
    words += ["--rejax", args.rejax] if getattr(args, "rejax", None) else []
    return " ".join([*words, "--out", str(out)])


def _print(line: str, start: float) -> None:
    print(f"[{time.perf_counter() - start:6.1f}s] {line}", flush=True)


def run(args: argparse.Namespace) -> int:
    """Run `purejaxppo bench` from parsed arguments; returns the exit status."""
    from purejaxppo.bench.suite import PLANS, BenchInputError, parse_envs, resolve_env
    from purejaxppo.run.devices import use_all_cores

    start = time.perf_counter()
    use_all_cores()  # one XLA host device per core, before jax starts its backends
    try:
        plan = PLANS["quick" if args.quick else "full" if args.full else "default"]
        if args.seeds is not None and args.seeds < 1:
            raise BenchInputError(f"--seeds: expected a positive integer, got {args.seeds}")
        names = parse_envs(args.envs, plan.envs)
        out = Path(args.out or f"runs/bench-{time.strftime('%Y%m%d-%H%M%S')}")
        specs = [resolve_env(n) for n in names]
        lock = _take_out(out, args.overwrite)
    except BenchInputError as err:
        print(f"purejaxppo bench: error: {err}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT

    import dataclasses

    plan = dataclasses.replace(plan, envs=names)
    if args.seeds is not None:
        plan = dataclasses.replace(plan, seeds=args.seeds)

    from purejaxppo.bench.headline import headline
    from purejaxppo.bench.measure import run_benchmark
    from purejaxppo.bench.report import write_report

    with lock:
        result = run_benchmark(
            plan,
            specs,
            lambda line: _print(line, start),
            _command(args, out),
            rejax_python=getattr(args, "rejax", None),
        )
        paths = write_report(result, out)
    head = headline(result)
    if head.single_seed_steps_per_s:
        _print(
            f"reference recipe: {head.single_seed_steps_per_s:,.0f} steps/s with 1 seed "
            f"(issue's PureJaxRL figure {result.reference.purejaxrl_steps_per_s:,.0f})",
            start,
        )
    if head.multi_seed_steps_per_s and head.per_device_steps_per_s:
        _print(
            f"reference recipe, {head.multi_seed_members} seeds: "
            f"{head.multi_seed_steps_per_s:,.0f} steps/s on the whole machine "
            f"({head.multi_seed_devices} device(s)), {head.per_device_steps_per_s:,.0f} "
            "steps/s on one device",
            start,
        )
    if head.compute_utilisation is not None and head.compute_hidden_sizes:
        _print(
            f"compute-bound point ({'x'.join(map(str, head.compute_hidden_sizes))}): "
            f"{head.compute_gflops:,.1f} GFLOP/s = {head.compute_utilisation:.1%} of the "
            "matmul peak",
            start,
        )
    _print(f"report: {', '.join(str(p) for p in paths)}", start)
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit status 2 (as the `purejaxppo` parser)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m purejaxppo.bench.cli bench ...`: the subcommand without the main CLI."""
    parser = _Parser(prog="purejaxppo")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
