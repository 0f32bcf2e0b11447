"""Command line: `purejaxppo train` (host-side shell around the pure trainer)."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _train(args: argparse.Namespace) -> int:
    import jax

    import purejaxppo as ppo

    config = ppo.PPOConfig(env_name=args.env)
    hparams = ppo.HParams().validate()
    trainer = ppo.make_trainer(config)
    chunks = max(1, min(10, config.num_updates))
    per_chunk = config.num_updates // chunks
    init = jax.jit(trainer.init)
    run_chunk = jax.jit(trainer.run, static_argnums=2)
    print(
        f"training {config.env_name}: {config.num_updates} updates x {config.batch_size} steps "
        f"on {jax.devices()[0].platform}"
    )
    start = time.perf_counter()
    state = init(jax.random.key(args.seed), hparams)
    returns: list[np.ndarray] = []
    done_updates = 0
    while done_updates < config.num_updates:
        n = min(per_chunk, config.num_updates - done_updates)
        state, metrics = run_chunk(state, hparams, n)
        returns.append(np.asarray(metrics["episode_return"]))
        done_updates += n
        recent = np.concatenate(returns)[-10:]
        mean = float(np.nanmean(recent)) if np.isfinite(recent).any() else float("nan")
        print(
            f"  update {done_updates:5d}/{config.num_updates}  "
            f"steps {done_updates * config.batch_size:9,d}  "
            f"return {mean:8.2f}  ({time.perf_counter() - start:5.1f}s)",
            flush=True,
        )
    all_returns = np.concatenate(returns)
    final = float(np.nanmean(all_returns[-10:]))
    print(f"final mean return (last 10 updates): {final:.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="purejaxppo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train PPO with the default recipe and print progress")
    train.add_argument("--env", default="CartPole-v1", help="gymnax environment id")
    train.add_argument("--seed", type=int, default=0, help="PRNG seed")
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
    except ValueError as err:
        print(f"purejaxppo: error: {err}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
