"""Time rejax's PPO on PureJaxRL's CartPole recipe, for a side-by-side ratio.

    /work/venv-rejax/bin/python scripts/time_rejax.py [--seeds 1] [--repeats 2]

Run it with the interpreter of rejax's own environment, never purejaxppo's:
rejax 0.1.3 unpacks gymnax 0.0.x's five-value `step`, so it crashes on gymnax
1.x (purejaxppo's). Its environment is made with
`python3 -m venv DIR && DIR/bin/pip install rejax==0.1.3 gymnax==0.0.9`, which
resolves jax 0.10.2 (the same jax as purejaxppo), flax 0.12.8, optax 0.2.8.
The script imports only rejax, jax and the standard library.

The recipe (`RECIPE`) is PureJaxRL's CartPole-v1 recipe set through
`PPO.create`'s own fields: 4 envs x 128 steps, 4 epochs x 4 minibatches,
64x64 tanh actor and critic, lr 2.5e-4, gamma 0.99, GAE 0.95, clip 0.2, ent
0.01, vf 0.5, grad norm 0.5, and `total_timesteps` = 976 x 512 = 499,712 (the
976 updates PureJaxRL runs for 5e5; rejax rounds up, so 5e5 would be 977).
What cannot be matched (see `UNMATCHED`) is printed with `--mapping`.

rejax evaluates the policy every `eval_freq` steps (128 episodes each time,
inside `train`); for timing training alone, as PureJaxRL's `DEBUG=False` and
purejaxppo's steps/s do, `eval_freq` is the whole run, the initial evaluation
is skipped and `eval_callback` is replaced by one that returns nothing (both
are `PPO` fields). After timing, rejax's own evaluation of the trained policy
(its `eval_callback`, 128 episodes) is run once, untimed, as a sanity check.

Seeds use rejax's documented vmap API: `jax.jit(jax.vmap(algo.train))(keys)`;
one seed is `jax.jit(algo.train)(key)`. Compile time is `lower + compile` of
the whole `train`; steps/s is the best of `--repeats` full runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")

NUM_UPDATES = 976  # PureJaxRL's 5e5 // (4 x 128)
RECIPE: dict[str, Any] = {
    "env": "CartPole-v1",
    "num_envs": 4,
    "num_steps": 128,
    "num_epochs": 4,
    "num_minibatches": 4,
    "learning_rate": 2.5e-4,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_eps": 0.2,
    "ent_coef": 0.01,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "total_timesteps": NUM_UPDATES * 4 * 128,
    "eval_freq": NUM_UPDATES * 4 * 128,
    "skip_initial_evaluation": True,
    "normalize_observations": False,
    "agent_kwargs": {"activation": "tanh", "hidden_layer_sizes": (64, 64)},
}

# PureJaxRL recipe -> rejax PPO field, for --mapping
MAPPING = (
    ("ENV_NAME CartPole-v1 (gymnax)", "env CartPole-v1 (gymnax 0.0.9)"),
    ("NUM_ENVS 4", "num_envs 4"),
    ("NUM_STEPS 128", "num_steps 128"),
    ("TOTAL_TIMESTEPS 5e5 (976 updates)", "total_timesteps 499,712 (976 updates)"),
    ("UPDATE_EPOCHS 4", "num_epochs 4"),
    ("NUM_MINIBATCHES 4", "num_minibatches 4"),
    ("LR 2.5e-4", "learning_rate 2.5e-4"),
    ("GAMMA 0.99 / GAE_LAMBDA 0.95", "gamma 0.99 / gae_lambda 0.95"),
    ("CLIP_EPS 0.2 (policy and value)", "clip_eps 0.2 (policy and value)"),
    ("ENT_COEF 0.01 / VF_COEF 0.5", "ent_coef 0.01 / vf_coef 0.5"),
    ("MAX_GRAD_NORM 0.5", "max_grad_norm 0.5"),
    ("ACTIVATION tanh, 64x64 actor and critic", "agent_kwargs tanh, (64, 64)"),
    ("DEBUG False (no logging in train)", "eval_freq = whole run, no-op eval_callback"),
)
UNMATCHED = (
    "ANNEAL_LR True: rejax's learning rate is a constant (no schedule field)",
    "one Adam over actor+critic, one global-norm clip: rejax has two TrainStates, "
    "each clipped (optax.clip, elementwise, not by global norm) and stepped on its own",
    "PureJaxRL's orthogonal init (sqrt 2, 0.01, 1.0): rejax uses flax's default lecun-normal init",
    "one loss (actor + vf * critic) with one backward pass: rejax takes two gradients "
    "per minibatch, actor then critic",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1, help="seeds vmapped on one device")
    parser.add_argument("--repeats", type=int, default=2, help="timed full runs")
    parser.add_argument(
        "--updates", type=int, default=NUM_UPDATES, help="updates per run (976 = the recipe)"
    )
    parser.add_argument("--mapping", action="store_true", help="print the recipe mapping")
    args = parser.parse_args()
    if args.seeds < 1 or args.repeats < 1 or args.updates < 1:
        print("--seeds, --repeats and --updates: expected integers >= 1", file=sys.stderr)
        return 2
    try:
        import jax
        from rejax import PPO
    except ImportError as err:
        print(f"rejax: not importable by {sys.executable} ({err.name})", file=sys.stderr)
        return 2
    from importlib.metadata import version

    if args.mapping:
        for ours, theirs in MAPPING:
            print(f"mapping  {ours:44s} -> {theirs}")
        for text in UNMATCHED:
            print(f"differs  {text}")
    versions = ", ".join(
        f"{p} {version(p)}" for p in ("rejax", "gymnax", "jax", "jaxlib", "flax", "optax")
    )
    print(f"versions {versions}")

    batch = RECIPE["num_envs"] * RECIPE["num_steps"]
    config = dict(RECIPE, total_timesteps=args.updates * batch, eval_freq=args.updates * batch)
    algo = PPO.create(**config)
    timed = algo.replace(eval_callback=lambda algo, ts, rng: ())
    keys = jax.random.split(jax.random.PRNGKey(30), args.seeds)
    fn = jax.jit(jax.vmap(timed.train)) if args.seeds > 1 else jax.jit(timed.train)
    arg = keys if args.seeds > 1 else keys[0]
    start = time.perf_counter()
    compiled = fn.lower(arg).compile()
    compile_s = time.perf_counter() - start
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        ts, _ = jax.block_until_ready(compiled(arg))
        best = min(best, time.perf_counter() - start)
    steps = args.seeds * args.updates * batch
    text = compiled.as_text()
    print(f"program {text.count(' fusion(')} fusions, {text.count(' while(')} loops")

    def evaluate(train_state: Any, key: Any) -> Any:
        return algo.eval_callback(algo, train_state, key)

    evaluation = jax.jit(jax.vmap(evaluate) if args.seeds > 1 else evaluate)(ts, arg)
    returns = evaluation[1]  # (lengths, returns), [S, 128] or [128]
    print(
        f"rejax PPO CartPole-v1, {args.seeds} seed(s) on {len(jax.devices())} device(s): "
        f"compile {compile_s:.1f} s, {steps / best:,.0f} steps/s (best of {args.repeats}), "
        f"evaluation return {float(returns.mean()):.1f} (untimed)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
