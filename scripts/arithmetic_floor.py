"""The arithmetic floor of a PPO update: how fast could any implementation of the recipe be here?

    .venv/bin/python scripts/arithmetic_floor.py [--seeds 8] [--updates 20] [--repeats 7]

Times, in one process and alternating, two programs vmapped over `--seeds` on one device
(one seed: unvmapped, as `purejaxppo train` runs it):

- floor: only the network arithmetic every PPO update of the recipe must do, with
  purejaxppo's own `ActorCritic` (the same layers, activation and shapes): the actor on the
  `[N, obs]` observations of each of the `T` rollout steps (a `lax.scan`, each step's input
  depending on the last, as an environment's would), the critic on the `[T * N, obs]` batch,
  and `update_epochs x num_minibatches` gradients of the actor's and critic's outputs on
  `[B / M, obs]` minibatches, applied by plain SGD. No environment, no sampling, no PPO loss,
  no GAE, no shuffling, no Adam, no metrics: every real PPO does all of this and more.
- purejaxppo: the real trainer (`Trainer.run`) on the same config, the same number of updates.

It prints both rates (env steps of all seeds per second, fastest of `--repeats`) and their
ratio. Dividing the floor's rate by a peer's measured rate on the same machine
(`scripts/side_by_side.py`) bounds the speedup any implementation of the recipe could have
over that peer on this device. On the development CPU (issue 14) the floor ran 8 seeds at
about 300 k steps/s against PureJaxRL's ~190 k: no PPO could be 1.5x PureJaxRL there.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=8, help="seeds vmapped on one device (8)")
    p.add_argument("--updates", type=int, default=20, help="updates per timed call (20)")
    p.add_argument("--repeats", type=int, default=7, help="timed calls of each program (7)")
    return p.parse_args(argv)


def floor_update(net: Any, cfg: Any, params: Any, obs0: Any) -> Any:
    """The network arithmetic of one PPO update from `obs0` `[N, obs]`; returns new params."""
    import jax
    import jax.numpy as jnp

    from purejaxppo.networks import ActorCritic

    def rollout_step(obs: jax.Array, _: None) -> tuple[jax.Array, jax.Array]:
        logits = net.apply(params, obs, method=ActorCritic.policy).logits  # [N, A]
        return obs + 1e-3 * jnp.mean(logits, axis=-1, keepdims=True), obs

    _, trajectory = jax.lax.scan(rollout_step, obs0, None, cfg.num_steps)  # [T, N, obs]
    batch = trajectory.reshape((cfg.batch_size, -1))
    values = net.apply(params, batch, method=ActorCritic.value)  # [B]
    batch = batch + 1e-3 * values[:, None]

    def outputs(p: Any, x: jax.Array) -> jax.Array:
        logits = net.apply(p, x, method=ActorCritic.policy).logits
        return jnp.sum(logits) + jnp.sum(net.apply(p, x, method=ActorCritic.value))

    def minibatch_step(p: Any, x: jax.Array) -> tuple[Any, None]:
        grads = jax.grad(outputs)(p, x)
        return jax.tree.map(lambda w, g: w - 1e-4 * g, p, grads), None

    def epoch(p: Any, _: None) -> tuple[Any, None]:
        minibatches = batch.reshape((cfg.num_minibatches, cfg.minibatch_size, -1))
        return jax.lax.scan(minibatch_step, p, minibatches)[0], None

    return jax.lax.scan(epoch, params, None, cfg.update_epochs)[0]


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    for name in ("seeds", "updates", "repeats"):
        if getattr(args, name) < 1:
            print(f"--{name}: expected an integer >= 1, got {getattr(args, name)}", file=sys.stderr)
            return 2
    import jax

    import purejaxppo as ppo

    cfg, hp = ppo.PPOConfig(), ppo.HParams()
    trainer = ppo.make_trainer(cfg)
    net = trainer.network
    keys = jax.random.split(jax.random.key(0), args.seeds)
    # One seed runs unvmapped, as `purejaxppo train` runs it (a size-1 vmap compiles to a
    # different, slower program on XLA:CPU).
    population = jax.vmap if args.seeds > 1 else lambda fn, *axes: fn
    states = jax.jit(population(trainer.init, (0, None)))(keys if args.seeds > 1 else keys[0], hp)

    def floor_run(state: Any, hparams: Any) -> Any:
        del hparams  # the floor has no hyperparameters; the argument matches `run`'s
        obs = state.obs.astype(jax.numpy.float32).reshape((cfg.num_envs, -1))

        def body(params: Any, _: None) -> tuple[Any, None]:
            return floor_update(net, cfg, params, obs), None

        return jax.lax.scan(body, state.params, None, args.updates)[0]

    def trainer_run(state: Any, hparams: Any) -> Any:
        return trainer.run(state, hparams, args.updates)

    programs = {
        name: jax.jit(population(fn, (0, None))).lower(states, hp).compile()
        for name, fn in (("floor", floor_run), ("purejaxppo", trainer_run))
    }
    best = {name: float("inf") for name in programs}
    for program in programs.values():
        jax.block_until_ready(program(states, hp))
    for _ in range(args.repeats):
        for name, program in programs.items():
            start = time.perf_counter()
            jax.block_until_ready(program(states, hp))
            best[name] = min(best[name], time.perf_counter() - start)
    steps = args.seeds * args.updates * cfg.batch_size
    rates = {name: steps / best[name] for name in programs}
    print(
        f"recipe {cfg.env_name} {cfg.num_envs}x{cfg.num_steps}, {cfg.update_epochs} epochs x "
        f"{cfg.num_minibatches} minibatches, hidden {list(cfg.hidden_sizes)}; "
        f"{args.seeds} seed(s) on one {jax.devices()[0].platform} device"
    )
    for name, rate in rates.items():
        ms = best[name] / args.updates * 1e3
        print(f"{name:11s} {rate:12,.0f} steps/s  ({ms:.2f} ms/update)")
    print(f"purejaxppo runs at {rates['purejaxppo'] / rates['floor']:.0%} of the floor's rate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
