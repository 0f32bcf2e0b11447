"""`strategy: halving`: successive halving (ASHA) over the vmapped population (host side).

    strategy: halving
    halving: {eta: 3, rungs: 3, rounds: 2}

The P slots of the population (sets x seeds) stay one compiled program all along: a lane
of S slots (one per seed) trains one candidate; every interval all slots advance
`num_updates / eta**(rungs-1)` updates; a candidate at a rung below the top goes on if it
is in the top 1/eta of every candidate that has reached that rung (ASHA), else its lane
is refilled with a fresh draw from `random:`, started from update 0 (or left idle when a
new candidate could no longer finish). The sweep lasts `rounds` full trainings of every
slot. Bookkeeping is `purejaxppo.sweep.halving_plan`; docs/sweeps.md has the design.

Files under `OUT/halving/`: `checkpoint/` (the gathered population after each interval)
and `record.json` (candidates, their curves, lanes, draws); a rerun resumes from the last
interval both hold. At the end: `halving.csv`, and for the completed candidates the grid
sweep's `results.csv`, `summary.csv`, `best.yaml`, `curves.png`, `sensitivity.png`.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any, TextIO

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.run.checkpoint import Checkpointer, CheckpointError, CheckpointMeta
from purejaxppo.run.config import run_config_to_dict
from purejaxppo.run.guards import raise_if_interrupted
from purejaxppo.run.progress import count
from purejaxppo.sharding import member_groups
from purejaxppo.sweep.halving_plan import (
    COMPLETED,
    HalvingRecord,
    HalvingSettings,
    Sampler,
    Schedule,
    after_interval,
    budget_line,
    finished,
    format_events,
    halving_csv_rows,
    initial_record,
    lane_values,
    make_schedule,
    rung_counts,
    settings_from_dict,
)
from purejaxppo.sweep.intervals import Chunks, IntervalRunner
from purejaxppo.sweep.population import HParamSet, Population
from purejaxppo.sweep.report import _csv_bytes, atomic_write_bytes, format_top, write_report
from purejaxppo.sweep.results import member_result, summarize
from purejaxppo.sweep.runner import GroupRunner, plan_width
from purejaxppo.sweep.spec import apply_values
from purejaxppo.sweep.store import SweepError

__all__ = ["HalvingSettings", "run_strategy", "settings_from_dict"]

FOLDER = "halving"
RECORD = "record.json"
# test hook: exit as if killed right after saving this interval (resume tests)
STOP_AFTER_ENV = "PUREJAXPPO_TEST_HALVING_STOP_AFTER"


def run_strategy(s: Any, err_stream: TextIO) -> None:
    """Train, resume and report a halving sweep in `s.out` (`s`: the sweep command's
    `_Sweep`; one static group, one process)."""
    spec = s.spec
    sched = make_schedule(spec.settings, spec.base.ppo.num_updates)
    group = s.population.groups()[0]
    trainer = IntervalRunner(_group_runner(s, group), s.population.size)
    folder = s.out / FOLDER
    folder.mkdir(exist_ok=True)
    record = _load_record(folder / RECORD) or initial_record(s.population)
    sampler = Sampler(spec, record.draws)
    seeds = list(s.population.seeds) * len(record.lanes)
    ckpt = Checkpointer(folder / "checkpoint")
    try:
        chunks = trainer.init(seeds, _slot_hparams(s, record))
        if record.interval:
            state = _restore(ckpt, record.interval * sched.interval, trainer.gather(chunks))
            chunks = trainer.scatter(state)
            s.say(f"halving: resuming after interval {record.interval}/{sched.total}")
        _announce(s, sched)
        while not finished(record, sched):
            raise_if_interrupted()
            chunks = _one_interval(s, trainer, chunks, record, sched, sampler, ckpt, seeds)
    finally:
        ckpt.close()
    _report(s, record, sched)


def _restore(ckpt: Checkpointer, update: int, like: Any) -> Any:
    """The population saved after `update` updates; a `SweepError` (one line) if it is
    missing or damaged."""
    try:
        return ckpt.restore(update, like)[0]
    except CheckpointError as err:
        raise SweepError(
            f"{err}; the halving record needs it to resume: use another --out to start over"
        ) from None


def _announce(s: Any, sched: Schedule) -> None:
    lanes = len(s.population.sets)
    s.say(
        f"halving: {count(lanes, 'lane')} of {count(len(s.population.seeds), 'seed')}, "
        f"{sched.total} intervals of {sched.interval} updates; rungs after "
        + ", ".join(str(a * sched.interval) for a in sched.ages)
        + f" updates, keeping the top 1/{sched.eta}"
    )


def _group_runner(s: Any, group: Any) -> GroupRunner:
    """The group's runner at its recorded width (planned and recorded on the first run)."""
    key = str(group.index)
    if key not in s.widths:
        size = s.population.size
        if s.max_batch is None:
            width, runner = plan_width(group.config, size, s.width, s.segment, s.mesh)
        else:
            width, runner = member_groups(size, min(s.width, s.max_batch))[1], None
        s.widths[key] = width
        s.manifest["widths"] = s.widths
        s.save_manifest()
        if runner is not None and runner.mesh.devices.size == _mesh(s, width).devices.size:
            return runner
    width = s.widths[key]
    return GroupRunner(group.config, width, _mesh(s, width), s.segment)


def _mesh(s: Any, width: int) -> Any:
    """Every device, or no more devices than there are width-wide groups of slots."""
    from purejaxppo.sharding import population_mesh

    groups = member_groups(s.population.size, width)[0]
    if groups >= s.mesh.devices.size:
        return s.mesh
    return population_mesh(list(s.mesh.devices.flat)[:groups])


def _slot_hparams(s: Any, record: HalvingRecord) -> list[Any]:
    """Each slot's `HParams` (its lane's candidate), slot-major."""
    out = []
    for values in lane_values(record):
        _, hparams = apply_values(s.spec.base, values, s.spec.source)
        out.extend([hparams] * len(s.population.seeds))
    return out


def _one_interval(
    s: Any,
    trainer: IntervalRunner,
    chunks: Chunks,
    record: HalvingRecord,
    sched: Schedule,
    sampler: Sampler,
    ckpt: Checkpointer,
    seeds: list[int],
) -> Chunks:
    """Advance every slot one interval, judge and refill, save checkpoint then record."""
    start = time.perf_counter()
    hparams = _slot_hparams(s, record)
    chunks, metrics = trainer.advance(chunks, hparams, sched.interval)
    events = after_interval(record, sched, metrics["episode_return"], sampler)
    state = trainer.gather(chunks)
    if events.refilled:
        hparams = _slot_hparams(s, record)
        state = _restart_lanes(
            trainer, state, seeds, hparams, events.refilled, len(s.population.seeds)
        )
    record.train_s += time.perf_counter() - start
    update = record.interval * sched.interval
    meta = CheckpointMeta(
        update=update,
        num_updates=sched.total * sched.interval,
        seeds=seeds,
        train_time_s=record.train_s,
        config=run_config_to_dict(s.spec.base),
    )
    ckpt.save(state, meta)  # first the state, then the record that points at it
    _save_record(s.out / FOLDER / RECORD, record)
    s.say(format_events(record, sched, events))
    if os.environ.get(STOP_AFTER_ENV) == str(record.interval):
        os._exit(9)
    return trainer.scatter(state)


def _restart_lanes(
    trainer: IntervalRunner,
    state: Any,
    seeds: list[int],
    hparams: list[Any],
    lanes: list[int],
    per_lane: int,
) -> Any:
    """`state [P, ...]` with the `per_lane` (S) slots of each of `lanes` replaced by fresh
    initial states (the whole population is initialised, then rows picked: one compiled init)."""
    fresh = trainer.gather(trainer.init(seeds, hparams))
    take = np.arange(trainer.size)
    for lane in lanes:
        take[lane * per_lane : (lane + 1) * per_lane] += trainer.size
    index = jnp.asarray(take)
    return jax.tree.map(lambda old, new: jnp.concatenate([old, new])[index], state, fresh)


def _load_record(path: Path) -> HalvingRecord | None:
    if not path.exists():
        return None
    return HalvingRecord.from_json(json.loads(path.read_text()))


def _save_record(path: Path, record: HalvingRecord) -> None:
    atomic_write_bytes(path, json.dumps(record.to_json()).encode())


# =========================================================================== report
def _report(s: Any, record: HalvingRecord, sched: Schedule) -> None:
    """halving.csv, the grid sweep's report of the completed candidates, the saving."""
    spec, pop = s.spec, s.population
    config = spec.base.ppo
    rungs = len(sched.ages)
    header, rows = halving_csv_rows(record, pop.swept, pop.seeds, rungs, config.batch_size)
    atomic_write_bytes(s.out / "halving.csv", _csv_bytes(header, rows))
    sets = tuple(_as_set(spec, c.id, c.values) for c in record.candidates)
    tried = Population(sets, pop.seeds, pop.swept)
    n = len(pop.seeds)
    results, curves = [], {}
    for c in record.candidates:
        if c.status != COMPLETED:
            continue
        for i, curve in enumerate(c.curves):
            member = c.id * n + i
            curves[member] = np.asarray(curve, np.float32)
            results.append(member_result(tried, member, curves[member], 0, c.lane, math.nan))
    summary = summarize(results, tried)
    files = [s.out / "halving.csv", *write_report(s.out, tried, results, summary, curves)]
    reached = rung_counts(record, rungs)
    s.say(
        f"halving: tried {count(len(record.candidates), 'candidate')}; reached rung "
        + ", ".join(f"{r}: {k}" for r, k in enumerate(reached))
    )
    s.say(format_top(summary, tried, s.args.top))
    s.say(budget_line(record, sched, pop.size, config.batch_size, config.num_updates))
    s.say("wrote " + ", ".join(str(f) for f in files))


def _as_set(spec: Any, index: int, values: tuple[tuple[str, Any], ...]) -> HParamSet:
    config, hparams = apply_values(spec.base, values, spec.source)
    return HParamSet(index, values, config, hparams)
