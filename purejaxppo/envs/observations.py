"""Structured (pytree) observations: their layout, the action mask and per-leaf
normalisation (pure).

An env may observe a pytree of arrays (a dict, tuple, NamedTuple or flax dataclass) instead
of one array; its `observation_space` is then a gymnax `Dict` or `Tuple` (anything without
a `shape`), and the layout is read from one traced reset (`obs_spec`). The rules:

- **layout**: leaves in `jax.tree` order, each `[*leaf_shape]` per env; the rollout stores
  every leaf time-major, `[T, N, *leaf_shape]`, and flattens it to `[B, *leaf_shape]`.
- **action mask**: the leaf whose last path entry is named `action_mask` (a dict key or an
  attribute, as in Jumanji's observations), bool (or 0/1) `[A]` with `A` the number of
  discrete actions, True where the action is valid. The categorical policy then puts
  `MASKED_LOGIT` on the invalid actions' logits (`mask_logits`), everywhere it is built:
  rollout sampling, the loss's log-probabilities and entropy, evaluation.
- **normalisation** (`normalize_observations: true`): each float leaf other than the mask has
  its own running mean and variance; integer and bool leaves and the mask pass unchanged
  (they are indices, counters and flags: a z-score of them means little).
- **default encoder**: every leaf (the mask too, as 0/1) cast to float32, flattened and
  concatenated in tree order (`flat_features`), then the MLP.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from purejaxppo.envs.stats import RunningStats, normalize_array

MASK_NAME = "action_mask"
MASKED_LOGIT = -1e9
"""The logit of an invalid action: finite, so `log_softmax`, the entropy and the KL stay
finite (a `-inf` logit gives `0 * -inf = NaN` in the entropy), and `exp(-1e9 - max)` is 0 in
float32, so an invalid action has probability exactly 0 whenever one action is valid."""


class ObsLeaf(NamedTuple):
    """One leaf of a structured observation (static)."""

    path: str  # `jax.tree_util.keystr` of the leaf, e.g. `['grid']` or `.action_mask`
    shape: tuple[int, ...]  # per env
    dtype: str
    normalized: bool  # a float leaf other than the mask


class ObsSpec(NamedTuple):
    """The layout of a structured observation (static, hashable)."""

    treedef: Any  # the observation's `PyTreeDef`
    leaves: tuple[ObsLeaf, ...]
    mask_index: int  # index of the `action_mask` leaf in `leaves`, -1 if none

    @property
    def num_features(self) -> int:
        """F, the width of `flat_features`."""
        return sum(math.prod(leaf.shape) for leaf in self.leaves)


def _leaf_name(entry: Any) -> Any:
    """The name of one path entry: a dict key or an attribute name (else None)."""
    if isinstance(entry, jax.tree_util.DictKey):
        return entry.key
    return getattr(entry, "name", None)


def is_structured(obs: Any) -> bool:
    """True unless `obs` is one array (a pytree leaf at its root)."""
    return not jax.tree_util.treedef_is_leaf(jax.tree.structure(obs))


def obs_spec(obs: Any, label: str) -> ObsSpec:
    """The `ObsSpec` of one observation `obs` (arrays or `jax.ShapeDtypeStruct`s, no batch
    axis); more than one `action_mask` leaf raises a one-line `ValueError`."""
    with_paths, treedef = jax.tree_util.tree_flatten_with_path(obs)
    if not with_paths:
        raise ValueError(f"{label}: reset returned an observation with no arrays")
    leaves, masks = [], []
    for i, (path, leaf) in enumerate(with_paths):
        is_mask = bool(path) and _leaf_name(path[-1]) == MASK_NAME
        if is_mask:
            masks.append(i)
        dtype = np.dtype(leaf.dtype)
        normalized = not is_mask and np.issubdtype(dtype, np.floating)
        shape = tuple(int(d) for d in leaf.shape)
        leaves.append(ObsLeaf(jax.tree_util.keystr(path), shape, dtype.name, normalized))
    if len(masks) > 1:
        paths = ", ".join(leaves[i].path for i in masks)
        raise ValueError(f"{label}: observations hold several {MASK_NAME} leaves ({paths})")
    return ObsSpec(treedef, tuple(leaves), masks[0] if masks else -1)


def batch_shape(spec: ObsSpec, obs: Any) -> tuple[int, ...]:
    """The leading (batch) axes `[...]` of observations `obs` with leaves `[..., *shape]`."""
    first = jax.tree.leaves(obs)[0]
    return tuple(first.shape[: first.ndim - len(spec.leaves[0].shape)])


def action_mask(spec: ObsSpec, obs: Any) -> jax.Array | None:
    """The bool action mask `[..., A]` of observations `obs`, or None without one."""
    if spec.mask_index < 0:
        return None
    return jnp.asarray(jax.tree.leaves(obs)[spec.mask_index]).astype(jnp.bool_)


def flat_features(spec: ObsSpec, obs: Any) -> jax.Array:
    """Observations `obs` (leaves `[..., *shape]`) as float32 `[..., F]`: every leaf
    flattened and concatenated in tree order (the default encoder)."""
    batch = batch_shape(spec, obs)
    parts = [jnp.asarray(x).astype(jnp.float32).reshape((*batch, -1)) for x in jax.tree.leaves(obs)]
    return jnp.concatenate(parts, axis=-1)


def mask_logits(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """`logits` `[..., A]` with `MASKED_LOGIT` where `mask` `[..., A]` is False. If no
    action is valid the distribution is uniform over all of them (the env's to avoid)."""
    return jnp.where(mask, logits, MASKED_LOGIT)


@struct.dataclass
class ObsStats:
    """Running statistics of a structured observation: one `RunningStats` per leaf, in tree
    order, of the leaf's shape for a normalised leaf and an unused `[]` one otherwise."""

    leaves: tuple[RunningStats, ...]
    normalized: tuple[bool, ...] = struct.field(pytree_node=False)

    @classmethod
    def create(cls, spec: ObsSpec) -> ObsStats:
        """Empty statistics for observations laid out as `spec`."""
        stats = tuple(
            RunningStats.create(leaf.shape if leaf.normalized else ()) for leaf in spec.leaves
        )
        return cls(stats, tuple(leaf.normalized for leaf in spec.leaves))

    def update(self, batch: Any) -> ObsStats:
        """Fold in a batch of observations, leaves `[B, *shape]` (normalised leaves only)."""
        leaves = jax.tree.leaves(batch)
        stats = tuple(
            s.update(x) if norm else s
            for s, x, norm in zip(self.leaves, leaves, self.normalized, strict=True)
        )
        return self.replace(leaves=stats)

    def normalize(self, obs: Any) -> Any:
        """`obs` (leaves `[..., *shape]`) with its normalised leaves z-scored and clipped
        (`normalize_array`); the other leaves as they are."""
        leaves, treedef = jax.tree.flatten(obs)
        out = [
            normalize_array(s, x) if norm else x
            for s, x, norm in zip(self.leaves, leaves, self.normalized, strict=True)
        ]
        return jax.tree.unflatten(treedef, out)


def create_obs_stats(obs_shape: tuple[int, ...], spec: ObsSpec | None) -> RunningStats | ObsStats:
    """Empty observation statistics: one `RunningStats` `[*obs_shape]` for an array
    observation, an `ObsStats` for a structured one (`spec`)."""
    return RunningStats.create(obs_shape) if spec is None else ObsStats.create(spec)


def normalize_observation(stats: RunningStats | ObsStats, obs: Any) -> Any:
    """`clip((obs - mean) / sqrt(var + 1e-8), -10, 10)`; obs `[..., *obs_shape]`, or for a
    structured observation per normalised leaf (the others unchanged).

    Use this at inference with `TrainOutput.state.obs_stats` when the run had
    `normalize_observations=True`, before `net.apply(params, obs)`.
    """
    if isinstance(stats, ObsStats):
        return stats.normalize(obs)
    return normalize_array(stats, obs)
