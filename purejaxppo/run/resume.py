"""`purejaxppo train --resume DIR`: check a run folder and a config against it (host side)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from purejaxppo.run import rundir
from purejaxppo.run.checkpoint import Checkpointer, CheckpointError, CheckpointMeta
from purejaxppo.run.config import (
    ConfigError,
    RunConfig,
    config_differences,
    load_run_config,
    run_config_from_dict,
)
from purejaxppo.run.errors import UsageError
from purejaxppo.run.progress import count
from purejaxppo.run.rundir import RunDirError, read_run_config

TOTAL = "ppo.total_timesteps"


class Resumed(NamedTuple):
    """A checked `--resume` folder: the config to run (extended or not), the seeds, the
    folder, the latest checkpointed update, and the old update count when extending."""

    rc: RunConfig
    seeds: list[int]
    run_dir: Path
    latest: int
    extends: int | None


def resolve_resume(
    resume: str | Path,
    config: str | Path | None,
    overrides: Sequence[str],
    num_seeds: int | None,
    out: str | Path | None,
) -> Resumed:
    """Check a `--resume` folder, and the CONFIG/--set given with it, against the run.

    A larger `ppo.total_timesteps` (in CONFIG or `--set`) extends the run: the
    returned config has it and `extends` is the old update count. Raises
    `UsageError` with one line naming what does not fit.
    """
    if out is not None:
        raise UsageError("--out: not allowed with --resume (the run continues in its own folder)")
    try:
        run_dir, saved = read_run_config(resume)
    except RunDirError as err:
        raise UsageError(f"--resume {err}") from None
    saved_path = run_dir / rundir.CONFIG_FILE
    if config is not None:
        wanted = load_run_config(config, overrides)
    elif overrides:
        wanted = load_run_config(saved_path, overrides)
    else:
        wanted = saved
    ckpt_dir = run_dir / rundir.CHECKPOINT_DIR
    if not ckpt_dir.is_dir():
        raise UsageError(f"--resume {run_dir}: no {rundir.CHECKPOINT_DIR}/ folder to resume from")
    try:
        latest, meta = _newest_readable(Checkpointer(ckpt_dir, read_only=True))
    except CheckpointError as err:
        raise UsageError(f"--resume {run_dir}: corrupt checkpoint ({err})") from None
    try:
        in_checkpoint = run_config_from_dict(meta.config, f"{ckpt_dir}/{latest}")
    except ConfigError as err:
        raise UsageError(f"--resume {run_dir}: corrupt checkpoint record ({err})") from None
    if _differences(in_checkpoint, saved, may_grow=True):
        raise UsageError(
            f"--resume {run_dir}: {rundir.CONFIG_FILE} does not match the checkpoint's config "
            f"({'; '.join(_differences(in_checkpoint, saved, may_grow=True))})"
        )
    rc = _extended(run_dir, saved, wanted)
    seeds = list(meta.seeds)
    if num_seeds is not None and num_seeds != len(seeds):
        raise UsageError(
            f"--seeds: the run at {run_dir} has {count(len(seeds), 'seed')}, "
            f"got --seeds {num_seeds}"
        )
    if meta.num_updates > saved.ppo.num_updates or not 0 <= latest <= meta.num_updates:
        raise UsageError(f"--resume {run_dir}: checkpoint {latest} does not fit the run's config")
    extends = saved.ppo.num_updates if rc is not saved else None
    return Resumed(rc, seeds, run_dir, latest, extends)


def _newest_readable(checkpointer: Checkpointer) -> tuple[int, CheckpointMeta]:
    """`(update, record)` of the newest checkpoint whose files and record read back (the run
    resumes from it, or from an older one if its arrays turn out damaged)."""
    try:
        updates = checkpointer.all_updates()
        if not updates:
            raise CheckpointError(f"{checkpointer.directory}: no complete checkpoint")
        first_error = None
        for update in reversed(updates):
            try:
                return update, checkpointer.read_meta(update)
            except CheckpointError as err:
                first_error = first_error or err
        raise first_error  # type: ignore[misc]
    finally:
        checkpointer.close()


def _differences(old: RunConfig, new: RunConfig, may_grow: bool = False) -> list[str]:
    """`config_differences` less `expected_return` (a label, not training) and, with
    `may_grow`, less a larger `ppo.total_timesteps` (an extended run)."""
    out = [d for d in config_differences(old, new) if not d.startswith("expected_return ")]
    if may_grow and new.ppo.total_timesteps > old.ppo.total_timesteps:
        out = [d for d in out if not d.startswith(f"{TOTAL} ")]
    return out


def _extended(run_dir: Path, saved: RunConfig, wanted: RunConfig) -> RunConfig:
    """`saved`, or `saved` with the larger `ppo.total_timesteps` of `wanted` (extending a
    run). Any other difference is refused: resuming needs the same config."""
    others = [d for d in _differences(saved, wanted) if not d.startswith(f"{TOTAL} ")]
    if others:
        raise UsageError(
            f"--resume {run_dir}: incompatible config, it differs from the run's in "
            f"{'; '.join(others)}; resuming needs the same config (only {TOTAL} may grow, "
            "to extend the run)"
        )
    old, new = saved.ppo, wanted.ppo
    if new.total_timesteps == old.total_timesteps:
        return saved
    if new.num_updates <= old.num_updates:
        raise UsageError(
            f"--resume {run_dir}: {TOTAL}: the run has {old.total_timesteps} "
            f"({old.num_updates} updates); extending it needs at least one more update of "
            f"{old.batch_size} steps, got {new.total_timesteps}"
        )
    return dataclasses.replace(saved, ppo=old.replace(total_timesteps=new.total_timesteps))
