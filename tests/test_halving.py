"""`strategy: halving`: settings errors, the ASHA rule, refills, and a tiny sweep end to end
(resumed after a kill on 2 devices == uninterrupted on 1, file for file)."""

from __future__ import annotations

import math
import subprocess

import numpy as np
import pytest
import yaml
from _cli_support import assert_bad_input, run_cli
from sweep_testing import TIMEOUT_S, TINY_PPO, cli_env, run_sweep, sweep_command

from purejaxppo.run.config import ConfigError
from purejaxppo.sweep.halving_plan import (
    COMPLETED,
    RUNNING,
    STOPPED,
    UNFINISHED,
    HalvingSettings,
    Sampler,
    after_interval,
    finished,
    initial_record,
    make_schedule,
    promoted,
)
from purejaxppo.sweep.spec import sweep_from_dict

# 9 updates: eta 3, rungs 3 -> intervals of 1 update; 3 candidates x 2 seeds = 6 slots.
HALVING = (
    TINY_PPO.replace("total_timesteps: 640", "total_timesteps: 576")
    + """\
seeds: 2
random:
  count: 3
  seed: 0
  hparams.learning_rate: {log_uniform: [1.0e-4, 1.0e-1]}
strategy: halving
halving: {eta: 3, rungs: 3, rounds: 2}
"""
)


def spec_of(text: str = HALVING, **halving: object):
    data = yaml.safe_load(text)
    data["halving"] = {**data["halving"], **halving}
    return sweep_from_dict(data, "h.yaml")


# =========================================================================== settings
@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"eta": 1}, "h.yaml: halving.eta: expected an integer >= 2, got 1"),
        ({"rungs": 1}, "h.yaml: halving.rungs: expected an integer >= 2, got 1"),
        ({"rounds": 0}, "halving.rounds: expected an integer >= 1, got 0"),
        ({"eta": True}, "halving.eta: expected an integer >= 2, got True"),
        ({"rungs": 4}, "1/27 of ppo.num_updates (9), which 27 does not divide"),
        ({"etta": 3}, "halving.etta: unknown setting"),
    ],
)
def test_bad_settings_are_one_line(change, fragment):
    with pytest.raises(ConfigError) as err:
        spec_of(**change)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_refills_need_a_random_part():
    grid_only = HALVING.split("random:")[0] + (
        "grid:\n  hparams.learning_rate: [1.0e-3, 3.0e-3]\n"
        "strategy: halving\nhalving: {eta: 3, rungs: 3, rounds: 2}\n"
    )
    with pytest.raises(ConfigError, match=r"no random: section; add one or set halving\.rounds: 1"):
        spec_of(grid_only)
    assert spec_of(grid_only, rounds=1).settings == HalvingSettings(3, 3, 1)
    static = HALVING.replace("random:", "grid:\n  ppo.num_envs: [4, 8]\nrandom:")
    with pytest.raises(ConfigError, match=r"ppo\.num_envs is swept"):
        spec_of(static)


def test_bad_settings_exit_2_with_one_line(tmp_path):
    (tmp_path / "h.yaml").write_text(HALVING.replace("eta: 3", "eta: 1"))
    proc = run_cli("sweep", "h.yaml", cwd=tmp_path, cache_dir=None, timeout=120)
    assert_bad_input(proc, "halving.eta: expected an integer >= 2, got 1")


# =========================================================================== the rule
def test_asha_keeps_the_top_third_of_everyone_at_the_rung():
    scores = {0: 10.0, 1: 30.0, 2: 20.0, 3: math.nan, 4: 25.0, 5: 5.0}
    assert promoted([0, 1, 2], scores, 3) == {1}  # top 6 // 3 = 2: candidates 1 and 4
    assert promoted([3, 4, 5], scores, 3) == {4}
    assert promoted([7], {7: math.nan}, 3) == {7}  # the first at a rung always goes on
    assert promoted([1, 2], {1: 3.0, 2: 3.0}, 2) == {1}  # ties: lower id


def test_a_clearly_better_candidate_survives_and_losers_are_refilled():
    spec = spec_of()
    pop = spec.population()
    sched = make_schedule(spec.settings, spec.base.ppo.num_updates)
    record = initial_record(pop)
    sampler = Sampler(spec)
    returns = np.full((6, 1), 10.0, np.float32)
    returns[2:4] = 50.0  # candidate 1 (lane 1) is clearly better
    events = after_interval(record, sched, returns, sampler)
    assert events.arrived == {0: [0, 1, 2]} and events.kept == [1]
    assert events.refilled == [0, 2] and record.lanes == [3, 1, 4]
    assert [c.status for c in record.candidates] == [STOPPED, RUNNING, STOPPED, RUNNING, RUNNING]
    assert record.candidates[3].start == 1 and record.draws == 2
    # the refills are the sampler's next draws, whatever came before (resume replays them)
    assert record.candidates[4].values == Sampler(spec, done=1).draw()
    for _ in range(sched.full - 1):  # candidate 1 goes on to the top rung
        returns[2:4] += 1.0
        after_interval(record, sched, returns, sampler)
    best = record.candidates[1]
    assert best.status == COMPLETED and len(best.scores) == 3
    assert len(best.curves[0]) == spec.base.ppo.num_updates
    while not finished(record, sched):
        after_interval(record, sched, returns, sampler)
    assert all(c.status != RUNNING for c in record.candidates)
    assert record.interval <= sched.total
    late = [c for c in record.candidates if c.start + sched.full > sched.total]
    assert not late, "no candidate starts that could not finish in the budget"
    assert {c.status for c in record.candidates} <= {STOPPED, COMPLETED, UNFINISHED}


# =========================================================================== end to end
REPORT = ("halving.csv", "results.csv", "summary.csv", "best.yaml")


def test_resumed_on_two_devices_equals_uninterrupted_on_one(tmp_path):
    spec, cache = tmp_path / "h.yaml", tmp_path / "cache"
    spec.write_text(HALVING)
    whole = run_sweep(spec, tmp_path / "whole", 1, cache, "--max-batch", "2")
    assert "halving: tried" in whole.stdout and "saved" in whole.stdout
    env = {**cli_env(2, cache), "PUREJAXPPO_TEST_HALVING_STOP_AFTER": "3"}
    command = sweep_command(spec, tmp_path / "cut", "--max-batch", "2")
    killed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert killed.returncode == 9, killed.stderr[-2000:]
    assert not (tmp_path / "cut" / "halving.csv").exists()
    resumed = run_sweep(spec, tmp_path / "cut", 2, cache)
    assert "resuming after interval 3/" in resumed.stdout
    for name in REPORT:
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "cut" / name).read_bytes()
    rows = (tmp_path / "whole" / "halving.csv").read_text().splitlines()
    assert len(rows) - 1 > 3, "freed lanes were refilled with new candidates"
    assert any(",completed," in row for row in rows)
    best = yaml.safe_load((tmp_path / "whole" / "best.yaml").read_text())
    assert best["ppo"]["total_timesteps"] == 576
