"""Weights & Biases logging of a run (`train --wandb PROJECT`; the optional `wandb` extra).

wandb is imported only here, and this module only when `--wandb` is given. The W&B run
gets the resolved config (plus the seeds) and, per update, every metric of every seed as
`seed_<s>/<metric>`, plotted against `env_steps`. Without a W&B login (no
`WANDB_API_KEY`, no api.wandb.ai entry in ~/.netrc) and no `WANDB_MODE` set, it runs in
offline mode; either way its files go to `RUN/wandb/` (`wandb sync RUN/wandb/offline-run-*`
uploads an offline run later). A resumed run continues the same W&B run (its id is kept in
`RUN/wandb/purejaxppo-run-id`), logging the updates after the checkpoint.
"""

from __future__ import annotations

import netrc
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from purejaxppo.run.errors import UsageError

WANDB_DIR = "wandb"
RUN_ID_FILE = "purejaxppo-run-id"
_PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def check_wandb(project: str) -> None:
    """Before anything is written: the project name is valid and wandb is installed
    (`UsageError`, one line, otherwise)."""
    if not _PROJECT.fullmatch(project):
        raise UsageError(
            f"--wandb {project!r}: expected a W&B project name (letters, digits, '.', '_', "
            "'-'; at most 128)"
        )
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise UsageError(
            "--wandb: the wandb package is not installed; pip install -e '.[wandb]'"
        ) from None


def wandb_mode() -> str:
    """`WANDB_MODE` when set, else `online` with a W&B login on this machine, else `offline`."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        login = netrc.netrc().authenticators("api.wandb.ai")
    except (OSError, netrc.NetrcParseError):
        login = None
    return "online" if login else "offline"


class WandbLog:
    """A W&B run fed with the calls `metrics.csv` gets (see `purejaxppo.run.sinks`).

    Args:
      project: the W&B project.
      run_dir: the run folder (W&B's files go to `run_dir/wandb/`).
      config: the resolved run config as plain data.
      metric_names: the per-update metrics.
    """

    def __init__(
        self, project: str, run_dir: Path, config: Mapping[str, Any], metric_names: Sequence[str]
    ) -> None:
        self.project, self.run_dir = project, Path(run_dir)
        self.config, self.names = dict(config), tuple(metric_names)
        self.run: Any = None

    def _open(self, resume: bool) -> None:
        import wandb

        folder = self.run_dir / WANDB_DIR
        folder.mkdir(parents=True, exist_ok=True)
        id_file = folder / RUN_ID_FILE
        run_id = id_file.read_text().strip() if resume and id_file.is_file() else None
        if run_id is None:
            run_id = uuid.uuid4().hex[:12]
            id_file.write_text(run_id + "\n")
        self.run = wandb.init(
            project=self.project,
            name=self.run_dir.name,
            id=run_id,
            resume="allow",
            dir=str(self.run_dir),
            config=self.config,
            mode=wandb_mode(),
            settings=wandb.Settings(silent=True, console="off"),
        )
        self.run.define_metric("env_steps")
        self.run.define_metric("*", step_metric="env_steps")
        local = str(Path(self.run.dir).parent)
        if self.run.settings.mode == "offline":
            line = f"offline run {self.project}/{run_id} in {local} (upload: wandb sync {local})"
        else:
            line = f"run {self.project}/{run_id} ({self.run.settings.mode}; files in {local})"
        print(f"W&B: {line}", flush=True)

    def start(self) -> None:
        self._open(resume=False)

    def resume(self, update: int, columns: Mapping[str, np.ndarray]) -> None:
        del update, columns  # the W&B run already holds the earlier updates
        self._open(resume=True)

    def append(
        self,
        first_update: int,
        seeds: Sequence[int],
        batch_size: int,
        wall_time_s: float,
        metrics: Mapping[str, np.ndarray],
    ) -> None:
        """One `log` call per update: every seed's metrics, NaN left out."""
        num = next(iter(metrics.values())).shape[1]
        for k in range(num):
            update = first_update + k
            row: dict[str, float] = {
                "env_steps": update * batch_size,
                "update": update,
                "wall_time_s": round(wall_time_s, 3),
            }
            for s, seed in enumerate(seeds):
                for name in self.names:
                    value = float(metrics[name][s, k])
                    if np.isfinite(value):
                        row[f"seed_{seed}/{name}"] = value
            self.run.log(row)

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
