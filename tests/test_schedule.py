"""Piecewise hyperparameter schedules: same bits as plain and chunked runs, no retrace."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import purejaxppo as ppo
from purejaxppo.schedule import HParamSchedule, hparams_at, segment_index

# CartPole, 4 updates of 4 envs x 16 steps, one minibatch, one epoch.
TINY = ppo.PPOConfig(
    num_envs=4,
    num_steps=16,
    total_timesteps=4 * 64,
    num_minibatches=1,
    update_epochs=1,
    hidden_sizes=(16,),
)
A = ppo.HParams(learning_rate=3e-3, ent_coef=0.02)
B = ppo.HParams(learning_rate=1e-3, clip_eps=0.1, gamma=0.95, max_grad_norm=1.0)


def assert_same_bits(x, y) -> None:
    """Every leaf of `x` equals `y`'s bit for bit (PRNG keys compared as key data)."""

    def same(a, b):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    jax.tree.map(same, x, y)


def annealed(rates: list[float]) -> np.ndarray:
    """`[U]` learning rates of updates 0..U-1 under TINY's linear decay (`anneal_lr`)."""
    u = np.arange(TINY.num_updates, dtype=np.float32)
    return np.float32(rates) * (1.0 - u / TINY.num_updates)


@pytest.fixture(scope="module")
def trainer() -> ppo.Trainer:
    return ppo.make_trainer(TINY)


def test_segment_index_and_hparams_at():
    sched = HParamSchedule.from_segments([(0, A), (2, B), (5, A)])
    got = [int(segment_index(sched.boundaries, u)) for u in range(8)]
    assert got == [0, 0, 1, 1, 1, 2, 2, 2]
    assert float(hparams_at(sched, 3).learning_rate) == np.float32(1e-3)
    assert float(hparams_at(sched, 7).clip_eps) == np.float32(0.2)


@pytest.mark.parametrize(
    "segments, fragment",
    [
        ([], "at least one"),
        ([(1, A)], "start at update 0"),
        ([(0, A), (3, B), (3, A)], "strictly increase"),
        ([(0, A), (1.5, B)], "integer"),
    ],
)
def test_bad_segments_are_refused(segments, fragment):
    with pytest.raises(ValueError, match=fragment):
        HParamSchedule.from_segments(segments)


def test_every_segment_is_checked_against_the_config(trainer):
    state = jax.jit(trainer.init)(jax.random.key(0), A)
    sched = HParamSchedule.from_segments([(0, A), (2, B.replace(kl_target=0.05))])
    with pytest.raises(ValueError, match=r"kl_target: 0\.05 has no effect with objective: clip"):
        trainer.run(state, sched, 4)  # eager: refused before anything runs


def test_an_unvmapped_stacked_schedule_is_refused():
    sched = HParamSchedule.from_segments([(0, A), (2, B)])
    stacked = jax.tree.map(lambda *xs: np.stack(xs), sched, sched)
    with pytest.raises(ValueError, match="must be vmapped"):
        hparams_at(stacked, 0)


def test_constant_segments_give_the_plain_run_bits(trainer):
    plain = jax.jit(trainer.train)(jax.random.key(3), A)
    sched = HParamSchedule.from_segments([(0, A), (1, A), (3, A)])
    scheduled = jax.jit(trainer.train)(jax.random.key(3), sched)
    assert_same_bits(plain, scheduled)


def test_two_segments_equal_two_chunks(trainer):
    run = jax.jit(trainer.run, static_argnums=2)
    state = jax.jit(trainer.init)(jax.random.key(4), A)
    mid, m1 = run(state, A, 2)
    chunked, m2 = run(mid, B, 2)
    sched = HParamSchedule.from_segments([(0, A), (2, B)])
    whole, metrics = run(state, sched, 4)
    assert_same_bits(chunked, whole)
    assert_same_bits(jax.tree.map(lambda a, b: np.concatenate([a, b]), m1, m2), metrics)
    # the scheduled learning rate reached the optimizer, annealed as usual
    np.testing.assert_allclose(metrics["learning_rate"], annealed([3e-3, 3e-3, 1e-3, 1e-3]))


def test_new_values_and_boundaries_do_not_retrace(trainer):
    traces = []

    def counted(state, sched):
        traces.append(1)
        return trainer.run(state, sched, 4)

    run = jax.jit(counted)
    state = jax.jit(trainer.init)(jax.random.key(0), A)
    outs = []
    for segments in ([(0, A), (2, B)], [(0, B), (1, A)], [(0, A), (3, A)]):
        outs.append(run(state, HParamSchedule.from_segments(segments)))
    jax.block_until_ready(outs)
    assert len(traces) == 1 and run._cache_size() == 1
    assert not np.array_equal(
        np.asarray(outs[0][1]["learning_rate"]), np.asarray(outs[1][1]["learning_rate"])
    )


def test_vmapped_members_follow_their_own_schedules(trainer):
    scheds = [
        HParamSchedule.from_segments([(0, A), (2, B)]),
        HParamSchedule.from_segments([(0, B), (1, A)]),
    ]
    stacked = jax.tree.map(lambda *xs: np.stack(xs), *scheds)
    out = jax.jit(jax.vmap(trainer.train, (None, 0)))(jax.random.key(1), stacked)
    expected = [annealed([3e-3, 3e-3, 1e-3, 1e-3]), annealed([1e-3, 3e-3, 3e-3, 3e-3])]
    np.testing.assert_allclose(out.metrics["learning_rate"], expected)


def test_a_key_fold_refolds_the_key_where_its_segment_starts(trainer):
    """`key_folds` replays what PBT does to a member that copied another (fold, then go on):
    the same bits as running to the boundary, folding by hand and running on; zero folds
    change nothing."""
    run = jax.jit(trainer.run, static_argnums=2)
    state = jax.jit(trainer.init)(jax.random.key(2), A)
    folded = HParamSchedule.from_segments([(0, A), (2, B)], key_folds=[0, 12345])
    got, _ = run(state, folded, 4)
    mid, _ = run(state, A, 2)
    mid = mid.replace(key=jax.random.fold_in(mid.key, np.uint32(12345)))
    want, _ = run(mid, B, 2)
    assert_same_bits(got, want)
    zeros = HParamSchedule.from_segments([(0, A), (2, B)], key_folds=[0, 0])
    assert_same_bits(
        run(state, zeros, 4), run(state, HParamSchedule.from_segments([(0, A), (2, B)]), 4)
    )
    with pytest.raises(ValueError, match="key_folds"):
        HParamSchedule.from_segments([(0, A), (2, B)], key_folds=[0])
