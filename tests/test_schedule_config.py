"""The `schedule:` section of a run config: parsing, one-line errors, round trip, and
`purejaxppo train` replaying a schedule with the bits of the Python trainer."""

from __future__ import annotations

import csv
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml

import purejaxppo as ppo
from purejaxppo.run.config import ConfigError, dump_run_config, run_config_from_dict
from purejaxppo.schedule import HParamSchedule
from tests._cli_support import TINY, assert_bad_input, run_cli

SCHEDULE = [
    {"from_update": 0},
    {"from_update": 4, "key_fold": 77, "hparams": {"learning_rate": 1e-3, "ent_coef": 0.02}},
    {"from_update": 8, "hparams": {"clip_eps": 0.1}},
]


def doc(schedule) -> dict:
    return {**TINY, "schedule": schedule}


def test_segments_start_from_the_configs_hparams_and_round_trip():
    rc = run_config_from_dict(doc(SCHEDULE))
    assert [s.start for s in rc.schedule] == [0, 4, 8]
    assert rc.schedule[1].hparams.learning_rate == 1e-3 and rc.schedule[1].key_fold == 77
    # segments do not accumulate: the third is hparams: + clip_eps only
    assert rc.schedule[2].hparams.learning_rate == TINY["hparams"]["learning_rate"]
    assert rc.schedule[2].hparams.ent_coef == ppo.HParams().ent_coef
    assert run_config_from_dict(yaml.safe_load(dump_run_config(rc))) == rc
    sched = rc.train_hparams
    assert isinstance(sched, HParamSchedule)
    assert sched.boundaries.tolist() == [0, 4, 8] and sched.key_folds.tolist() == [0, 77, 0]
    assert "schedule" not in dump_run_config(run_config_from_dict(TINY))  # unscheduled: as before


@pytest.mark.parametrize(
    ("schedule", "fragment"),
    [
        ([{"from_update": 2}], "schedule[0].from_update: expected 0, got 2"),
        ([{"from_update": 0}, {"from_update": 0}], "schedule[1].from_update: expected more"),
        ([{"from_update": 0}, {"from_update": 12}], "is not before the run's end (12 updates)"),
        ([{"from_update": 0, "hparams": {"learning_rat": 1}}], "did you mean learning_rate?"),
        ([{"from_update": 0, "fold": 3}], "schedule[0].fold: unknown key"),
        ([{"from_update": 0, "key_fold": -1}], "key_fold: expected an integer in [0, 2**32)"),
        ([{"from_update": 0, "hparams": {"gamma": 2.0}}], "schedule[0].hparams: gamma"),
        ([{"from_update": "0"}], "from_update: expected a non-negative integer"),
        ([], "schedule: expected a list of segments"),
    ],
)
def test_bad_segments_are_one_line_errors(schedule, fragment):
    with pytest.raises(ConfigError) as err:
        run_config_from_dict(doc(schedule), "s.yaml")
    assert fragment in str(err.value) and "\n" not in str(err.value)


def read_metrics(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0] if k != "wall_time_s"}


def test_train_replays_a_schedule_like_the_python_trainer(tmp_path):
    config = tmp_path / "s.yaml"
    config.write_text(yaml.safe_dump(doc(SCHEDULE), sort_keys=False))
    # chunk boundaries (3, 6, 9) do not meet the segments' (4, 8)
    chunked = run_cli("train", config, "--out", tmp_path / "chunked", "--chunk", "3", cwd=tmp_path)
    assert chunked.returncode == 0, chunked.stderr
    a = read_metrics(tmp_path / "chunked/metrics.csv")
    rc = run_config_from_dict(doc(SCHEDULE))
    out = jax.jit(ppo.make_train(rc.ppo))(jax.random.key(0), rc.train_hparams)
    for name in ("learning_rate", "value_loss", "policy_loss", "entropy", "episode_return"):
        np.testing.assert_allclose(a[name], out.metrics[name], rtol=1e-5, atol=1e-6, err_msg=name)
    lr = a["learning_rate"] / (1 - np.arange(12) / 12)  # anneal_lr: undo the linear decay
    np.testing.assert_allclose(lr, [2.5e-4] * 4 + [1e-3] * 4 + [2.5e-4] * 4, rtol=1e-5)


def test_a_bad_schedule_in_a_file_exits_2_in_one_line(tmp_path):
    config = tmp_path / "s.yaml"
    config.write_text(yaml.safe_dump(doc([{"from_update": 1}]), sort_keys=False))
    proc = run_cli("train", config, "--out", tmp_path / "run", cwd=tmp_path)
    assert_bad_input(proc, "schedule[0].from_update: expected 0, got 1")
    assert not (tmp_path / "run").exists()
