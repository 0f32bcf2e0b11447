"""Static configuration (`PPOConfig`) and traced hyperparameters (`HParams`).

The rule (DESIGN.md): a value is static only if it changes an array shape, a
loop length or Python control flow. Every numeric knob is a leaf of `HParams`,
passed to `train(key, hparams)` as an argument, so it can be vmapped without
recompiling.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.unused_settings import check_static_settings, concrete

ACTIVATIONS = ("tanh", "relu", "gelu", "silu", "elu")
OBJECTIVES = ("clip", "kl_penalty", "clip+kl")
KL_DIRECTIONS = ("new_old", "old_new")
ADVANTAGES = ("gae", "group")
GROUP_SCORES = ("outcome", "reward_to_go")
GROUP_AGGREGATIONS = ("token_mean", "sequence_mean")
GROUP_RESETS = ("update", "longest")
TORSOS = ("mlp", "cnn")
MAX_BATCH = 1 << 28  # transitions per batch: the minibatch shuffle packs an index into a uint32
MAX_UPDATES = (1 << 31) - 1  # updates per run: the update counter is an int32


INT_FIELDS = (
    "num_envs",
    "num_steps",
    "total_timesteps",
    "update_epochs",
    "num_minibatches",
    "group_size",
    "gru_size",
)
BOOL_FIELDS = (
    "anneal_lr",
    "normalize_advantages",
    "clip_value_loss",
    "normalize_observations",
    "normalize_rewards",
    "group_normalize",
    "group_minibatch_normalize",
)


def _plain(value: Any) -> Any:
    """A numpy integer or bool scalar (`np.int64(4)`, `np.bool_(True)`) as the Python
    value; anything else unchanged (and checked by the caller)."""
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name}: expected a positive integer, got {value}")


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Static PPO settings: everything that changes a shape, a loop or control flow.

    Frozen and hashable, so it can be a `jax.jit` static argument. Defaults are
    PureJaxRL's CartPole recipe (4 envs x 128 steps, 5e5 steps, 4 epochs x 4
    minibatches, separate 64x64 tanh actor and critic).

    Attributes:
      env_name: a registered gymnax id (or a purejaxppo probe env), from which
        `make_train(cfg)` builds the env; with `make_train(cfg, env=...)` it is only a
        label (logs, run folders) and may be any name, or `None`. The registry is
        checked where an env is built from the name (`make_env`), before compiling.
      num_envs: parallel environments N.
      num_steps: rollout length T per update; one batch is `T * N` transitions.
      total_timesteps: environment steps over the whole run, rounded down to whole
        updates: `num_updates * batch_size` steps are taken and the remainder
        `total_timesteps % batch_size` is not run (`purejaxppo train` says so in its first
        line).
      update_epochs: passes over each batch.
      num_minibatches: minibatches per epoch; must divide the batch.
      hidden_sizes: widths of the actor and of the critic MLP.
      activation: one of `ACTIVATIONS`.
      anneal_lr: linearly decay the learning rate to 0 over the run.
      normalize_advantages: per-minibatch advantage normalisation.
      clip_value_loss: PPO2-style clipped value loss (clip range `clip_eps`).
      normalize_observations: running mean/var observation normalisation.
      normalize_rewards: divide rewards by the running std of the discounted return.
      objective: the policy loss. `clip` (PPO-clip, the note's eq. 23), `kl_penalty`
        (`-mean(r A) + beta * KL`, eq. 22, beta adapted after every update toward
        `HParams.kl_target`), or `clip+kl` (both terms).
      kl_direction: the KL of the penalty, computed exactly from the two action
        distributions: `new_old` = KL(pi_theta || pi_old) as the note writes it,
        `old_new` = KL(pi_old || pi_theta) as the PPO paper does.
      advantage: `gae` (a learned critic, GAE) or `group` (critic-free, GRPO-style:
        groups of `group_size` envs start each update from one shared reset and
        play one whole episode each; every step of an episode gets its return's
        group-normalised score; no value network is built).
      group_size: envs per group in `group` mode; must divide `num_envs`.
      group_normalize: divide by the group's return std (GRPO); false: only subtract
        the group mean (Dr. GRPO).
      group_minibatch_normalize: also normalise the group advantages per minibatch, as
        `normalize_advantages` does for GAE: `(A - mean) / std` over the minibatch's counted
        steps (mask > 0; the others stay 0), left undivided when that std is a tie
        (`purejaxppo.gae.divide_by_spread`). With `group_normalize: false` every arm of the
        critic-vs-group protocol then shares PPO's normalisation.
      group_score: `outcome` (every step of episode i gets the group score of its
        undiscounted return R_i) or `reward_to_go` (step t of episode i gets its discounted
        reward-to-go G_i(t) = sum_{k>=t} gamma^(k-t) r_i(k) minus the mean of the other
        `group_size - 1` episodes' reward-to-go at the same step t, a leave-one-out
        baseline, 0 past an episode's end; with `group_normalize`, divided by the std of
        the group's discounted returns G_j(0)). `reward_to_go` needs `group_size >= 2`.
      group_aggregation: how group-mode loss terms are averaged over a minibatch.
        `token_mean`: `sum(mask x) / sum(mask)` over its counted steps, so an episode
        weighs by its length; `sequence_mean` (DeepSeekMath's GRPO): each step weighted
        by `1 / |o_i|` of its episode, `sum(w x) / sum(w)`, which over the whole batch is
        `(1/N) sum_i (1/|o_i|) sum_t x_i(t)`.
      group_reset: `update` (every group resets from one shared key at the start of each
        update and each env plays only its first episode; later steps are masked) or
        `longest` (rounds synced to the group's longest episode: an env whose episode
        ends waits, masked and not stepped, until every env of its group has ended; then
        the group resets together from one shared key and plays a new round in the same
        `num_steps` buffer; a round still running at the buffer's end is masked, and
        every group restarts at the next update). Scores are per round (`rollout.py`,
        `make_sync_group_batch`). `longest` refuses `normalize_observations`.
      torso: `mlp` (flattened observations through `hidden_sizes`) or `cnn` (for
        `[H, W, C]` image observations such as MinAtar's: a 3x3 convolution with 16
        channels and ReLU, flattened, then the `hidden_sizes` MLP), one per actor and critic.
      gru_size: 0 (feed-forward) or the width of a GRU after the torso of the actor and of
        the critic (recurrent PPO). Its hidden state is reset at episode starts, the state
        at the start of each rollout is stored, and minibatches are whole per-env
        sequences replayed from it: `num_minibatches` must divide `num_envs`.
      encoder: None (the default features: flattened, one-hot or `torso`), or an import
        string `module:Attr` naming a zero-argument factory (e.g. a Flax module class) of
        the module that encodes observations before each MLP (`ActorCritic.encoder`;
        `make_train(config, encoder=...)` takes the factory itself). Replaces `torso`.
    """

    env_name: str | None = "CartPole-v1"
    num_envs: int = 4
    num_steps: int = 128
    total_timesteps: int = 500_000
    update_epochs: int = 4
    num_minibatches: int = 4
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    anneal_lr: bool = True
    normalize_advantages: bool = True
    clip_value_loss: bool = True
    normalize_observations: bool = False
    normalize_rewards: bool = False
    objective: str = "clip"
    kl_direction: str = "new_old"
    advantage: str = "gae"
    group_size: int = 8
    group_normalize: bool = True
    group_minibatch_normalize: bool = False
    group_score: str = "outcome"
    group_aggregation: str = "token_mean"
    group_reset: str = "update"
    torso: str = "mlp"
    gru_size: int = 0
    encoder: str | None = None

    def __post_init__(self) -> None:
        for name in (*INT_FIELDS, *BOOL_FIELDS):
            object.__setattr__(self, name, _plain(getattr(self, name)))
        if not isinstance(self.hidden_sizes, (str, bytes, np.ndarray)) and isinstance(
            self.hidden_sizes, Sequence
        ):
            object.__setattr__(self, "hidden_sizes", tuple(map(_plain, self.hidden_sizes)))
        if self.env_name is not None and (not isinstance(self.env_name, str) or not self.env_name):
            raise ValueError(f"env_name: expected a non-empty string, got {self.env_name!r}")
        for name in ("num_envs", "num_steps", "total_timesteps"):
            _check_positive_int(name, getattr(self, name))
        for name in ("update_epochs", "num_minibatches"):
            _check_positive_int(name, getattr(self, name))
        self._check_representable()
        sizes = self.hidden_sizes
        if isinstance(sizes, int) or not isinstance(sizes, Sequence) or isinstance(sizes, str):
            raise ValueError(f"hidden_sizes: expected a list of positive integers, got {sizes!r}")
        sizes = tuple(sizes)
        for width in sizes:
            if isinstance(width, bool) or not isinstance(width, int) or width <= 0:
                raise ValueError(
                    f"hidden_sizes: expected a list of positive integers, got {list(sizes)!r}"
                )
        object.__setattr__(self, "hidden_sizes", sizes)
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation: expected one of {', '.join(ACTIVATIONS)}, got {self.activation!r}"
            )
        for name, allowed in (
            ("objective", OBJECTIVES),
            ("kl_direction", KL_DIRECTIONS),
            ("advantage", ADVANTAGES),
            ("group_score", GROUP_SCORES),
            ("group_aggregation", GROUP_AGGREGATIONS),
            ("group_reset", GROUP_RESETS),
            ("torso", TORSOS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name}: expected one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )
        _check_positive_int("group_size", self.group_size)
        if self.advantage == "group" and self.num_envs % self.group_size:
            raise ValueError(
                f"group_size: {self.group_size} does not divide num_envs = {self.num_envs}"
            )
        if self.advantage == "group" and self.group_score == "reward_to_go" and self.group_size < 2:
            raise ValueError(
                "group_size: group_score reward_to_go needs group_size >= 2 (a leave-one-out "
                "baseline over the other episodes)"
            )
        for name in BOOL_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected true or false, got {getattr(self, name)!r}")
        if self.batch_size % self.num_minibatches:
            raise ValueError(
                f"num_minibatches: {self.num_minibatches} does not divide the batch "
                f"num_envs * num_steps = {self.batch_size}"
            )
        if (
            isinstance(self.gru_size, bool)
            or not isinstance(self.gru_size, int)
            or self.gru_size < 0
        ):
            raise ValueError(
                f"gru_size: expected 0 (no GRU) or a positive integer, got {self.gru_size!r}"
            )
        if self.gru_size and self.num_envs % self.num_minibatches:
            raise ValueError(
                f"num_minibatches: with gru_size > 0 minibatches are whole per-env sequences, so "
                f"num_minibatches ({self.num_minibatches}) must divide num_envs ({self.num_envs})"
            )
        longest = self.advantage == "group" and self.group_reset == "longest"
        if longest and self.normalize_observations:
            raise ValueError(
                "normalize_observations: not with group_reset longest (the waiting envs' "
                "observations would enter the running statistics); set it to false"
            )
        if self.gru_size and self.advantage == "group":
            raise ValueError(
                "gru_size: recurrent policies are not supported with advantage group; use gae"
            )
        if self.encoder is not None:
            module, _, attr = str(self.encoder).partition(":")
            if not isinstance(self.encoder, str) or not module or not attr:
                raise ValueError(
                    f"encoder: expected an import string module:FactoryOrModuleClass, got "
                    f"{self.encoder!r}"
                )
            if self.torso != "mlp":
                raise ValueError(
                    f"torso: {self.torso} has no effect with an encoder (the encoder replaces "
                    "the torso); leave it at mlp"
                )
        check_static_settings(self)
        if self.total_timesteps < self.batch_size:
            raise ValueError(
                f"total_timesteps: {self.total_timesteps} is below one batch "
                f"(num_envs * num_steps = {self.batch_size})"
            )

    def _check_representable(self) -> None:
        """Sizes the trainer cannot index: a batch past `MAX_BATCH` (the shuffle's uint32 sort
        key, `purejaxppo.prng.permutation`) or more than `MAX_UPDATES` updates (int32)."""
        if self.batch_size > MAX_BATCH:
            raise ValueError(
                f"num_envs: num_envs * num_steps = {self.num_envs:,} * {self.num_steps:,} = "
                f"{self.batch_size:,} transitions per batch exceeds the limit {MAX_BATCH:,} "
                "(2^28: the minibatch shuffle indexes a batch with one uint32 sort key); "
                "lower num_envs or num_steps"
            )
        if self.num_updates > MAX_UPDATES:
            raise ValueError(
                f"total_timesteps: {self.total_timesteps:,} steps make {self.num_updates:,} "
                f"updates of {self.batch_size:,} steps, more than the limit {MAX_UPDATES:,} "
                "(2^31 - 1: the update counter is an int32); lower total_timesteps"
            )

    @property
    def batch_size(self) -> int:
        """Transitions per update: `num_envs * num_steps`."""
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        """Transitions per gradient step."""
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        """Whole updates in the run: `total_timesteps // batch_size`."""
        return self.total_timesteps // self.batch_size

    def replace(self, **changes: Any) -> PPOConfig:
        """A copy with `changes` applied (validated again)."""
        return dataclasses.replace(self, **changes)


HPARAM_DEFAULTS: dict[str, float] = {
    "learning_rate": 2.5e-4,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "clip_eps": 0.2,
    "ent_coef": 0.01,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "kl_coef": 1.0,
    "kl_target": 0.01,
    "kl_coef_min": 1e-4,
    "kl_coef_max": 1e4,
    "early_stop_kl": math.inf,
    "ref_kl_coef": 0.0,
}

# (lower bound, lower inclusive, upper bound, upper inclusive)
_HPARAM_RANGES: dict[str, tuple[float, bool, float, bool]] = {
    "learning_rate": (0.0, False, math.inf, False),
    "gamma": (0.0, True, 1.0, True),
    "gae_lambda": (0.0, True, 1.0, True),
    "clip_eps": (0.0, False, math.inf, False),
    "ent_coef": (0.0, True, math.inf, False),
    "vf_coef": (0.0, True, math.inf, False),
    "max_grad_norm": (0.0, False, math.inf, False),
    "kl_coef": (0.0, True, math.inf, False),
    "kl_target": (0.0, False, math.inf, False),
    "kl_coef_min": (0.0, False, math.inf, False),
    "kl_coef_max": (0.0, False, math.inf, False),
    "early_stop_kl": (0.0, False, math.inf, True),
    "ref_kl_coef": (0.0, True, math.inf, False),
}


def _range_text(lo: float, lo_in: bool, hi: float, hi_in: bool) -> str:
    if hi == math.inf:
        return f"a number {'>=' if lo_in else '>'} {lo:g}"
    return f"a number in {'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"


def _as_float32(value: Any) -> Any:
    """A concrete number or array as a float32 `jax.Array` (one jit cache entry for every
    numeric form); tracers, placeholders and float32 jax arrays (which may be sharded)
    unchanged."""
    if isinstance(value, jax.core.Tracer) or value is None:
        return value
    if isinstance(value, (bool, int, float, np.number, np.ndarray)):
        return jnp.asarray(value, jnp.float32)
    if isinstance(value, jax.Array) and value.dtype != jnp.float32:
        return value.astype(jnp.float32)
    return value


def _check_field(name: str, value: Any) -> None:
    """Raise `ValueError` naming `name` unless every element of a concrete `value` is in range.

    Tracers, shape structs and the placeholder objects JAX unflattens pytrees with pass.
    """
    if isinstance(value, jax.core.Tracer):
        return
    if value is None or isinstance(value, (str, bytes, complex)):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    if isinstance(value, (list, tuple)):
        raise ValueError(
            f"{name}: expected a number, got a {type(value).__name__} {list(value)!r}; to train "
            "several values at once stack whole HParams with stack_hparams([...]) and vmap: "
            "jax.vmap(train, in_axes=(None, 0))(key, stacked)"
        )
    if isinstance(value, (bool, int, float, np.number, np.ndarray, jax.Array)):
        array = np.asarray(value)
        if not (jnp.issubdtype(array.dtype, jnp.number) or array.dtype == np.bool_):
            raise ValueError(f"{name}: expected a number, got {value!r}")
        lo, lo_in, hi, hi_in = _HPARAM_RANGES[name]
        for v in np.asarray(array, np.float64).ravel().tolist():
            ok = (v > lo or (lo_in and v == lo)) and (v < hi or (hi_in and v == hi))
            if not ok:
                raise ValueError(f"{name}: expected {_range_text(lo, lo_in, hi, hi_in)}, got {v:g}")


@dataclasses.dataclass(frozen=True)
class HParams:
    """Traced PPO hyperparameters: a pytree of float scalars (or `[P]` arrays when stacked).

    Defaults are PureJaxRL's CartPole recipe (learning rate 2.5e-4; the rest as in
    the PPO paper's Atari/MuJoCo settings: gamma 0.99, lambda 0.95, clip 0.2).
    Any field can be vmapped; changing values never recompiles.

    `kl_coef` is the initial beta of the KL objectives (adapted after every update,
    kept in `TrainState.kl_coef`), `kl_target` the KL it steers to; after every update
    beta is clipped into `[kl_coef_min, kl_coef_max]` (defaults 1e-4 and 1e4), so it can
    neither underflow to 0 (where halving and doubling would keep it forever) nor
    overflow; `early_stop_kl`
    skips the rest of an update's minibatch steps once their mean approximate KL
    exceeds it (`inf`: off); `ref_kl_coef` weighs the k3 KL to the frozen initial
    policy in `group` mode. A non-default value of a field that the `PPOConfig` never
    reads (the KL fields with `objective: clip`, `ref_kl_coef` with `advantage: gae`) is
    refused by `purejaxppo.check_hparams(config, hparams)`.

    Concrete values are checked when the object is built (`ValueError` naming the
    field; traced values pass). As a pytree, every concrete leaf is a float32
    array, so a Python float, an int, a `np.float64` or a `jnp.float32` of the
    same value all hit one compiled program.
    """

    learning_rate: Any = HPARAM_DEFAULTS["learning_rate"]
    gamma: Any = HPARAM_DEFAULTS["gamma"]
    gae_lambda: Any = HPARAM_DEFAULTS["gae_lambda"]
    clip_eps: Any = HPARAM_DEFAULTS["clip_eps"]
    ent_coef: Any = HPARAM_DEFAULTS["ent_coef"]
    vf_coef: Any = HPARAM_DEFAULTS["vf_coef"]
    max_grad_norm: Any = HPARAM_DEFAULTS["max_grad_norm"]
    kl_coef: Any = HPARAM_DEFAULTS["kl_coef"]
    kl_target: Any = HPARAM_DEFAULTS["kl_target"]
    kl_coef_min: Any = HPARAM_DEFAULTS["kl_coef_min"]
    kl_coef_max: Any = HPARAM_DEFAULTS["kl_coef_max"]
    early_stop_kl: Any = HPARAM_DEFAULTS["early_stop_kl"]
    ref_kl_coef: Any = HPARAM_DEFAULTS["ref_kl_coef"]

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> HParams:
        """Check concrete values; raise `ValueError` naming the field. Traced values pass."""
        for field in dataclasses.fields(self):
            _check_field(field.name, getattr(self, field.name))
        lo, hi = concrete(self.kl_coef_min), concrete(self.kl_coef_max)
        if lo is not None and hi is not None and np.any(lo > hi):
            raise ValueError(
                f"kl_coef_min: expected <= kl_coef_max ({hi.max():g}), got {lo.max():g}"
            )
        return self

    def replace(self, **changes: Any) -> HParams:
        """A copy with `changes` applied (checked again)."""
        return dataclasses.replace(self, **changes)


def _flatten_hparams(hp: HParams) -> tuple[list[Any], None]:
    return [_as_float32(getattr(hp, f.name)) for f in dataclasses.fields(hp)], None


def _flatten_hparams_with_keys(hp: HParams) -> tuple[list[tuple[Any, Any]], None]:
    leaves, aux = _flatten_hparams(hp)
    names = [f.name for f in dataclasses.fields(hp)]
    return [(jax.tree_util.GetAttrKey(n), v) for n, v in zip(names, leaves, strict=True)], aux


def _unflatten_hparams(aux: None, leaves: Sequence[Any]) -> HParams:
    del aux
    hp = object.__new__(HParams)  # no check: JAX rebuilds pytrees from placeholders too
    for field, leaf in zip(dataclasses.fields(HParams), leaves, strict=True):
        object.__setattr__(hp, field.name, leaf)
    return hp


jax.tree_util.register_pytree_with_keys(
    HParams, _flatten_hparams_with_keys, _unflatten_hparams, _flatten_hparams
)


def stack_hparams(hparams: Sequence[HParams]) -> HParams:
    """Stack P `HParams` into one whose leaves are float32 arrays of shape `[P]`, for `vmap`."""
    hparams = list(hparams)
    if not hparams:
        raise ValueError("stack_hparams: expected at least one HParams")
    for hp in hparams:
        if not isinstance(hp, HParams):
            raise ValueError(f"stack_hparams: expected HParams, got {type(hp).__name__}")
        hp.validate()
    return jax.tree.map(lambda *xs: jnp.asarray(xs, dtype=jnp.float32), *hparams)


def check_member_hparams(hparams: Any) -> None:
    """Raise `ValueError` unless `hparams` is an `HParams` of one member: every leaf a scalar.

    Called by the trainer at trace time. A stacked `HParams` (from `stack_hparams`,
    leaves `[P]`) must be vmapped: `jax.vmap(train, in_axes=(None, 0))(key, stacked)`.
    """
    if not isinstance(hparams, HParams):
        raise ValueError(
            f"hparams: expected an HParams, got {type(hparams).__name__} "
            "(build one with purejaxppo.HParams(...))"
        )
    shapes = {
        f.name: tuple(jnp.shape(getattr(hparams, f.name))) for f in dataclasses.fields(hparams)
    }
    stacked = {name: shape for name, shape in shapes.items() if shape}
    if not stacked:
        return
    name, shape = next(iter(stacked.items()))
    scalars = [n for n, sh in shapes.items() if not sh]
    if scalars:
        raise ValueError(
            f"hparams.{name}: expected a scalar per member like {scalars[0]}, got shape {shape}; "
            "to train several values at once stack whole HParams with stack_hparams([...]) "
            "and vmap: jax.vmap(train, in_axes=(None, 0))(key, stacked)"
        )
    raise ValueError(
        f"hparams.{name}: expected a scalar per member, got shape {shape}: a stacked HParams "
        "must be vmapped over its leading axis, e.g. jax.vmap(train, in_axes=(None, 0))(key, "
        "stacked), or jax.vmap(jax.vmap(train, (0, None)), (None, 0))(keys, stacked) for "
        "seeds x hparams"
    )
