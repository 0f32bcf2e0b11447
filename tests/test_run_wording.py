"""What the CLI says about a run (issue 24, item 8): a custom env whose module is not
importable is named as such (with where training found it), not as a corrupt folder; a
`total_timesteps` remainder that is not run is said in the first line."""

from __future__ import annotations

import textwrap

import pytest
import yaml
from _cli_support import write_config

import purejaxppo as ppo
from purejaxppo import cli
from purejaxppo.run import load_run, rundir
from purejaxppo.run.envmodule import env_module_note
from purejaxppo.run.rundir import RunDirError

ENV_MODULE = textwrap.dedent(
    """
    from purejaxppo.probe_envs import ConstantReward


    class Env(ConstantReward):
        pass
    """
)


def test_training_records_where_the_env_module_was_found(tmp_path, monkeypatch):
    (tmp_path / "note_env_24.py").write_text(ENV_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    ppo.make_env("note_env_24:Env")
    note = env_module_note("note_env_24:Env")
    path = (tmp_path / "note_env_24.py").resolve()
    assert note == f"# env module note_env_24 was imported from {path}\n"
    assert env_module_note("CartPole-v1") == ""


def test_a_run_whose_env_module_is_not_on_the_path_is_not_called_corrupt(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    data = yaml.safe_load(write_config(tmp_path / "c.yaml").read_text())
    data["ppo"]["env_name"] = "gone_env_24:Env"
    note = "# env module gone_env_24 was imported from /elsewhere/gone_env_24.py\n"
    (run / rundir.CONFIG_FILE).write_text(note + yaml.safe_dump(data))
    expected = (
        f"{run}: the run's env module gone_env_24 (ppo.env_name gone_env_24:Env) is not on "
        "PYTHONPATH: add the folder that holds it to PYTHONPATH or run from that folder; "
        "training imported it from /elsewhere/gone_env_24.py"
    )
    with pytest.raises(RunDirError) as info:
        load_run(run)
    assert str(info.value) == expected
    assert cli.main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert "gone_env_24" in err and "PYTHONPATH" in err and "corrupt" not in err


def test_the_first_line_says_what_of_total_timesteps_is_not_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PUREJAXPPO_CACHE_DIR", "off")
    (tmp_path / "wording_env_24.py").write_text(ENV_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = write_config(  # batch 32: 3 updates, 4 steps left over
        tmp_path / "tiny.yaml", env_name="wording_env_24:Env", total_timesteps=100
    )
    args = ["train", str(config), "--out", str(tmp_path / "run"), "--no-bar"]
    assert cli.main(args) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith(
        "3 updates x 32 steps = 96 steps per seed (the last 4 of total_timesteps 100 are not a "
        "whole batch: not run)"
    )
    saved = (tmp_path / "run" / rundir.CONFIG_FILE).read_text()
    assert f"# env module wording_env_24 was imported from {tmp_path.resolve()}" in saved
