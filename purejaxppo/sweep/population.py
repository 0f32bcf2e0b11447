"""What a sweep expands into: hyperparameter sets, members, static groups, the population.

A population is hyperparameter sets x seeds (`SweepSpec.population()` builds
it). Members that share a `PPOConfig` form a *static group*: they compile once
and run together (`purejaxppo.sweep.runner`). Host side; no JAX.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

from purejaxppo.config import HParams, PPOConfig


def format_value(value: Any) -> str:
    """A swept value in labels and messages: `0.001`, `64x64`, `8`."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, tuple | list):
        return "x".join(str(v) for v in value)
    return str(value)


@dataclasses.dataclass(frozen=True)
class HParamSet:
    """One point of the search space.

    Attributes:
      index: position in the population's list of sets.
      values: `(key, value)` for every swept key (`hparams.learning_rate`, `ppo.num_envs`).
      config: the static config of this set.
      hparams: its hyperparameters (Python floats).
    """

    index: int
    values: tuple[tuple[str, Any], ...]
    config: PPOConfig
    hparams: HParams

    def label(self) -> str:
        """`learning_rate=0.001 num_envs=8` (short keys, compact numbers)."""
        return " ".join(f"{k.split('.', 1)[1]}={format_value(v)}" for k, v in self.values) or "base"


class Member(NamedTuple):
    """One training run of the population: a set and a seed."""

    index: int
    set_index: int
    seed: int


@dataclasses.dataclass(frozen=True)
class StaticGroup:
    """Members sharing one `PPOConfig`: they compile once and run together.

    Attributes:
      index: position among the population's groups (order of first appearance).
      config: the shared static config.
      members: member indices, increasing.
      values: the swept static `(key, value)` pairs that single out this group.
    """

    index: int
    config: PPOConfig
    members: tuple[int, ...]
    values: tuple[tuple[str, Any], ...]

    def label(self) -> str:
        """`num_envs=8` or `all members` when no static field is swept."""
        return " ".join(f"{k.split('.', 1)[1]}={format_value(v)}" for k, v in self.values) or "all"


@dataclasses.dataclass(frozen=True)
class Population:
    """Hyperparameter sets x seeds. Member `m` is set `m // num_seeds`, seed `seeds[m % num_seeds]`.

    Attributes:
      sets: the hyperparameter sets.
      seeds: integer seeds; member key is `jax.random.key(seed)`, as `purejaxppo train` uses.
      swept: the keys that the search space varies, in file order.
    """

    sets: tuple[HParamSet, ...]
    seeds: tuple[int, ...]
    swept: tuple[str, ...]

    @property
    def size(self) -> int:
        """Number of members P."""
        return len(self.sets) * len(self.seeds)

    def member(self, index: int) -> Member:
        """Member `index` (set-major order)."""
        if not 0 <= index < self.size:
            raise ValueError(f"member: expected an index in [0, {self.size}), got {index}")
        n = len(self.seeds)
        return Member(index=index, set_index=index // n, seed=self.seeds[index % n])

    def index_of(self, set_index: int, seed: int) -> int | None:
        """The index of the member `(set_index, seed)`; None if this population has none."""
        if not 0 <= set_index < len(self.sets) or seed not in self.seeds:
            return None
        return set_index * len(self.seeds) + self.seeds.index(seed)

    @property
    def members(self) -> tuple[Member, ...]:
        """All members, in order."""
        return tuple(self.member(i) for i in range(self.size))

    def groups(self) -> tuple[StaticGroup, ...]:
        """Members split by static config, groups in order of first appearance."""
        order: dict[PPOConfig, list[int]] = {}
        for m in self.members:
            order.setdefault(self.sets[m.set_index].config, []).append(m.index)
        static = [k for k in self.swept if k.startswith("ppo.")]
        groups = []
        for g, (config, members) in enumerate(order.items()):
            first = self.sets[self.member(members[0]).set_index]
            values = tuple((k, v) for k, v in first.values if k in static)
            groups.append(StaticGroup(g, config, tuple(members), values))
        return tuple(groups)

    def hparams_of(self, members: Sequence[int]) -> list[HParams]:
        """The `HParams` of each listed member."""
        return [self.sets[self.member(i).set_index].hparams for i in members]

    def seeds_of(self, members: Sequence[int]) -> list[int]:
        """The seed of each listed member."""
        return [self.member(i).seed for i in members]
