"""Network FLOPs per environment step: an analytic count, cross-checked against XLA.

Counting rule (docs/benchmark.md):

- a dense layer `[in] -> [out]` costs `2 * in * out` FLOPs per sample (one
  multiply and one add per weight); biases, activations, softmax, the
  optimizer and the environment are not counted;
- a backward pass costs twice the forward pass of each layer (gradients with
  respect to the weights and to the layer inputs), except the first layer,
  whose input is data and needs no gradient (once its forward);
- per environment step the trainer runs one actor forward (acting in the
  rollout), two critic forwards (`V(obs)` and `V(next_obs)` for GAE, see
  `Trainer.make_batch`) and, in each of the `update_epochs` passes over the
  batch, one forward + backward of the actor and of the critic.

So `flops/step = A + 2 C + E (3 A + 3 C - A1 - C1)` with `A`, `C` the actor
and critic forward FLOPs of one observation, `A1`, `C1` those of their first
layers and `E = update_epochs`.

XLA's `compiled.cost_analysis()["flops"]` counts every operation but visits a
loop body once, whatever its trip count; the cross-check therefore compiles
the loop-free pieces (one acting forward, one value forward, one minibatch
gradient) and scales them by hand to one environment step.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from purejaxppo.config import HParams, PPOConfig
from purejaxppo.envs import SpaceInfo


def mlp_flops(in_dim: int, hidden_sizes: Sequence[int], out_dim: int) -> int:
    """Forward FLOPs of one sample through dense layers `in -> hidden... -> out`."""
    widths = [in_dim, *hidden_sizes, out_dim]
    return sum(2 * a * b for a, b in itertools.pairwise(widths))


def first_layer_flops(in_dim: int, hidden_sizes: Sequence[int], out_dim: int) -> int:
    """Forward FLOPs of one sample through the first dense layer only."""
    return 2 * in_dim * (hidden_sizes[0] if hidden_sizes else out_dim)


def feature_dim(space: SpaceInfo) -> int:
    """Input width of the networks: one-hot size of a Discrete observation, the concatenated
    leaves of a structured one, else the flat size."""
    if space.obs_spec is not None:
        return space.obs_spec.num_features
    if space.obs_categories:
        return space.obs_categories
    return math.prod(space.obs_shape) if space.obs_shape else 1


@dataclasses.dataclass(frozen=True)
class FlopCount:
    """Analytic network FLOPs (see the module docstring for the rule).

    Attributes:
      actor_forward: one observation through the actor.
      critic_forward: one observation through the critic.
      rollout: per env step, acting (one actor forward).
      values: per env step, `V(obs)` and `V(next_obs)` (two critic forwards).
      update: per env step, `update_epochs` x forward + backward of actor and critic
        (the first layers' backward without the input gradient).
      per_step: `rollout + values + update`.
    """

    actor_forward: int
    critic_forward: int
    rollout: int
    values: int
    update: int
    per_step: int


def network_flops(config: PPOConfig, space: SpaceInfo, out_dim: int) -> tuple[int, int]:
    """`(forward, first layer)` FLOPs of one sample through one of the networks: the CNN
    torso's 3x3 patch matmul (`torso: cnn`), the dense layers, and with `gru_size` a GRU
    cell (3 gates, input and recurrent kernels) before the head instead of a dense layer."""
    in_dim, conv = feature_dim(space), 0
    if config.torso == "cnn":
        h, w, c = space.obs_shape
        positions = (h - 2) * (w - 2)
        conv = 2 * positions * 9 * c * 16
        in_dim = positions * 16
    if not config.gru_size:
        dense = mlp_flops(in_dim, config.hidden_sizes, out_dim)
        first = conv or first_layer_flops(in_dim, config.hidden_sizes, out_dim)
        return conv + dense, first
    g = config.gru_size
    gru_in = config.hidden_sizes[-1] if config.hidden_sizes else in_dim
    dense = mlp_flops(in_dim, config.hidden_sizes[:-1], gru_in) if config.hidden_sizes else 0
    gru = 2 * 3 * (gru_in * g + g * g) + 2 * g * out_dim
    first = conv or (first_layer_flops(in_dim, config.hidden_sizes, g) if dense else 6 * in_dim * g)
    return conv + dense + gru, first


def count_flops(config: PPOConfig, space: SpaceInfo) -> FlopCount:
    """Network FLOPs per environment step of `config` on an env with `space`.

    A recurrent policy steps the actor and the critic together everywhere (acting, and
    twice per step when the values are replayed); the rule is otherwise the same."""
    actor, first = network_flops(config, space, space.action_dim)
    critic = 0
    if config.advantage == "gae":  # `group` mode builds no critic
        critic, critic_first = network_flops(config, space, 1)
        first += critic_first
    rollout = actor + critic if config.gru_size else actor
    values = 2 * (actor + critic) if config.gru_size else 2 * critic
    update = config.update_epochs * (3 * (actor + critic) - first)
    return FlopCount(
        actor_forward=actor,
        critic_forward=critic,
        rollout=rollout,
        values=values,
        update=update,
        per_step=rollout + values + update,
    )


@dataclasses.dataclass(frozen=True)
class XlaFlops:
    """XLA's own count (all operations, not only matmuls), scaled to one env step.

    Attributes:
      rollout: compiled acting forward `[N]` / N.
      values: 2 x compiled value forward `[T*N]` / (T*N).
      update: `update_epochs` x compiled minibatch gradient `[b]` / b.
      per_step: the sum.
      ratio: `per_step` / the analytic count (above 1 by the elementwise work).
    """

    rollout: float
    values: float
    update: float
    per_step: float
    ratio: float


def _flops_of(fn: Any, *args: Any) -> float:
    """`cost_analysis()["flops"]` of `jit(fn)` compiled for `args` (shapes suffice)."""
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(cost, list | tuple):  # older jax: one dict per device program
        cost = cost[0]
    return float(cost.get("flops", 0.0))  # absent when nothing is computed (no critic)


def _with_rows(tree: Any, rows: int) -> Any:
    """Shape structs of `tree` with the leading axis replaced by `rows`."""
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct((rows, *s.shape[1:]), s.dtype), tree)


def xla_flops(trainer: Any, hparams: HParams, analytic: FlopCount) -> XlaFlops | None:
    """Cross-check `analytic` with XLA's cost analysis of the trainer's own functions.

    Nothing runs: shapes come from `jax.eval_shape`, and three small loop-free
    programs are compiled (acting forward, value forward, minibatch gradient).
    None for a recurrent policy (its update is a scan over time: no loop-free program).
    """
    from purejaxppo.networks import ActorCritic

    cfg = trainer.config
    if cfg.gru_size:
        return None
    hp = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), hparams)
    key = jax.random.key(0)
    state = jax.eval_shape(trainer.init, key, hp)
    _, trajectory, _ = jax.eval_shape(trainer.rollout, state, hp, key)
    batch = jax.eval_shape(trainer.make_batch, state.params, trajectory, hp)
    net = trainer.network

    def act(params: Any, obs: jax.Array) -> Any:
        return net.apply(params, obs, method=ActorCritic.policy)

    def value(params: Any, obs: jax.Array) -> jax.Array:
        return net.apply(params, obs, method=ActorCritic.value)

    def grad(params: Any, minibatch: Any) -> Any:
        return jax.grad(trainer.loss, has_aux=True)(params, hp, minibatch)

    n, tn, b = cfg.num_envs, cfg.batch_size, cfg.minibatch_size
    rollout = _flops_of(act, state.params, state.obs) / n
    values = 2 * _flops_of(value, state.params, batch.obs) / tn
    update = cfg.update_epochs * _flops_of(grad, state.params, _with_rows(batch, b)) / b
    total = rollout + values + update
    return XlaFlops(
        rollout=rollout,
        values=values,
        update=update,
        per_step=total,
        ratio=total / analytic.per_step if analytic.per_step else math.nan,
    )
