"""Where the time of a PPO update goes: phase timings and a `jax.profiler` trace.

    python scripts/profile_train.py                       # reference recipe, 1 seed, 1 device
    python scripts/profile_train.py --seeds 8 --devices 2 # 8 seeds split over 2 host devices
    python scripts/profile_train.py --config configs/fast/CartPole-v1.yaml --seeds 8 --devices 2

1. Phases: the rollout (`trainer.rollout`: `num_steps` env steps with the actor),
   the batch (`trainer.make_batch`: critic on `[T, N]` observations, GAE) and the
   epochs (`update_epochs` x `num_minibatches` gradient steps) are each compiled
   apart, vmapped over the seeds (and split over the devices), and timed; the
   whole update is timed too.
2. Trace: `--updates` updates of the real chunk program run under
   `jax.profiler.trace`; the trace is read back with `jax.profiler.ProfileData`
   and summarised: XLA operations ("thunks") executed per update, the busy time
   of each XLA thread, and the operations with the most self time.

Timings are medians of `--repeats` calls after a warm-up call. The trace slows
the program down (every thunk is recorded), so use its counts, not its times,
to compare programs. Writes the trace under `--out` (open it with xprof /
TensorBoard's profile plugin).
"""

from __future__ import annotations

import argparse
import collections
import functools
import glob
import os
import re
import statistics
import sys
import time
from pathlib import Path


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", help="a purejaxppo train YAML (default: the reference recipe)")
    p.add_argument("--seeds", type=int, default=1, help="seeds, vmapped (default 1)")
    p.add_argument("--devices", type=int, default=1, help="host devices to split over (default 1)")
    p.add_argument("--updates", type=int, default=20, help="updates in the traced call")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per phase")
    p.add_argument("--out", default="/tmp/purejaxppo-profile", help="trace folder")
    p.add_argument("--top", type=int, default=12, help="operations listed")
    return p.parse_args()


def main() -> int:
    args = _args()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    flag = f"--xla_force_host_platform_device_count={args.devices}"
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
    import jax

    import purejaxppo as ppo
    from purejaxppo.sharding import population_map, population_mesh

    if args.config:
        from purejaxppo.run.config import load_run_config

        rc = load_run_config(args.config)
        cfg, hp = rc.ppo, rc.hparams
    else:
        cfg, hp = ppo.PPOConfig(env_name="CartPole-v1"), ppo.HParams()
    if args.seeds % args.devices:
        print("--seeds must be a multiple of --devices", file=sys.stderr)
        return 2
    trainer = ppo.make_trainer(cfg)
    mesh = population_mesh(jax.local_devices()[: args.devices])

    def pmap(fn, batched):
        return population_map(fn, mesh, batched)

    keys = jax.device_put(
        jax.numpy.stack([jax.random.key(i) for i in range(args.seeds)]),
        jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("pop")),
    )
    state = pmap(trainer.init, (True, False))(keys, hp)

    def rollout(s, h):
        return trainer.rollout(s, h, s.key)[1]

    def make_batch(s, traj, h):
        return trainer.make_batch(s.params, traj, h)

    def update(s, h):
        return trainer.update(s, h)

    f_roll = pmap(rollout, (True, False))
    f_batch = pmap(make_batch, (True, True, False))
    f_update = pmap(update, (True, False))
    traj = f_roll(state, hp)

    def timed(fn, *a):
        jax.block_until_ready(fn(*a))
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*a))
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    t_roll = timed(f_roll, state, hp)
    t_batch = timed(f_batch, state, traj, hp)
    t_update = timed(f_update, state, hp)
    t_epochs = max(t_update - t_roll - t_batch, 0.0)
    steps = args.seeds * cfg.batch_size
    print(
        f"{cfg.env_name}: {cfg.num_envs} envs x {cfg.num_steps} steps, "
        f"{cfg.update_epochs} epochs x {cfg.num_minibatches} minibatches, "
        f"hidden {list(cfg.hidden_sizes)}; {args.seeds} seed(s) on {args.devices} device(s)"
    )
    print(f"one update: {t_update * 1e3:.2f} ms = {steps / t_update:,.0f} env steps/s")
    for name, t in (("rollout", t_roll), ("batch (critic + GAE)", t_batch), ("epochs", t_epochs)):
        print(f"  {name:22s} {t * 1e3:7.2f} ms  {100 * t / t_update:5.1f}%")

    run = pmap(functools.partial(trainer.run, num_updates=args.updates), (True, False))
    state, _ = run(state, hp)
    jax.block_until_ready(state)
    out = Path(args.out)
    with jax.profiler.trace(str(out)):
        t0 = time.perf_counter()
        jax.block_until_ready(run(state, hp))
        traced_s = time.perf_counter() - t0
    _summarise(out, args.updates, traced_s, args.top)
    _op_counts(f_update.lower(state, hp).compile().as_text())
    return 0


# ----------------------------------------------------------------------- static op counts
_NOT_RUN = {"parameter", "get-tuple-element", "tuple", "constant", "bitcast"}
_OP = re.compile(r"^\s*(?:ROOT )?%?[\w.\-]+ = .*? ([a-z][\w\-]*)\(")


def _computations(text: str) -> tuple[dict[str, list[str]], str]:
    """Optimised HLO text -> `({computation: instruction lines}, entry name)`."""
    comps: dict[str, list[str]] = {}
    current, entry = None, ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.endswith("{") and ") -> " in line and line.startswith(("%", "ENTRY")):
            name = (line.split()[1] if line.startswith("ENTRY") else line.split()[0]).lstrip("%")
            comps[name], current = [], name
            entry = name if line.startswith("ENTRY") else entry
        elif line == "}":
            current = None
        elif current is not None and " = " in line:
            comps[current].append(line)
    return comps, entry


def _executed(
    comps: dict[str, list[str]], name: str, times: int, ops: collections.Counter, loops: list
) -> None:
    """Add the ops `name` executes, `times` over, into `ops`; loops `(body, trips)` to `loops`."""
    for line in comps.get(name, []):
        match = _OP.match(line)
        kind = match.group(1) if match else "?"
        if kind == "while":
            body = re.search(r"body=%?([\w.\-]+)", line).group(1)
            cond = re.search(r"condition=%?([\w.\-]+)", line).group(1)
            trips = re.search(r'"n":"(\d+)"', line)
            n = int(trips.group(1)) if trips else 1
            loops.append((body, n, times))
            _executed(comps, body, times * n, ops, loops)
            _executed(comps, cond, times * (n + 1), ops, loops)
        elif kind in ("call", "conditional"):
            for callee in re.findall(
                r"(?:to_apply|calls|branch_computations)=\{?%?([\w.\-]+)", line
            ):
                _executed(comps, callee, times, ops, loops)
        if kind not in _NOT_RUN:
            ops[kind] += times


def _op_counts(text: str) -> None:
    """Print the ops one update executes, counted from the compiled program: every
    instruction times the trip counts of the loops around it (what a GPU would launch
    as kernels, and what XLA:CPU runs as thunks)."""
    comps, entry = _computations(text)
    ops: collections.Counter[str] = collections.Counter()
    loops: list[tuple[str, int, int]] = []
    _executed(comps, entry, 1, ops, loops)
    kinds = ", ".join(f"{k} {n:,}" for k, n in ops.most_common(6))
    print(f"\nexecuted HLO ops per update (compiled program): {sum(ops.values()):,} ({kinds})")
    for body, trips, times in loops:
        inner: collections.Counter[str] = collections.Counter()
        _executed(comps, body, 1, inner, [])
        per_trip = sum(inner.values())
        print(f"  loop x{times:<4d} trips {trips:4d}, {per_trip:4d} ops a trip: {body[:40]}")


def _summarise(folder: Path, updates: int, traced_s: float, top: int) -> None:
    from jax.profiler import ProfileData

    path = sorted(glob.glob(str(folder / "**" / "*.xplane.pb"), recursive=True))[-1]
    data = ProfileData.from_file(path)
    self_ns: collections.Counter[str] = collections.Counter()
    count: collections.Counter[str] = collections.Counter()
    for plane in data.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_XLA"):
                continue
            for event in line.events:
                if event.name.startswith("ThunkExecutor::Execute"):
                    continue
                count[event.name] += 1
                if not event.name.startswith("while"):  # a loop's time includes its body's
                    self_ns[event.name] += event.duration_ns
    total = sum(count.values())
    print(f"\ntrace of {updates} updates ({traced_s:.2f} s with tracing on): {path}")
    print(f"  XLA operations executed: {total:,} = {total / updates:,.0f} per update")
    loops = {n: c for n, c in count.items() if n.startswith("while")}
    print(
        f"  loops entered per update: {sum(loops.values()) / updates:,.0f} ({len(loops)} distinct)"
    )
    print(f"  top {top} operations by time (name, calls per update, share of op time):")
    op_total = sum(self_ns.values()) or 1
    for name, ns in self_ns.most_common(top):
        print(f"    {name[:40]:40s} {count[name] / updates:9.1f}  {100 * ns / op_total:5.1f}%")


if __name__ == "__main__":
    sys.exit(main())
