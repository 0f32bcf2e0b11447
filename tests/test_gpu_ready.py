"""GPU/TPU readiness of the jitted path (issue 14, item 6), checked on the CPU:

- the lowered program (StableHLO, before any backend sees it) holds no `custom_call` — no
  host callback (`jax.debug.callback`, `pure_callback`), no LAPACK or other CPU-only kernel —
  and no infeed/outfeed/send/recv, so nothing in it forces a round-trip to the host;
- the compiled program runs under `jax.transfer_guard("disallow")`: no implicit transfer
  between host and device happens while it runs.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import pytest

import purejaxppo as ppo

BASE = ppo.PPOConfig(num_envs=4, num_steps=16, total_timesteps=4 * 16 * 2, num_minibatches=2)
CONFIGS = {
    "default": BASE,
    "clip+kl": BASE.replace(objective="clip+kl"),
    "normalised Pendulum": BASE.replace(
        env_name="Pendulum-v1", normalize_observations=True, normalize_rewards=True
    ),
    "group": BASE.replace(advantage="group", num_steps=500, total_timesteps=4 * 500, group_size=2),
    "gru": BASE.replace(env_name="MemoryChain-bsuite", gru_size=8, hidden_sizes=(8,)),
    "cnn": BASE.replace(env_name="Breakout-MinAtar", torso="cnn", hidden_sizes=(8,)),
}
HOST_OPS = re.compile(r"\b(custom_call|infeed|outfeed|send|recv)\b")


def _population(cfg: ppo.PPOConfig):
    train = jax.jit(jax.vmap(ppo.make_train(cfg), (0, None)))
    keys = jax.device_put(jax.vmap(jax.random.key)(jnp.arange(2)))
    hparams = jax.device_put(jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), ppo.HParams()))
    return train, keys, hparams


@pytest.mark.parametrize("name", list(CONFIGS))
def test_lowered_program_has_no_host_round_trip(name):
    train, keys, hparams = _population(CONFIGS[name])
    text = train.lower(keys, hparams).as_text()
    assert "stablehlo.while" in text  # the check can fail: this is the whole training program
    found = sorted(set(HOST_OPS.findall(text)))
    assert not found, f"{name}: the jitted path contains {found}"


def test_the_check_catches_a_host_callback():
    def noisy(x):
        jax.debug.callback(lambda v: None, x)
        return x + 1

    assert HOST_OPS.search(jax.jit(noisy).lower(jnp.ones(3)).as_text())


@pytest.mark.parametrize("name", ["default", "gru"])
def test_compiled_program_runs_with_transfers_disallowed(name):
    train, keys, hparams = _population(CONFIGS[name])
    compiled = train.lower(keys, hparams).compile()
    with jax.transfer_guard("disallow"):
        out = jax.block_until_ready(compiled(keys, hparams))
    assert out.metrics["policy_loss"].shape == (2, CONFIGS[name].num_updates)
    # the guard is live: reading a result back to the host inside it is refused
    with jax.transfer_guard("disallow"), pytest.raises(Exception, match=r"[Dd]isallowed"):
        float(out.metrics["policy_loss"][0, 0])


def test_rlhf_population_has_no_host_round_trip():
    from purejaxppo.rlhf import (
        LanguageConfig,
        ModelConfig,
        RLConfig,
        RLHFConfig,
        RLHFHParams,
        make_pipeline,
        member_keys,
        stack_rlhf_hparams,
    )

    cfg = RLHFConfig(
        language=LanguageConfig(vocab_size=8, prompt_len=2, max_completion_len=4),
        model=ModelConfig(d_model=16, num_layers=1),
        rl=RLConfig(iterations=2, completions_per_iteration=8, eval_prompts=8),
    )
    pipe = make_pipeline(cfg)
    frozen = jax.eval_shape(pipe.prepare, jax.random.key(0)).frozen
    hp = stack_rlhf_hparams([RLHFHParams()])
    for fn, args in (
        (pipe.prepare, (jax.random.key(0),)),
        (pipe.population, (member_keys(cfg, [0]), hp, frozen)),
    ):
        text = jax.jit(fn).lower(*args).as_text()
        assert not HOST_OPS.findall(text)
