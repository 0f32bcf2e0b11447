"""The device-memory estimate (`purejaxppo.run.memory`): against XLA's own memory analysis,
the refusal of a run that cannot fit (before compiling), and every shipped config accepted."""

from __future__ import annotations

import functools
import re
import time
from pathlib import Path

import jax
import pytest
from _cli_support import REPO, assert_bad_input, run_cli

import purejaxppo as ppo
from purejaxppo.run import memory
from purejaxppo.run.config import ConfigError, load_run_config, make_run_trainer

CONFIGS = REPO / "configs"
RUN_CONFIGS = sorted(CONFIGS.glob("*.yaml")) + sorted(
    p for p in CONFIGS.glob("*/*.yaml") if p.parent.name not in ("sweeps", "rlhf")
)


def analysed_bytes(compiled) -> int:
    """XLA's memory analysis of a compiled program: what `sweep.GroupRunner` plans with."""
    m = compiled.memory_analysis()
    return (
        m.argument_size_in_bytes
        + m.output_size_in_bytes
        + m.temp_size_in_bytes
        - m.alias_size_in_bytes
    )


@pytest.mark.parametrize(
    "changes",
    [
        {},  # CartPole recipe: 4 envs x 128 steps
        {"num_envs": 256, "num_minibatches": 8},  # the full-batch critic pass dominates
        {"gru_size": 16, "num_envs": 8},
        {"env_name": "Pendulum-v1", "objective": "kl_penalty", "num_envs": 16, "num_steps": 32},
    ],
    ids=["cartpole", "cartpole-256-envs", "gru", "pendulum-kl"],
)
def test_estimate_is_within_the_stated_factor_of_xla_memory_analysis(changes):
    cfg = ppo.PPOConfig(total_timesteps=10**6, **changes)
    trainer = ppo.make_trainer(cfg)
    key, hparams = jax.random.key(0), ppo.HParams()
    state = jax.eval_shape(trainer.init, key, hparams)
    init = jax.jit(trainer.init).lower(key, hparams).compile()
    update = jax.jit(functools.partial(trainer.run, num_updates=1)).lower(state, hparams).compile()
    actual = max(analysed_bytes(init), analysed_bytes(update))
    ratio = memory.ppo_member_memory(trainer).total / actual
    print(f"estimate / memory_analysis = {ratio:.2f}")
    assert 1 / memory.ESTIMATE_FACTOR <= ratio <= memory.ESTIMATE_FACTOR, ratio


@pytest.mark.slow
def test_rlhf_estimate_is_within_its_stated_factor_of_xla_memory_analysis():
    from test_rlhf_cli import TINY_SETS

    from purejaxppo.rlhf.config import population_members, stack_rlhf_hparams
    from purejaxppo.rlhf.pipeline import make_pipeline, member_keys, prepare_key
    from purejaxppo.rlhf.runner import memory_estimates
    from purejaxppo.rlhf.yamlconfig import load_rlhf_config

    cfg = load_rlhf_config(CONFIGS / "rlhf" / "grpo.yaml", TINY_SETS)
    pipeline, key = make_pipeline(cfg), prepare_key(cfg)
    members = population_members(cfg)
    keys = member_keys(cfg, [m.seed for m in members])
    hparams = stack_rlhf_hparams([m.hparams for m in members])
    frozen = jax.eval_shape(pipeline.prepare, key).frozen
    actual = (
        analysed_bytes(jax.jit(pipeline.prepare).lower(key).compile()),
        analysed_bytes(jax.jit(pipeline.population).lower(keys, hparams, frozen).compile()),
    )
    for estimate, real in zip(memory_estimates(cfg), actual, strict=True):
        ratio = estimate.total / real
        print(f"estimate / memory_analysis = {ratio:.2f}")
        assert 1 / memory.RLHF_ESTIMATE_FACTOR <= ratio <= memory.ESTIMATE_FACTOR, ratio


def test_estimate_takes_no_compile_at_134m_envs():
    cfg = ppo.PPOConfig(num_envs=2**27, num_steps=2, total_timesteps=2**28)
    start = time.perf_counter()
    estimate = memory.ppo_member_memory(ppo.make_trainer(cfg))
    assert time.perf_counter() - start < 20
    assert estimate.total > 50e9  # XLA's buffers for it: ~224 GB (an OOM on this machine)
    assert dict(estimate.parts)["rollout [T, N]"] > 5e9


def test_refusal_is_one_line_naming_field_estimate_and_what_is_available(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda *a, **k: 10**9)
    estimate = memory.MemoryEstimate(93 * 10**9, (("state", 10**8), ("rollout", 6 * 10**10)))
    with pytest.raises(ConfigError) as err:
        memory.check_fits(estimate, "ppo.num_envs", "the run", "ppo.num_envs or ppo.num_steps")
    text = str(err.value)
    assert "\n" not in text and text.startswith("ppo.num_envs: the run needs about 93 GB")
    assert "rollout 60 GB" in text and "1 GB" in text and text.endswith("ppo.num_steps")
    memory.check_fits(memory.MemoryEstimate(10**9), "x", "y", "z")  # exactly fits: accepted


def test_train_refuses_134m_envs_before_compiling(tmp_path: Path):
    out = tmp_path / "run"
    start = time.perf_counter()
    proc = run_cli(
        "train",
        REPO / "configs" / "CartPole-v1.yaml",
        "--set",
        "ppo.num_envs=134217728",
        "--set",
        "ppo.num_steps=2",
        "--set",
        "ppo.total_timesteps=268435456",
        "--out",
        out,
        cwd=tmp_path,
        timeout=120,
    )
    elapsed = time.perf_counter() - start
    line = assert_bad_input(proc, "ppo.num_envs", "GB of memory", "available", "lower")
    assert line.startswith("purejaxppo train: error: ")
    assert not out.exists()
    assert elapsed < 60, elapsed  # ~4 s here; compiling it took 33 s before failing


def test_sweep_refuses_a_group_that_cannot_fit_before_touching_the_folder(tmp_path: Path):
    sweep = tmp_path / "big.yaml"
    sweep.write_text(
        "ppo: {env_name: CartPole-v1, num_steps: 2, total_timesteps: 268435456}\n"
        "seeds: 1\ngrid: {ppo.num_envs: [4, 134217728]}\n"
    )
    out = tmp_path / "out"
    proc = run_cli("sweep", sweep, "--out", out, cwd=tmp_path, timeout=120)
    line = assert_bad_input(proc, "ppo.num_envs: one member of group 2/2", "GB of memory")
    assert line.startswith("purejaxppo sweep: error: ") and "available" in line
    assert not out.exists()


def test_rlhf_refuses_a_population_that_cannot_fit(monkeypatch):
    from purejaxppo.rlhf.runner import check_memory, memory_estimates
    from purejaxppo.rlhf.yamlconfig import load_rlhf_config

    cfg = load_rlhf_config(CONFIGS / "rlhf" / "grpo.yaml", [])
    prepare, population = memory_estimates(cfg)
    assert population.total > prepare.total
    monkeypatch.setattr(memory, "available_memory", lambda *a, **k: prepare.total)
    with pytest.raises(ConfigError, match=r"^rl.completions_per_iteration: the RL stage \(6 "):
        check_memory(cfg)


@pytest.mark.parametrize("path", RUN_CONFIGS, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_shipped_run_config_fits(path: Path):
    try:
        trainer = make_run_trainer(load_run_config(path), str(path))
    except ConfigError as err:
        if "never downloads data" in str(err):  # MNISTBandit without its files
            pytest.skip(str(err))
        if re.search(r"needs the \w+ extra: pip install -e '\.\[\w+\]'$", str(err)):
            pytest.skip(str(err))  # a suite's config without its extra (make test-envs has them)
        raise
    memory.check_train_memory(trainer, 1, None, str(path))


def test_every_shipped_sweep_fits():
    from purejaxppo.sweep import load_sweep
    from purejaxppo.sweep.runner import check_groups_fit

    for path in sorted((CONFIGS / "sweeps").glob("*.yaml")):
        check_groups_fit(load_sweep(path).population().groups())


@pytest.mark.parametrize("path", sorted((CONFIGS / "rlhf").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_rlhf_config_fits(path: Path):
    from purejaxppo.rlhf.runner import check_memory
    from purejaxppo.rlhf.yamlconfig import load_rlhf_config

    check_memory(load_rlhf_config(path, []))
