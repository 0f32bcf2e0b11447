"""`strategy: optuna`: its settings' one-line errors, the missing extra, the search space,
asks that survive a kill, and the round trip of a tiny CartPole study (study, trials.csv
and reports agree; a killed and resumed sweep gives the same values, bit for bit)."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest

from purejaxppo.run.config import ConfigError, load_run_config
from purejaxppo.sweep.spec import sweep_from_dict
from tests.sweep_testing import TIMEOUT_S, TINY_PPO, cli_env, run_sweep, sweep_command

optuna = pytest.importorskip("optuna")
from purejaxppo.sweep import optuna_search  # noqa: E402  (needs optuna)

SPACE = {
    "ppo": {"env_name": "CartPole-v1"},
    "grid": {"ppo.num_envs": [4, 8]},
    "random": {
        "count": 3,
        "hparams.learning_rate": {"log_uniform": [1.0e-4, 1.0e-2]},
        "hparams.clip_eps": {"uniform": [0.1, 0.3]},
        "hparams.gae_lambda": {"choice": [0.9, 0.95]},
    },
    "strategy": "optuna",
}
# 2 rounds x 3 trials x 2 seeds of the tiny CartPole (10 updates each)
SPEC = (
    TINY_PPO
    + """\
seeds: 2
random:
  count: 3
  hparams.learning_rate: {log_uniform: [1.0e-4, 1.0e-2]}
  hparams.clip_eps: {uniform: [0.1, 0.3]}
  hparams.gae_lambda: {choice: [0.9, 0.95]}
strategy: optuna
optuna: {rounds: 2, seed: 3}
"""
)
# runs the sweep CLI with a hook: `missing` hides optuna; `train R`/`write R` SIGKILLs the
# process when round R starts training / right after round R's file is written (not told)
WRAPPER = """\
import os, signal, sys
mode, at = sys.argv[1], int(sys.argv[2])
if mode == "missing":
    sys.modules["optuna"] = None
else:
    from purejaxppo.sweep import optuna_rounds as r
    train, write = r.RoundTrainer.train, r.write_round
    calls = []
    def killing_train(self, *args):
        calls.append(1)
        if mode == "train" and len(calls) == at + 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return train(self, *args)
    def killing_write(path, trials):
        write(path, trials)
        if mode == "write" and path.name == f"round-{at:04d}.npz":
            os.kill(os.getpid(), signal.SIGKILL)
    r.RoundTrainer.train, r.write_round = killing_train, killing_write
from purejaxppo.sweep.cli import main
sys.exit(main(sys.argv[3:]))
"""


def settings(**optuna_section):
    return sweep_from_dict({**SPACE, "optuna": optuna_section}, "S.yaml").settings


def test_defaults_and_settings():
    s = settings(rounds=2)
    assert (s.rounds, s.batch, s.seed, s.startup_trials) == (2, 6, 0, 6)  # 2 grid x 3 draws
    assert settings(rounds=1, batch=4, seed=7).to_dict() == {
        "rounds": 1, "batch": 4, "seed": 7, "startup_trials": 4,
    }  # fmt: skip


@pytest.mark.parametrize(
    "section, message",
    [
        ({"rounds": 0}, "S.yaml: optuna.rounds: expected a positive integer, got 0"),
        ({"rounds": 2, "batch": 0}, "S.yaml: optuna.batch: expected a positive integer, got 0"),
        ({"rounds": 2, "seed": -1}, "S.yaml: optuna.seed: expected a non-negative integer, got -1"),
        ({"rounds": 2, "batchs": 4}, "S.yaml: optuna.batchs: unknown key; did you mean batch?"),
        ({}, "S.yaml: optuna.rounds: required (ask-train-tell rounds, e.g. 4)"),
        ({"rounds": 2, "direction": "minimize"}, "S.yaml: optuna.direction: the objective is"),
    ],
)
def test_bad_settings_are_one_line(section, message):
    with pytest.raises(ConfigError) as err:
        settings(**section)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_nothing_to_search():
    doc = {"ppo": {"env_name": "CartPole-v1"}, "seeds": 2, "strategy": "optuna"}
    with pytest.raises(ConfigError, match=r"^S.yaml: optuna: nothing to search; add random"):
        sweep_from_dict({**doc, "optuna": {"rounds": 1}}, "S.yaml")


def test_search_space_maps_the_sweeps_distributions():
    spec = sweep_from_dict({**SPACE, "optuna": {"rounds": 1}}, "S.yaml")
    axes = {a.key: a for a in optuna_search.search_space(spec)}
    assert list(axes) == list(spec.swept)
    lr, clip = axes["hparams.learning_rate"].distribution, axes["hparams.clip_eps"].distribution
    assert (lr.low, lr.high, lr.log) == (1e-4, 1e-2, True) and not clip.log
    assert axes["ppo.num_envs"].distribution.choices == (4, 8)
    assert axes["hparams.gae_lambda"].value_of(0.95) == 0.95
    wide = {**SPACE, "grid": {"ppo.hidden_sizes": [[16], [32, 32]]}, "optuna": {"rounds": 1}}
    (sizes, *_) = optuna_search.search_space(sweep_from_dict(wide))
    assert sizes.distribution.choices == ("16", "32x32") and sizes.value_of("32x32") == (32, 32)


def _asks(out: Path, kill_round: int, leave_running: bool = False) -> list[dict]:
    """Params of the completed trials of a 4-round study on a made-up objective; in round
    `kill_round` a killed run's trials are left running before the round is asked again."""
    spec = sweep_from_dict({**SPACE, "optuna": {"rounds": 4}}, "S.yaml")
    axes, st = optuna_search.search_space(spec), spec.settings
    out.mkdir()
    for r in range(st.rounds):
        study = optuna_search.open_study(out, st.seed + r, st.startup_trials)
        if r == kill_round:
            optuna_search.ask_round(study, axes, r, st.batch // 2, (0,))  # killed mid-round
            if leave_running:
                study.ask()  # a trial asked with no parameters, never told
            study = optuna_search.open_study(out, st.seed + r, st.startup_trials)
        space = {a.key: a.distribution for a in axes}
        trials = (
            [study.ask(space) for _ in range(st.batch)]  # what a resume must not do
            if leave_running and r == kill_round
            else optuna_search.ask_round(study, axes, r, st.batch, (0,))
        )
        for t in trials:
            p = t.params
            lr = math.log(p["hparams.learning_rate"] / 1e-3)
            optuna_search.tell_trial(study, t.number, [p["hparams.clip_eps"] - lr * lr])
    done = optuna.trial.TrialState.COMPLETE
    return [t.params for t in study.get_trials() if t.state == done]


@pytest.mark.parametrize("kill_round", [0, 2])  # while sampling at random / with TPE
def test_asks_after_a_kill_are_those_of_an_uninterrupted_study(tmp_path, kill_round):
    whole = _asks(tmp_path / "whole", -1)
    assert len(whole) == 24
    assert _asks(tmp_path / "killed", kill_round) == whole
    if kill_round == 2:  # TPE's constant liar counts running trials: they must be failed
        assert _asks(tmp_path / "running", kill_round, leave_running=True) != whole


# =========================================================================== the CLI
def _wrapped(mode: str, at: int, spec: Path, out: Path, cache: Path) -> subprocess.CompletedProcess:
    command = sweep_command(spec, out)[3:]  # after `python -m purejaxppo.sweep.cli`
    return subprocess.run(
        [sys.executable, "-c", WRAPPER, mode, str(at), *command],
        env=cli_env(1, cache),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def _values(out: Path) -> dict[int, tuple[str, ...]]:
    """trial -> its trials.csv row (values as written: repr of the float64s)."""
    with open(out / "trials.csv") as f:
        return {int(row["trial"]): tuple(row.values()) for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("optuna")
    spec, out, cache = base / "optuna.yaml", base / "whole", base / "jaxcache"
    spec.write_text(SPEC)
    proc = run_sweep(spec, out, 1, cache)
    return spec, out, cache, proc.stdout


def test_cli_errors_exit_2_before_the_folder_is_touched(tmp_path, study_run):
    spec, _, cache, _ = study_run
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.replace("rounds: 2", "rounds: 0"))
    for path, mode, message in (
        (bad, "none", f"{bad}: optuna.rounds: expected a positive integer, got 0"),
        (spec, "missing", f"{spec}: strategy: optuna needs the optuna extra: "
                          "pip install -e '.[optuna]'"),
    ):  # fmt: skip
        proc = _wrapped(mode, 0, path, tmp_path / "out", cache)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert proc.stderr.strip() == f"purejaxppo sweep: error: {message}"
        assert not (tmp_path / "out").exists()


def test_round_trip_study_csv_and_reports_agree(study_run):
    _, out, _, stdout = study_run
    assert "optuna-dashboard sqlite:///" in stdout and "best trial: " in stdout
    study = optuna.load_study(study_name="purejaxppo", storage=optuna_search.storage_url(out))
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 6
    assert [t.user_attrs["round"] for t in trials] == [0, 0, 0, 1, 1, 1]
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    with open(out / "summary.csv") as f:
        means = {int(r["set"]): float(r["mean_return"]) for r in csv.DictReader(f)}
    for t, row in zip(trials, rows, strict=True):
        assert t.user_attrs["seeds"] == [0, 1] and int(row["trial"]) == t.number
        returns = [float(row["return_seed0"]), float(row["return_seed1"])]
        assert t.user_attrs["returns"] == returns
        assert t.value == float(row["value"]) == means[int(row["set"])]
        assert t.value == sum(returns) / 2
        assert t.params["hparams.clip_eps"] == float(row["hparams.clip_eps"])
    best = max(trials, key=lambda t: t.value)
    rc = load_run_config(out / "best.yaml")
    assert rc.hparams.clip_eps == pytest.approx(best.params["hparams.clip_eps"], rel=1e-6)
    assert rc.hparams.gae_lambda == best.params["hparams.gae_lambda"]


@pytest.mark.slow  # two killed sweeps and their reruns: about 25 s on 2 idle cores
@pytest.mark.parametrize("mode, at", [("train", 1), ("write", 0)])
def test_killed_and_resumed_gives_the_same_values(tmp_path, study_run, mode, at):
    spec, whole, cache, _ = study_run
    out = tmp_path / "killed"
    assert _wrapped(mode, at, spec, out, cache).returncode == -9
    assert not (out / "trials.csv").exists()
    run_sweep(spec, out, 1, cache)
    study = optuna.load_study(study_name="purejaxppo", storage=optuna_search.storage_url(out))
    failed = [t.number for t in study.get_trials() if t.state.name == "FAIL"]
    assert failed == ([3, 4, 5] if mode == "train" else [])
    killed = _values(out)
    renumbered = dict(zip(sorted(_values(whole)), sorted(killed), strict=True))
    for trial, row in _values(whole).items():
        assert killed[renumbered[trial]][1:] == row[1:]  # all but the trial number
