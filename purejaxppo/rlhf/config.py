"""Configuration of the RLHF pipeline: static sizes (`RLHFConfig` and its sections, frozen
dataclasses: shapes and loop lengths depend on them) and the traced knobs of the RL stage
(`RLHFHParams`, float32 leaves: vmap a population over them, one compile).

Every section validates itself at construction with a one-line `ValueError` that starts with
the field name (`"iterations: expected >= 1, got 0"`); the YAML loader prefixes the section.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.rlhf.language import LanguageConfig
from purejaxppo.rlhf.models import READOUTS, ModelConfig

ALGORITHMS = ("ppo", "grpo", "dpo")
KL_PLACEMENTS = ("own", "reward", "loss")


def _positive(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {value}")


@dataclasses.dataclass(frozen=True)
class SFTConfig:
    """Supervised fitting of the reference policy on the corpus."""

    steps: int = 300
    batch_size: int = 64
    learning_rate: float = 3e-3

    def __post_init__(self) -> None:
        _positive(self, "steps", "batch_size")
        if not 0 < self.learning_rate < math.inf:
            raise ValueError(
                f"learning_rate: expected a finite number > 0, got {self.learning_rate}"
            )


@dataclasses.dataclass(frozen=True)
class RewardConfig:
    """The preference dataset (pairs sampled from the reference, gold-labelled with noise)
    and the Bradley–Terry reward model fitted on it (started from the SFT torso).
    `readout`: how the reward model turns hidden states into a score (`RewardModel`):
    `last` (the last real token), `mean` or `sum` (a per-position score over the answer)."""

    train_pairs: int = 600
    held_out_pairs: int = 1000
    flip_prob: float = 0.1
    steps: int = 200
    batch_size: int = 64
    learning_rate: float = 1e-3
    readout: str = "last"

    def __post_init__(self) -> None:
        _positive(self, "train_pairs", "held_out_pairs", "steps", "batch_size")
        if self.readout not in READOUTS:
            raise ValueError(
                f"readout: expected one of {', '.join(READOUTS)}, got {self.readout!r}"
            )
        if not 0.0 <= self.flip_prob < 0.5:
            raise ValueError(f"flip_prob: expected a probability in [0, 0.5), got {self.flip_prob}")
        if not 0 < self.learning_rate < math.inf:
            raise ValueError(
                f"learning_rate: expected a finite number > 0, got {self.learning_rate}"
            )


@dataclasses.dataclass(frozen=True)
class RLConfig:
    """The RL stage. Each iteration samples `completions_per_iteration` completions: PPO from
    as many fresh prompts, GRPO from `completions / group_size` prompts, `group_size` each —
    the same number of sampled completions (and so, up to lengths, of tokens) either way.

    `algorithm`: `ppo` (per-token KL reward, token-level value model, GAE) or `grpo`
    (group-relative sequence reward on every token, k3 KL to the reference in the loss, no
    value model), or `dpo` (offline: DPO on the reward model's training pairs, no sampling
    in training; `purejaxppo.rlhf.dpo`). For DPO an iteration is one shuffled pass over the
    `reward.train_pairs` pairs in `minibatches` Adam steps (`epochs` is unused), and
    `completions_per_iteration` completions are sampled after each pass for the metrics
    only. `group_normalize`: GRPO divides by the group's std (false: Dr. GRPO).
    `adaptive_kl`: the KL coefficient follows Ziegler et al.'s controller toward
    `hparams.kl_target` (false: `hparams.kl_coef` stays fixed).
    `kl_placement`: where beta's KL to the reference sits. `own` (default): each algorithm's
    own, PPO's per-token `beta k1` in the reward, GRPO's `beta k3` token mean in the loss;
    `reward`: `beta k1` in the reward for both (GRPO: the sequence's summed k1 times beta is
    subtracted from its score before the group normalisation); `loss`: `beta k3` in the loss
    for both (PPO's reward is then the score at the last token alone). Not with DPO.
    """

    algorithm: str = "ppo"
    iterations: int = 150
    completions_per_iteration: int = 64
    group_size: int = 1
    epochs: int = 4
    minibatches: int = 2
    adaptive_kl: bool = True
    group_normalize: bool = True
    whiten_advantages: bool = True
    eval_prompts: int = 512
    kl_placement: str = "own"

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(
                f"algorithm: expected one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}"
            )
        if self.kl_placement not in KL_PLACEMENTS:
            raise ValueError(
                f"kl_placement: expected one of {', '.join(KL_PLACEMENTS)}, "
                f"got {self.kl_placement!r}"
            )
        if self.algorithm == "dpo" and self.kl_placement != "own":
            raise ValueError(
                f"kl_placement: {self.kl_placement} has no effect with algorithm dpo (its KL "
                "is dpo_beta's implicit one); leave it at own"
            )
        _positive(self, "iterations", "completions_per_iteration", "group_size", "epochs")
        _positive(self, "minibatches", "eval_prompts")
        n = self.completions_per_iteration
        if self.algorithm == "ppo" and self.group_size != 1:
            raise ValueError(
                f"group_size: PPO samples one completion per prompt; expected 1, "
                f"got {self.group_size}"
            )
        if self.algorithm == "dpo" and self.group_size != 1:
            raise ValueError(f"group_size: DPO has no groups; expected 1, got {self.group_size}")
        if self.algorithm == "grpo" and self.group_size < 2:
            raise ValueError(f"group_size: GRPO needs groups of >= 2, got {self.group_size}")
        if n % self.group_size:
            raise ValueError(
                f"group_size: must divide completions_per_iteration ({n}), got {self.group_size}"
            )
        if n % self.minibatches and self.algorithm != "dpo":
            raise ValueError(
                f"minibatches: must divide completions_per_iteration ({n}), got {self.minibatches}"
            )

    @property
    def prompts_per_iteration(self) -> int:
        return self.completions_per_iteration // self.group_size

    @property
    def kl_in_reward(self) -> bool:
        """True where beta's KL is a per-token k1 reward, False where it is a k3 loss term."""
        if self.kl_placement == "own":
            return self.algorithm == "ppo"
        return self.kl_placement == "reward"


_HPARAM_RANGES = {  # name -> (low, high, low inclusive)
    "learning_rate": (0.0, math.inf, False),
    "value_learning_rate": (0.0, math.inf, False),
    "clip_eps": (0.0, math.inf, False),
    "kl_coef": (0.0, math.inf, True),
    "kl_target": (0.0, math.inf, False),
    "kl_horizon": (0.0, math.inf, False),
    "gamma": (0.0, 1.0, True),
    "gae_lambda": (0.0, 1.0, True),
    "ent_coef": (0.0, math.inf, True),
    "max_grad_norm": (0.0, math.inf, False),
    "dpo_beta": (0.0, math.inf, False),
}


def _check_value(name: str, value: Any) -> None:
    """One-line `ValueError` naming `name` unless every element of a concrete `value` is a
    finite number in its range. Tracers and the placeholders JAX unflattens with pass."""
    if isinstance(value, jax.core.Tracer):
        return
    if value is None or isinstance(value, (str, bytes, complex, list, tuple)):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    if not isinstance(value, (bool, int, float, np.number, np.ndarray, jax.Array)):
        return
    low, high, closed = _HPARAM_RANGES[name]
    for v in np.asarray(value, np.float64).ravel().tolist():
        ok = (low <= v if closed else low < v) and v <= high and math.isfinite(v)
        if not ok:
            side = ">=" if closed else ">"
            limit = f" and <= {high:g}" if math.isfinite(high) else ""
            raise ValueError(f"{name}: expected a finite number {side} {low:g}{limit}, got {v}")


@dataclasses.dataclass(frozen=True)
class RLHFHParams:
    """Traced knobs of the RL stage (float32 scalars, or `[M]` for a population).

    `kl_coef` is beta: the initial coefficient of the KL to the reference (per-token reward
    penalty for PPO, k3 loss term for GRPO). `kl_target` and `kl_horizon` (in completions)
    drive Ziegler's controller when `rl.adaptive_kl`. `dpo_beta` is DPO's beta (the scale
    of its implicit reward; `rl.algorithm: dpo` only, which also uses `learning_rate` and
    `max_grad_norm`).

    Like `purejaxppo.HParams`: a frozen dataclass and a pytree; concrete values are checked
    when it is built (one-line `ValueError` naming the field; traced values pass), and
    `.replace(**changes)` returns a checked copy.
    """

    learning_rate: Any = 1e-3
    value_learning_rate: Any = 1e-3
    clip_eps: Any = 0.2
    kl_coef: Any = 0.05
    kl_target: Any = 2.0
    kl_horizon: Any = 2000.0
    gamma: Any = 1.0
    gae_lambda: Any = 0.95
    ent_coef: Any = 0.0
    max_grad_norm: Any = 1.0
    dpo_beta: Any = 0.1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> RLHFHParams:
        """Check concrete values; raise `ValueError` naming the field. Traced values pass."""
        for name in HPARAM_NAMES:
            _check_value(name, getattr(self, name))
        return self

    def replace(self, **changes: Any) -> RLHFHParams:
        """A copy with `changes` applied (checked again)."""
        return dataclasses.replace(self, **changes)


HPARAM_NAMES = tuple(f.name for f in dataclasses.fields(RLHFHParams))


def _unflatten(aux: None, leaves: Sequence[Any]) -> RLHFHParams:
    del aux
    hp = object.__new__(RLHFHParams)  # no check: JAX rebuilds pytrees from placeholders too
    for name, leaf in zip(HPARAM_NAMES, leaves, strict=True):
        object.__setattr__(hp, name, leaf)
    return hp


jax.tree_util.register_pytree_with_keys(
    RLHFHParams,
    lambda hp: ([(jax.tree_util.GetAttrKey(n), getattr(hp, n)) for n in HPARAM_NAMES], None),
    _unflatten,
    lambda hp: ([getattr(hp, n) for n in HPARAM_NAMES], None),
)


def check_hparams(hp: RLHFHParams) -> RLHFHParams:
    """`hp` with every field a Python float, or a one-line `ValueError` naming the field."""
    values = {}
    for name in HPARAM_NAMES:
        value = getattr(hp, name)
        _check_value(name, value)
        values[name] = float(value)
    return RLHFHParams(**values)


def hparams_dict(hp: RLHFHParams) -> dict[str, Any]:
    """`{field: value}` in field order."""
    return {name: getattr(hp, name) for name in HPARAM_NAMES}


def stack_rlhf_hparams(members: Sequence[RLHFHParams]) -> RLHFHParams:
    """`M` members -> one `RLHFHParams` of float32 `[M]` leaves."""
    if not members:
        raise ValueError("stack_rlhf_hparams: expected at least one member")
    return RLHFHParams(
        **{
            name: jnp.asarray([float(getattr(m, name)) for m in members], jnp.float32)
            for name in HPARAM_NAMES
        }
    )


@dataclasses.dataclass(frozen=True)
class PopulationConfig:
    """Members of the RL stage, vmapped in one program: every combination of the `grid`
    values (RLHFHParams fields) times `seeds` seeds. All members share the reference and the
    reward model (as in Gao et al.: one proxy, many policies)."""

    seeds: int = 1
    grid: tuple[tuple[str, tuple[float, ...]], ...] = ()

    def __post_init__(self) -> None:
        _positive(self, "seeds")
        for name, values in self.grid:
            if name not in HPARAM_NAMES:
                raise ValueError(
                    f"grid: {name!r} is not an hparams field ({', '.join(HPARAM_NAMES)})"
                )
            if not values:
                raise ValueError(f"grid: {name} has no values")


@dataclasses.dataclass(frozen=True)
class RLHFConfig:
    """The whole pipeline: language, model sizes, SFT, reward model, RL stage, population.

    `seed` seeds the RL members (and, by default, the `prepare` stage); `prepare_seed`, when
    set, seeds `prepare` (SFT, preference data, reward model) on its own, so several
    references and reward models can be paired with the same RL seeds."""

    language: LanguageConfig = dataclasses.field(default_factory=LanguageConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    sft: SFTConfig = dataclasses.field(default_factory=SFTConfig)
    reward: RewardConfig = dataclasses.field(default_factory=RewardConfig)
    rl: RLConfig = dataclasses.field(default_factory=RLConfig)
    hparams: RLHFHParams = dataclasses.field(default_factory=RLHFHParams)
    population: PopulationConfig = dataclasses.field(default_factory=PopulationConfig)
    seed: int = 0
    prepare_seed: int | None = None

    def __post_init__(self) -> None:
        if self.rl.algorithm == "dpo" and self.rl.minibatches > self.reward.train_pairs:
            raise ValueError(
                f"rl.minibatches: DPO splits the {self.reward.train_pairs} training pairs "
                f"(reward.train_pairs) into minibatches; expected <= {self.reward.train_pairs}, "
                f"got {self.rl.minibatches}"
            )


class Member(NamedTuple):
    """One member of the population: its RL seed and its hyperparameters."""

    seed: int
    hparams: RLHFHParams
    label: str  # e.g. "kl_target=1 seed=0"


def population_members(cfg: RLHFConfig) -> list[Member]:
    """Grid values (in file order, last varying fastest) times seeds (fastest)."""
    base = check_hparams(cfg.hparams)
    names = [name for name, _ in cfg.population.grid]
    combos = itertools.product(*(values for _, values in cfg.population.grid))
    members = []
    for combo in combos:
        hp = check_hparams(base.replace(**dict(zip(names, combo, strict=True))))
        for seed in range(cfg.population.seeds):
            parts = [f"{n}={v:g}" for n, v in zip(names, combo, strict=True)] + [f"seed={seed}"]
            members.append(Member(seed, hp, " ".join(parts)))
    return members


def replace_section(cfg: RLHFConfig, section: str, values: Mapping[str, object]) -> RLHFConfig:
    """`cfg` with `section`'s fields replaced (validated by the section's constructor)."""
    current = getattr(cfg, section)
    if isinstance(current, RLHFHParams):
        return dataclasses.replace(cfg, hparams=check_hparams(current.replace(**values)))
    return dataclasses.replace(cfg, **{section: dataclasses.replace(current, **values)})
