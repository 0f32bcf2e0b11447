"""The report of a PBT sweep (host side): lineage.csv, results.csv, best.yaml and
pbt_schedules.png, from the interval records (`purejaxppo.sweep.pbt_sweep`).

- `lineage.csv`: one row per group, interval and member: the member it continued (its
  parent; itself when kept), the key fold of that copy, its fitness over the interval and
  every hyperparameter it trained with.
- `results.csv`: one row per final member: the final return of its lineage's curve (the
  ancestor that trained each interval; `purejaxppo.run.rundir.final_return`), the initial
  set and seed it descends from, the copies along the way and its last hyperparameters.
- `best.yaml`: the best final member as a `purejaxppo train` config whose `schedule:`
  holds its lineage's hyperparameters and key folds: training it replays the member.
- `pbt_schedules.png`: the explored hyperparameters along every final member's lineage
  (the best one highlighted) and their episode returns.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from purejaxppo.config import HParams
from purejaxppo.run.config import RunConfig, dump_run_config
from purejaxppo.run.rundir import final_return
from purejaxppo.run.schedule_config import ScheduleSegment
from purejaxppo.sweep.pbt import lineage
from purejaxppo.sweep.pbt_settings import PBTSettings
from purejaxppo.sweep.pbt_sweep import (
    IntervalRecord,
    as_float,
    member_hparams,
    population_curves,
    read_records,
)
from purejaxppo.sweep.population import StaticGroup
from purejaxppo.sweep.report import _csv_bytes, _png, atomic_write_bytes, smooth

HPARAM_FIELDS = tuple(f.name for f in dataclasses.fields(HParams))
PBT_FILES = ("lineage.csv", "results.csv", "best.yaml", "pbt_schedules.png")


@dataclasses.dataclass(frozen=True)
class GroupOutcome:
    """One static group's PBT population after its last interval.

    Attributes:
      group: the static group.
      records: its J interval records.
      curves: float `[P, U]` episode returns along each final member's lineage.
      finals: `[P]` final returns of those curves.
      best: the final member with the highest final return (NaN ranks last).
    """

    group: StaticGroup
    records: list[IntervalRecord]
    curves: np.ndarray
    finals: np.ndarray
    best: int


def _outcome(out: Path, g: StaticGroup, settings: PBTSettings) -> GroupOutcome:
    records = read_records(out, g.index, g.config.num_updates // settings.interval_updates)
    curves = population_curves(records)
    finals = np.array([final_return(row) for row in curves])
    ranked = np.where(np.isnan(finals), -np.inf, finals)
    return GroupOutcome(g, records, curves, finals, int(np.argmax(ranked)))


def member_run_config(s: Any, o: GroupOutcome, member: int, interval: int) -> RunConfig:
    """The `purejaxppo train` config that replays final member `member` of group `o`: the
    seed of its root ancestor, a schedule of its lineage's hyperparameters and key folds
    (consecutive identical segments without a fold merged)."""
    ancestors = lineage([r.parents for r in o.records[:-1]], member)
    root = o.group.members[ancestors[0]]
    hps = [member_hparams(r.hparams, a) for r, a in zip(o.records, ancestors, strict=True)]
    folds = [0] + [int(r.key_folds[a]) for r, a in zip(o.records[:-1], ancestors[1:], strict=True)]
    first = hps[0]
    segments = [ScheduleSegment(0, first)]
    for j in range(1, len(hps)):
        if hps[j] == segments[-1].hparams and folds[j] == 0:
            continue
        changed = tuple(k for k in HPARAM_FIELDS if getattr(hps[j], k) != getattr(first, k))
        segments.append(ScheduleSegment(j * interval, hps[j], folds[j], changed))
    seed = s.population.seeds_of([root])[0]
    return RunConfig(
        o.group.config, first, seed, None, tuple(segments) if len(segments) > 1 else ()
    )


def lineage_csv(outcomes: Sequence[GroupOutcome], interval: int) -> bytes:
    header = ["group", "interval", "start_update", "member", "parent", "key_fold", "fitness"]
    header += list(HPARAM_FIELDS)
    rows = []
    for o in outcomes:
        for j, r in enumerate(o.records):
            for m in range(r.fitness.shape[0]):
                parent = m if j == 0 else int(o.records[j - 1].parents[m])
                fold = 0 if j == 0 else int(o.records[j - 1].key_folds[m])
                values = [as_float(r.hparams[k][m]) for k in HPARAM_FIELDS]
                rows.append([o.group.index, j, j * interval, m, parent, fold,
                             as_float(r.fitness[m]), *values])  # fmt: skip
    return _csv_bytes(header, rows)


def results_csv(s: Any, outcomes: Sequence[GroupOutcome], explored: Sequence[str]) -> bytes:
    header = ["group", "member", "final_return", "root_set", "root_seed", "copies"]
    header += [f"last_{name}" for name in explored]
    rows = []
    for o in outcomes:
        parents = [r.parents for r in o.records[:-1]]
        for m in range(o.finals.shape[0]):
            ancestors = lineage(parents, m)
            root = s.population.member(o.group.members[ancestors[0]])
            copies = sum(int(p[a]) != a for p, a in zip(parents, ancestors[1:], strict=True))
            last = [as_float(o.records[-1].hparams[name][m]) for name in explored]
            rows.append([o.group.index, m, float(o.finals[m]), root.set_index, root.seed,
                         copies, *last])  # fmt: skip
    return _csv_bytes(header, rows)


def plot_schedules(
    o: GroupOutcome, explored: Sequence[str], interval: int, log: Sequence[str] = ()
) -> bytes:
    """`pbt_schedules.png` of one group: a panel per explored field (log scale for the
    fields in `log`) and the returns."""
    from matplotlib.figure import Figure

    panels = [*explored, "episode_return"]
    fig = Figure(figsize=(8, 2.3 * len(panels) + 0.6), dpi=110)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    batch = o.group.config.batch_size
    size, updates = o.curves.shape
    parents = [r.parents for r in o.records[:-1]]
    for ax, name in zip(axes, panels, strict=True):
        for m in [*(i for i in range(size) if i != o.best), o.best]:
            best = m == o.best
            style = {"color": "C3" if best else "0.6", "linewidth": 2.0 if best else 0.8,
                     "alpha": 1.0 if best else 0.6, "zorder": 3 if best else 1}  # fmt: skip
            if name == "episode_return":
                window = max(1, updates // 50)
                steps = (np.arange(updates) + 1) * batch
                ax.plot(steps, smooth(o.curves[m], window), **style)
                continue
            ancestors = lineage(parents, m)
            values = [float(r.hparams[name][a]) for r, a in zip(o.records, ancestors, strict=True)]
            starts = np.arange(len(values) + 1) * interval * batch
            ax.step(starts, [*values, values[-1]], where="post", **style)
        ax.set_ylabel(name, fontsize=9)
        ax.grid(alpha=0.3)
        if name in log:
            ax.set_yscale("log")
    axes[-1].set_xlabel("environment steps")
    fig.suptitle(
        f"PBT schedules along each final member's lineage (best in red, final return "
        f"{o.finals[o.best]:.1f});\nreturns: moving average over 1/50 of the updates",
        fontsize=10,
    )
    fig.tight_layout()
    return _png(fig)


def write_pbt_report(s: Any, settings: PBTSettings) -> list[Path]:
    """Write the PBT report files into the sweep folder and print the best member."""
    from purejaxppo.run.stats import iqm_ci

    interval = settings.interval_updates
    outcomes = [_outcome(s.out, g, settings) for g in s.groups]
    explored = [b.name for b in settings.step.explore]
    top = max(outcomes, key=lambda o: -math.inf if np.isnan(o.finals[o.best]) else o.finals[o.best])
    rc = member_run_config(s, top, top.best, interval)
    header = (
        f"# The best member of the PBT sweep {s.spec.source} (group {top.group.index}, member "
        f"{top.best}, final return {top.finals[top.best]:.2f}):\n# its lineage's hyperparameter "
        "schedule; `purejaxppo train best.yaml` replays it.\n"
    )
    files = {
        "lineage.csv": lineage_csv(outcomes, interval),
        "results.csv": results_csv(s, outcomes, explored),
        "best.yaml": (header + dump_run_config(rc)).encode(),
        "pbt_schedules.png": plot_schedules(
            top, explored, interval, [b.name for b in settings.step.explore if b.log]
        ),
    }
    paths = []
    for name, data in files.items():
        atomic_write_bytes(s.out / name, data)
        paths.append(s.out / name)
    for o in outcomes:
        finite = o.finals[np.isfinite(o.finals)]
        stats = ""
        if finite.size:
            est = iqm_ci(finite)
            ci = "" if math.isnan(est.low) else f" [{est.low:.1f}, {est.high:.1f}]"
            stats = f"; final returns IQM {est.point:.1f}{ci} over {finite.size} members"
        s.say(
            f"group {o.group.index + 1}/{len(outcomes)} ({o.group.label()}): best member "
            f"{o.best}, final return {o.finals[o.best]:.2f}{stats}"
        )
    s.say(f"replay the best member: purejaxppo train {s.out / 'best.yaml'} --out RUN")
    s.say("wrote " + ", ".join(str(p) for p in paths))
    return paths
