"""PBT's exploit/explore step: ranking, whole-state copies, bounds, determinism."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxppo as ppo
from purejaxppo.sweep.pbt import (
    Bounds,
    PBTConfig,
    interval_fitness,
    member_schedule,
    num_replaced,
    pbt_step,
    rank_members,
)

TINY = ppo.PPOConfig(
    num_envs=4, num_steps=16, total_timesteps=640, num_minibatches=1, update_epochs=1,
    hidden_sizes=(16,),
)  # fmt: skip
P = 8
EXPLORE = (Bounds("learning_rate", 1e-4, 1e-2, log=True), Bounds("ent_coef", 0.0, 0.05))
step = jax.jit(pbt_step, static_argnames="config")


def key_data(x):
    return jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x


def leaves(tree) -> list[np.ndarray]:
    return [np.asarray(key_data(x)) for x in jax.tree.leaves(tree)]


def member(tree, i: int):
    return jax.tree.map(lambda x: x[i], tree)


def same_bits(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b), strict=True))


@pytest.fixture(scope="module")
def population():
    """P initial states made distinct in every numeric leaf, and P hyperparameter sets."""
    trainer = ppo.make_trainer(TINY)
    keys = jax.random.split(jax.random.key(0), P)
    states = jax.jit(jax.vmap(trainer.init, (0, None)))(keys, ppo.HParams())

    def distinct(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) or x.dtype == jnp.bool_:
            return x
        offset = jnp.arange(P, dtype=x.dtype).reshape((P,) + (1,) * (x.ndim - 1))
        return x + offset

    hps = ppo.stack_hparams(
        [ppo.HParams(learning_rate=1e-3 * (i + 1), ent_coef=0.01, gamma=0.9 + 0.01 * i)
         for i in range(P)]
    )  # fmt: skip
    return jax.tree.map(distinct, states), hps


def test_ranking_is_by_fitness_nan_last_ties_by_index():
    fitness = jnp.array([1.0, jnp.nan, 3.0, 3.0, -0.0, 0.0, -jnp.inf])
    assert rank_members(fitness).tolist() == [2, 3, 0, 4, 5, 6, 1]
    cases = [(8, 0.25), (4, 0.25), (2, 0.5), (1, 0.5), (10, 0.5)]
    assert [num_replaced(p, t) for p, t in cases] == [2, 1, 1, 0, 5]


def test_bottom_members_copy_a_top_members_whole_state(population):
    states, hps = population
    fitness = jnp.array([5.0, 1.0, 7.0, jnp.nan, 6.0, 2.0, 9.0, 3.0])  # bottom: 3, 1; top: 6, 2
    out = step(jax.random.key(1), states, hps, fitness, PBTConfig(()))
    out_states, out_hps, parents, folds = out
    parents = parents.tolist()
    assert parents[3] in (6, 2) and parents[1] in (6, 2)
    assert [parents[i] for i in (0, 2, 4, 5, 6, 7)] == [0, 2, 4, 5, 6, 7]
    for i in range(P):
        mine, parent = member(out_states, i), member(states, parents[i])
        if i in (1, 3):  # everything but the key is the parent's (params, Adam, env, stats...)
            assert same_bits(mine.replace(key=None), parent.replace(key=None))
            assert not np.array_equal(key_data(mine.key), key_data(parent.key))
            assert int(folds[i]) != 0  # the fold is returned, so the run can be replayed
            refolded = jax.random.fold_in(parent.key, folds[i])
            assert np.array_equal(key_data(mine.key), key_data(refolded))
            assert same_bits(member(out_hps, i), member(hps, parents[i]))  # nothing explored
        else:  # kept members are untouched, key included
            assert same_bits(mine, member(states, i)) and int(folds[i]) == 0
            assert same_bits(member(out_hps, i), member(hps, i))


def test_optimizer_count_and_env_state_are_copied(population):
    states, hps = population
    fitness = jnp.arange(P, dtype=jnp.float32)  # members 0 and 1 are replaced
    out, _, parents, _ = step(jax.random.key(2), states, hps, fitness, PBTConfig(()))
    counts = [x for x in jax.tree.leaves(out.opt_state) if x.dtype == jnp.int32]
    assert counts and all(int(c[0]) == int(parents[0]) for c in counts)  # distinct() offsets
    env_leaves = zip(jax.tree.leaves(out.env_state), jax.tree.leaves(states.env_state), strict=True)
    for new, old in env_leaves:
        np.testing.assert_array_equal(new[1], old[int(parents[1])])


def test_explored_fields_stay_in_bounds_and_the_rest_is_the_parents(population):
    states, hps = population
    hps = hps.replace(learning_rate=jnp.full((P,), 9e-3), ent_coef=jnp.full((P,), 0.045))
    fitness = jnp.arange(P, dtype=jnp.float32)
    for probability in (0.0, 0.5, 1.0):
        config = PBTConfig(EXPLORE, truncation=0.5, resample_probability=probability)
        lrs, ents = [], []
        for seed in range(6):
            _, out, parents, _ = step(jax.random.key(seed), states, hps, fitness, config)
            assert np.all(np.asarray(out.gamma) == np.asarray(hps.gamma)[np.asarray(parents)])
            lrs.append(np.asarray(out.learning_rate)[:4])
            ents.append(np.asarray(out.ent_coef)[:4])
            np.testing.assert_array_equal(out.learning_rate[4:], hps.learning_rate[4:])
        lrs, ents = np.concatenate(lrs), np.concatenate(ents)
        assert np.all((lrs >= np.float32(1e-4)) & (lrs <= np.float32(1e-2)))
        assert np.all((ents >= 0.0) & (ents <= np.float32(0.05)))
        if probability == 0.0:  # x0.8, or x1.2 clipped to the upper bound
            np.testing.assert_allclose(np.unique(lrs), [9e-3 * 0.8, 1e-2], rtol=1e-6)
            np.testing.assert_allclose(np.unique(ents), [0.045 * 0.8, 0.05], rtol=1e-6)
        if probability == 1.0:  # fresh draws: spread over the range
            assert len(np.unique(lrs)) == lrs.size and lrs.min() < 1e-3


def test_same_key_same_result_other_key_other_result(population):
    states, hps = population
    fitness = jnp.arange(P, dtype=jnp.float32)
    config = PBTConfig(EXPLORE, truncation=0.5)
    a = step(jax.random.key(7), states, hps, fitness, config)
    b = step(jax.random.key(7), states, hps, fitness, config)
    assert same_bits(a, b)
    eager = pbt_step(jax.random.key(7), states, hps, fitness, config)
    assert same_bits(a, eager)
    c = step(jax.random.key(8), states, hps, fitness, config)
    assert not same_bits(a, c)


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: PBTConfig((), truncation=0.0), "truncation"),
        (lambda: PBTConfig((), truncation=0.6), "truncation"),
        (lambda: PBTConfig((), perturb_factors=()), "perturb_factors"),
        (lambda: PBTConfig((), resample_probability=1.5), "resample_probability"),
        (lambda: PBTConfig((Bounds("gamma", 0.9, 0.99), Bounds("gamma", 0.8, 0.9))), "once"),
        (lambda: Bounds("num_envs", 1, 8), "static PPOConfig field"),
        (lambda: Bounds("learning_rat", 1e-4, 1e-3), "not an HParams field"),
        (lambda: Bounds("gamma", 0.9, 1.5), "gamma: expected a number in"),
        (lambda: Bounds("clip_eps", 0.3, 0.1), "low < high"),
        (lambda: Bounds("ent_coef", 0.0, 0.1, log=True), "low > 0"),
    ],
)
def test_bad_configs_are_refused(make, fragment):
    with pytest.raises(ValueError, match=fragment):
        make()


def test_mismatched_population_axes_are_refused(population):
    states, hps = population
    with pytest.raises(ValueError, match="leading member axis of 4"):
        pbt_step(jax.random.key(0), states, hps, jnp.zeros(4), PBTConfig(()))


SPLIT_SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    import purejaxppo as ppo
    from purejaxppo.sharding import population_mesh, population_sharding
    from purejaxppo.sweep.pbt import Bounds, PBTConfig, pbt_step
    cfg = ppo.PPOConfig(num_envs=4, num_steps=16, total_timesteps=640, num_minibatches=1,
                        update_epochs=1, hidden_sizes=(16,))
    trainer = ppo.make_trainer(cfg)
    states = jax.vmap(trainer.init, (0, None))(jax.random.split(jax.random.key(0), 8),
                                               ppo.HParams())
    hps = ppo.stack_hparams([ppo.HParams(learning_rate=1e-3 * (i + 1)) for i in range(8)])
    fitness = jnp.array([3.0, 1, 4, 1, 5, 9, 2, 6])
    config = PBTConfig((Bounds("learning_rate", 1e-4, 1e-2, log=True),), truncation=0.5)
    step = jax.jit(pbt_step, static_argnames="config")
    whole = step(jax.random.key(3), states, hps, fitness, config)
    sharding = population_sharding(population_mesh())  # the runners' layout: members split
    assert len(sharding.mesh.devices) == 2
    split = jax.device_put((states, hps, fitness), sharding)
    assert len(split[2].sharding.device_set) == 2
    shard = step(jax.random.key(3), *split, config)
    flat = lambda t: [np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(
        x.dtype, jax.dtypes.prng_key) else x) for x in jax.tree.leaves(t)]
    assert all(np.array_equal(a, b) for a, b in zip(flat(whole), flat(shard), strict=True))
    print("OK")
    """
)


def test_result_does_not_depend_on_the_device_split():
    env = {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    out = subprocess.run(
        [sys.executable, "-c", SPLIT_SCRIPT],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-2000:]


def test_interval_fitness_ignores_updates_without_episodes():
    returns = jnp.array([[1.0, jnp.nan, 3.0], [jnp.nan, jnp.nan, jnp.nan], [4.0, 4.0, 4.0]])
    np.testing.assert_array_equal(interval_fitness(returns), [2.0, np.nan, 4.0])


def test_member_schedule_follows_the_lineage():
    history = [ppo.stack_hparams([ppo.HParams(learning_rate=(j + 1) * 1e-3 + i * 1e-4)
                                  for i in range(3)]) for j in range(3)]  # fmt: skip
    parents = [np.array([0, 0, 2]), np.array([1, 1, 2])]  # member 0 <- 1 <- 0
    sched = member_schedule(history, parents, member=0, interval=5)
    assert sched.boundaries.tolist() == [0, 5, 10]
    np.testing.assert_allclose(sched.values.learning_rate, [1e-3, 2.1e-3, 3e-3], rtol=1e-6)
    with pytest.raises(ValueError, match="parents arrays"):
        member_schedule(history, parents[:1], member=0, interval=5)


def test_the_docs_pbt_loop_runs_on_a_tiny_cartpole():
    text = (Path(__file__).resolve().parent.parent / "docs" / "sweeps.md").read_text()
    example = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "pbt_step" in b)
    tiny = {
        "num_steps=128, total_timesteps=499_712": "num_steps=16, total_timesteps=768, "
        "num_minibatches=1, update_epochs=1, hidden_sizes=(16,)",
        "members, interval, intervals = 8, 61, 16": "members, interval, intervals = 4, 4, 3",
    }
    for old, new in tiny.items():
        assert old in example
        example = example.replace(old, new)
    ns: dict = {}
    exec(compile(example, "docs/sweeps.md", "exec"), ns)
    assert ns["trainer"].config.num_updates == 12
    assert len(ns["hparams_history"]) == 3 and len(ns["parents_history"]) == 2
    for parents in ns["parents_history"]:  # one of 4 members replaced by one of the top
        assert (np.asarray(parents) != np.arange(4)).sum() == 1
    assert all(leaf.shape[0] == 4 for leaf in jax.tree.leaves(ns["states"]))
    lrs = np.asarray(ns["hparams"].learning_rate)
    assert np.all((lrs >= np.float32(1e-5)) & (lrs <= np.float32(1e-2)))
    assert ns["schedule"].boundaries.tolist() == [0, 4, 8]
    assert ns["replay"].metrics["learning_rate"].shape == (12,)
