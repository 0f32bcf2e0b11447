"""`scripts/protocol_rerun_arm.py`: a rerun arm of critic_protocol read against the first
run (IQMs, P(rerun > first), P(other arm > rerun)); mismatched runs exit 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _cli_support import script_module


@pytest.fixture(scope="module")
def script():
    with script_module("protocol_rerun_arm") as module:
        yield module


def _row(arm: str, budgets: list[str], finals: list[float]) -> dict:
    best = {"learning_rate": 1e-3, "ent_coef": 0.0}
    return {"arm": arm, "label": arm, "budgets": budgets, "best": best, "finals": finals}


def _results(path: Path, rows: list[dict], **extra) -> Path:
    results = {"budget": 100, "eval_seeds": 8, "tune_seeds": 2, "learning_rates": [1e-3],
               "ent_coefs": [0.0], "envs": {"Acrobot-v1": {"rows": rows}}, **extra}  # fmt: skip
    path.write_text(json.dumps(results))
    return path


def test_rerun_above_everything_gives_p_one_and_zero(script, tmp_path):
    low = [-100.0 - i for i in range(8)]
    base = _results(
        tmp_path / "b.json",
        [_row("ppo", ["env_steps"], low), _row("loo", ["env_steps", "grad_steps"], low)],
    )
    rerun = _results(
        tmp_path / "r.json",
        [_row("loo", ["env_steps", "grad_steps"], [-90.0 - i for i in range(8)])],
    )
    out = tmp_path / "compare.md"
    assert (
        script.main(["--base", str(base), "--rerun", str(rerun), "--out", str(out), "--reps", "50"])
        == 0
    )
    text = out.read_text()
    assert text.count("### Acrobot-v1") == 2  # both budgets of the group arm
    assert "| rerun | -93.5 [" in text and "| first | -103.5 [" in text
    assert "| rerun > first | 1.00 [1.00, 1.00] |" in text
    assert "| ppo > rerun | 0.00 [0.00, 0.00] |" in text


def test_mismatched_runs_exit_2(script, tmp_path, capsys):
    rows = [_row("loo", ["env_steps"], [1.0, 2.0])]
    base = _results(tmp_path / "b.json", rows)
    rerun = _results(tmp_path / "r.json", rows, budget=200)
    assert script.main(["--base", str(base), "--rerun", str(rerun)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("protocol_rerun_arm.py: budget: ") and err.count("\n") == 1
