"""purejaxppo, PureJaxRL and rejax on the CartPole recipe, in turn, in one run: ratios, ranges.

    python scripts/side_by_side.py [--purejaxrl PATH] [--rejax PYTHON] [--seeds 1,8] [--rounds 3]

Each round runs, for every seed count, `scripts/time_cartpole.py` (purejaxppo's
`jit(vmap(train))` on one device) and each peer given: `scripts/time_purejaxrl.py`
(PureJaxRL's own PPO, its seeds vmapped on one device; `--purejaxrl` a checkout)
and `scripts/time_rejax.py` (rejax's PPO through its own vmap API, run by
`--rejax PYTHON`, the interpreter of rejax's own environment, since rejax 0.1.3
needs gymnax 0.0.x) as fresh processes, one right after the other, the order
rotated each round. Either peer may be left out; one that is given but not
usable is reported in one line and the run stops (exit status 2). The load
average before and after each round is printed (other work on a shared
machine slows whichever runs at that moment). Both scripts time
`lower + compile` of the whole `train` and full 5e5-step runs of the compiled
function (the fastest of `--repeats` counts); this script reports per seed
count the range of each over the rounds and the range of the per-round ratios
(purejaxppo / peer for steps/s, peer / purejaxppo for compile time,
so > 1 favours purejaxppo either way).
A busy machine slows whichever runs at that moment, so compare ratios, not
absolute figures, and read the ranges.

Both run with one XLA host device (`XLA_FLAGS=--xla_force_host_platform_device_count=1`
unless `XLA_FLAGS` is set): a per-device comparison. The PureJaxRL side needs
`distrax` importable (see `scripts/time_purejaxrl.py`); `--peer-pythonpath DIR`
adds DIR to its `PYTHONPATH` only. rejax's interpreter gets no `PYTHONPATH` of ours.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMPILE = re.compile(r"compile\s+([0-9.]+) s")
# both scripts print the fastest of their timed runs: "best  N steps/s" / "N steps/s (best"
PROGRAM = re.compile(r"program\s+\d+ fusions, \d+ loops")
STEPS = re.compile(r"best\s+([0-9,]+) steps/s|([0-9,]+) steps/s \(best")


def _measure(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """`(compile seconds, steps/s)` printed by one of the two timing scripts (whose
    `program` line, the optimised program's fusions and loops, is echoed)."""
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    text = out.stdout + out.stderr
    compile_s, steps = COMPILE.search(text), STEPS.search(text)
    if out.returncode != 0 or compile_s is None or steps is None:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{text[-2000:]}")
    program = PROGRAM.search(text)
    if program:
        print(f"  ({Path(cmd[1]).name}: {program.group(0).strip()})")
    return float(compile_s.group(1)), float((steps.group(1) or steps.group(2)).replace(",", ""))


def _span(values: list[float], fmt: str) -> str:
    lo, hi = min(values), max(values)
    return format(lo, fmt) if lo == hi else f"{format(lo, fmt)}-{format(hi, fmt)}"


def rejax_problem(python: str) -> str | None:
    """None when `python` runs and imports rejax, else a one-line reason."""
    if shutil.which(python) is None and not Path(python).is_file():
        return f"--rejax: expected the python of rejax's environment, {python} not found"
    probe = subprocess.run(
        [python, "-c", "import rejax"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return f"--rejax: {python} cannot import rejax (pip install rejax==0.1.3 gymnax==0.0.9)"
    return None


def _load() -> str:
    """The 1/5/15-minute load average, as a short string."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f}/{five:.1f}/{fifteen:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--purejaxrl", default=None, help="a PureJaxRL checkout (optional)")
    parser.add_argument(
        "--rejax", default=None, metavar="PYTHON", help="python of rejax's venv (optional)"
    )
    parser.add_argument("--seeds", default="1,8", help="seed counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per measurement")
    parser.add_argument("--peer-pythonpath", default=None, help="extra PYTHONPATH for PureJaxRL")
    args = parser.parse_args()
    try:
        seed_counts = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        print(f"--seeds: expected comma-separated integers, got {args.seeds!r}", file=sys.stderr)
        return 2
    if args.rounds < 1 or min(seed_counts) < 1:
        print("--rounds and --seeds: expected integers >= 1", file=sys.stderr)
        return 2
    if args.purejaxrl is not None and not (Path(args.purejaxrl) / "purejaxrl" / "ppo.py").is_file():
        print(
            f"--purejaxrl: expected a checkout holding purejaxrl/ppo.py, got {args.purejaxrl}",
            file=sys.stderr,
        )
        return 2
    if args.rejax is not None and (problem := rejax_problem(args.rejax)):
        print(problem, file=sys.stderr)
        return 2
    if args.purejaxrl is None:
        print("PureJaxRL: skipped (no --purejaxrl checkout given)")
    if args.rejax is None:
        print("rejax: skipped (no --rejax PYTHON given)")
    env = dict(os.environ)
    env.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    env.setdefault("JAX_PLATFORMS", "cpu")
    peer_env = dict(env)
    if args.peer_pythonpath:
        peer_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (args.peer_pythonpath, env.get("PYTHONPATH")) if p
        )
    rejax_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    py = sys.executable
    names = ["purejaxppo"]
    names += ["PureJaxRL"] if args.purejaxrl else []
    names += ["rejax"] if args.rejax else []
    results: dict[int, dict[str, list[tuple[float, float]]]] = {
        s: {n: [] for n in names} for s in seed_counts
    }
    for r in range(args.rounds):
        print(f"round {r + 1}: load average {_load()} before")
        for seeds in seed_counts:
            tail = ["--seeds", str(seeds), "--repeats", str(args.repeats)]
            cmds = {"purejaxppo": ([py, str(HERE / "time_cartpole.py"), *tail], env)}
            if args.purejaxrl:
                script = str(HERE / "time_purejaxrl.py")
                cmds["PureJaxRL"] = ([py, script, "--purejaxrl", args.purejaxrl, *tail], peer_env)
            if args.rejax:
                cmds["rejax"] = ([args.rejax, str(HERE / "time_rejax.py"), *tail], rejax_env)
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                cmd, cmd_env = cmds[name]
                results[seeds][name].append(_measure(cmd, cmd_env))
                c, s = results[seeds][name][-1]
                print(
                    f"round {r + 1}, {seeds} seed(s), {name}: compile {c:.2f} s, {s:,.0f} steps/s",
                    flush=True,
                )
        print(f"round {r + 1}: load average {_load()} after", flush=True)
    print()
    print(
        "| seeds | peer | purejaxppo steps/s | peer steps/s | ratio | purejaxppo compile "
        "| peer compile | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for seeds in seed_counts:
        ours = results[seeds]["purejaxppo"]
        for name in names[1:]:
            peer = results[seeds][name]
            speed = [o[1] / p[1] for o, p in zip(ours, peer, strict=True)]
            comp = [p[0] / o[0] for o, p in zip(ours, peer, strict=True)]
            print(
                f"| {seeds} | {name} | {_span([o[1] / 1e3 for o in ours], '.0f')} k "
                f"| {_span([p[1] / 1e3 for p in peer], '.0f')} k "
                f"| {_span(speed, '.2f')}x (median {statistics.median(speed):.2f}) "
                f"| {_span([o[0] for o in ours], '.1f')} s "
                f"| {_span([p[0] for p in peer], '.1f')} s "
                f"| {_span(comp, '.2f')}x (median {statistics.median(comp):.2f}) |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
