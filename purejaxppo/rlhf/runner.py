"""Host shell: run the RLHF stages with wall-clock timings (used by `purejaxppo rlhf` and
`scripts/rlhf_experiments.py`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import jax

from purejaxppo.rlhf.config import Member, RLHFConfig, population_members, stack_rlhf_hparams
from purejaxppo.rlhf.pipeline import Evaluation, Prepared, make_pipeline, member_keys, prepare_key
from purejaxppo.rlhf.trainer import RLOutput
from purejaxppo.run.guards import raise_if_interrupted
from purejaxppo.run.memory import MemoryEstimate, check_fits, traced_bytes


class PopulationRun(NamedTuple):
    """A finished population: outputs with a leading `[M]` axis, and how long it took."""

    members: list[Member]
    output: RLOutput
    evaluation: Evaluation
    compile_s: float
    run_s: float


def memory_estimates(cfg: RLHFConfig) -> tuple[MemoryEstimate, MemoryEstimate]:
    """Estimated device bytes of the two programs (`purejaxppo.run.memory`, traced, not
    compiled): `prepare` (SFT, preference data, reward model) and the population's RL stage
    and evaluation (every member vmapped on one device)."""
    pipeline = make_pipeline(cfg)
    key = prepare_key(cfg)
    prepared = jax.eval_shape(pipeline.prepare, key)
    members = population_members(cfg)
    keys = member_keys(cfg, [m.seed for m in members])
    hparams = stack_rlhf_hparams([m.hparams for m in members])
    prepare = MemoryEstimate(traced_bytes(pipeline.prepare, key))
    population = traced_bytes(pipeline.population, keys, hparams, prepared.frozen)
    return prepare, MemoryEstimate(population, (("per member", population // len(members)),))


def check_memory(cfg: RLHFConfig) -> None:
    """Refuse in one line (`ConfigError`) a config whose programs do not fit in one device's
    memory, before compiling them."""
    prepare, population = memory_estimates(cfg)
    check_fits(
        prepare,
        "reward.train_pairs",
        "the preparation (SFT, preference pairs, reward model)",
        "reward.train_pairs, reward.held_out_pairs, sft.batch_size or reward.batch_size",
    )
    n = len(population_members(cfg))
    check_fits(
        population,
        "rl.completions_per_iteration",
        f"the RL stage ({n} member{'s' if n != 1 else ''} vmapped)",
        "rl.completions_per_iteration, rl.eval_prompts, the model sizes or the population "
        "(population.seeds, population.grid)",
    )


def run_prepare(
    cfg: RLHFConfig, say: Callable[[str], None] | None = None
) -> tuple[Prepared, float]:
    """SFT, preference data and the reward model for `cfg.seed`; `(prepared, seconds)`.
    With `say`, a line every `HEARTBEAT_S` seconds while it runs. Checks first that both
    programs fit in memory (`check_memory`)."""
    check_memory(cfg)
    start = time.perf_counter()
    prepared = jax.jit(make_pipeline(cfg).prepare)(prepare_key(cfg))
    _wait(prepared, start, "preparing", say)
    return prepared, time.perf_counter() - start


def run_population(
    cfg: RLHFConfig, prepared: Prepared, say: Callable[[str], None] | None = None
) -> PopulationRun:
    """Compile once and run `cfg`'s population (grid x seeds) against `prepared`. With
    `say`, the compile time and a line every `HEARTBEAT_S` seconds while it trains."""
    members = population_members(cfg)
    keys = member_keys(cfg, [m.seed for m in members])
    hparams = stack_rlhf_hparams([m.hparams for m in members])
    start = time.perf_counter()
    population = jax.jit(make_pipeline(cfg).population)
    compiled = population.lower(keys, hparams, prepared.frozen).compile()
    compile_s = time.perf_counter() - start
    if say is not None:
        say(f"  compiled in {compile_s:.0f} s; training")
    start = time.perf_counter()
    output, evaluation = compiled(keys, hparams, prepared.frozen)
    _wait((output, evaluation), start, "training", say)
    return PopulationRun(members, output, evaluation, compile_s, time.perf_counter() - start)


HEARTBEAT_S = 15.0


def _wait(tree: object, start: float, doing: str, say: Callable[[str], None] | None) -> None:
    """Block until `tree` is computed, in short sleeps (a signal is handled at once), saying
    every `HEARTBEAT_S` seconds how long it has run."""
    next_line = start + HEARTBEAT_S
    leaves = [x for x in jax.tree.leaves(tree) if hasattr(x, "is_ready")]
    raise_if_interrupted()
    while not all(x.is_ready() for x in leaves):
        raise_if_interrupted()
        time.sleep(0.05)
        now = time.perf_counter()
        if say is not None and now >= next_line:
            say(f"  still {doing}: {now - start:.0f} s")
            while next_line <= now:
                next_line += HEARTBEAT_S
