"""purejaxppo and PureJaxRL on the CartPole recipe, alternately, in one run: ratios and ranges.

    python scripts/side_by_side.py --purejaxrl PATH [--seeds 1,8] [--rounds 3]

Each round runs, for every seed count, `scripts/time_purejaxrl.py` (PureJaxRL's
own PPO, its seeds vmapped on one device) and `scripts/time_cartpole.py`
(purejaxppo's `jit(vmap(train))`, the same on one device) as fresh processes,
one right after the other, alternating which goes first. Both scripts time
`lower + compile` of the whole `train` and full 5e5-step runs of the compiled
function (the fastest of `--repeats` counts); this script reports per seed
count the range of each over the rounds and the range of the per-round ratios
(purejaxppo / PureJaxRL for steps/s, PureJaxRL / purejaxppo for compile time,
so > 1 favours purejaxppo either way).
A busy machine slows whichever runs at that moment, so compare ratios, not
absolute figures, and read the ranges.

Both run with one XLA host device (`XLA_FLAGS=--xla_force_host_platform_device_count=1`
unless `XLA_FLAGS` is set): a per-device comparison. The PureJaxRL side needs
`distrax` importable (see `scripts/time_purejaxrl.py`); `--peer-pythonpath DIR`
adds DIR to its `PYTHONPATH` only.
"""

from __future__ import annotations

import argparse
import os
import re
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--purejaxrl", required=True, help="a PureJaxRL checkout")
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
    if not (Path(args.purejaxrl) / "purejaxrl" / "ppo.py").is_file():
        print(f"--purejaxrl: expected a checkout holding purejaxrl/ppo.py, got {args.purejaxrl}")
        return 2
    env = dict(os.environ)
    env.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    env.setdefault("JAX_PLATFORMS", "cpu")
    peer_env = dict(env)
    if args.peer_pythonpath:
        peer_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (args.peer_pythonpath, env.get("PYTHONPATH")) if p
        )
    py = sys.executable
    results: dict[int, dict[str, list[tuple[float, float]]]] = {
        s: {"ours": [], "peer": []} for s in seed_counts
    }
    for r in range(args.rounds):
        for seeds in seed_counts:
            ours = [py, str(HERE / "time_cartpole.py"), "--seeds", str(seeds)]
            ours += ["--repeats", str(args.repeats)]
            peer = [py, str(HERE / "time_purejaxrl.py"), "--purejaxrl", args.purejaxrl]
            peer += ["--seeds", str(seeds), "--repeats", str(args.repeats)]
            order = [("ours", ours, env), ("peer", peer, peer_env)]
            for name, cmd, cmd_env in order if r % 2 == 0 else order[::-1]:
                results[seeds][name].append(_measure(cmd, cmd_env))
                c, s = results[seeds][name][-1]
                print(
                    f"round {r + 1}, {seeds} seed(s), {name}: compile {c:.2f} s, {s:,.0f} steps/s"
                )
    print()
    print(
        "| seeds | purejaxppo steps/s | PureJaxRL steps/s | ratio | purejaxppo compile "
        "| PureJaxRL compile | ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for seeds in seed_counts:
        ours, peer = results[seeds]["ours"], results[seeds]["peer"]
        speed = [o[1] / p[1] for o, p in zip(ours, peer, strict=True)]
        comp = [p[0] / o[0] for o, p in zip(ours, peer, strict=True)]
        print(
            f"| {seeds} | {_span([o[1] / 1e3 for o in ours], '.0f')} k "
            f"| {_span([p[1] / 1e3 for p in peer], '.0f')} k "
            f"| {_span(speed, '.2f')}x (median {statistics.median(speed):.2f}) "
            f"| {_span([o[0] for o in ours], '.1f')} s | {_span([p[0] for p in peer], '.1f')} s "
            f"| {_span(comp, '.2f')}x (median {statistics.median(comp):.2f}) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
