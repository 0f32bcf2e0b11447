"""Successive halving (ASHA) bookkeeping: settings, rung schedule, promotion rule, record.

Host side, no JAX: `purejaxppo.sweep.halving` trains the slots and calls `after_interval`
between intervals. The population's P slots are `P / S` *lanes* of `S = seeds` slots each;
a lane holds one *candidate* (a hyperparameter set trained on the sweep's seeds).

    settings = settings_from_dict({"eta": 3, "rungs": 3, "rounds": 2}, "f.yaml", spec)
    schedule = make_schedule(settings, spec.base.ppo.num_updates)
    record = initial_record(population)
    events = after_interval(record, schedule, returns, num_seeds, sampler)   # [P, interval]

Rung `r` is reached after `eta**r` intervals of a candidate (`num_updates / eta**(rungs-1-r)`
updates: 1/9, 1/3 and all of them for eta 3, rungs 3). See docs/sweeps.md.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from purejaxppo.run.config import ConfigError

if TYPE_CHECKING:
    from purejaxppo.sweep.population import Population
    from purejaxppo.sweep.spec import SweepSpec

RUNNING, STOPPED, COMPLETED, UNFINISHED = "running", "stopped", "completed", "unfinished"


@dataclasses.dataclass(frozen=True)
class HalvingSettings:
    """The `halving:` section of a sweep file.

    Attributes:
      eta: keep the top `1/eta` of the candidates at each rung (>= 2).
      rungs: rungs, the last one the full `ppo.num_updates` (>= 2).
      rounds: the sweep lasts `rounds` full trainings of every slot: env steps
        `rounds x` those of a grid sweep of the population (>= 1; 1 = stop only, no refills).
    """

    eta: int = 3
    rungs: int = 3
    rounds: int = 2

    def to_dict(self) -> dict[str, int]:
        """The plain form recorded in the manifest."""
        return dataclasses.asdict(self)


def settings_from_dict(raw: dict[str, Any], source: str, spec: SweepSpec) -> HalvingSettings:
    """Parse and check the `halving:` section against the sweep it belongs to.

    Raises:
      ConfigError: one line naming `FILE: halving.KEY` and what was expected.
    """
    known = tuple(f.name for f in dataclasses.fields(HalvingSettings))
    for key in raw:
        if key not in known:
            raise ConfigError(
                f"{source}: halving.{key}: unknown setting (known: {', '.join(known)})"
            )
    lows = {"eta": 2, "rungs": 2, "rounds": 1}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < lows[key]:
            raise ConfigError(
                f"{source}: halving.{key}: expected an integer >= {lows[key]}, got {value!r}"
            )
    settings = HalvingSettings(**raw)
    static = [k for k in spec.swept if k.startswith("ppo.")]
    if static:
        raise ConfigError(
            f"{source}: halving: {static[0]} is swept, but successive halving refills the slots "
            "of one compiled program: sweep hparams.* only"
        )
    if settings.rounds > 1 and not spec.random:
        raise ConfigError(
            f"{source}: halving.rounds: {settings.rounds} refills freed slots with new draws from "
            "random:, but the sweep has no random: section; add one or set halving.rounds: 1"
        )
    num_updates = spec.base.ppo.num_updates
    first = settings.eta ** (settings.rungs - 1)
    if num_updates % first:
        raise ConfigError(
            f"{source}: halving: eta {settings.eta} and rungs {settings.rungs} make the first "
            f"rung 1/{first} of ppo.num_updates ({num_updates}), which {first} does not divide; "
            f"change ppo.total_timesteps so that num_updates is a multiple of {first}"
        )
    return settings


class Schedule(NamedTuple):
    """When rungs come, in intervals.

    Attributes:
      interval: updates per interval (the first rung's length).
      full: intervals of a full training (`eta**(rungs-1)`).
      total: intervals of the whole sweep (`rounds * full`).
      ages: intervals of a candidate at each rung (`eta**r`).
      eta: the halving factor.
    """

    interval: int
    full: int
    total: int
    ages: tuple[int, ...]
    eta: int


def make_schedule(settings: HalvingSettings, num_updates: int) -> Schedule:
    """The schedule of `settings` for runs of `num_updates` updates (checked to divide)."""
    full = settings.eta ** (settings.rungs - 1)
    ages = tuple(settings.eta**r for r in range(settings.rungs))
    return Schedule(num_updates // full, full, settings.rounds * full, ages, settings.eta)


# =========================================================================== candidates
@dataclasses.dataclass
class Candidate:
    """One hyperparameter set tried, trained in one lane on the sweep's seeds.

    Attributes:
      id: order of creation (the sweep's own sets first, then refills).
      values: its swept `(key, value)` pairs.
      lane: the lane it runs in (slots `lane * S ... lane * S + S - 1`).
      start: intervals done when it started.
      age: intervals it has trained.
      scores: its score at each rung reached (`score`).
      status: running, stopped (at a rung), completed (the last rung) or unfinished
        (still running when the sweep ended).
      curves: episode return per seed and update, `[S][age * interval]`.
    """

    id: int
    values: tuple[tuple[str, Any], ...]
    lane: int
    start: int
    age: int = 0
    scores: list[float] = dataclasses.field(default_factory=list)
    status: str = RUNNING
    curves: list[list[float]] = dataclasses.field(default_factory=list)


def score(curves: np.ndarray, interval: int) -> float:
    """A candidate's score at a rung from its curves `[S, U]` so far: the mean over seeds
    of each seed's mean episode return over its last `interval` updates (updates in which
    no episode ended skipped; NaN if a seed finished none)."""
    last = np.asarray(curves, np.float64)[:, -interval:]
    per_seed = [
        np.mean(row[np.isfinite(row)]) if np.isfinite(row).any() else math.nan for row in last
    ]
    return float(np.mean(per_seed))


def promoted(arrivals: Sequence[int], scores: Mapping[int, float], eta: int) -> set[int]:
    """ASHA's rule: which `arrivals` (candidates that just reached a rung) go on.

    `scores` holds the rung's score of every candidate that has reached it so far,
    arrivals included. An arrival goes on if it ranks in the top `max(1, n // eta)` of
    those `n` (best first; NaN last; ties: lower id first).
    """
    keep = max(1, len(scores) // eta)
    order = sorted(scores, key=lambda c: (math.isnan(scores[c]), -_finite(scores[c]), c))
    top = set(order[:keep])
    return {c for c in arrivals if c in top}


def _finite(x: float) -> float:
    return 0.0 if math.isnan(x) else x


class Sampler:
    """New candidates' values: the sweep's `random:` sampler continued past its `count`
    draws (grid axes, if any, drawn uniformly from their lists first), so refill `k` is the
    same whatever happened before; `done` replays the draws a resumed sweep already made."""

    def __init__(self, spec: SweepSpec, done: int = 0) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(spec.sampler_seed)
        for _ in range(spec.count):  # the draws of the population's own sets
            for _, dist in spec.random:
                dist.sample(self.rng)
        self.draws = 0
        for _ in range(done):
            self.draw()

    def draw(self) -> tuple[tuple[str, Any], ...]:
        """The next candidate's swept `(key, value)` pairs."""
        grid = [(k, values[int(self.rng.integers(len(values)))]) for k, values in self.spec.grid]
        random = [(k, dist.sample(self.rng)) for k, dist in self.spec.random]
        self.draws += 1
        return (*grid, *random)


# =========================================================================== record
@dataclasses.dataclass
class HalvingRecord:
    """Where a halving sweep stands after `interval` intervals (saved after each).

    Attributes:
      interval: intervals done.
      draws: refills drawn from the `Sampler`.
      candidates: every candidate tried, by id.
      lanes: lane -> the candidate in it (running, or the last one if the lane is idle).
      train_s: training wall time so far (not part of the results).
    """

    interval: int
    draws: int
    candidates: list[Candidate]
    lanes: list[int]
    train_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """Plain form (floats as Python floats; NaN allowed)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HalvingRecord:
        """`to_json`'s inverse."""
        cands = [
            Candidate(**{**c, "values": tuple((k, v) for k, v in c["values"])})
            for c in data["candidates"]
        ]
        return cls(data["interval"], data["draws"], cands, list(data["lanes"]), data["train_s"])

    def running(self) -> list[Candidate]:
        """Running candidates, in lane order."""
        cands = [self.candidates[c] for c in self.lanes]
        return [c for c in cands if c.status == RUNNING]


def initial_record(population: Population) -> HalvingRecord:
    """The sweep's own sets as candidates 0.., set `i` in lane `i`."""
    cands = [Candidate(s.index, s.values, s.index, 0) for s in population.sets]
    for c in cands:
        c.curves = [[] for _ in population.seeds]
    return HalvingRecord(0, 0, cands, [c.id for c in cands])


class Events(NamedTuple):
    """What `after_interval` decided.

    Attributes:
      arrived: rung -> candidates that reached it this interval.
      kept: candidates promoted past a rung this interval.
      refilled: lanes given a new candidate (to start from update 0).
      idled: lanes freed with no refill (too late for a new candidate to finish).
    """

    arrived: dict[int, list[int]]
    kept: list[int]
    refilled: list[int]
    idled: list[int]


def after_interval(
    record: HalvingRecord, schedule: Schedule, returns: np.ndarray, sampler: Sampler
) -> Events:
    """Append one interval's episode returns `[P, interval]` (slot-major) to the running
    candidates, judge those at a rung, refill freed lanes; updates `record` in place."""
    seeds = len(returns) // len(record.lanes)
    running = record.running()
    for c in running:
        rows = returns[c.lane * seeds : (c.lane + 1) * seeds]
        c.curves = [old + [float(x) for x in new] for old, new in zip(c.curves, rows, strict=True)]
        c.age += 1
    record.interval += 1
    arrived: dict[int, list[int]] = {}
    kept: list[int] = []
    freed: list[int] = []
    top = len(schedule.ages) - 1
    for r, age in enumerate(schedule.ages):
        arrivals = [c for c in running if c.age == age]
        if not arrivals:
            continue
        arrived[r] = [c.id for c in arrivals]
        for c in arrivals:
            c.scores.append(score(np.asarray(c.curves), schedule.interval))
        if r == top:
            for c in arrivals:
                c.status = COMPLETED
                freed.append(c.lane)
            continue
        at_rung = {c.id: c.scores[r] for c in record.candidates if len(c.scores) > r}
        go_on = promoted(arrived[r], at_rung, schedule.eta)
        for c in arrivals:
            if c.id in go_on:
                kept.append(c.id)
            else:
                c.status = STOPPED
                freed.append(c.lane)
    if record.interval == schedule.total:  # the budget is spent
        for c in record.running():
            c.status = UNFINISHED
        return Events(arrived, kept, [], sorted(freed))
    refilled, idled = [], []
    for lane in sorted(freed):
        if record.interval + schedule.full > schedule.total:
            idled.append(lane)
            continue
        values = sampler.draw()
        cand = Candidate(len(record.candidates), values, lane, record.interval)
        cand.curves = [[] for _ in range(seeds)]
        record.candidates.append(cand)
        record.lanes[lane] = cand.id
        refilled.append(lane)
    record.draws = sampler.draws
    return Events(arrived, kept, refilled, idled)


def finished(record: HalvingRecord, schedule: Schedule) -> bool:
    """The sweep ends after `schedule.total` intervals, or earlier once no candidate runs
    (every lane idle: the rest of the budget could only train nothing)."""
    return record.interval >= schedule.total or not record.running()


def format_events(record: HalvingRecord, schedule: Schedule, events: Events) -> str:
    """One progress line: `interval 3/18: rung 0: 4 arrived, 1 kept; refilled lanes ...`."""
    parts = []
    for r, ids in sorted(events.arrived.items()):
        frac = f"1/{schedule.full // schedule.ages[r]}" if r < len(schedule.ages) - 1 else "all"
        best = max((record.candidates[c].scores[r] for c in ids), key=_finite)
        what = (
            "completed"
            if r == len(schedule.ages) - 1
            else f"{sum(c in events.kept for c in ids)} kept"
        )
        parts.append(f"rung {r} ({frac}): {len(ids)} arrived, {what}, best {best:.1f}")
    if events.refilled:
        new = [record.candidates[record.lanes[lane]].id for lane in events.refilled]
        parts.append(
            f"new candidates {new[0]}-{new[-1]}" if len(new) > 1 else f"new candidate {new[0]}"
        )
    if events.idled:
        parts.append(f"{len(events.idled)} lane(s) idle")
    running = len(record.running())
    return (
        f"interval {record.interval}/{schedule.total}: "
        + ("; ".join(parts) or "training")
        + f"; {running} running"
    )


def budget_line(
    record: HalvingRecord, schedule: Schedule, slots: int, batch: int, num_updates: int
) -> str:
    """The saving: env steps the slots took (idle ones included: they run in the compiled
    program all the same) vs a grid sweep training every candidate tried to the end."""
    updates = record.interval * schedule.interval
    used = updates * slots * batch
    seeds = slots // len(record.lanes)
    grid = len(record.candidates) * seeds * num_updates * batch
    trained = sum(len(c.curves[0]) for c in record.candidates) * seeds * batch
    return (
        f"halving: {used:,} env steps ({slots} slots x {updates} updates, {used - trained:,} "
        f"of them in idle slots); a grid sweep of the {len(record.candidates)} candidates "
        f"tried would take {grid:,}: saved {1 - used / grid:.0%}"
    )


def rung_counts(record: HalvingRecord, rungs: int) -> list[int]:
    """How many candidates reached each rung."""
    return [sum(len(c.scores) > r for c in record.candidates) for r in range(rungs)]


def halving_csv_rows(
    record: HalvingRecord, swept: Sequence[str], seeds: Sequence[int], rungs: int, steps: int
) -> tuple[list[str], list[list[Any]]]:
    """`halving.csv`: header and one row per candidate (`steps` = env steps of one seed's
    update)."""
    header = ["candidate", "lane", "start_interval", "status", "rungs_reached", "seeds",
              *swept, *(f"score_rung{r}" for r in range(rungs)), "env_steps"]  # fmt: skip
    rows = []
    for c in record.candidates:
        values = dict(c.values)
        scores = [*c.scores, *[""] * (rungs - len(c.scores))]
        updates = sum(len(curve) for curve in c.curves)
        rows.append([c.id, c.lane, c.start, c.status, len(c.scores), " ".join(map(str, seeds)),
                     *(values[k] for k in swept), *scores, updates * steps])  # fmt: skip
    return header, rows


def lane_values(record: HalvingRecord) -> list[tuple[tuple[str, Any], ...]]:
    """The swept values of each lane's candidate (running or last)."""
    return [record.candidates[c].values for c in record.lanes]
