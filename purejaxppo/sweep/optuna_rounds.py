"""The rounds of `strategy: optuna`: training a round's trials, its file, the reports (host side).

A round's trials (each with the sweep's seeds) are split by static config; each config's
members run in chunks of one `GroupRunner`, built once per config and reused by every
round (one compile per static group). Its members per device are fixed the first time
the config is seen, for `batch x seeds` members, and recorded in `sweep.json` (`widths`,
keyed by the group's label), so a rerun runs the same per-device program and gets the
same bits. Optuna itself is used only by `purejaxppo.sweep.optuna_search`.

    OUT/optuna/round-RRRR.npz   per trial: its number, Optuna params, seeds and the
                                episode-return curves `[S, U]` of its members
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from purejaxppo.config import PPOConfig
from purejaxppo.run.guards import raise_if_interrupted
from purejaxppo.run.rundir import final_return
from purejaxppo.sharding import member_groups, population_mesh
from purejaxppo.sweep.population import Population, StaticGroup
from purejaxppo.sweep.report import _csv_bytes, atomic_write_bytes
from purejaxppo.sweep.runner import GroupRunner, chunk_bounds, plan_width

ROUND_DIR = "optuna"


class TrialRecord(NamedTuple):
    """One trained trial.

    Attributes:
      number: its Optuna trial number.
      params: its Optuna parameters (plain values: floats, categorical choices).
      seeds: the seeds it trained with.
      curves: episode return per update, float32 `[S, U]`, one row per seed.
      run_s: wall time of the chunks it ran in (shared with their other members).
    """

    number: int
    params: dict[str, Any]
    seeds: tuple[int, ...]
    curves: np.ndarray
    run_s: float

    def returns(self) -> list[float]:
        """Final return of each seed (`purejaxppo.run.rundir.final_return`)."""
        return [final_return(c) for c in self.curves]


def round_path(out: Path, r: int) -> Path:
    """`OUT/optuna/round-RRRR.npz`."""
    return Path(out) / ROUND_DIR / f"round-{r:04d}.npz"


def write_round(path: Path, trials: Sequence[TrialRecord]) -> None:
    """Save a round's trials atomically (the file's presence marks the round done)."""
    meta = [{"number": t.number, "params": t.params, "seeds": list(t.seeds), "run_s": t.run_s}
            for t in trials]  # fmt: skip
    arrays = {f"curves_{i}": np.asarray(t.curves, np.float32) for i, t in enumerate(trials)}
    buf = io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(meta)), **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())


def read_round(path: Path) -> list[TrialRecord]:
    """The trials of a round file (`write_round`)."""
    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
        return [
            TrialRecord(m["number"], m["params"], tuple(m["seeds"]), z[f"curves_{i}"], m["run_s"])
            for i, m in enumerate(meta)
        ]


@dataclasses.dataclass
class RoundTrainer:
    """Trains rounds of trials, one `GroupRunner` per static config (compiled once).

    Attributes:
      sweep: the `purejaxppo.sweep.command._Sweep` (out folder, mesh, manifest, widths).
      members: members of one round, `batch x seeds` (what widths are planned for).
      runners: static config -> its runner.
    """

    sweep: Any
    members: int
    runners: dict[PPOConfig, GroupRunner] = dataclasses.field(default_factory=dict)

    @property
    def mesh(self) -> Any:
        """The sweep's mesh, but no more devices than a round's members fill at the
        widest (the others would run padding only); the bits do not depend on it."""
        s = self.sweep
        groups = member_groups(self.members, min(s.width, s.max_batch or s.width))[0]
        devices = list(s.mesh.devices.flat)
        return s.mesh if groups >= len(devices) else population_mesh(devices[:groups])

    def runner(self, config: PPOConfig, label: str) -> GroupRunner:
        """The runner of `config` (a group labelled `label`), built and compiled once."""
        if config in self.runners:
            return self.runners[config]
        s = self.sweep
        key = f"optuna {label}"
        width, runner = s.widths.get(key), None
        if width is None and s.max_batch is not None:
            width = member_groups(self.members, min(s.width, s.max_batch))[1]
        elif width is None:
            width, runner = plan_width(config, self.members, s.width, s.segment, self.mesh)
        if runner is None or runner.width != width:
            runner = GroupRunner(config, width, self.mesh, s.segment)
        if key not in s.widths:
            s.widths[key] = width
            s.manifest["widths"] = s.widths
            s.save_manifest()
        compile_s = runner.compile()
        s.say(f"group {label}: {width} members per device; compiled once in {compile_s:.1f}s")
        self.runners[config] = runner
        return runner

    def train(self, population: Population, numbers: Sequence[int], params: Sequence[dict]) -> list:
        """Train every member of `population` (set i: trial `numbers[i]` with `params[i]`),
        group by group, chunk by chunk; returns a `TrialRecord` per set."""
        n_seeds = len(population.seeds)
        curves = np.full((population.size,), None, dtype=object)
        run_s = np.zeros((len(population.sets),))
        for g in population.groups():
            runner = self.runner(g.config, g.label())
            for lo, hi in chunk_bounds(len(g.members), runner.chunk_size):
                raise_if_interrupted()
                ids = list(g.members[lo:hi])
                res = runner.run_chunk(population.seeds_of(ids), population.hparams_of(ids))
                for row, m in zip(res.rows.tolist(), (ids[i] for i in res.rows), strict=True):
                    curves[m] = res.metrics["episode_return"][row]
                    run_s[m // n_seeds] += res.run_s / len(ids)
        return [
            TrialRecord(
                int(numbers[i]),
                dict(params[i]),
                population.seeds,
                np.stack(list(curves[i * n_seeds : (i + 1) * n_seeds])).astype(np.float32),
                float(run_s[i]),
            )
            for i in range(len(population.sets))
        ]


def trials_csv(
    records: Sequence[tuple[int, TrialRecord]], population: Population, values: Sequence[float]
) -> bytes:
    """`trials.csv`: one row per trained trial (set i of `population` is `records[i]`):
    trial, round, set, the searched values, value (the mean of the seeds' final returns),
    then each seed's final return."""
    seeds = population.seeds
    header = [
        "trial",
        "round",
        "set",
        *population.swept,
        "value",
        *(f"return_seed{s}" for s in seeds),
    ]
    rows = []
    for i, ((r, t), value) in enumerate(zip(records, values, strict=True)):
        swept = dict(population.sets[i].values)
        rows.append([t.number, r, i, *(swept[k] for k in population.swept), value, *t.returns()])
    return _csv_bytes(header, rows)


def group_of(groups: Sequence[StaticGroup]) -> dict[int, int]:
    """Member index -> its static group's index."""
    return {m: g.index for g in groups for m in g.members}
