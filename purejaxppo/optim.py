"""The optimizer: global-norm clipping then Adam (eps 1e-5), hyperparameters in the state.

Both transformations follow optax's definitions but apply every scalar factor
(clipping factor, bias corrections, learning rate) as a multiplication by a
precomputed scalar. optax's `clip_by_global_norm` and `scale_by_adam` divide
arrays by scalars, which XLA:CPU rewrites differently for a batched (vmapped)
and an unbatched program; the multiplications compile the same way, so member
i of a vmapped sweep keeps the single run's bits.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


def clip_by_global_norm(max_norm: Any) -> optax.GradientTransformation:
    """Scale gradients so their global norm is at most `max_norm`."""

    def init_fn(params: Any) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update_fn(updates: Any, state: optax.EmptyState, params: Any = None):
        del params
        norm = optax.tree.norm(updates)
        factor = jnp.where(norm < max_norm, 1.0, max_norm / norm)
        return jax.tree.map(lambda g: g * factor.astype(g.dtype), updates), state

    return optax.GradientTransformation(init_fn, update_fn)


class AdamState(NamedTuple):
    """Adam moments (shaped like the params) and the step count."""

    count: jax.Array
    mu: Any
    nu: Any


def adam(
    learning_rate: Any, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-5
) -> optax.GradientTransformation:
    """Adam: `-lr * m_hat / (sqrt(v_hat) + eps)`, the same formula as `optax.adam`."""

    def init_fn(params: Any) -> AdamState:
        zeros = jax.tree.map(jnp.zeros_like, params)
        return AdamState(count=jnp.zeros((), jnp.int32), mu=zeros, nu=zeros)

    def update_fn(updates: Any, state: AdamState, params: Any = None):
        del params
        count = state.count + 1
        mu = jax.tree.map(lambda m, g: b1 * m + (1.0 - b1) * g, state.mu, updates)
        nu = jax.tree.map(lambda v, g: b2 * v + (1.0 - b2) * jnp.square(g), state.nu, updates)
        t = count.astype(jnp.float32)
        mu_scale = 1.0 / (1.0 - b1**t)
        nu_scale = 1.0 / (1.0 - b2**t)
        step = -jnp.asarray(learning_rate, jnp.float32)

        def direction(m: jax.Array, v: jax.Array) -> jax.Array:
            return step * ((m * mu_scale) / (jnp.sqrt(v * nu_scale) + eps))

        return jax.tree.map(direction, mu, nu), AdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init_fn, update_fn)


def _optimizer(learning_rate: Any, max_grad_norm: Any) -> optax.GradientTransformation:
    return optax.chain(clip_by_global_norm(max_grad_norm), adam(learning_rate, eps=1e-5))


def make_optimizer(learning_rate: Any, max_grad_norm: Any) -> optax.GradientTransformation:
    """Clip then Adam, with `learning_rate` and `max_grad_norm` held in `opt_state.hyperparams`."""
    return optax.inject_hyperparams(_optimizer)(
        learning_rate=learning_rate, max_grad_norm=max_grad_norm
    )
