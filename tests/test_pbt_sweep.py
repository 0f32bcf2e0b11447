"""`strategy: pbt` through `purejaxppo sweep`: settings errors, the lineage and its files,
`purejaxppo train best.yaml` replaying the best member, SIGKILL + rerun and 1 vs 2 devices
giving the uninterrupted bits."""

from __future__ import annotations

import csv
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from purejaxppo.run.config import ConfigError
from purejaxppo.sweep.spec import sweep_from_dict
from tests._cli_support import assert_bad_input, run_cli
from tests.sweep_testing import cli_env, run_sweep, sweep_command

PPO = {
    "env_name": "CartPole-v1",
    "num_envs": 4,
    "num_steps": 16,
    "total_timesteps": 64 * 40,  # 40 updates: 8 intervals of 5
    "num_minibatches": 1,
    "update_epochs": 1,
    "hidden_sizes": [16],
}
SPEC = {
    "ppo": PPO,
    "random": {
        "count": 6,
        "seed": 0,
        "hparams.learning_rate": {"log_uniform": [1e-4, 1e-2]},
        "hparams.ent_coef": {"log_uniform": [1e-4, 0.05]},
    },
    "strategy": "pbt",
    "pbt": {"interval_updates": 5, "truncation": 0.34},
}
STABLE = ("lineage.csv", "results.csv", "best.yaml")  # everything but wall times and plots


def spec_with(**pbt) -> dict:
    return {**SPEC, "pbt": {**SPEC["pbt"], **pbt}}


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"truncation": 0.6}, "pbt.truncation: expected a number in (0, 0.5], got 0.6"),
        ({"interval_updates": 7}, "pbt.interval_updates: 7 does not divide the run's 40"),
        ({"interval_updates": 40}, "into at least 2 intervals"),
        ({"explore": ["ppo.num_envs"]}, "pbt.explore: ppo.num_envs: a static field"),
        ({"explore": ["hparams.kl_coef"]}, "explore hparams.kl_target instead"),
        ({"explore": ["hparams.gamma"]}, "hparams.gamma: no bounds; sample it in random:"),
        ({"explore": {"hparams.gamma": {"uniform": [0.9, 2.0]}}}, "explore.gamma: high out of"),
        ({"fitnes": "episode_return"}, "pbt.fitnes: unknown key; did you mean fitness?"),
        ({"fitness": "episode_retur"}, "did you mean episode_return?"),
        ({"mode": "best"}, "pbt.mode: expected max or min"),
        ({"perturb_factors": [0.8, -1]}, "pbt.perturb_factors: expected positive finite"),
    ],
)
def test_bad_pbt_settings_are_one_line_errors(change, fragment):
    with pytest.raises(ConfigError) as err:
        sweep_from_dict(spec_with(**change), "s.yaml")
    assert fragment in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_other_strategy_settings_are_refused():
    with pytest.raises(ConfigError, match="strategy: expected one of grid, pbt, halving, optuna"):
        sweep_from_dict({**SPEC, "strategy": "bayes"}, "s.yaml")
    with pytest.raises(ConfigError, match="pbt: settings of strategy pbt, but strategy is grid"):
        sweep_from_dict({k: v for k, v in SPEC.items() if k != "strategy"}, "s.yaml")
    one = {**SPEC, "random": {**SPEC["random"], "count": 1}}
    with pytest.raises(ConfigError, match="at least 2 members per static group"):
        sweep_from_dict(one, "s.yaml")


def test_a_bad_setting_exits_2_in_one_line_before_writing(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(spec_with(truncation=0)))
    proc = run_cli("sweep", spec, "--out", tmp_path / "out", cwd=tmp_path)
    assert_bad_input(proc, "pbt.truncation: expected a number in (0, 0.5], got 0")
    assert not (tmp_path / "out").exists()


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def pbt_run(tmp_path_factory) -> tuple[Path, Path, Path]:
    """One uninterrupted PBT sweep on 1 device: `(spec, out, cache)`."""
    base = tmp_path_factory.mktemp("pbt")
    spec, out, cache = base / "pbt.yaml", base / "whole", base / "jaxcache"
    spec.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    proc = run_sweep(spec, out, 1, cache)
    assert "interval 8/8" in proc.stdout and "replay the best member" in proc.stdout
    return spec, out, cache


def test_the_lineage_copies_top_members_into_bottom_ones(pbt_run):
    _, out, _ = pbt_run
    for name in (*STABLE, "pbt_schedules.png"):
        assert (out / name).stat().st_size > 0, name
    rows = read_csv(out / "lineage.csv")
    assert len(rows) == 6 * 8
    by_interval = {j: [r for r in rows if int(r["interval"]) == j] for j in range(8)}
    for j in range(1, 8):
        before = sorted(by_interval[j - 1], key=lambda r: -float(r["fitness"]))
        top = {int(r["member"]) for r in before[:2]}  # truncation 0.34 of 6: 2 replaced
        bottom = {int(r["member"]) for r in before[-2:]}
        for r in by_interval[j]:
            m, parent = int(r["member"]), int(r["parent"])
            if m in bottom:
                assert parent in top and int(r["key_fold"]) != 0
                for field in ("learning_rate", "ent_coef"):  # perturbed or resampled, in bounds
                    assert 1e-4 <= float(r[field]) <= (1e-2 if field == "learning_rate" else 0.05)
            else:
                assert parent == m and int(r["key_fold"]) == 0
                prev = next(p for p in by_interval[j - 1] if int(p["member"]) == m)
                assert r["learning_rate"] == prev["learning_rate"]  # kept members keep them


def test_train_replays_the_best_member(pbt_run, tmp_path):
    _, out, _ = pbt_run
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["schedule"][0]["from_update"] == 0
    proc = run_cli("train", out / "best.yaml", "--out", tmp_path / "replay", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    results = read_csv(out / "results.csv")
    winner = max(results, key=lambda r: float(r["final_return"]))
    summary = yaml.safe_load((tmp_path / "replay" / "summary.json").read_text())
    # the population ran vmapped, the replay alone: equal to float rounding
    assert summary["final_return"] == pytest.approx(float(winner["final_return"]), rel=1e-3)


def test_sigkill_and_rerun_on_two_devices_give_the_uninterrupted_one_device_bits(pbt_run, tmp_path):
    spec, whole, cache = pbt_run
    out = tmp_path / "killed"
    command = [*sweep_command(spec, out), "--segment-updates", "1"]  # slower intervals
    proc = subprocess.Popen(command, env=cli_env(2, cache), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    first = out / "pbt" / "group-0" / "interval-0001.npz"
    deadline = time.monotonic() + 240
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL and not (out / "results.csv").exists()
    rerun = run_sweep(spec, out, 2, cache, "--segment-updates", "1")
    assert "resuming after interval" in rerun.stdout
    for name in STABLE:  # killed, resumed, on 2 devices, in other segments: the same bits
        assert (out / name).read_bytes() == (whole / name).read_bytes(), name
    for j in (0, 7):
        a = np.load(out / f"pbt/group-0/interval-{j:04d}.npz")
        b = np.load(whole / f"pbt/group-0/interval-{j:04d}.npz")
        for key in a.files:
            if key != "run_s":
                np.testing.assert_array_equal(a[key], b[key], err_msg=key)
