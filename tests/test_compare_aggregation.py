"""`scripts/compare_aggregation.py`: token mean against sequence mean over two
critic_protocol results files; mismatched runs exit 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _cli_support import script_module


@pytest.fixture(scope="module")
def script():
    with script_module("compare_aggregation") as module:
        yield module


def _results(path: Path, aggregation: str, finals: list[float], **extra) -> Path:
    best = {"learning_rate": 1e-3, "ent_coef": 0.0}
    rows = [
        {"arm": "ppo_gae95", "label": "PPO", "best": best, "finals": [0.0] * len(finals)},
        {"arm": "group_outcome", "label": "outcome", "best": best, "finals": finals},
    ]
    results = {"aggregation": aggregation, "budget": 100, "eval_seeds": len(finals),
               "tune_seeds": 2, "learning_rates": [1e-3], "ent_coefs": [0.0],
               "envs": {"Acrobot-v1": {"rows": rows}}, **extra}  # fmt: skip
    path.write_text(json.dumps(results))
    return path


def test_sequence_above_token_everywhere_gives_p_one(script, tmp_path):
    token = _results(tmp_path / "t.json", "token_mean", [-100.0 - i for i in range(8)])
    seq = _results(tmp_path / "s.json", "sequence_mean", [-90.0 - i for i in range(8)])
    out = tmp_path / "table.md"
    assert script.main([str(token), str(seq), "--out", str(out), "--bootstrap-reps", "50"]) == 0
    (row,) = [line for line in out.read_text().splitlines() if line.startswith("| Acrobot")]
    assert "| outcome |" in row and row.endswith("| 1.00 [1.00, 1.00] |")
    assert "-103.5 [" in row and "-93.5 [" in row  # IQM of 8 scores: the middle 4
    assert "PPO" not in out.read_text()  # only group arms are compared


@pytest.mark.parametrize("swap, extra", [(True, {}), (False, {"budget": 200})])
def test_mismatched_runs_exit_2(script, tmp_path, capsys, swap, extra):
    token = _results(tmp_path / "t.json", "token_mean", [1.0, 2.0])
    seq = _results(tmp_path / "s.json", "sequence_mean", [1.0, 2.0], **extra)
    argv = [str(seq), str(token)] if swap else [str(token), str(seq)]
    assert script.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("compare_aggregation.py: ") and err.count("\n") == 1
