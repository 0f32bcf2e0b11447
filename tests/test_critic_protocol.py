"""`scripts/critic_protocol.py`: a tiny Catch run of two arms writes both budgets' tables;
PPO's two geometries and the group arms' settings are what the protocol says; bad input
exits 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _cli_support import script_module


@pytest.fixture(scope="module")
def script():
    with script_module("critic_protocol") as module:
        yield module


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


def test_normalization_none_turns_every_arms_normalisation_off(script):
    shipped = script.make_programs("CartPole-v1", script.ARMS, 200_000, "token_mean")
    raw = script.make_programs("CartPole-v1", script.ARMS, 200_000, "token_mean", "none")
    assert [script.advantage_normalization(p.cfg) for p in shipped] == [
        "minibatch",
        "minibatch",
        "minibatch",
        "minibatch",
        "group_std",
        "group_std",
    ]
    assert {script.advantage_normalization(p.cfg) for p in raw} == {"none"}
    for a, b in zip(shipped, raw, strict=True):  # nothing else changes
        off = {"normalize_advantages": False, "normalize_rewards": False}
        if a.cfg.advantage == "group":
            off["group_normalize"] = False
        assert a.cfg.replace(**off) == b.cfg and a.hparams == b.hparams


def test_normalization_minibatch_gives_every_arm_ppos_normalisation(script):
    shipped = script.make_programs("CartPole-v1", script.ARMS, 200_000, "token_mean")
    common = script.make_programs("CartPole-v1", script.ARMS, 200_000, "token_mean", "minibatch")
    assert {script.advantage_normalization(p.cfg) for p in common} == {"minibatch"}
    for a, b in zip(shipped, common, strict=True):  # nothing else changes
        off = {"normalize_rewards": False}
        if a.cfg.advantage == "group":
            off |= {"group_normalize": False, "group_minibatch_normalize": True}
        assert a.cfg.replace(**off) == b.cfg and a.hparams == b.hparams


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


def test_static_grid_winner_is_the_best_combination(script, monkeypatch):
    """run_program tunes lr x ent_coef inside every epochs x minibatches program and
    evaluates the best of all; training is replaced by a score of (epochs, lr)."""
    calls = []

    def fake_train(program, grid, seeds):
        calls.append((program.cfg.update_epochs, program.cfg.num_minibatches, len(grid)))
        score = [program.cfg.update_epochs * 100 - abs(float(h.learning_rate) - 1e-3) * 1e4
                 for h in grid]  # fmt: skip
        return np.repeat(np.asarray(score)[:, None], len(list(seeds)), axis=1)

    monkeypatch.setattr(script, "train_members", fake_train)
    (program,) = script.make_programs("CartPole-v1", ["ppo_gae95"], 200_000, "token_mean")[:1]
    grid = ["--learning-rates", "3e-4,1e-3,3e-3", "--ent-coefs", "0"]
    args = script.parse_args([*grid, "--epochs", "4,8", "--minibatches", "4", "--eval-seeds", "3"])
    row = script.run_program(program, args, lambda line: None)
    assert calls == [(4, 4, 3), (8, 4, 3), (8, 4, 1)]  # one program per combination, then eval
    assert row["best"] == {
        "learning_rate": 1e-3, "ent_coef": 0.0, "update_epochs": 8, "num_minibatches": 4
    }  # fmt: skip
    assert row["update_epochs"] == 8 and row["gradient_steps"] == 390 * 8 * 4
    assert [(g["update_epochs"], g["learning_rate"]) for g in row["grid"]][2:4] == [
        (4, 3e-3),
        (8, 3e-4),
    ]
    assert row["finals"] == [800.0] * 3


def test_tiny_catch_run_writes_both_budgets(script, tmp_path):
    out = tmp_path / "out"
    argv = ["--envs", "Catch-bsuite", "--arms", "group_loo_rtg", "--budget", "300",
            "--tune-seeds", "1", "--eval-seeds", "2", "--learning-rates", "3e-4,1e-3",
            "--ent-coefs", "0", "--bootstrap-reps", "50", "--out", str(out)]  # fmt: skip
    assert script.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    (row,) = results["envs"]["Catch-bsuite"]["rows"]
    assert row["budgets"] == ["env_steps", "grad_steps"] and len(row["finals"]) == 2
    assert len(row["grid"]) == 2 and row["num_steps"] == 9 and row["num_updates"] == 2
    assert row["grid"][0]["update_epochs"] == row["best"]["update_epochs"] == row["update_epochs"]
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
        ["--normalization", "batch"],
    ],
)
def test_bad_input_exits_2(script, argv, capsys):
    assert script.main(argv) == 2
    assert capsys.readouterr().err.startswith("critic_protocol.py: ")
