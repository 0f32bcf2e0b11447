"""`scripts/critic_protocol.py`: a tiny Catch run of two arms writes both budgets' tables;
PPO's two geometries and the group arms' settings are what the protocol says; bad input
exits 2."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "critic_protocol.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("critic_protocol", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while defined
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_programs_equalise_env_steps_and_gradient_steps(script):
    programs = script.make_programs("CartPole-v1", script.ARMS, 200_000, "sequence_mean")
    by = {(p.arm, p.budgets): p for p in programs}
    group = by[("group_loo_rtg", script.BUDGETS)].cfg
    assert (group.num_envs, group.num_steps, group.group_size) == (16, 500, 8)
    assert (group.group_score, group.group_aggregation) == ("reward_to_go", "sequence_mean")
    assert by[("group_outcome", script.BUDGETS)].cfg.group_score == "outcome"
    for arm, lam in (("ppo_gae95", 0.95), ("ppo_gae1", 1.0)):
        own, equal = by[(arm, ("env_steps",))], by[(arm, ("grad_steps",))]
        assert float(own.hparams.gae_lambda) == lam and own.cfg.num_envs == 4
        steps = (equal.cfg.num_updates, equal.cfg.update_epochs, equal.cfg.num_minibatches)
        assert steps == (group.num_updates, group.update_epochs, group.num_minibatches)
        assert equal.cfg.minibatch_size == group.minibatch_size
        assert own.cfg.num_updates * own.cfg.batch_size <= 200_000
    for p in programs:
        assert float(p.hparams.gamma) == 0.99 and float(p.hparams.ref_kl_coef) == 0.0
        assert p.cfg.objective == "clip"


def test_static_grid_one_program_per_epochs_minibatches(script):
    (program,) = script.make_programs("CartPole-v1", ["ppo_gae95"], 200_000, "token_mean")[:1]
    variants = script.static_variants(program, (4, 8), (2, 4))
    combos = [(v.cfg.update_epochs, v.cfg.num_minibatches) for v in variants]
    assert combos == [(4, 2), (4, 4), (8, 2), (8, 4)]
    assert all(v.arm == "ppo_gae95" and v.hparams == program.hparams for v in variants)
    (same,) = script.static_variants(program, None, None)
    assert same.cfg == program.cfg
    with pytest.raises(script.InputError, match="--minibatches"):
        script.static_variants(program, None, (7,))  # 7 does not divide 512


def test_tiny_catch_run_writes_both_budgets(script, tmp_path):
    out = tmp_path / "out"
    argv = ["--envs", "Catch-bsuite", "--arms", "group_loo_rtg", "--budget", "300",
            "--tune-seeds", "1", "--eval-seeds", "2", "--learning-rates", "3e-4,1e-3",
            "--ent-coefs", "0", "--bootstrap-reps", "50", "--epochs", "1,2",
            "--out", str(out)]  # fmt: skip
    assert script.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    (row,) = results["envs"]["Catch-bsuite"]["rows"]
    assert row["budgets"] == ["env_steps", "grad_steps"] and len(row["finals"]) == 2
    assert len(row["grid"]) == 4 and row["num_steps"] == 9 and row["num_updates"] == 2
    assert [g["update_epochs"] for g in row["grid"]] == [1, 1, 2, 2]
    best = max(row["grid"], key=lambda g: g["tune_iqm"])  # the first of equals, as the script
    assert (row["best"]["update_epochs"], row["best"]["learning_rate"]) == (
        best["update_epochs"],
        best["learning_rate"],
    )
    assert row["update_epochs"] == best["update_epochs"]
    assert row["gradient_steps"] == 2 * best["update_epochs"] * row["num_minibatches"]
    table = (out / "table.md").read_text()
    assert "### Catch-bsuite, env steps" in table and "### Catch-bsuite, grad steps" in table


@pytest.mark.parametrize(
    "argv",
    [
        ["--envs", "Pong"],
        ["--arms", "ppo"],
        ["--budget", "0"],
        ["--ent-coefs", "x"],
        ["--aggregation", "mean"],
        ["--epochs", "0"],
        ["--epochs", "4,x"],
        ["--minibatches", "7"],
    ],
)
def test_bad_input_exits_2(script, argv, capsys):
    assert script.main(argv) == 2
    assert capsys.readouterr().err.startswith("critic_protocol.py: ")
