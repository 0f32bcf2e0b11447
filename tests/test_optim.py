"""purejaxppo.optim follows optax's formulas; its hyperparameters live in the state."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from purejaxppo.optim import adam, clip_by_global_norm, make_optimizer


def run(tx, params, grads_seq):
    state = tx.init(params)
    for grads in grads_seq:
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params


def test_matches_optax_clip_then_adam():
    key = jax.random.key(0)
    params = {"w": jax.random.normal(key, (8, 4)), "b": jnp.zeros(4)}
    grads_seq = [
        jax.tree.map(lambda p, i=i: jnp.sin(p * (i + 1)) * (1 + 2 * i), params) for i in range(5)
    ]
    ours = run(optax.chain(clip_by_global_norm(0.5), adam(1e-2, eps=1e-5)), params, grads_seq)
    ref = run(
        optax.chain(optax.clip_by_global_norm(0.5), optax.adam(1e-2, eps=1e-5)), params, grads_seq
    )
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), ours, ref)


def test_clip_leaves_small_gradients_alone():
    grads = {"g": jnp.array([0.3, 0.4])}  # norm 0.5
    out, _ = clip_by_global_norm(1.0).update(grads, optax.EmptyState())
    np.testing.assert_array_equal(out["g"], grads["g"])
    out, _ = clip_by_global_norm(0.25).update(grads, optax.EmptyState())
    np.testing.assert_allclose(out["g"], [0.15, 0.2], rtol=1e-6)


def test_hyperparameters_live_in_the_state():
    params = {"w": jnp.ones(3)}
    state = make_optimizer(3e-4, 0.5).init(params)
    np.testing.assert_allclose(state.hyperparams["learning_rate"], 3e-4)
    np.testing.assert_allclose(state.hyperparams["max_grad_norm"], 0.5)
    # the state, not the transformation's construction values, drives the update
    state = state._replace(hyperparams={**state.hyperparams, "learning_rate": jnp.float32(0.0)})
    updates, _ = make_optimizer(1.0, 0.5).update({"w": jnp.ones(3)}, state, params)
    np.testing.assert_array_equal(updates["w"], 0.0)
