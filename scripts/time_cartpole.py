"""Time PureJaxRL's CartPole recipe: compile time and steady steps/second, separately.

    .venv/bin/python scripts/time_cartpole.py [--seeds 1] [--repeats 3]

Recipe: CartPole-v1, 4 envs x 128 steps, 5e5 steps, 4 epochs x 4 minibatches,
64x64 tanh separate actor and critic (the `PPOConfig()` defaults). Compile time
is `lower + compile`; steps/s is the median over `--repeats` full runs of the
compiled function (env steps of all seeds together, divided by wall time), which
is `jit(vmap(train))`, or for one seed `jit(train)` as `purejaxppo train` runs it.
The `best` line is the fastest run (what scripts/side_by_side.py compares).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax

import purejaxppo as ppo
from purejaxppo.bench.hw import cpu_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1, help="seeds run together under vmap")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after compiling")
    parser.add_argument("--total-timesteps", type=int, default=500_000)
    args = parser.parse_args()

    cfg = ppo.PPOConfig(total_timesteps=args.total_timesteps)
    hp = ppo.HParams()
    train = ppo.make_train(cfg)
    keys = jax.random.split(jax.random.key(0), args.seeds)
    # One seed runs unvmapped, as `purejaxppo train` (and PureJaxRL's own 1-seed run) does:
    # XLA:CPU compiles a size-1 vmap into a different, slower program.
    if args.seeds == 1:
        fn = jax.jit(lambda k, h: jax.tree.map(lambda x: x[None], train(k[0], h)))
    else:
        fn = jax.jit(jax.vmap(train, (0, None)))

    start = time.perf_counter()
    compiled = fn.lower(keys, hp).compile()
    compile_s = time.perf_counter() - start

    times = []
    for i in range(args.repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(jax.random.split(jax.random.key(i), args.seeds), hp))
        times.append(time.perf_counter() - start)
    steps = cfg.num_updates * cfg.batch_size * args.seeds
    run_s = statistics.median(times)
    final = float(jax.numpy.nanmean(out.metrics["episode_return"][:, -10:]))
    print(
        f"device        {jax.devices()[0].device_kind} ({cpu_model()}), "
        f"{os.cpu_count()} cores, jax {jax.__version__}"
    )
    print(f"recipe        CartPole-v1 4x128, {cfg.num_updates} updates, {args.seeds} seed(s)")
    print(f"compile       {compile_s:.2f} s")
    text = compiled.as_text()
    print(f"program       {text.count(' fusion(')} fusions, {text.count(' while(')} loops")
    print(
        f"train         {run_s:.2f} s (median of {args.repeats}: "
        f"{', '.join(f'{t:.2f}' for t in times)})"
    )
    print(f"steps/s       {steps / run_s:,.0f}")
    print(f"best          {steps / min(times):,.0f} steps/s (fastest of {args.repeats})")
    print(f"final return  {final:.1f} (mean of last 10 updates over seeds)")


if __name__ == "__main__":
    main()
