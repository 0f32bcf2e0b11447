"""Steps/s of a population sharded over 1 vs N host devices (CPU cores).

Each measurement runs in a fresh subprocess (the host device count is fixed
when jax starts). Compilation is excluded; every configuration is repeated
because a shared machine gives noisy timings.

    .venv/bin/python scripts/sweep_speed.py --members 8 --timesteps 100000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
import jax
import purejaxppo as ppo
from purejaxppo.sweep import GroupRunner
members, timesteps = int(sys.argv[1]), int(sys.argv[2])
cfg = ppo.PPOConfig(env_name="CartPole-v1", total_timesteps=timesteps)
runner = GroupRunner(cfg, width=-(-members // jax.device_count()))  # members per device
compile_s = runner.compile()
hps = [ppo.HParams(learning_rate=2.5e-4 * (1 + i % 4)) for i in range(members)]
res = runner.run_chunk(list(range(members)), hps)
steps = members * cfg.num_updates * cfg.batch_size
print(json.dumps({"devices": jax.device_count(), "compile_s": compile_s,
                  "run_s": res.run_s, "steps_per_s": steps / res.run_s}))
"""


def measure(devices: int, members: int, timesteps: int) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(members), str(timesteps)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--devices", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    args = parser.parse_args()
    results: dict[int, list[float]] = {d: [] for d in args.devices}
    for r in range(args.repeats):
        for d in args.devices:  # interleaved, so load changes hit every setting alike
            m = measure(d, args.members, args.timesteps)
            results[d].append(m["steps_per_s"])
            print(
                f"repeat {r + 1}: {d} device(s): {m['steps_per_s']:,.0f} steps/s "
                f"(run {m['run_s']:.1f}s, compile {m['compile_s']:.1f}s)",
                flush=True,
            )
    base = statistics.median(results[args.devices[0]])
    for d, values in results.items():
        med = statistics.median(values)
        print(
            f"{d} device(s): median {med:,.0f} steps/s over {len(values)} runs "
            f"(min {min(values):,.0f}, max {max(values):,.0f}), {med / base:.2f}x"
        )


if __name__ == "__main__":
    main()
