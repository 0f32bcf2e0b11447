"""Actor-critic networks and action distributions (pure Flax/JAX).

Separate actor and critic MLPs (64x64 tanh by default), orthogonal
initialisation with gains sqrt(2) (hidden), 0.01 (policy head) and 1.0 (value
head), zero biases. Discrete actions use a categorical distribution; continuous
`Box` actions a diagonal Gaussian with a state-independent log-std (init 0).

Options (`PPOConfig`): `torso: cnn` puts a small convolution (`CNN`) in front of each
MLP, for `[H, W, C]` image observations; `gru_size > 0` makes both networks recurrent
(`ActorCritic.step(hidden, obs, reset)`: the MLP, then a GRU cell, then the head);
`encoder` puts a Flax module of one's own in front of each MLP (`ActorCritic.encoder`).

Structured (pytree) observations (`purejaxppo.envs.observations`) are flattened and
concatenated by default; with an `action_mask` leaf the categorical policy's logits of
invalid actions are set to `MASKED_LOGIT` wherever a distribution is built.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from purejaxppo.envs import SpaceInfo
from purejaxppo.envs.observations import action_mask, batch_shape, flat_features, mask_logits

_LOG_2PI_E = math.log(2.0 * math.pi * math.e)


def _gram_schmidt_column(q: jax.Array, j: jax.Array, g: jax.Array) -> jax.Array:
    """Orthonormalise column `j` of `g` against the first `j` columns of `q` (twice, CGS2)."""
    # `v @ q` rather than `q.T @ v`: the same numbers, but XLA:CPU keeps the former
    # bit-identical under vmap (the transposed matvec takes another kernel when batched).
    v = g[:, j]
    v = v - q @ (v @ q)
    v = v - q @ (v @ q)
    return q.at[:, j].set(v / jnp.linalg.norm(v))


def orthogonal(scale: float = 1.0) -> Callable[..., jax.Array]:
    """Orthogonal initializer for a `[fan_in, fan_out]` kernel, without LAPACK.

    Draws a Gaussian matrix and orthonormalises its columns by re-orthogonalised
    Gram-Schmidt: the same Haar-distributed result as QR with a sign-corrected
    R diagonal. It avoids the LAPACK QR kernel that `flax`'s `orthogonal` calls,
    whose batched CPU path can deadlock the thread pool under nested `vmap`
    (seen with jax 0.10.2 on 2 cores). Only matmuls and norms are used, so it is
    safe under any vmap nesting.
    """

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        if len(shape) < 2:
            raise ValueError(
                f"orthogonal: expected a kernel shape of >= 2 axes, got {tuple(shape)}"
            )
        # A convolution kernel [kh, kw, in, out] is orthogonal as a [kh * kw * in, out] matrix.
        rows, cols = math.prod(int(d) for d in shape[:-1]), int(shape[-1])
        tall, short = max(rows, cols), min(rows, cols)
        g = jax.random.normal(key, (tall, short), jnp.float32)
        q = jnp.zeros((tall, short), jnp.float32)
        # Re-fill column j each step; the zero columns of `q` beyond j contribute nothing.
        q = jax.lax.fori_loop(0, short, lambda j, q: _gram_schmidt_column(q, j, g), q)
        if rows < cols:
            q = q.T
        return (scale * q).reshape(tuple(shape)).astype(dtype)

    return init


@struct.dataclass
class Categorical:
    """Categorical distribution over the last axis of `logits` `[..., A]`."""

    logits: jax.Array

    def sample(self, seed: jax.Array) -> jax.Array:
        """Actions `[...]`, int32."""
        return jax.random.categorical(seed, self.logits).astype(jnp.int32)

    def log_prob(self, action: jax.Array) -> jax.Array:
        """Log-probability of integer actions `[...]`."""
        logp = jax.nn.log_softmax(self.logits)
        idx = jnp.expand_dims(action.astype(jnp.int32), -1)
        return jnp.take_along_axis(logp, idx, axis=-1)[..., 0]

    def entropy(self) -> jax.Array:
        """Entropy `[...]`."""
        logp = jax.nn.log_softmax(self.logits)
        return -jnp.sum(jnp.exp(logp) * logp, axis=-1)

    def mode(self) -> jax.Array:
        """Most likely action `[...]`."""
        return jnp.argmax(self.logits, axis=-1).astype(jnp.int32)

    def kl(self, other: Categorical) -> jax.Array:
        """Exact KL(self || other) `[...]`: `sum_a p(a) (log p(a) - log q(a))`."""
        logp = jax.nn.log_softmax(self.logits)
        logq = jax.nn.log_softmax(other.logits)
        return jnp.sum(jnp.exp(logp) * (logp - logq), axis=-1)

    def batched(self) -> Categorical:
        """The same distribution with every parameter shaped like the batch (for storing)."""
        return self


@struct.dataclass
class DiagGaussian:
    """Diagonal Gaussian over the last axis: `mean` `[..., D]`, `log_std` `[D]` or `[..., D]`."""

    mean: jax.Array
    log_std: jax.Array

    def sample(self, seed: jax.Array) -> jax.Array:
        """Actions `[..., D]` (unclipped)."""
        noise = jax.random.normal(seed, self.mean.shape, self.mean.dtype)
        return self.mean + jnp.exp(self.log_std) * noise

    def log_prob(self, action: jax.Array) -> jax.Array:
        """Log-density summed over the action dimensions, `[...]`."""
        z = (action - self.mean) * jnp.exp(-self.log_std)
        per_dim = -0.5 * jnp.square(z) - self.log_std - 0.5 * math.log(2.0 * math.pi)
        return jnp.sum(per_dim, axis=-1)

    def entropy(self) -> jax.Array:
        """Entropy `[...]`."""
        per_dim = jnp.broadcast_to(self.log_std + 0.5 * _LOG_2PI_E, self.mean.shape)
        return jnp.sum(per_dim, axis=-1)

    def mode(self) -> jax.Array:
        """The mean `[..., D]`."""
        return self.mean

    def kl(self, other: DiagGaussian) -> jax.Array:
        """Exact KL(self || other) `[...]`, summed over the action dimensions:
        `log(s2/s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2` per dimension."""
        var_ratio = jnp.exp(2.0 * (self.log_std - other.log_std))
        mean_term = jnp.square((self.mean - other.mean) * jnp.exp(-other.log_std))
        per_dim = 0.5 * (var_ratio + mean_term - 1.0) - (self.log_std - other.log_std)
        return jnp.sum(per_dim, axis=-1)

    def batched(self) -> DiagGaussian:
        """`log_std` broadcast to `mean`'s shape `[..., D]`, so a batch can be stored and
        indexed like the actions."""
        return DiagGaussian(self.mean, jnp.broadcast_to(self.log_std, self.mean.shape))


Distribution = Categorical | DiagGaussian


def tanh(x: jax.Array) -> jax.Array:
    """tanh as `2 sigmoid(2x) - 1` (the same function; within 1.8e-7 of float64 tanh over
    [-20, 20], where XLA's own float32 tanh is within 2.5e-7).

    On XLA:CPU `jnp.tanh` costs ~1.5-2 ns per element and the logistic ~0.75 ns, and the
    hidden layers' tanh is ~10% of a PPO update: 1.12x median steps/s on the reference recipe
    (8 seeds on one device, interleaved A/B; docs/benchmark.md). Its gradient,
    `4 s (1 - s)`, equals `1 - tanh^2`.
    """
    return 2.0 * jax.nn.sigmoid(2.0 * x) - 1.0


_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": tanh,
    "relu": nn.relu,
    "gelu": nn.gelu,
    "silu": nn.silu,
    "elu": nn.elu,
}


class MLP(nn.Module):
    """Dense layers with orthogonal init; hidden gain sqrt(2), output gain `out_scale`."""

    hidden_sizes: tuple[int, ...]
    activation: str
    out_dim: int
    out_scale: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = _ACTIVATIONS[self.activation]
        for width in self.hidden_sizes:
            x = nn.Dense(width, kernel_init=orthogonal(math.sqrt(2.0)))(x)
            x = act(x)
        return nn.Dense(self.out_dim, kernel_init=orthogonal(self.out_scale))(x)


def patches3x3(x: jax.Array) -> jax.Array:
    """`[..., H, W, C]` -> `[..., H - 2, W - 2, 9 C]`: every 3x3 window (stride 1, no
    padding), flattened in (row, column, channel) order."""
    h, w = x.shape[-3] - 2, x.shape[-2] - 2
    views = [x[..., i : i + h, j : j + w, :] for i in range(3) for j in range(3)]
    return jnp.concatenate(views, axis=-1)


class CNN(nn.Module):
    """`[..., H, W, C]` -> `[..., F]`: a 3x3 convolution with `channels` filters (stride 1,
    no padding) and ReLU, flattened — the MinAtar papers' torso, before the MLP.

    The convolution is computed as a matmul over the 3x3 patches (`patches3x3`, a
    `[9 C, channels]` kernel: `nn.Conv`'s kernel reshaped), not with `nn.Conv`: on
    XLA:CPU the vmapped convolution and its gradient ran about 13x slower than the whole
    MLP step on MinAtar; the patch matmul does the same arithmetic as plain matmuls.
    """

    channels: int = 16

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.shape[-3] < 3 or x.shape[-2] < 3:
            raise ValueError(f"torso: cnn needs images of at least 3x3, got {x.shape[-3:]}")
        x = nn.Dense(self.channels, kernel_init=orthogonal(math.sqrt(2.0)))(patches3x3(x))
        x = nn.relu(x)
        return x.reshape((*x.shape[:-3], -1))


class RecurrentHead(nn.Module):
    """`(hidden [..., G], x [..., F]) -> (hidden [..., G], out [..., D])`: the hidden MLP
    layers, a GRU cell of width `G`, then a dense head with gain `out_scale`."""

    hidden_sizes: tuple[int, ...]
    activation: str
    gru_size: int
    out_dim: int
    out_scale: float

    @nn.compact
    def __call__(self, hidden: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        act = _ACTIVATIONS[self.activation]
        for width in self.hidden_sizes:
            x = act(nn.Dense(width, kernel_init=orthogonal(math.sqrt(2.0)))(x))
        cell = nn.GRUCell(
            self.gru_size, kernel_init=orthogonal(1.0), recurrent_kernel_init=orthogonal(1.0)
        )
        hidden, y = cell(hidden, x)
        return hidden, nn.Dense(self.out_dim, kernel_init=orthogonal(self.out_scale))(y)


class ActorCritic(nn.Module):
    """Separate actor and critic networks over (flattened) observations.

    Feed-forward (`gru_size == 0`): `apply(params, obs)` with obs `[..., *obs_shape]`
    (raw env observations, or normalised ones when the run normalised observations)
    returns `(dist, value)`: a distribution with batch shape `[...]` and values `[...]`.

    Recurrent (`gru_size > 0`): `apply(params, hidden, obs, reset, method=ActorCritic.step)`
    with hidden `[N, 2 * gru_size]` (actor's then critic's GRU state; zeros to start),
    obs `[N, *obs_shape]` and reset `[N]` bool (True where `obs` starts an episode: the
    hidden state is zeroed first) returns `(hidden, dist, value)`.

    A structured observation is a pytree with leaves `[..., *leaf_shape]`; with an
    `action_mask` leaf (`[..., A]` bool) the policy's invalid actions get `MASKED_LOGIT`.

    `encoder`: a zero-argument callable (a Flax module class, or a factory) returning a
    module `enc(obs) -> [B, F]` float32, called with the (normalised) observation, leaves
    `[B, *leaf_shape]` (one batch axis: the network folds the batch axes `[...]` into it and
    back; a structured observation is passed whole, mask included). One is built for the
    actor and one for the critic, replacing the default flattening (and `torso`).
    """

    space: SpaceInfo
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    with_critic: bool = True  # False: no value network (critic-free `group` advantages)
    torso: str = "mlp"  # or "cnn": a convolution before each MLP, for [H, W, C] observations
    gru_size: int = 0
    encoder: Any = None  # a zero-argument factory of a Flax module `[B, ...] -> [B, F]`

    def setup(self) -> None:
        if self.encoder is not None:
            self.actor_encoder = self.encoder()
            if self.with_critic:
                self.critic_encoder = self.encoder()
        elif self.torso == "cnn":
            self.actor_cnn = CNN()
            if self.with_critic:
                self.critic_cnn = CNN()
        if self.gru_size:
            args = (self.hidden_sizes, self.activation, self.gru_size)
            self.actor_rnn = RecurrentHead(*args, self.space.action_dim, 0.01)
            self.critic_rnn = RecurrentHead(*args, 1, 1.0)
        else:
            self.actor = MLP(self.hidden_sizes, self.activation, self.space.action_dim, 0.01)
            if self.with_critic:
                self.critic = MLP(self.hidden_sizes, self.activation, 1, 1.0)
        if self.space.continuous:
            self.log_std = self.param("log_std", nn.initializers.zeros, (self.space.action_dim,))

    def batch_shape(self, obs: Any) -> tuple[int, ...]:
        """The batch axes `[...]` of observations `[..., *obs_shape]` (or a pytree of them)."""
        if self.space.obs_spec is not None:
            return batch_shape(self.space.obs_spec, obs)
        return obs.shape[: obs.ndim - len(self.space.obs_shape)]

    def features(self, obs: Any) -> jax.Array:
        """`[..., *obs_shape]` -> float32 `[..., F]`: one-hot for Discrete observations;
        with the CNN torso, float32 `[..., H, W, C]` (the convolutions flatten); a
        structured observation's leaves flattened and concatenated."""
        if self.space.obs_spec is not None:
            return flat_features(self.space.obs_spec, obs)
        if self.space.obs_categories:
            return jax.nn.one_hot(obs, self.space.obs_categories, dtype=jnp.float32)
        if self.torso == "cnn":
            return obs.astype(jnp.float32)
        batch_shape = obs.shape[: obs.ndim - len(self.space.obs_shape)]
        return obs.astype(jnp.float32).reshape((*batch_shape, -1))

    def _encode(self, encoder: nn.Module, obs: Any) -> jax.Array:
        """A user encoder over observations with one batch axis: `[...]` -> `[..., F]`."""
        batch = self.batch_shape(obs)
        size = math.prod(batch)
        flat = jax.tree.map(lambda x: x.reshape((size, *x.shape[len(batch) :])), obs)
        out = encoder(flat)
        return out.astype(jnp.float32).reshape((*batch, -1))

    def _actor_in(self, obs: Any) -> jax.Array:
        if self.encoder is not None:
            return self._encode(self.actor_encoder, obs)
        x = self.features(obs)
        return self.actor_cnn(x) if self.torso == "cnn" else x

    def _critic_in(self, obs: Any) -> jax.Array:
        if self.encoder is not None:
            return self._encode(self.critic_encoder, obs)
        x = self.features(obs)
        return self.critic_cnn(x) if self.torso == "cnn" else x

    def _distribution(self, out: jax.Array, obs: Any) -> Distribution:
        if self.space.continuous:
            return DiagGaussian(mean=out, log_std=self.log_std)
        if self.space.obs_spec is not None and self.space.obs_spec.mask_index >= 0:
            out = mask_logits(out, action_mask(self.space.obs_spec, obs))
        return Categorical(logits=out)

    def policy(self, obs: Any) -> Distribution:
        """Action distribution with batch shape `[...]` (feed-forward only)."""
        return self._distribution(self.actor(self._actor_in(obs)), obs)

    def value(self, obs: Any) -> jax.Array:
        """State values `[...]` (zeros without a critic; feed-forward only)."""
        if not self.with_critic:
            return jnp.zeros(self.batch_shape(obs))
        return self.critic(self._critic_in(obs))[..., 0]

    def step(
        self, hidden: jax.Array, obs: jax.Array, reset: jax.Array
    ) -> tuple[jax.Array, Distribution, jax.Array]:
        """One recurrent step: `(hidden [N, 2G], obs [N, ...], reset [N]) -> (hidden, dist,
        value [N])`; rows with `reset` start from a zero hidden state."""
        hidden = jnp.where(reset[..., None], 0.0, hidden)
        actor_h, critic_h = jnp.split(hidden, 2, axis=-1)
        actor_h, out = self.actor_rnn(actor_h, self._actor_in(obs))
        critic_h, value = self.critic_rnn(critic_h, self._critic_in(obs))
        dist = self._distribution(out, obs)
        return jnp.concatenate([actor_h, critic_h], -1), dist, value[..., 0]

    def __call__(self, obs: Any) -> tuple[Distribution, jax.Array]:
        if self.gru_size:  # (used by `init`): one step from a zero hidden state
            batch = self.batch_shape(obs)
            hidden = jnp.zeros((*batch, 2 * self.gru_size), jnp.float32)
            _, dist, value = self.step(hidden, obs, jnp.ones(batch, jnp.bool_))
            return dist, value
        return self.policy(obs), self.value(obs)


def initial_hidden(config: Any, num_envs: int) -> jax.Array | None:
    """Zero GRU state `[num_envs, 2 * gru_size]`, or None for a feed-forward config."""
    if not config.gru_size:
        return None
    return jnp.zeros((num_envs, 2 * config.gru_size), jnp.float32)


def build_network(config: Any, space: SpaceInfo, encoder: Any = None) -> ActorCritic:
    """The `ActorCritic` a config asks for, over an env's spaces; `encoder` (a factory of a
    Flax module, `ActorCritic.encoder`) as resolved by `resolve_encoder`."""
    return ActorCritic(
        space=space,
        hidden_sizes=config.hidden_sizes,
        activation=config.activation,
        with_critic=config.advantage == "gae",
        torso=config.torso,
        gru_size=config.gru_size,
        encoder=encoder,
    )


def make_network(
    config: Any, env: Any = None, env_params: Any = None, encoder: Any = None
) -> ActorCritic:
    """The Flax actor-critic for `config` and an environment (made by name if not given).

    `dist, value = net.apply(params, obs)`; obs `[..., *obs_shape]`. `encoder`: as for
    `make_train`.
    """
    from purejaxppo.encoders import resolve_encoder
    from purejaxppo.envs import resolve_env, space_info

    env, env_params, label = resolve_env(config, env, env_params)
    return build_network(
        config, space_info(env, env_params, label), resolve_encoder(config, encoder)
    )
