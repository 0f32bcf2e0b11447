"""MLP vs CNN torso on the MinAtar configs, at equal env steps and seeds.

    .venv/bin/python scripts/minatar_torso.py [--steps 500_000] [--seeds 2]
        [--envs Asterix-MinAtar,Breakout-MinAtar,...] [--out docs/minatar-torso.md]

For every env it loads `configs/<env>.yaml`, sets `total_timesteps` to `--steps`, and trains
`--seeds` seeds vmapped in one program with `torso: mlp` (the 256x256 MLP over the
flattened frame) and with `torso: cnn` (3x3 conv, 16 filters, then the same MLP). Final
return: `purejaxppo.run.rundir.final_return` per seed (last 5% of updates), mean and
per-seed. Wall time is the compiled run (compile time separate). Prints and writes a
markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import numpy as np

import purejaxppo as ppo
from purejaxppo.run.config import load_run_config
from purejaxppo.run.rundir import final_return

ROOT = Path(__file__).resolve().parent.parent
ENVS = (
    "Breakout-MinAtar",
    "Asterix-MinAtar",
    "Freeway-MinAtar",
    "SpaceInvaders-MinAtar",
    "Seaquest-MinAtar",
)


def run(env: str, torso: str, steps: int, seeds: int) -> dict[str, float | list[float]]:
    rc = load_run_config(ROOT / "configs" / f"{env}.yaml")
    cfg = rc.ppo.replace(total_timesteps=steps, torso=torso)
    train = jax.jit(jax.vmap(ppo.make_train(cfg), (0, None)))
    keys = jax.vmap(jax.random.key)(np.arange(seeds))
    t0 = time.perf_counter()
    compiled = train.lower(keys, rc.hparams).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(keys, rc.hparams))
    run_s = time.perf_counter() - t0
    returns = np.asarray(out.metrics["episode_return"])  # [seeds, updates]
    finals = [final_return(returns[i]) for i in range(seeds)]
    return {
        "final": float(np.mean(finals)),
        "per_seed": finals,
        "run_s": run_s,
        "compile_s": compile_s,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=500_000)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--envs", default=",".join(ENVS))
    p.add_argument("--out", default=None, help="write the markdown table here")
    args = p.parse_args(argv)
    envs = args.envs.split(",")
    unknown = [e for e in envs if not (ROOT / "configs" / f"{e}.yaml").is_file()]
    if args.steps < 1 or args.seeds < 1 or unknown:
        what = (
            f"--envs: no config for {', '.join(unknown)}"
            if unknown
            else ("--steps and --seeds: expected positive integers")
        )
        print(f"minatar_torso: {what}", file=sys.stderr)
        return 2
    lines = [
        f"| env ({args.steps:,} steps, {args.seeds} seeds) | MLP return (per seed) | MLP run | "
        "CNN return (per seed) | CNN run |",
        "|---|---|---:|---|---:|",
    ]
    for env in envs:
        cells = [env]
        for torso in ("mlp", "cnn"):
            r = run(env, torso, args.steps, args.seeds)
            per_seed = ", ".join(f"{x:.2f}" for x in r["per_seed"])
            cells += [f"{r['final']:.2f} ({per_seed})", f"{r['run_s']:.0f} s"]
            print(env, torso, r, flush=True)
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        Path(args.out).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
