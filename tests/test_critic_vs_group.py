"""`scripts/critic_vs_group.py`: a tiny Catch run writes all nine variants; bad input exits 2."""

from __future__ import annotations

import json
import math

import pytest
from _cli_support import script_module

NAMES = ["gae"] + [f"group{g}_{n}" for g in (2, 4, 8, 16) for n in ("std", "mean")]


@pytest.fixture(scope="module")
def script():
    with script_module("critic_vs_group") as module:
        yield module


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_catch_smoke_run_writes_nine_variants(script, tmp_path):
    out = tmp_path / "out"
    argv = ["--envs", "Catch-bsuite", "--seeds", "2", "--budget-scale", "0.02"]
    assert script.main([*argv, "--fast-compile", "--out", str(out)]) == 0

    results = json.loads((out / "results.json").read_text())
    assert results["seeds"] == 2 and list(results["envs"]) == ["Catch-bsuite"]
    env = results["envs"]["Catch-bsuite"]
    assert env["budget"] == 2000 and env["group_num_steps"] == 9
    variants = env["variants"]
    assert [v["name"] for v in variants] == NAMES
    for v in variants:
        assert len(v["finals"]) == 2 and all(_finite(f) for f in v["finals"]), v["name"]
        assert -1.0 <= v["final_mean"] <= 1.0 and _finite(v["final_ci95"])
        assert _finite(v["compile_s"]) and _finite(v["run_s"]) and v["num_updates"] >= 1
        assert v["env_steps"] <= v["total_timesteps"]
        curve = v["curve"]
        assert len(curve["env_steps"]) == len(curve["return_mean"]) == v["num_updates"]
        assert all(_finite(r) for r in curve["return_mean"])  # Catch ends episodes every update
    for v in variants[1:]:
        assert (v["advantage"], v["num_envs"], v["num_steps"]) == ("group", 16, 9)
        assert v["normalize_rewards"] is False and v["used_step_fraction"] == 1.0
        assert v["env_steps"] == 13 * 16 * 9  # 2000 steps // 144 per update
    assert variants[0]["advantage"] == "gae" and variants[0]["env_steps"] == 1024  # one batch

    table = (out / "table.md").read_text()
    for v in variants:
        assert table.count(f"| {v['label']} |") == 2  # summary matrix and the env's table
    assert (out / "Catch-bsuite.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--envs", "Nope-v0"],
            "--envs: unknown env 'Nope-v0'; expected some of CartPole-v1, Acrobot-v1, "
            "Catch-bsuite, Pendulum-v1, MountainCar-v0",
        ),
        (["--seeds", "0"], "--seeds: expected an integer >= 1, got 0"),
        (["--budget-scale", "0"], "--budget-scale: expected a number > 0, got 0"),
        (["--seeds", "two"], "argument --seeds: invalid int value: 'two'"),
    ],
)
def test_bad_input_exits_2_with_one_line(script, tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    assert script.main([*argv, "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"critic_vs_group.py: {message}"]
    assert not out.exists()
