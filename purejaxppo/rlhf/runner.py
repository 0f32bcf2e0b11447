"""Host shell: run the RLHF stages with wall-clock timings (used by `purejaxppo rlhf` and
`scripts/rlhf_experiments.py`)."""

from __future__ import annotations

import time
from typing import NamedTuple

import jax

from purejaxppo.rlhf.config import Member, RLHFConfig, population_members, stack_rlhf_hparams
from purejaxppo.rlhf.pipeline import Evaluation, Prepared, make_pipeline, member_keys, prepare_key
from purejaxppo.rlhf.trainer import RLOutput


class PopulationRun(NamedTuple):
    """A finished population: outputs with a leading `[M]` axis, and how long it took."""

    members: list[Member]
    output: RLOutput
    evaluation: Evaluation
    compile_s: float
    run_s: float


def run_prepare(cfg: RLHFConfig) -> tuple[Prepared, float]:
    """SFT, preference data and the reward model for `cfg.seed`; `(prepared, seconds)`."""
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
