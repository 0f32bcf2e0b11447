"""The `schedule:` section of a run config: traced hyperparameters that change during a run.

    hparams: {learning_rate: 2.5e-4, ent_coef: 0.01}   # what every segment starts from
    schedule:
      - from_update: 0
        hparams: {learning_rate: 3.0e-4}
      - from_update: 40
        key_fold: 2718281828           # optional: refold the PRNG key here (PBT's copies)
        hparams: {learning_rate: 3.6e-4, ent_coef: 0.008}

Segment k holds from update `from_update` (counted from the start of the run) to the next
segment's start; its hyperparameters are the config's `hparams:` with the segment's own
values on top (segments do not accumulate). `purejaxppo sweep` with `strategy: pbt` writes
the best member's schedule in this form (`best.yaml`); `purejaxppo train` replays it
without recompiling (`purejaxppo.schedule.HParamSchedule`). Host side; no JAX.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from purejaxppo.config import HParams, PPOConfig
from purejaxppo.run.errors import ConfigError
from purejaxppo.run.yamlcheck import closest, describe, unknown_key
from purejaxppo.unused_settings import check_hparams

HPARAM_FIELDS = tuple(f.name for f in dataclasses.fields(HParams))
SEGMENT_KEYS = ("from_update", "key_fold", "hparams")


@dataclasses.dataclass(frozen=True)
class ScheduleSegment:
    """One segment of a run's schedule.

    Attributes:
      start: the update index where it starts.
      hparams: its full `HParams` (the config's with the segment's values on top).
      key_fold: a nonzero uint32 folds into the PRNG key where it starts; 0: none.
      changed: the fields the segment sets itself (what is written back).
    """

    start: int
    hparams: HParams
    key_fold: int = 0
    changed: tuple[str, ...] = ()


def parse_schedule(
    raw: Any, ppo: PPOConfig, base: HParams, source: str
) -> tuple[ScheduleSegment, ...]:
    """The checked segments of a `schedule:` list (`()` when absent or null).

    Raises:
      ConfigError: one line naming `schedule[k].KEY` and what was expected.
    """
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise ConfigError(
            f"{source}: schedule: expected a list of segments "
            f"({{from_update: N, hparams: {{...}}}}), got {describe(raw)}"
        )
    segments = []
    for k, item in enumerate(raw):
        where = f"{source}: schedule[{k}]"
        segments.append(_segment(item, ppo, base, where))
    starts = [s.start for s in segments]
    if starts[0] != 0:
        raise ConfigError(f"{source}: schedule[0].from_update: expected 0, got {starts[0]}")
    for k in range(1, len(starts)):
        if starts[k] <= starts[k - 1]:
            raise ConfigError(
                f"{source}: schedule[{k}].from_update: expected more than the previous "
                f"segment's {starts[k - 1]}, got {starts[k]}"
            )
    if starts[-1] >= ppo.num_updates:
        raise ConfigError(
            f"{source}: schedule[{len(starts) - 1}].from_update: {starts[-1]} is not before "
            f"the run's end ({ppo.num_updates} updates); the segment would never run"
        )
    return tuple(segments)


def _segment(item: Any, ppo: PPOConfig, base: HParams, where: str) -> ScheduleSegment:
    if not isinstance(item, Mapping):
        raise ConfigError(
            f"{where}: expected a mapping with keys {', '.join(SEGMENT_KEYS)}, got {describe(item)}"
        )
    for key in item:
        if key not in SEGMENT_KEYS:
            raise unknown_key(f"{where}.{key}", closest(str(key), SEGMENT_KEYS), SEGMENT_KEYS)
    start = item.get("from_update")
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ConfigError(
            f"{where}.from_update: expected a non-negative integer, got {describe(start)}"
        )
    fold = item.get("key_fold", 0)
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < 2**32:
        raise ConfigError(
            f"{where}.key_fold: expected an integer in [0, 2**32), got {describe(fold)}"
        )
    values = item.get("hparams") or {}
    if not isinstance(values, Mapping):
        raise ConfigError(
            f"{where}.hparams: expected a mapping of hparams fields, got {describe(values)}"
        )
    changes = {}
    for name, value in values.items():
        if name not in HPARAM_FIELDS:
            raise unknown_key(
                f"{where}.hparams.{name}", closest(str(name), HPARAM_FIELDS), HPARAM_FIELDS
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}.hparams.{name}: expected a number, got {describe(value)}")
        changes[name] = float(value)
    try:
        hparams = check_hparams(ppo, base.replace(**changes).validate())
    except ValueError as err:
        raise ConfigError(f"{where}.hparams: {str(err).splitlines()[0]}") from None
    return ScheduleSegment(start, hparams, fold, tuple(changes))


def schedule_to_list(segments: Sequence[ScheduleSegment]) -> list[dict[str, Any]]:
    """The YAML form of `segments` (`parse_schedule` inverts it)."""
    out = []
    for seg in segments:
        item: dict[str, Any] = {"from_update": int(seg.start)}
        if seg.key_fold:
            item["key_fold"] = int(seg.key_fold)
        if seg.changed:
            item["hparams"] = {name: float(getattr(seg.hparams, name)) for name in seg.changed}
        out.append(item)
    return out


def to_hparam_schedule(segments: Sequence[ScheduleSegment]) -> Any:
    """The trainer's `HParamSchedule` of `segments` (imports JAX)."""
    from purejaxppo.schedule import HParamSchedule

    folds = [s.key_fold for s in segments] if any(s.key_fold for s in segments) else None
    return HParamSchedule.from_segments([(s.start, s.hparams) for s in segments], folds)
