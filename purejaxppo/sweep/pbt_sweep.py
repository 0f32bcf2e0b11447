"""`strategy: pbt`: population-based training of a sweep's population (host side).

Each static group is one PBT population: its P members train together (one compiled
program, `purejaxppo.sweep.intervals.IntervalRunner`) for `interval_updates` updates; then
the pure, jitted `purejaxppo.sweep.pbt.pbt_step` ranks them by fitness, copies the whole
train state of top members into the bottom ones and perturbs the copies' explored
hyperparameters, on the device; the next interval runs the same compiled program with the
new hyperparameters (arguments, so nothing recompiles). There is no step after the last
interval.

The folder (`OUT/pbt/group-G/`): after every interval j an atomic record
`interval-JJJJ.npz` (the interval's metrics `[P, I]`, the hyperparameters it trained
with, the fitness, the step's parents and key folds, the hyperparameters of the next
interval) and, for j < J - 1, an Orbax checkpoint of the population after the step
(`checkpoint/<updates>`). A rerun resumes from the newest intact checkpoint whose records
exist; every step's key is `fold_in(key(pbt.seed), j)` and the step runs on one device
over the gathered population, so a resumed sweep, and a sweep on 1 or 2 devices, gives
the uninterrupted bits. The report (`purejaxppo.sweep.pbt_report`) is written at the end.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import jax
import numpy as np

from purejaxppo.config import HParams
from purejaxppo.run.checkpoint import Checkpointer, CheckpointError, CheckpointMeta
from purejaxppo.run.config import RunConfig, run_config_to_dict
from purejaxppo.run.guards import raise_if_interrupted
from purejaxppo.run.progress import count
from purejaxppo.sweep.intervals import Chunks, IntervalRunner
from purejaxppo.sweep.pbt import interval_fitness, pbt_step
from purejaxppo.sweep.pbt_settings import PBTSettings, settings_from_dict
from purejaxppo.sweep.population import StaticGroup
from purejaxppo.sweep.report import atomic_write_bytes
from purejaxppo.sweep.runner import GroupRunner, plan_width

__all__ = ["IntervalRecord", "read_records", "run_strategy", "settings_from_dict"]

HPARAM_FIELDS = tuple(f.name for f in dataclasses.fields(HParams))
PBT_DIR = "pbt"
_STEP = jax.jit(pbt_step, static_argnames="config")


class IntervalRecord(NamedTuple):
    """What one interval of a PBT population did (the `interval-JJJJ.npz` file).

    Attributes:
      metrics: name -> float32 `[P, I]` per-update metrics of the interval.
      hparams: field -> float32 `[P]`, the hyperparameters the interval trained with.
      fitness: float32 `[P]` (NaN: no value; ranked last).
      parents: int32 `[P]`: after the step, member i continues member `parents[i]`
        (identity after the last interval).
      key_folds: uint32 `[P]` of the step (0: kept).
      next_hparams: field -> float32 `[P]`, the next interval's hyperparameters.
      run_s: the interval's training wall time.
    """

    metrics: dict[str, np.ndarray]
    hparams: dict[str, np.ndarray]
    fitness: np.ndarray
    parents: np.ndarray
    key_folds: np.ndarray
    next_hparams: dict[str, np.ndarray]
    run_s: float


def group_dir(out: Path, group: int) -> Path:
    """The PBT folder of static group `group`."""
    return out / PBT_DIR / f"group-{group}"


def record_path(out: Path, group: int, interval: int) -> Path:
    return group_dir(out, group) / f"interval-{interval:04d}.npz"


def write_record(path: Path, rec: IntervalRecord) -> None:
    """Write `rec` atomically (a crash never leaves half a record)."""
    import io

    arrays: dict[str, np.ndarray] = {
        "fitness": rec.fitness,
        "parents": rec.parents,
        "key_folds": rec.key_folds,
        "run_s": np.float64(rec.run_s),
    }
    arrays.update({f"metric.{k}": v for k, v in rec.metrics.items()})
    arrays.update({f"hparams.{k}": v for k, v in rec.hparams.items()})
    arrays.update({f"next.{k}": v for k, v in rec.next_hparams.items()})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())


def read_record(path: Path) -> IntervalRecord:
    """`write_record`'s inverse."""
    with np.load(path) as data:
        part = {k: data[k] for k in data.files}

    def prefixed(prefix: str) -> dict[str, np.ndarray]:
        return {k[len(prefix) :]: v for k, v in part.items() if k.startswith(prefix)}

    return IntervalRecord(
        metrics=prefixed("metric."),
        hparams=prefixed("hparams."),
        fitness=part["fitness"],
        parents=part["parents"],
        key_folds=part["key_folds"],
        next_hparams=prefixed("next."),
        run_s=float(part["run_s"]),
    )


def read_records(out: Path, group: int, intervals: int) -> list[IntervalRecord]:
    """The records of intervals `0 .. intervals - 1` of a group."""
    return [read_record(record_path(out, group, j)) for j in range(intervals)]


def as_float(value: Any) -> float:
    """A float32 value as the shortest Python float that casts back to it (0.99, not
    0.9900000095367432): the same bits on the device, readable in CSV and YAML."""
    return float(str(np.float32(value)))


def member_hparams(fields: dict[str, Any], i: int) -> HParams:
    """Member `i`'s `HParams` from field -> `[P]` float32 arrays (`as_float` values)."""
    return HParams(**{k: as_float(np.asarray(fields[k])[i]) for k in HPARAM_FIELDS})


def _host_hparams(fields: dict[str, Any]) -> list[HParams]:
    """Field -> `[P]` float32 arrays to P `HParams`."""
    size = len(next(iter(fields.values())))
    return [member_hparams(fields, i) for i in range(size)]


def _field_arrays(hparams: list[HParams]) -> dict[str, np.ndarray]:
    return {k: np.asarray([getattr(h, k) for h in hparams], np.float32) for k in HPARAM_FIELDS}


# =========================================================================== the loop
def run_strategy(s: Any, err_stream: TextIO) -> None:
    """Run PBT on every static group of the sweep `s` (`purejaxppo.sweep.command._Sweep`),
    resuming what the folder holds, then write the report."""
    from purejaxppo.sweep.pbt_report import write_pbt_report

    settings: PBTSettings = s.spec.settings
    for g in s.groups:
        _run_group(s, g, settings, err_stream)
        raise_if_interrupted()
    write_pbt_report(s, settings)


def _runner(s: Any, g: StaticGroup) -> GroupRunner:
    """The group's runner at its recorded width (planned to fit memory the first time)."""
    key, size = str(g.index), len(g.members)
    mesh = s.group_mesh(g.index)
    if key in s.widths:
        return GroupRunner(g.config, s.widths[key], mesh, s.segment)
    if s.max_batch is None:
        width, runner = plan_width(g.config, size, s.width, s.segment, mesh)
    else:
        width, runner = s.planned[g.index], None
    s.widths[key] = width
    s.manifest["widths"] = s.widths
    s.save_manifest()
    if runner is None or runner.width != width or runner.mesh.devices.size != mesh.devices.size:
        runner = GroupRunner(g.config, width, mesh, s.segment)
    return runner


def _run_group(s: Any, g: StaticGroup, settings: PBTSettings, err_stream: TextIO) -> None:
    """Train group `g` as one PBT population, from its newest intact checkpoint."""
    members = list(g.members)
    interval = settings.interval_updates
    total = g.config.num_updates // interval
    label = f"group {g.index + 1}/{len(s.groups)} ({g.label()})"
    seeds = s.population.seeds_of(members)
    ir = IntervalRunner(_runner(s, g), len(members))
    compile_s = ir.runner.compile()
    folder = group_dir(s.out, g.index)
    done, chunks, hparams = _resume(s, ir, folder, seeds, members, interval, err_stream)
    s.say(
        f"{label}: PBT over {count(len(members), 'member')}, {total} intervals of "
        f"{interval} updates ({ir.runner.width} per device; compiled once in {compile_s:.1f}s)"
        + (f"; resuming after interval {done}" if done else "")
    )
    checkpointer = Checkpointer(folder / "checkpoint", keep=2)
    try:
        for j in range(done, total):
            raise_if_interrupted()
            chunks, hparams = _interval(s, g, ir, j, total, chunks, hparams, checkpointer, label)
    finally:
        checkpointer.close()


def _resume(
    s: Any,
    ir: IntervalRunner,
    folder: Path,
    seeds: list[int],
    members: list[int],
    interval: int,
    err_stream: TextIO,
) -> tuple[int, Chunks, list[HParams]]:
    """`(intervals done, chunks, next hparams)`: fresh, or from the newest intact checkpoint
    whose interval records all exist (a damaged one is set aside, saying so)."""
    hparams = s.population.hparams_of(members)
    chunks = ir.init(seeds, hparams)
    ckpt_dir = folder / "checkpoint"
    if not ckpt_dir.is_dir():
        return 0, chunks, hparams
    checkpointer = Checkpointer(ckpt_dir, keep=2)
    try:
        like = ir.gather(chunks)
        for update in reversed(checkpointer.all_updates()):
            j = update // interval
            if not all(record_path(s.out, _group_of(folder), i).is_file() for i in range(j)):
                continue
            try:
                state, _ = checkpointer.restore(update, like)
            except CheckpointError as err:
                kept = checkpointer.set_aside(update)
                print(
                    f"purejaxppo sweep: warning: PBT checkpoint {update} cannot be restored "
                    f"({str(err).splitlines()[0]}); it is kept as {kept}",
                    file=err_stream,
                    flush=True,
                )
                continue
            record = read_record(record_path(s.out, _group_of(folder), j - 1))
            return j, ir.scatter(state), _host_hparams(record.next_hparams)
    finally:
        checkpointer.close()
    return 0, chunks, hparams


def _group_of(folder: Path) -> int:
    return int(folder.name.split("-", 1)[1])


def _interval(
    s: Any,
    g: StaticGroup,
    ir: IntervalRunner,
    j: int,
    total: int,
    chunks: Chunks,
    hparams: list[HParams],
    checkpointer: Checkpointer,
    label: str,
) -> tuple[Chunks, list[HParams]]:
    """Train interval `j`, step (unless it is the last), record and checkpoint it."""
    settings: PBTSettings = s.spec.settings
    interval = settings.interval_updates
    start = time.perf_counter()
    chunks, metrics = ir.advance(chunks, hparams, interval)
    run_s = time.perf_counter() - start
    score = np.asarray(interval_fitness(metrics[settings.fitness]), np.float32)
    fitness = score if settings.mode == "max" else -score
    used = _field_arrays(hparams)
    size = len(hparams)
    if j == total - 1:  # the last interval: no step
        record = IntervalRecord(
            metrics, used, score, np.arange(size, dtype=np.int32),
            np.zeros(size, np.uint32), used, run_s,
        )  # fmt: skip
        write_record(record_path(s.out, g.index, j), record)
        _say_interval(s, label, j, total, score, 0, run_s)
        return chunks, hparams
    population = ir.gather(chunks)
    device = ir.device
    stacked = HParams(**{k: jax.device_put(v, device) for k, v in used.items()})
    key = jax.random.fold_in(jax.random.key(settings.seed), j)
    step = _STEP(key, population, stacked, jax.device_put(fitness, device), settings.step)
    next_fields = {k: np.asarray(getattr(step.hparams, k), np.float32) for k in HPARAM_FIELDS}
    parents = np.asarray(step.parents, np.int32)
    record = IntervalRecord(
        metrics, used, score, parents, np.asarray(step.key_folds, np.uint32), next_fields, run_s
    )
    write_record(record_path(s.out, g.index, j), record)
    meta = CheckpointMeta(
        update=(j + 1) * interval,
        num_updates=g.config.num_updates,
        seeds=[int(x) for x in s.population.seeds_of(list(g.members))],
        train_time_s=run_s,
        config=run_config_to_dict(RunConfig(g.config, s.spec.base.hparams)),
    )
    checkpointer.save(step.states, meta)
    replaced = int(np.sum(parents != np.arange(size)))
    _say_interval(s, label, j, total, score, replaced, run_s)
    return ir.scatter(step.states), _host_hparams(next_fields)


def _say_interval(
    s: Any, label: str, j: int, total: int, score: np.ndarray, replaced: int, run_s: float
) -> None:
    finite = score[np.isfinite(score)]
    best = f"{np.max(finite):.2f}" if finite.size else "n/a"
    mean = f"{np.mean(finite):.2f}" if finite.size else "n/a"
    step = f"; {replaced} replaced" if j < total - 1 else ""
    s.say(
        f"{label}: interval {j + 1}/{total}: fitness best {best}, mean {mean}{step} ({run_s:.1f}s)"
    )


def population_curves(records: list[IntervalRecord], metric: str = "episode_return") -> Any:
    """The metric `[P, J * I]` of each final member along its lineage (the ancestor that
    trained each interval), from a group's J records."""
    from purejaxppo.sweep.pbt import lineage

    parents = [r.parents for r in records[:-1]]
    size = records[0].fitness.shape[0]
    rows = []
    for m in range(size):
        ancestors = lineage(parents, m)
        rows.append(
            np.concatenate([r.metrics[metric][a] for r, a in zip(records, ancestors, strict=True)])
        )
    return np.stack(rows)
