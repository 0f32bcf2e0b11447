"""The Python API: `train_population` (chunked, padded, segmented) and `select`."""

import jax
import numpy as np
import pytest

import purejaxppo as ppo
from purejaxppo import sweep as sw

CFG = ppo.PPOConfig(
    num_envs=4,
    num_steps=16,
    total_timesteps=4 * 16 * 7,  # 7 updates: segments of 3, 3 and a partial 1
    num_minibatches=2,
    update_epochs=2,
    hidden_sizes=(16,),
)
HPS = [
    ppo.HParams(learning_rate=1e-3, ent_coef=0.0),
    ppo.HParams(learning_rate=3e-3, clip_eps=0.1),
    ppo.HParams(learning_rate=2e-3, gamma=0.9),
]
SEEDS = [3, 4, 11]


@pytest.fixture(scope="module")
def population_output():
    calls = []
    out = sw.train_population(
        CFG,
        HPS,
        SEEDS,
        max_batch=2,
        segment_updates=3,
        on_updates=lambda c, k: calls.append((c, k)),
    )
    return out, calls


def test_members_equal_single_runs(population_output):
    """2 members per device (`max_batch=2` caps the width; the last group padded), segments
    of 3 updates: member i is the single run i.

    Checked to float rounding, not bits: the batched program is compiled apart
    from the unbatched one, which XLA:CPU fuses differently (measured here: 2 of
    16 final parameters of a member differ, by 2e-10, with 2 minibatches x 2 epochs).
    """
    out, calls = population_output
    assert calls == [(0, 3), (0, 6), (0, 7), (1, 3), (1, 6), (1, 7)]
    assert out.metrics["episode_return"].shape == (3, 7)
    single = jax.jit(ppo.make_train(CFG))
    for i, (seed, hp) in enumerate(zip(SEEDS, HPS, strict=True)):
        ref = single(jax.random.key(seed), hp)
        member = sw.select(out, i)
        for a, b in zip(jax.tree.leaves(member.params), jax.tree.leaves(ref.params), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        for name in ppo.METRIC_NAMES:
            np.testing.assert_allclose(
                member.metrics[name], ref.metrics[name], rtol=1e-5, atol=1e-6, err_msg=name
            )
        np.testing.assert_array_equal(
            jax.random.key_data(member.state.key), jax.random.key_data(ref.state.key)
        )
        assert int(member.state.update_step) == CFG.num_updates


def test_selected_member_trains_further_like_a_single_run(population_output):
    out, _ = population_output
    # A trainer for a longer run continues the state, annealing to its own horizon.
    longer = CFG.replace(total_timesteps=CFG.total_timesteps + 2 * CFG.batch_size)
    trainer = ppo.make_trainer(longer)
    member = sw.select(out, 1)
    state, metrics = jax.jit(trainer.run, static_argnums=2)(member.state, HPS[1], 2)
    assert int(state.update_step) == CFG.num_updates + 2
    assert metrics["episode_return"].shape == (2,)
    assert (np.asarray(metrics["learning_rate"]) > 0).all()
    assert not np.array_equal(
        np.asarray(jax.tree.leaves(state.params)[0]), np.asarray(jax.tree.leaves(member.params)[0])
    )


def test_bad_population_arguments():
    with pytest.raises(ValueError, match=r"^seeds: expected one per HParams, got 2 and 3"):
        sw.train_population(CFG, HPS, [0, 1])
    with pytest.raises(ValueError, match=r"^members_per_device: expected a positive integer"):
        sw.GroupRunner(CFG, 0)
    with pytest.raises(ValueError, match=r"^max_batch: expected a positive integer, got 0"):
        sw.train_population(CFG, HPS, SEEDS, max_batch=0)
