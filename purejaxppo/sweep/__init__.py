"""Hyperparameter sweeps (host side): spec, population runner, results, reports, CLI.

The Python API::

    from purejaxppo.sweep import load_sweep, train_population, select

A sweep is a base `RunConfig`, a search space and a number of seeds:

    spec = load_sweep("configs/sweeps/cartpole_lr.yaml")   # or SweepSpec(...) in code
    pop = spec.population()                                # sets x seeds, members in order
    out = train_population(pop.groups()[0].config, ...)    # one compiled program, sharded

Adaptive populations, for your own loop: `pbt_step` (PBT's exploit/explore step, pure
JAX over the stacked population), `PBTConfig`, `Bounds`, `interval_fitness`,
`member_schedule`, `lineage`, and `IntervalRunner` (a static group trained interval by
interval with its state on the device). `purejaxppo sweep` runs them as `strategy: pbt`,
`halving` or `optuna` (`purejaxppo.sweep.strategy`).

Modules: `spec` (the sweep file), `population` (sets, members, static groups),
`runner` (training a population in chunks), `results` (rows, ranking),
`report` (CSV/YAML/PNG files), `store` (the output folder: manifest, chunk
files), `progress` (the progress bar) and `cli` (`purejaxppo sweep`; not
imported here).
"""

from purejaxppo.sweep.intervals import IntervalRunner
from purejaxppo.sweep.pbt import (
    Bounds,
    PBTConfig,
    PBTStep,
    interval_fitness,
    lineage,
    member_schedule,
    pbt_step,
)
from purejaxppo.sweep.population import HParamSet, Member, Population, StaticGroup
from purejaxppo.sweep.results import (
    MemberResult,
    SetSummary,
    area_under_curve,
    best_run_config,
    member_result,
    summarize,
)
from purejaxppo.sweep.runner import (
    DEFAULT_SEGMENT_UPDATES,
    ChunkResult,
    GroupRunner,
    chunk_bounds,
    select,
    train_population,
)
from purejaxppo.sweep.spec import (
    SWEEPABLE,
    Distribution,
    SweepSpec,
    apply_values,
    load_sweep,
    sweep_from_dict,
)

__all__ = [
    "DEFAULT_SEGMENT_UPDATES",
    "SWEEPABLE",
    "Bounds",
    "ChunkResult",
    "Distribution",
    "GroupRunner",
    "HParamSet",
    "IntervalRunner",
    "Member",
    "MemberResult",
    "PBTConfig",
    "PBTStep",
    "Population",
    "SetSummary",
    "StaticGroup",
    "SweepSpec",
    "apply_values",
    "area_under_curve",
    "best_run_config",
    "chunk_bounds",
    "interval_fitness",
    "lineage",
    "load_sweep",
    "member_result",
    "member_schedule",
    "pbt_step",
    "select",
    "summarize",
    "sweep_from_dict",
    "train_population",
]
