"""Scripts: `time_purejaxrl.py` (input errors, the gymnax 1.x adapter; no PureJaxRL needed),
`arithmetic_floor.py` (a tiny run)
`kl_direction.py` and `grpo_entropy.py` (input errors), and `rlhf_experiments.py g2` /
`rlhf_analysis.py g2` (the arms, and the analysis on made-up data; no training)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import gymnax
import jax
import numpy as np

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "time_purejaxrl.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60
    )


def test_bad_checkout_and_counts_exit_2_with_one_line(tmp_path):
    missing = _run("--purejaxrl", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"--purejaxrl: expected a checkout holding purejaxrl/ppo.py, got {tmp_path / 'nowhere'}"
    ]
    (tmp_path / "purejaxrl").mkdir()
    (tmp_path / "purejaxrl" / "ppo.py").write_text("")
    zero = _run("--purejaxrl", str(tmp_path), "--seeds", "0")
    assert zero.returncode == 2
    assert zero.stderr.strip().splitlines() == ["--seeds and --repeats: expected integers >= 1"]


def test_five_tuple_step_merges_termination_and_truncation():
    spec = importlib.util.spec_from_file_location("time_purejaxrl", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    env, params = gymnax.make("CartPole-v1")
    wrapped = module.FiveTupleStep(env)
    key = jax.random.key(0)
    _, state = wrapped.reset(key, params)
    assert wrapped.num_actions == env.num_actions  # other attributes pass through
    # One step short of the time limit: the next step truncates without terminating.
    state = state.replace(time=params.max_steps_in_episode - 1)
    step = wrapped.step(key, state, 0, params)
    full = env.step(key, state, 0, params)
    assert len(step) == 5
    assert not bool(full[3]) and bool(full[4])
    assert bool(step[3])
    np.testing.assert_array_equal(step[0], full[0])
    assert float(step[2]) == float(full[2])


def test_kl_direction_script_refuses_zero_seeds(capsys):
    path = SCRIPT.parent / "kl_direction.py"
    spec = importlib.util.spec_from_file_location("kl_direction", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--seeds", "0"]) == 2
    assert capsys.readouterr().err.strip() == "kl_direction: --seeds: expected a positive integer"
    assert [case[0] for case in module.CASES] == ["CartPole-v1", "Pendulum-v1"]


def test_grpo_entropy_script_refuses_bad_counts(capsys):
    module = _load_script("grpo_entropy")
    for argv in (["--seeds", "0"], ["--group-size", "3"]):
        assert module.main(argv) == 2
        assert capsys.readouterr().err.strip() == (
            "grpo_entropy: --seeds >= 1 and a --group-size dividing 16"
        )


def _load_script(name: str):
    path = SCRIPT.parent / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rlhf_and_minatar_scripts_refuse_bad_counts(capsys):
    rlhf = _load_script("rlhf_experiments")
    assert rlhf.main(["critic", "--seeds", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        "rlhf_experiments: --seeds, --prepare-seeds and --iterations: expected integers >= 1"
    )
    assert rlhf.main(["long", "--prepare-seeds", "0"]) == 2
    assert "--prepare-seeds" in capsys.readouterr().err
    minatar = _load_script("minatar_torso")
    assert minatar.main(["--envs", "Breakout-MinAtar,Pong-Atari"]) == 2
    assert capsys.readouterr().err.strip() == "minatar_torso: --envs: no config for Pong-Atari"
    assert minatar.main(["--seeds", "0"]) == 2
    assert "expected positive integers" in capsys.readouterr().err


def test_purejaxrl_checkout_with_top_level_wrappers_and_missing_optional_modules(tmp_path):
    """PureJaxRL's newer ppo.py imports `wrappers` as a top-level module, and wrappers.py
    imports navix and brax at import time: the script's import copes with both."""
    pkg = tmp_path / "purejaxrl"
    pkg.mkdir()
    (pkg / "wrappers.py").write_text(
        "import navix as nx\n"
        "from brax.envs.wrappers.training import EpisodeWrapper, AutoResetWrapper\n"
        "class LogWrapper:\n    pass\n"
    )
    (pkg / "ppo.py").write_text(
        "from wrappers import LogWrapper\n\ndef make_train(config):\n    return 'made'\n"
    )
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('t', {str(SCRIPT)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        f"make_train = m.import_make_train(m.Path({str(tmp_path)!r}))\n"
        "print(make_train({}), type(sys.modules['navix']).__name__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1].split() == ["made", "module"]  # (brax may print first)


def test_profile_op_counts_multiply_loop_bodies_by_their_trips(capsys):
    """`_op_counts` reads a compiled program: a 7-trip scan's body counts 7 times."""
    module = _load_script("profile_train")

    def body(c, x):
        return jax.numpy.tanh(c * x + 1.0), None

    def fn(c, xs):
        return jax.lax.scan(body, c, xs)[0]

    text = jax.jit(fn).lower(np.ones(3, np.float32), np.ones((7, 3), np.float32))
    module._op_counts(text.compile().as_text())
    out = capsys.readouterr().out
    assert "trips    7" in out
    comps, entry = module._computations(text.compile().as_text())
    ops = module.collections.Counter()
    loops: list = []
    module._executed(comps, entry, 1, ops, loops)
    assert [trips for _, trips, _ in loops] == [7]
    inner = module.collections.Counter()
    module._executed(comps, loops[0][0], 1, inner, [])
    assert sum(ops.values()) >= 7 * sum(inner.values()) > 0


def test_restoring_the_tfp_alias_touches_nothing_else():
    module = _load_script("time_purejaxrl")
    import jax.interpreters.xla as xla

    restored = module.restore_names_tfp_reads()
    assert hasattr(xla, "pytype_aval_mappings")
    assert module.restore_names_tfp_reads() == []  # idempotent: nothing left to restore
    assert set(restored) <= {"jax.interpreters.xla.pytype_aval_mappings"}


def test_arithmetic_floor_refuses_bad_counts_and_times_both_programs(capsys):
    floor = _load_script("arithmetic_floor")
    assert floor.main(["--updates", "0"]) == 2
    assert capsys.readouterr().err.strip() == "--updates: expected an integer >= 1, got 0"
    assert floor.main(["--seeds", "2", "--updates", "1", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("recipe CartPole-v1 4x128, 4 epochs x 4 minibatches")
    rates = {line.split()[0]: float(line.split()[1].replace(",", "")) for line in lines[1:3]}
    assert set(rates) == {"floor", "purejaxppo"} and min(rates.values()) > 0
    assert lines[3].startswith("purejaxppo runs at ") and lines[3].endswith("% of the floor's rate")


def test_floor_update_keeps_the_parameter_tree_and_moves_every_leaf():
    floor = _load_script("arithmetic_floor")
    import purejaxppo as ppo

    cfg = ppo.PPOConfig(num_envs=2, num_steps=8, num_minibatches=2, update_epochs=1)
    trainer = ppo.make_trainer(cfg)
    state = trainer.init(jax.random.key(0), ppo.HParams())
    obs = state.obs.reshape((cfg.num_envs, -1))
    new = jax.jit(lambda p: floor.floor_update(trainer.network, cfg, p, obs))(state.params)
    assert jax.tree.structure(new) == jax.tree.structure(state.params)
    moved = jax.tree.map(lambda a, b: bool(np.any(a != b)), new, state.params)
    assert all(jax.tree.leaves(moved))


def test_rlhf_g2_builds_its_arms_at_equal_prompts_and_equal_completions():
    """`rlhf_experiments.py g2` without training: PPO samples 64 prompts x 1; G = 2 at equal
    prompts samples the same 64 prompts twice (128 completions), at equal completions 32
    prompts twice (64); with and without the std; everything else the same."""
    rlhf = _load_script("rlhf_experiments")
    base = rlhf.load_rlhf_config(rlhf.BASE)
    arms = rlhf.g2_configs(base, seeds=10, iterations=150, kl_target=4.0)
    got = {
        name: (
            budget,
            cfg.rl.algorithm,
            cfg.rl.group_size,
            cfg.rl.group_normalize,
            cfg.rl.prompts_per_iteration,
            cfg.rl.completions_per_iteration,
        )
        for name, budget, cfg in arms
    }
    ppo = got.pop(rlhf.PPO_NAME)
    assert ppo == ("both", "ppo", 1, True, 64, 64)
    assert sorted(got.values()) == [
        ("completions", "grpo", 2, False, 32, 64),
        ("completions", "grpo", 2, True, 32, 64),
        ("prompts", "grpo", 2, False, 64, 128),
        ("prompts", "grpo", 2, True, 64, 128),
    ]
    for budget, *_, prompts, completions in got.values():
        assert prompts == ppo[4] if budget == "prompts" else completions == ppo[5]
    same = {
        (
            cfg.rl.iterations,
            cfg.rl.epochs,
            cfg.rl.minibatches,
            cfg.rl.adaptive_kl,
            cfg.population.seeds,
            cfg.population.grid,
            cfg.hparams,
            cfg.reward,
            cfg.sft,
            cfg.seed,
        )
        for _, _, cfg in arms
    }
    assert len(same) == 1
    (iterations, _, _, _, seeds, grid, hparams, *_) = same.pop()
    assert (iterations, seeds, grid, hparams.kl_target) == (150, 10, (), 4.0)


def test_rlhf_analysis_g2_reads_both_budgets(tmp_path):
    """`rlhf_analysis.py g2` on a made-up g2.json: one row per arm and budget (PPO in both),
    PPO's gaps and the std / budget contrasts, without training."""
    rlhf, ana = _load_script("rlhf_experiments"), _load_script("rlhf_analysis")
    rng = np.random.default_rng(0)

    def prompts(seeds):
        length = rng.integers(0, 9, (seeds, 64))
        return {"gold": np.maximum(length - 1, 0) * rng.random((seeds, 64)), "length": length}

    arms = {}
    for name, budget, algorithm, group, normalize, completions in rlhf.G2_ARMS:
        arms[name] = {
            "budget": budget,
            "algorithm": algorithm,
            "group_size": group,
            "group_normalize": normalize,
            "prompts_per_iteration": completions // group,
            "completions_per_iteration": completions,
            "per_prompt": {k: v.tolist() for k, v in prompts(3).items()},
        }
    ref = {k: v[0].tolist() for k, v in prompts(1).items()}
    data = {
        "seeds": 3,
        "iterations": 2,
        "kl_target": 4.0,
        "reward_model_accuracy": 0.8,
        "reference_per_prompt": ref,
        "arms": arms,
    }
    (tmp_path / "g2.json").write_text(json.dumps(data))
    assert ana.main(["g2", "--data", str(tmp_path)]) == 0
    table = (tmp_path / "g2.md").read_text()
    assert table.count(f"| {rlhf.PPO_NAME} | 64 / 64 |") == 2
    assert "| equal prompts per iteration | GRPO G=2, equal prompts | 64 / 128 |" in table
    assert "| equal completions | Dr. GRPO G=2 (no std), equal completions | 32 / 64 |" in table
    summary = json.loads((tmp_path / "g2_lengths.json").read_text())
    assert len(summary["ppo_minus"]) == 4 and len(summary["contrasts"]) == 4


def test_rlhf_long_arms_and_analysis_stratified_by_prepare_seed(tmp_path):
    """`rlhf_experiments.py long` builds its arms from configs/rlhf/long.yaml (32-token
    answers, the fraction gold, 64 completions each); `rlhf_analysis.py long` reads a made-up
    long.json as [RL seeds, prepare seeds] scores, without training."""
    rlhf, ana = _load_script("rlhf_experiments"), _load_script("rlhf_analysis")
    arms = rlhf.long_configs(rlhf.load_rlhf_config(rlhf.LONG), 4, 40, 4.0)
    assert [(c.rl.algorithm, c.rl.group_size, c.rl.prompts_per_iteration) for _, c in arms] == [
        ("ppo", 1, 64),
        ("grpo", 4, 16),
        ("grpo", 2, 32),
    ]
    for _, cfg in arms:
        assert (cfg.language.max_completion_len, cfg.language.gold) == (32, "ascending_fraction")
        assert (cfg.rl.completions_per_iteration, cfg.rl.iterations) == (64, 40)
        assert (cfg.population.seeds, cfg.hparams.kl_target, cfg.prepare_seed) == (4, 4.0, None)
    rng = np.random.default_rng(0)

    def prompts(seeds, shift=0.0):
        return {"gold": rng.random((seeds, 16)) + shift, "length": rng.integers(0, 33, (seeds, 16))}

    data = {"seeds": 3, "prepare_seeds": 2, "iterations": 1, "kl_target": 4.0}
    data |= {"gold": "ascending_fraction", "max_completion_len": 32, "arms": {}}
    data["prepare"] = [
        {"reward_model_accuracy": 0.6, "reference_per_prompt": prompts(1)} for _ in range(2)
    ]
    for p in data["prepare"]:
        p["reference_per_prompt"] = {k: v[0] for k, v in p["reference_per_prompt"].items()}
    for (name, cfg), shift in zip(arms, (1.0, 0.0, 0.0), strict=True):
        blocks = []
        for p in range(2):
            per_seed = {k: rng.random(3) for k in ("win_rate_vs_reference", "kl_to_reference")}
            pp = prompts(3, shift)
            per_seed["gold_reward"] = pp["gold"].mean(axis=1)
            blocks.append({"prepare_seed": p, "per_seed": per_seed, "per_prompt": pp})
        data["arms"][name] = {
            "algorithm": cfg.rl.algorithm,
            "prompts_per_iteration": cfg.rl.prompts_per_iteration,
            "completions_per_iteration": 64,
            "per_prepare": blocks,
        }
    (tmp_path / "long.json").write_text(json.dumps(rlhf._jsonable(data)))
    assert ana.main(["long", "--data", str(tmp_path)]) == 0
    assert "| GRPO G=2 (±1) | 32 / 64 |" in (tmp_path / "long.md").read_text()
    summary = json.loads((tmp_path / "long_lengths.json").read_text())
    assert np.asarray(summary["scores"][rlhf.PPO_NAME]["gold"]).shape == (3, 2)
    gap, low, high = summary["ppo_minus"]["GRPO G=4"]["gold"]
    assert 0.8 < low <= gap <= high < 1.2  # PPO's made-up gold is 1 higher


def test_rlhf_overopt_refuses_bad_kl_targets(capsys):
    rlhf = _load_script("rlhf_experiments")
    for targets in (["4", "2"], ["0", "1"], ["1", "1"]):
        assert rlhf.main(["overopt", "--kl-targets", *targets]) == 2
        assert "--kl-targets: expected distinct positive numbers" in capsys.readouterr().err


def test_rlhf_analysis_gao_controls_for_length(tmp_path):
    """`rlhf_analysis.py gao` on a made-up overopt.json with per-prompt data: gold is
    `0.3 x length` plus a per-target gain `g_t`, and longer answers at higher KL, so the raw
    gold mixes length and `g_t`; the length-controlled gain recovers `g_t` exactly."""
    ana = _load_script("rlhf_analysis")
    rng = np.random.default_rng(0)
    targets, seeds, prompts = [1.0, 4.0, 16.0], 3, 200
    gains = np.array([0.2, 0.5, 0.6])
    ref_len = rng.integers(1, 9, prompts)
    ref_gold = 0.3 * ref_len
    gold, lengths, kl = [], [], []
    for t, target in enumerate(targets):
        for _ in range(seeds):
            n = np.minimum(rng.integers(1, 9, prompts) + t, 8)  # longer at higher KL
            lengths.append(n)
            gold.append(0.3 * n + gains[t])
            kl.append(target * (1 + 0.05 * rng.random()))
    gold, lengths = np.asarray(gold), np.asarray(lengths)
    ev = {
        "gold_reward": gold.mean(1).tolist(),
        "gold_reward_reference": [float(ref_gold.mean())] * len(kl),
        "kl_to_reference": kl,
    }
    rm = {
        "reward_model_accuracy": 0.8,
        "eval": ev,
        "per_prompt": {"gold": gold.tolist(), "length": lengths.tolist()},
        "reference_per_prompt": {"gold": ref_gold.tolist(), "length": ref_len.tolist()},
    }
    data = {"kl_targets": targets, "seeds": seeds, "rm": {"strong": rm}}
    (tmp_path / "overopt.json").write_text(json.dumps(data))
    assert ana.main(["gao", "--data", str(tmp_path)]) == 0
    fit = json.loads((tmp_path / "gao_fit.json").read_text())["strong"]
    controlled = np.asarray(fit["length_controlled"]["gain"])
    np.testing.assert_allclose(controlled, np.repeat(gains[:, None], seeds, 1), atol=1e-4)
    raw = np.asarray(fit["gold"]) - ev["gold_reward_reference"][0]
    assert (raw[1:] > controlled[1:] + 0.15).all()  # the raw gain carries the length
    assert (
        "length-controlled (gain over the reference at equal content lengths)"
        in (tmp_path / "gao_fit.md").read_text()
    )


def test_rlhf_placement_arms_swap_only_the_kl_placement():
    """`rlhf_experiments.py placement`: PPO and GRPO G = 4, each with its own KL placement
    and the swapped one; everything else (budget, KL target, iterations) is shared."""
    rlhf = _load_script("rlhf_experiments")
    arms = rlhf.placement_configs(rlhf.load_rlhf_config(rlhf.BASE), 10, 150, 4.0)
    got = [(c.rl.algorithm, c.rl.group_size, c.rl.kl_in_reward) for _, c in arms]
    assert got == [("ppo", 1, True), ("ppo", 1, False), ("grpo", 4, False), ("grpo", 4, True)]
    for _, cfg in arms:
        assert (cfg.rl.completions_per_iteration, cfg.rl.iterations) == (64, 150)
        assert (cfg.population.seeds, cfg.hparams.kl_target) == (10, 4.0)
    first = arms[0][1]
    for _, cfg in arms[1:]:
        assert dataclasses.replace(cfg, rl=first.rl) == first


def test_rlhf_long_config_must_load(tmp_path, capsys):
    rlhf = _load_script("rlhf_experiments")
    assert rlhf.main(["long", "--config", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlhf_experiments: --config: ") and err.count("\n") == 1
    assert rlhf.main(["g2", "--config", str(rlhf.BASE)]) == 2  # only long reads it
    assert capsys.readouterr().err == (
        "rlhf_experiments: --config: only long takes a config (g2 runs configs/rlhf/ppo.yaml)\n"
    )
