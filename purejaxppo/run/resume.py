"""`purejaxppo train --resume DIR`: check a run folder and a config against it (host side)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from purejaxppo.run import rundir
from purejaxppo.run.checkpoint import Checkpointer, CheckpointError
from purejaxppo.run.config import (
    ConfigError,
    RunConfig,
    config_differences,
    load_run_config,
    run_config_from_dict,
)
from purejaxppo.run.errors import UsageError


def resolve_resume(
    resume: str | Path,
    config: str | Path | None,
    overrides: Sequence[str],
    num_seeds: int | None,
    out: str | Path | None,
) -> tuple[RunConfig, list[int], Path, int]:
    """Check a `--resume` folder, and the CONFIG/--set given with it, against the run.

    Returns `(run config, seeds, run folder, latest checkpointed update)`; raises
    `UsageError` with one line naming what does not fit.
    """
    run_dir = Path(resume)
    if out is not None:
        raise UsageError("--out: not allowed with --resume (the run continues in its own folder)")
    if not run_dir.is_dir():
        raise UsageError(f"--resume {run_dir}: no such run folder")
    saved_path = run_dir / rundir.CONFIG_FILE
    if not saved_path.is_file():
        raise UsageError(
            f"--resume {run_dir}: not a purejaxppo run folder (no {rundir.CONFIG_FILE})"
        )
    try:
        saved = load_run_config(saved_path)
    except ConfigError as err:
        raise UsageError(f"--resume {run_dir}: corrupt run folder ({err})") from None
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
        checkpointer = Checkpointer(ckpt_dir, read_only=True)
        latest = checkpointer.latest_update()
        if latest is None:
            raise CheckpointError(f"{ckpt_dir}: no complete checkpoint")
        meta = checkpointer.read_meta(latest)
        checkpointer.close()
    except CheckpointError as err:
        raise UsageError(f"--resume {run_dir}: corrupt checkpoint ({err})") from None
    try:
        in_checkpoint = run_config_from_dict(meta.config, f"{ckpt_dir}/{latest}")
    except ConfigError as err:
        raise UsageError(f"--resume {run_dir}: corrupt checkpoint record ({err})") from None
    if config_differences(in_checkpoint, saved):
        raise UsageError(
            f"--resume {run_dir}: {rundir.CONFIG_FILE} does not match the checkpoint's config "
            f"({'; '.join(config_differences(in_checkpoint, saved))})"
        )
    differences = [
        d for d in config_differences(saved, wanted) if not d.startswith("expected_return ")
    ]
    if differences:
        raise UsageError(
            f"--resume {run_dir}: incompatible config, it differs from the run's in "
            f"{'; '.join(differences)}; resuming needs the same config"
        )
    seeds = list(meta.seeds)
    if num_seeds is not None and num_seeds != len(seeds):
        raise UsageError(
            f"--seeds: the run at {run_dir} has {len(seeds)} seeds, got --seeds {num_seeds}"
        )
    if meta.num_updates != saved.ppo.num_updates or not 0 <= latest <= meta.num_updates:
        raise UsageError(f"--resume {run_dir}: checkpoint {latest} does not fit the run's config")
    return saved, seeds, run_dir, latest
