"""purejaxppo.optim is optax's clip + Adam on flattened parameters; its hyperparameters live
in the state."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from purejaxppo.optim import make_optimizer


def run(tx, params, grads_seq):
    state = tx.init(params)
    for grads in grads_seq:
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params


def test_matches_optax_clip_then_adam_per_leaf():
    """Flattening changes the layout, not the numbers: the same as optax on the tree."""
    key = jax.random.key(0)
    params = {"w": jax.random.normal(key, (8, 4)), "b": jnp.zeros(4)}
    grads_seq = [
        jax.tree.map(lambda p, i=i: jnp.sin(p * (i + 1)) * (1 + 2 * i), params) for i in range(5)
    ]
    ours = run(make_optimizer(1e-2, 0.5), params, grads_seq)
    ref = run(
        optax.chain(optax.clip_by_global_norm(0.5), optax.adam(1e-2, eps=1e-5)), params, grads_seq
    )
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), ours, ref)


def test_clipping_uses_the_global_norm_of_all_leaves():
    params = {"a": jnp.zeros(2), "b": jnp.zeros(1)}
    grads = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([4.0])}  # global norm 5
    state = make_optimizer(1.0, 1.0).init(params)
    # Adam's first step moves every coordinate by lr * sign(g) whatever the scale, so
    # look at the first moment instead: (1 - b1) * g / 5
    _, state = make_optimizer(1.0, 1.0).update(grads, state, params)
    mu = state.inner_state[1][0].mu  # (clip, (adam, scale)): adam's first moment, flat
    np.testing.assert_allclose(np.sort(np.asarray(mu)), np.sort([0.1 * 0.6, 0.0, 0.1 * 0.8]))


def test_hyperparameters_live_in_the_state():
    params = {"w": jnp.ones(3)}
    state = make_optimizer(3e-4, 0.5).init(params)
    np.testing.assert_allclose(state.hyperparams["learning_rate"], 3e-4)
    np.testing.assert_allclose(state.hyperparams["max_grad_norm"], 0.5)
    # the state, not the transformation's construction values, drives the update
    state = state._replace(hyperparams={**state.hyperparams, "learning_rate": jnp.float32(0.0)})
    updates, _ = make_optimizer(1.0, 0.5).update({"w": jnp.ones(3)}, state, params)
    np.testing.assert_array_equal(updates["w"], 0.0)
