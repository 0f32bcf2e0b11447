"""`strategy: optuna`: Optuna's TPE sampler asks a batch of trials, the batch trains in one
vmapped call, the values are told back, `rounds` times (host side).

    strategy: optuna
    optuna: {rounds: 4, batch: 8, seed: 0}

The search space is the sweep's own: `random:` distributions become `suggest_float`
(`uniform`), `suggest_float(log=True)` (`log_uniform`) and `suggest_categorical`
(`choice`); `grid:` lists become categorical too. A trial trains with the sweep's
`seeds`; its value is the mean over seeds of the final return (the score of the sweep
reports), always maximised.

The study lives in `OUT/optuna.db` (SQLite: `optuna-dashboard sqlite:///OUT/optuna.db`);
each round's trained curves in `OUT/optuna/round-RRRR.npz` (written before the study is
told, so a round with a file is done). Optuna's sampler state is not stored, so every
round asks with a fresh `TPESampler(seed=seed + round)`; a rerun tells the study what a
killed run trained but did not tell, marks the trials a killed round left running as
failed (TPE ignores those) and asks that round again: the same trials, trained with the
same members per device, so the same bits as an uninterrupted run. `optuna` is imported
only here, inside functions: it is an optional extra.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from purejaxppo.run.config import ConfigError
from purejaxppo.sweep.population import format_value

if TYPE_CHECKING:
    from purejaxppo.sweep.spec import SweepSpec

STUDY_NAME = "purejaxppo"
DB_FILE = "optuna.db"
SETTING_KEYS = ("rounds", "batch", "seed", "startup_trials")
MISSING_EXTRA = "strategy: optuna needs the optuna extra: pip install -e '.[optuna]'"
_PLAIN = (bool, int, float, str)  # what Optuna stores as a categorical choice


@dataclasses.dataclass(frozen=True)
class OptunaSettings:
    """The `optuna:` section of a sweep file.

    Attributes:
      rounds: ask-train-tell rounds.
      batch: trials per round, trained together (default: the sets the sweep would train
        as a grid, `random.count` x grid points).
      seed: the sampler's seed; round r asks with `TPESampler(seed=seed + r)`.
      startup_trials: finished trials before TPE takes over from random sampling
        (default: `batch`, so the first round is random and the next ones use it).
    """

    rounds: int
    batch: int
    seed: int = 0
    startup_trials: int = 0

    def to_dict(self) -> dict[str, int]:
        """Plain form, recorded in the folder's `sweep.json`."""
        return dataclasses.asdict(self)


def settings_from_dict(raw: Mapping[str, Any], source: str, spec: SweepSpec) -> OptunaSettings:
    """Check the `optuna:` section against the sweep; the optuna package must be installed.

    Raises:
      ConfigError: one line naming the key (`FILE: optuna.rounds: ...`).
    """
    from purejaxppo.sweep.spec import _suggest

    for key in raw:
        if key == "direction":
            raise ConfigError(
                f"{source}: optuna.direction: the objective is the mean final return over "
                "seeds, always maximised; leave direction out"
            )
        if key not in SETTING_KEYS:
            hint = _suggest(str(key), SETTING_KEYS) or "; valid: " + ", ".join(SETTING_KEYS)
            raise ConfigError(f"{source}: optuna.{key}: unknown key{hint}")
    if "rounds" not in raw:
        raise ConfigError(f"{source}: optuna.rounds: required (ask-train-tell rounds, e.g. 4)")
    if not spec.grid and not spec.random:
        raise ConfigError(
            f"{source}: optuna: nothing to search; add random: distributions "
            "(or grid: lists) for Optuna to search over"
        )
    points = math.prod(len(values) for _, values in spec.grid) * max(1, spec.count)
    batch = _integer(raw, "batch", points, 1, source)
    settings = OptunaSettings(
        rounds=_integer(raw, "rounds", 0, 1, source),
        batch=batch,
        seed=_integer(raw, "seed", 0, 0, source),
        startup_trials=_integer(raw, "startup_trials", batch, 0, source),
    )
    if importlib.util.find_spec("optuna") is None:  # before the output folder is touched
        raise ConfigError(f"{source}: {MISSING_EXTRA}")
    return settings


def _integer(raw: Mapping[str, Any], key: str, default: int, low: int, source: str) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        what = "a positive integer" if low == 1 else "a non-negative integer"
        raise ConfigError(f"{source}: optuna.{key}: expected {what}, got {value!r}")
    return value


# =========================================================================== search space
class Axis(NamedTuple):
    """One searched key and its Optuna distribution.

    Attributes:
      key: the swept key (`hparams.learning_rate`), also the Optuna parameter name.
      distribution: an `optuna.distributions` Float- or CategoricalDistribution.
      values: a categorical axis's values, in the order of its choices (None for a float
        axis). Choices are the values themselves when plain, else their labels (`64x64`).
    """

    key: str
    distribution: Any
    values: tuple[Any, ...] | None

    def value_of(self, param: Any) -> Any:
        """The sweep value behind Optuna's parameter `param`."""
        if self.values is None:
            return float(param)
        return self.values[self.distribution.choices.index(param)]


def search_space(spec: SweepSpec) -> tuple[Axis, ...]:
    """The sweep's search space as Optuna distributions, in the order of `spec.swept`."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    def categorical(key: str, values: Sequence[Any]) -> Axis:
        plain = all(isinstance(v, _PLAIN) for v in values)
        choices = tuple(values) if plain else tuple(format_value(v) for v in values)
        return Axis(key, CategoricalDistribution(choices), tuple(values))

    axes = [categorical(key, values) for key, values in spec.grid]
    for key, d in spec.random:
        if d.kind == "choice":
            axes.append(categorical(key, d.args))
        else:
            lo, hi = d.args
            axes.append(Axis(key, FloatDistribution(lo, hi, log=d.kind == "log_uniform"), None))
    return tuple(axes)


def trial_values(axes: Sequence[Axis], params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """`(key, value)` pairs of a trial's Optuna `params`, as a sweep set holds them."""
    return tuple((a.key, a.value_of(params[a.key])) for a in axes)


# =========================================================================== the study
def open_study(out: Path, seed: int | None = None, startup_trials: int = 0) -> Any:
    """The folder's study (created if new), asking with `TPESampler(seed=seed)`."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials)
    return optuna.create_study(
        study_name=STUDY_NAME,
        storage=storage_url(out),
        sampler=sampler,
        direction="maximize",
        load_if_exists=True,
    )


def storage_url(out: Path) -> str:
    """`sqlite:///ABSOLUTE/OUT/optuna.db`."""
    return f"sqlite:///{(Path(out) / DB_FILE).resolve()}"


def ask_round(study: Any, axes: Sequence[Axis], r: int, n: int, seeds: Sequence[int]) -> list[Any]:
    """Ask `n` trials of round `r` (after marking trials a killed run left running as
    failed, so TPE sees what an uninterrupted run saw). Returns the `optuna.Trial`s."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)
    space = {a.key: a.distribution for a in axes}
    trials = []
    for _ in range(n):
        trial = study.ask(space)
        trial.set_user_attr("round", r)
        trial.set_user_attr("seeds", list(seeds))
        trials.append(trial)
    return trials


def tell_trial(study: Any, number: int, returns: Sequence[float]) -> None:
    """Tell trial `number` its value, the mean of its per-seed final `returns` (a trial
    with a NaN among them fails); a finished trial is left as it is."""
    import optuna
    from optuna.trial import TrialState

    frozen = study.get_trials(deepcopy=False)[number]
    if frozen.state != TrialState.RUNNING:
        return
    trial = optuna.Trial(study, frozen._trial_id)  # the public Trial of a stored trial
    trial.set_user_attr("returns", [float(x) for x in returns])
    value = trial_value(returns)
    if math.isfinite(value):
        study.tell(trial, value)
    else:
        study.tell(trial, state=TrialState.FAIL)


def trial_value(returns: Sequence[float]) -> float:
    """A trial's value: the mean of its seeds' final returns (as `summary.csv`'s mean)."""
    return float(np.mean(np.asarray(returns, np.float64)))


# =========================================================================== the strategy
def run_strategy(s: Any, err_stream: Any) -> None:
    """Run the rounds the folder lacks, then report (`purejaxppo.sweep.strategy`).

    `s` is the `purejaxppo.sweep.command._Sweep` of a locked, prepared folder.
    """
    from purejaxppo.run.guards import raise_if_interrupted
    from purejaxppo.run.progress import count
    from purejaxppo.sweep.optuna_rounds import RoundTrainer, read_round, round_path

    settings: OptunaSettings = s.spec.settings
    axes = search_space(s.spec)
    seeds = s.population.seeds
    trainer = RoundTrainer(s, settings.batch * len(seeds))
    s.say(
        f"optuna: {count(settings.rounds, 'round')} of {count(settings.batch, 'trial')} x "
        f"{count(len(seeds), 'seed')} "
        f"(TPE, seed {settings.seed}, {settings.startup_trials} random trials first) -> "
        f"study {STUDY_NAME} in {s.out / DB_FILE}"
    )
    for r in range(settings.rounds):
        raise_if_interrupted()
        study = open_study(s.out, settings.seed + r, settings.startup_trials)
        path = round_path(s.out, r)
        if path.exists():  # trained: tell what a killed run may not have told
            for t in read_round(path):
                _check_seeds(s, t.seeds, seeds)
                tell_trial(study, t.number, t.returns())
            s.say(f"round {r + 1}/{settings.rounds}: done before, skipped")
            continue
        _run_round(s, study, axes, r, trainer)
    _report(s, axes)


def _check_seeds(s: Any, old: Sequence[int], new: Sequence[int]) -> None:
    from purejaxppo.sweep.store import SweepError

    if tuple(old) != tuple(new):
        raise SweepError(
            f"{s.out}: its Optuna trials trained with seeds {list(old)}, this sweep has "
            f"{list(new)}; a study keeps its seeds: use another --out"
        )


def _run_round(s: Any, study: Any, axes: Sequence[Axis], r: int, trainer: Any) -> None:
    """Ask round `r`'s trials, train them, write the round file, tell the study."""
    from optuna.trial import TrialState

    from purejaxppo.sweep.optuna_rounds import round_path, write_round
    from purejaxppo.sweep.population import HParamSet, Population
    from purejaxppo.sweep.spec import apply_values

    spec, settings, seeds = s.spec, s.spec.settings, s.population.seeds
    sets, kept = [], []
    for trial in ask_round(study, axes, r, settings.batch, seeds):
        values = trial_values(axes, trial.params)
        try:
            config, hparams = apply_values(spec.base, values, spec.source)
        except ConfigError as err:  # an invalid combination of static choices
            trial.set_user_attr("error", str(err))
            study.tell(trial, state=TrialState.FAIL)
            s.say(f"trial {trial.number}: failed: {err}")
            continue
        sets.append(HParamSet(len(sets), values, config, hparams))
        kept.append(trial)
    population = Population(tuple(sets), seeds, spec.swept)
    numbers, params = [t.number for t in kept], [t.params for t in kept]
    records = trainer.train(population, numbers, params) if sets else []
    run_s = sum(t.run_s for t in records)  # compiling excluded
    write_round(round_path(s.out, r), records)
    for t in records:
        tell_trial(study, t.number, t.returns())
    values = [trial_value(t.returns()) for t in records]
    best = max(range(len(values)), key=lambda i: values[i], default=None)
    top = "" if best is None else f"; best {values[best]:.2f} (trial {records[best].number})"
    s.say(f"round {r + 1}/{settings.rounds}: {len(records)} trials trained in {run_s:.1f}s{top}")


def _report(s: Any, axes: Sequence[Axis]) -> None:
    """Every round's trials as one population: the sweep reports, `trials.csv`, the best."""
    from purejaxppo.sweep.optuna_rounds import group_of, read_round, round_path, trials_csv
    from purejaxppo.sweep.population import HParamSet, Population
    from purejaxppo.sweep.report import atomic_write_bytes, format_top, write_report
    from purejaxppo.sweep.results import member_result, summarize
    from purejaxppo.sweep.spec import apply_values
    from purejaxppo.sweep.store import SweepError

    spec, seeds = s.spec, s.population.seeds
    records = [
        (r, t) for r in range(spec.settings.rounds) for t in read_round(round_path(s.out, r))
    ]
    if not records:
        raise SweepError(f"{spec.source}: optuna: no trial could be trained (see above)")
    sets = []
    for i, (_, t) in enumerate(records):
        values = trial_values(axes, t.params)
        sets.append(HParamSet(i, values, *apply_values(spec.base, values, spec.source)))
    population = Population(tuple(sets), seeds, spec.swept)
    group = group_of(population.groups())
    n = len(seeds)
    curves = {i * n + k: t.curves[k] for i, (_, t) in enumerate(records) for k in range(n)}
    results = [
        member_result(
            population, m, curves[m], group[m], records[m // n][0], records[m // n][1].run_s
        )
        for m in range(population.size)
    ]
    summary = summarize(results, population)
    files = write_report(s.out, population, results, summary, curves)
    values = [trial_value(t.returns()) for _, t in records]
    atomic_write_bytes(s.out / "trials.csv", trials_csv(records, population, values))
    files.append(s.out / "trials.csv")
    s.say(format_top(summary, population, s.args.top))
    r, best = records[summary[0].set_index]
    s.say(
        f"best trial: {best.number} (round {r + 1}), value {summary[0].mean_return:.2f}: "
        f"{population.sets[summary[0].set_index].label()}"
    )
    s.say(f"to browse the study: optuna-dashboard {storage_url(s.out)}")
    s.say("wrote " + ", ".join(str(f) for f in files))
