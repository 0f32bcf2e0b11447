"""Recurrent PPO (`gru_size`) and the CNN torso (`torso: cnn`): checks, the replay of
stored sequences, minibatches of whole sequences, reproducibility, checkpoints, learning."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _cli_support import TINY, run_cli, write_config

import purejaxppo as ppo
from purejaxppo.networks import CNN, orthogonal, patches3x3
from purejaxppo.rollout import replay
from purejaxppo.run import rundir
from purejaxppo.run.checkpoint import Checkpointer
from purejaxppo.run.compiled import seed_keys
from purejaxppo.run.config import run_config_from_dict
from purejaxppo.run.evaluate import evaluate
from purejaxppo.train import _split_envs

GRU = ppo.PPOConfig(
    env_name="MemoryChain-bsuite",
    num_envs=4,
    num_steps=16,
    total_timesteps=4 * 16 * 3,
    update_epochs=2,
    num_minibatches=2,
    hidden_sizes=(16,),
    gru_size=8,
)
CNN_CFG = ppo.PPOConfig(
    env_name="Breakout-MinAtar",
    num_envs=2,
    num_steps=8,
    total_timesteps=2 * 8 * 2,
    num_minibatches=2,
    hidden_sizes=(32,),
    torso="cnn",
)


def test_config_checks_name_the_field():
    with pytest.raises(ValueError, match=r"^gru_size: expected 0 \(no GRU\) or a positive"):
        ppo.PPOConfig(gru_size=-1)
    with pytest.raises(ValueError, match=r"^num_minibatches: with gru_size > 0 .* must divide"):
        ppo.PPOConfig(num_envs=4, num_minibatches=8, num_steps=128, gru_size=8)
    with pytest.raises(ValueError, match=r"^gru_size: recurrent policies are not supported"):
        ppo.PPOConfig(advantage="group", num_envs=8, gru_size=8)
    with pytest.raises(ValueError, match=r"^torso: expected one of mlp, cnn"):
        ppo.PPOConfig(torso="resnet")
    with pytest.raises(ValueError, match=r"^torso: cnn needs \[H, W, C\] image observations"):
        ppo.make_trainer(ppo.PPOConfig(torso="cnn"))


def test_orthogonal_init_of_a_convolution_kernel():
    w = orthogonal(1.0)(jax.random.key(0), (3, 3, 4, 16))
    assert w.shape == (3, 3, 4, 16)
    flat = np.asarray(w).reshape(36, 16)
    np.testing.assert_allclose(flat.T @ flat, np.eye(16), atol=1e-5)


def test_patch_matmul_is_a_valid_3x3_convolution():
    x = jax.random.normal(jax.random.key(1), (2, 10, 10, 4))
    kernel = jax.random.normal(jax.random.key(2), (3, 3, 4, 5))
    conv = nn.Conv(5, (3, 3), padding="VALID", use_bias=False)
    expected = conv.apply({"params": {"kernel": kernel}}, x)
    got = patches3x3(x) @ kernel.reshape(36, 5)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    params = CNN().init(jax.random.key(0), x)
    assert CNN().apply(params, x).shape == (2, 8 * 8 * 16)
    assert CNN().apply(params, x[0]).shape == (8 * 8 * 16,)  # unbatched, as `init` calls it


def test_replayed_sequences_reproduce_the_rollout_log_probs():
    """The update replays each env's sequence from the stored starting state, resetting the
    hidden state at episode starts: it must see exactly what the acting policy saw."""
    trainer = ppo.make_trainer(GRU.replace(num_steps=64, total_timesteps=256))
    hp = ppo.HParams()
    state = trainer.init(jax.random.key(0), hp)
    state, _ = jax.jit(trainer.update)(state, hp)  # a hidden state mid-episode to start from
    # larger weights: a policy that depends visibly on its history (init is near uniform)
    state = state.replace(params=jax.tree.map(lambda x: 4.0 * x, state.params))
    hidden0 = state.hidden
    state, traj, _ = jax.jit(trainer.rollout)(state, hp, jax.random.key(1))
    assert bool(jnp.any(traj.reset[1:]))  # episodes ended inside the rollout
    assert float(jnp.abs(hidden0).sum()) > 0
    out = jax.jit(lambda p, h: replay(trainer, p, h, traj.obs, traj.reset, traj.next_obs))(
        state.params, hidden0
    )
    np.testing.assert_allclose(out.dist.log_prob(traj.action), traj.log_prob, atol=1e-5)
    # without the resets the replay would see another history
    wrong = replay(trainer, state.params, hidden0, traj.obs, jnp.zeros_like(traj.reset))
    assert not np.allclose(wrong.dist.log_prob(traj.action), traj.log_prob, atol=1e-3)


def test_minibatches_are_whole_env_sequences():
    cfg = GRU
    t, n = cfg.num_steps, cfg.num_envs
    ids = jnp.broadcast_to(jnp.arange(n), (t, n)).astype(jnp.float32)
    batch = ppo.train.Batch(
        obs=ids, action=ids, log_prob=ids, value=ids, advantages=ids, returns=ids,
        reset=ids > 0, hidden0=jnp.arange(n, dtype=jnp.float32)[:, None] * jnp.ones((n, 3)),
    )  # fmt: skip
    split = _split_envs(batch, jax.random.permutation(jax.random.key(0), n), cfg)
    assert split.obs.shape == (cfg.num_minibatches, t, n // cfg.num_minibatches)
    assert split.hidden0.shape == (cfg.num_minibatches, n // cfg.num_minibatches, 3)
    envs = np.asarray(split.obs[:, 0, :]).ravel()
    assert sorted(envs) == list(range(n))  # every env once per epoch
    for m in range(cfg.num_minibatches):  # each column is one env over all T steps
        assert np.all(np.asarray(split.obs[m]) == np.asarray(split.obs[m, :1]))
        np.testing.assert_array_equal(split.hidden0[m, :, 0], split.obs[m, 0])


@pytest.mark.parametrize("cfg", [GRU, CNN_CFG], ids=["gru", "cnn"])
def test_reproducible_chunked_and_vmapped(cfg):
    trainer = ppo.make_trainer(cfg)
    hp = ppo.HParams()
    whole = jax.jit(trainer.train)(jax.random.key(5), hp)
    for name, values in whole.metrics.items():
        if name not in ("episode_return", "episode_length", "kl", "explained_variance"):
            assert bool(jnp.all(jnp.isfinite(values))), name
    again = jax.jit(trainer.train)(jax.random.key(5), hp)
    jax.tree.map(np.testing.assert_array_equal, whole.metrics, again.metrics)
    run = jax.jit(trainer.run, static_argnums=2)
    state = jax.jit(trainer.init)(jax.random.key(5), hp)
    for _ in range(cfg.num_updates):  # one update per call: one compile
        state, _ = run(state, hp, 1)
    jax.tree.map(np.testing.assert_array_equal, whole.params, state.params)
    keys = jnp.stack([jax.random.key(4), jax.random.key(5)])
    pop = jax.jit(jax.vmap(trainer.train, (0, None)))(keys, hp)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a[1], b, rtol=1e-4, atol=1e-5),
        pop.params,
        whole.params,
    )


def test_recurrent_evaluation_runs_whole_episodes():
    trainer = ppo.make_trainer(GRU)
    hp = ppo.HParams()
    out = jax.jit(trainer.train)(jax.random.key(0), hp)
    result = jax.jit(evaluate, static_argnums=(0, 4))(
        trainer, out.params, out.state.obs_stats, jax.random.key(1), 6
    )
    assert result.returns.shape == (6,)
    # MemoryChain's episodes last memory_length + 1 steps (the query comes at the end)
    assert np.all(np.asarray(result.lengths) == trainer.env_params.memory_length + 1)
    assert set(np.unique(np.asarray(result.returns))) <= {-1.0, 1.0}


def test_recurrent_checkpoint_resumes_to_the_same_bits(tmp_path):
    """A GRU run checkpointed every update: the state saved halfway (hidden state and
    episode-start flags included), continued, ends with the uninterrupted run's bits."""
    ppo_fields = {
        "env_name": "MemoryChain-bsuite",
        "num_envs": 2,
        "num_steps": 16,
        "total_timesteps": 128,
        "num_minibatches": 2,
        "hidden_sizes": [8],
        "gru_size": 4,
    }
    config = write_config(tmp_path / "gru.yaml", {**TINY, "expected_return": None}, **ppo_fields)
    run_dir = tmp_path / "run"
    done = run_cli("train", config, "--out", run_dir, "--checkpoint-every", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rc = run_config_from_dict({**TINY, "ppo": {**TINY["ppo"], **ppo_fields}})
    trainer = ppo.make_trainer(rc.ppo)
    like = jax.eval_shape(jax.vmap(trainer.init, (0, None)), seed_keys([0]), rc.hparams)
    checkpointer = Checkpointer(run_dir / rundir.CHECKPOINT_DIR, read_only=True)
    try:
        updates = checkpointer.all_updates()
        half, _ = checkpointer.restore(updates[0], like)
        final, _ = checkpointer.restore(updates[-1], like)
    finally:
        checkpointer.close()
    assert half.hidden.shape == (1, 2, 8) and half.last_done.dtype == jnp.bool_
    remaining = rc.ppo.num_updates - int(updates[0])
    assert remaining > 0
    # one seed runs unvmapped (run/compiled.py), so resume the same way
    first = jax.tree.map(lambda x: x[0], half)
    resumed = jax.jit(lambda s: trainer.run(s, rc.hparams, remaining)[0])(first)
    resumed = jax.tree.map(lambda x: x[None], resumed)
    a_leaves = jax.tree.leaves(resumed.replace(key=None))
    for a, b in zip(a_leaves, jax.tree.leaves(final.replace(key=None)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow
def test_gru_learns_memory_chain_where_the_mlp_cannot():
    """MemoryChain shows a context at the first step and asks for it at the last: chance is
    0 on average, a policy with memory scores 1."""
    finals = {}
    for gru in (0, 32):
        cfg = GRU.replace(num_envs=16, num_steps=64, total_timesteps=60_000, num_minibatches=4,
                          hidden_sizes=(64,), gru_size=gru)  # fmt: skip
        out = jax.jit(ppo.make_train(cfg))(jax.random.key(0), ppo.HParams(learning_rate=5e-4))
        finals[gru] = float(np.nanmean(np.asarray(out.metrics["episode_return"])[-10:]))
    assert finals[32] > 0.8, finals
    assert finals[0] < 0.4, finals


def test_flop_count_covers_the_cnn_and_the_gru():
    from purejaxppo.bench.flops import count_flops, xla_flops

    trainer = ppo.make_trainer(CNN_CFG)
    analytic = count_flops(CNN_CFG, trainer.space)
    mlp = count_flops(CNN_CFG.replace(torso="mlp"), trainer.space)
    assert analytic.per_step != mlp.per_step
    xla = xla_flops(trainer, ppo.HParams(), analytic)
    assert 0.95 <= xla.ratio < 1.3, xla  # XLA also counts the elementwise work
    gru = ppo.make_trainer(GRU)
    count = count_flops(GRU, gru.space)
    assert count.rollout == count.actor_forward + count.critic_forward > 0
    assert xla_flops(gru, ppo.HParams(), count) is None
