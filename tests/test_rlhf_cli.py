"""`purejaxppo rlhf`: YAML checking, one-line errors with exit 2, the run folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from purejaxppo.cli import main
from purejaxppo.rlhf import report
from purejaxppo.rlhf.config import RLHFConfig
from purejaxppo.rlhf.yamlconfig import dump_rlhf_config, load_rlhf_config, rlhf_config_from_dict
from purejaxppo.run.errors import ConfigError
from purejaxppo.run.yamlio import parse_yaml

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "configs" / "rlhf").glob("*.yaml"))
TINY_SETS = [
    "language.vocab_size=8",
    "language.prompt_len=2",
    "language.max_completion_len=4",
    "model.d_model=16",
    "model.num_layers=1",
    "sft.steps=20",
    "reward.train_pairs=64",
    "reward.held_out_pairs=64",
    "reward.steps=10",
    "rl.iterations=3",
    "rl.completions_per_iteration=16",
    "rl.eval_prompts=32",
]


def test_shipped_configs_load_and_round_trip():
    assert {p.name for p in SHIPPED} >= {"ppo.yaml", "grpo.yaml"}
    for path in SHIPPED:
        cfg = load_rlhf_config(path)
        again = rlhf_config_from_dict(parse_yaml(dump_rlhf_config(cfg), "dump"), "dump")
        assert again == cfg, path
    assert load_rlhf_config(ROOT / "configs/rlhf/grpo.yaml").rl.group_size == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rl: {iteratons: 5}", r"x.yaml: rl.iteratons: unknown key; did you mean rl.iterations\?"),
        (
            "rl: {iterations: 1.5}",
            r"x.yaml: rl.iterations: expected an integer, got 1.5 \(a number\)",
        ),
        (
            "rl: {algorithm: sac}",
            r"x.yaml: rl.algorithm: expected one of ppo, grpo, dpo, got 'sac'",
        ),
        ("rl: {algorithm: grpo, group_size: 3}", r"x.yaml: rl.group_size: must divide"),
        ("hparams: {kl_target: -1}", r"x.yaml: hparams.kl_target: expected a finite number > 0"),
        ("hparams: {kl_target: big}", r"x.yaml: hparams.kl_target: expected a number, got 'big'"),
        (
            "population: {grid: {kl_target: 4}}",
            r"population.grid.kl_target: expected a non-empty list",
        ),
        ("population: {grid: {beta: [1]}}", r"population.grid.beta: unknown key"),
        ("rlhf: {}", r"x.yaml: rlhf: unknown key"),
        ("language: {gold: sorted}", r"x.yaml: language: gold must be one of"),
        ("seed: -3", r"x.yaml: seed: expected an integer in \[0, 2\*\*31\)"),
        ("prepare_seed: 1.5", r"x.yaml: prepare_seed: expected an integer in \[0, 2\*\*31\)"),
        ("prepare_seeds: 2", r"x.yaml: prepare_seeds: unknown key"),
        ("- 1", r"x.yaml: expected a mapping"),
    ],
)
def test_bad_yaml_is_one_line_naming_the_field(tmp_path, text, message):
    path = tmp_path / "x.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=message) as err:
        load_rlhf_config(path)
    assert "\n" not in str(err.value)


def test_set_overrides_and_their_errors(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("rl: {iterations: 5}\n")
    cfg = load_rlhf_config(path, ["rl.iterations=7", "hparams.kl_coef=0.2", "seed=3"])
    assert (cfg.rl.iterations, cfg.hparams.kl_coef, cfg.seed) == (7, 0.2, 3)
    with pytest.raises(ConfigError, match=r"--set rl.iterations5: expected KEY=VALUE"):
        load_rlhf_config(path, ["rl.iterations5"])
    with pytest.raises(ConfigError, match=r"--set: rll.iterations: unknown key"):
        load_rlhf_config(path, ["rll.iterations=3"])
    assert load_rlhf_config(path) == RLHFConfig(rl=load_rlhf_config(path).rl)


def test_prepare_seed_moves_prepare_only(tmp_path):
    from purejaxppo.rlhf.pipeline import member_keys, prepare_key

    path = tmp_path / "x.yaml"
    path.write_text("seed: 5\n")
    plain = load_rlhf_config(path)
    assert plain.prepare_seed is None and "prepare_seed" not in dump_rlhf_config(plain)
    cfg = load_rlhf_config(path, ["prepare_seed=2"])
    assert (cfg.seed, cfg.prepare_seed) == (5, 2)
    assert rlhf_config_from_dict(parse_yaml(dump_rlhf_config(cfg), "d"), "d") == cfg
    data = jax.random.key_data
    assert (data(prepare_key(cfg)) == data(prepare_key(RLHFConfig(seed=2)))).all()
    assert (data(prepare_key(plain)) != data(prepare_key(cfg))).any()
    assert (data(member_keys(cfg, [0, 1])) == data(member_keys(plain, [0, 1]))).all()
    with pytest.raises(ConfigError, match=r"--set: prepare_seeds: unknown key"):
        load_rlhf_config(path, ["prepare_seeds=3"])


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["rlhf", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rl: {epochs: 0}\n")
    code, _, err = _cli(capsys, str(bad), "--out", str(tmp_path / "o"))
    assert code == 2 and err.count("\n") == 1
    assert "rl.epochs: expected an integer >= 1, got 0" in err
    code, _, err = _cli(capsys, str(tmp_path / "missing.yaml"))
    assert code == 2 and "no such config file" in err
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("keep me")
    code, _, err = _cli(capsys, str(SHIPPED[0]), "--out", str(full))
    assert code == 2 and "holds files that are not a purejaxppo folder, not an RLHF run" in err
    code, _, err = _cli(capsys, str(SHIPPED[0]), "--out", str(full), "--overwrite")
    assert code == 2 and "holds files that are not a purejaxppo folder, not an RLHF run" in err
    assert (full / "notes.txt").read_text() == "keep me"


def test_cli_usage_error_has_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "purejaxppo", "rlhf", "x.yaml", "--set"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_cli_tiny_run_writes_the_folder(tmp_path, capsys):
    out = tmp_path / "run"
    sets = [a for s in [*TINY_SETS, "population.seeds=2"] for a in ("--set", s)]
    code, stdout, _ = _cli(capsys, str(ROOT / "configs/rlhf/ppo.yaml"), "--out", str(out), *sets)
    assert code == 0, stdout
    assert "win rate vs reference" in stdout
    files = {p.name for p in out.iterdir()}
    assert files == {
        "rlhf.yaml",
        "summary.json",
        "metrics.csv",
        "overoptimisation.png",
        "training.png",
    }
    summary = json.loads((out / "summary.json").read_text())
    assert 0.0 <= summary["length_rule_accuracy"] <= 1.0
    for key in (
        "reward_model_accuracy",
        "gold_reward_reference",
        "gold_reward_final",
        "proxy_reward_final",
        "kl_to_reference_final",
        "win_rate_vs_reference",
    ):
        assert isinstance(summary[key], float), key
        if key != "reward_model_accuracy":  # one reward model, shared by the members
            assert all(isinstance(m[key], float) for m in summary["members"]), key
    assert len(summary["members"]) == 6  # 3 kl targets x 2 seeds
    assert summary["members"][0]["label"] == "kl_target=1 seed=0"
    assert 0.0 <= summary["win_rate_vs_reference"] <= 1.0
    # gold read at equal lengths: the pooled table covers every evaluation completion
    table = summary["gold_by_length"]
    assert sum(row["count"] for row in table.values()) == 6 * 32
    assert sum(row["count_reference"] for row in table.values()) == 32
    assert all(0 <= int(n) <= 4 for n in table)
    member = summary["members"][0]["length_controlled"]
    assert isinstance(member["content_length_final"], float)
    assert set(report.LENGTH_KEYS) <= set(member) and set(report.LENGTH_KEYS) <= set(summary)
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 6 * 3
    assert load_rlhf_config(out / "rlhf.yaml").rl.iterations == 3
    # --overwrite replaces an RLHF folder
    code, _, _ = _cli(
        capsys, str(out / "rlhf.yaml"), "--out", str(out), "--overwrite", "--set", "rl.iterations=2"
    )
    assert code == 0
    assert load_rlhf_config(out / "rlhf.yaml").rl.iterations == 2
    assert not list(tmp_path.glob(".run.*"))  # no temporary folder left behind
