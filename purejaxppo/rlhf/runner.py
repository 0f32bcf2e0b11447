"""Host shell: run the RLHF stages with wall-clock timings (used by `purejaxppo rlhf` and
`scripts/rlhf_experiments.py`)."""

from __future__ import annotations

import time
from typing import NamedTuple

import jax

from purejaxppo.rlhf.config import Member, RLHFConfig, population_members, stack_rlhf_hparams
from purejaxppo.rlhf.pipeline import Evaluation, Prepared, make_pipeline, member_keys, prepare_key
from purejaxppo.rlhf.trainer import RLOutput
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


def run_prepare(cfg: RLHFConfig) -> tuple[Prepared, float]:
    """SFT, preference data and the reward model for `cfg.seed`; `(prepared, seconds)`.

    Checks first that both programs fit in memory (`check_memory`)."""
    check_memory(cfg)
    start = time.perf_counter()
    prepared = jax.block_until_ready(jax.jit(make_pipeline(cfg).prepare)(prepare_key(cfg)))
    return prepared, time.perf_counter() - start


def run_population(cfg: RLHFConfig, prepared: Prepared) -> PopulationRun:
    """Compile once and run `cfg`'s population (grid x seeds) against `prepared`."""
    members = population_members(cfg)
    keys = member_keys(cfg, [m.seed for m in members])
    hparams = stack_rlhf_hparams([m.hparams for m in members])
    start = time.perf_counter()
    population = jax.jit(make_pipeline(cfg).population)
    compiled = population.lower(keys, hparams, prepared.frozen).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    output, evaluation = jax.block_until_ready(compiled(keys, hparams, prepared.frozen))
    return PopulationRun(members, output, evaluation, compile_s, time.perf_counter() - start)
