"""Where a run's per-update metrics go: `metrics.csv`, then TensorBoard and W&B (host side).

`MetricSinks` takes the calls the runner makes on `metrics.csv` (`start`, `truncate_after`,
`append`) and passes them on to every extra sink, so the chunk loop needs no change to feed
them. An extra sink implements:

    start()                           a new run
    resume(update, columns)           a resumed run: metrics.csv's columns, cut back to `update`
    append(first_update, seeds, batch_size, wall_time_s, metrics)    one chunk, `[S, K]` arrays
    close()                           the run's session is over
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from purejaxppo.run.rundir import MetricsLog, read_metrics


class Sink(Protocol):
    """An extra destination of the per-update metrics (see the module docstring)."""

    def start(self) -> None: ...

    def resume(self, update: int, columns: Mapping[str, np.ndarray]) -> None: ...

    def append(
        self,
        first_update: int,
        seeds: Sequence[int],
        batch_size: int,
        wall_time_s: float,
        metrics: Mapping[str, np.ndarray],
    ) -> None: ...

    def close(self) -> None: ...


class MetricSinks:
    """`metrics.csv` (`MetricsLog`) plus extra sinks, behind `MetricsLog`'s own calls.

    `metrics.csv` is written first, so it stays the record: an extra sink that fails
    leaves it complete. Attributes not defined here (`path`, `columns`) are the log's.
    """

    def __init__(self, log: MetricsLog, extra: Sequence[Sink] = ()) -> None:
        self.log = log
        self.extra = list(extra)

    def __getattr__(self, name: str) -> Any:
        if name in ("log", "extra"):  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.log, name)

    def start(self) -> None:
        self.log.start()
        for sink in self.extra:
            sink.start()

    def truncate_after(self, update: int) -> None:
        self.log.truncate_after(update)
        if self.extra:
            columns = read_metrics(self.log.path)
            for sink in self.extra:
                sink.resume(update, columns)

    def append(
        self,
        first_update: int,
        seeds: Sequence[int],
        batch_size: int,
        wall_time_s: float,
        metrics: dict[str, np.ndarray],
    ) -> None:
        self.log.append(first_update, seeds, batch_size, wall_time_s, metrics)
        for sink in self.extra:
            sink.append(first_update, seeds, batch_size, wall_time_s, metrics)

    def close(self) -> None:
        """Close every extra sink (`metrics.csv` is appended and closed per chunk)."""
        for sink in self.extra:
            sink.close()
        self.extra = []


def metric_sinks(log: MetricsLog, job: Any) -> MetricSinks:
    """The sinks a `Job` asks for: TensorBoard unless `job.tensorboard` is False, W&B when
    `job.wandb_project` is set (wandb is imported only then)."""
    from purejaxppo.run.rundir import INDEX_COLUMNS

    names = log.columns[len(INDEX_COLUMNS) :]
    extra: list[Sink] = []
    if getattr(job, "tensorboard", True):
        from purejaxppo.run.tensorboard_log import TensorBoardLog

        extra.append(TensorBoardLog(job.run_dir, names))
    project = getattr(job, "wandb_project", None)
    if project:
        from purejaxppo.run.config import run_config_to_dict
        from purejaxppo.run.wandb_log import WandbLog

        config = {**run_config_to_dict(job.rc), "seeds": list(job.seeds)}
        extra.append(WandbLog(project, job.run_dir, config, names))
    return MetricSinks(log, extra)
