"""TensorBoard event files of a run: every per-update metric, per seed, x = env steps (host side).

    RUN/tensorboard/seed_<s>/events.out.tfevents.*   tags: the metric names of metrics.csv

One folder per seed, so `tensorboard --logdir runs` overlays the seeds of every run.
Written with tensorboardX (no TensorFlow) as `metrics.csv` is appended: one event per
update holding all its metrics; on disk after the first chunk, then at most
`FLUSH_EVERY_S` late (each flush fsyncs every seed's file), and at the end. Values NaN in
`metrics.csv` (`episode_return` of an update in which no episode ended) are left out.

On `train --resume` the event files are rebuilt from `metrics.csv` (already cut back to
the checkpoint) into a new folder that then replaces the old one, so a resumed run holds
every step once; the new session appends to a file of its own beside the rebuilt one.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

TB_DIR = "tensorboard"
FLUSH_EVERY_S = 5.0  # on disk after the first chunk, then at most this late, and at the end


def seed_folder(seed: int) -> str:
    """`seed_<s>`: the event-file folder of one seed under `RUN/tensorboard/`."""
    return f"seed_{seed}"


class ScalarWriter:
    """One event file in `folder`: `write(step, {tag: value})` adds one event per step.

    Synchronous (tensorboardX's `EventsWriter`, no queue or thread): what `flush()` returns
    from is on disk. `suffix` ends the file name (`events.out.tfevents.<time>.<host><suffix>`);
    TensorBoard reads a folder's files in name order, so a later session's suffix sorts after.
    """

    def __init__(self, folder: Path, suffix: str = "") -> None:
        from tensorboardX.event_file_writer import EventsWriter

        folder.mkdir(parents=True, exist_ok=True)
        self._writer = EventsWriter(str(folder / "events"), suffix)

    def write(self, step: int, values: Mapping[str, float]) -> None:
        """One event at `step` holding every finite value (Python floats; NaN/inf left out)."""
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.proto.summary_pb2 import Summary

        kept = [
            Summary.Value(tag=tag, simple_value=v) for tag, v in values.items() if math.isfinite(v)
        ]
        if kept:
            event = Event(wall_time=time.time(), step=int(step), summary=Summary(value=kept))
            self._writer.write_event(event)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def write_scalars(
    folder: Path, steps: Sequence[int], columns: Mapping[str, np.ndarray], suffix: str = ""
) -> None:
    """A new event file in `folder` holding `columns[tag][i]` at `steps[i]` (NaN skipped)."""
    writer = ScalarWriter(folder, suffix)
    try:
        lists = {tag: np.asarray(values, np.float64).tolist() for tag, values in columns.items()}
        for i, step in enumerate(np.asarray(steps).tolist()):
            writer.write(step, {tag: values[i] for tag, values in lists.items()})
    finally:
        writer.close()


def replace_folder(target: Path, build: Callable[[Path], Any]) -> None:
    """Build a folder's new contents beside it (`build(tmp)`), then swap it in.

    The old folder is kept until the new one is complete: a crash leaves either the old
    contents or the new ones at `target` (and a stale `.NAME.tmp`/`.NAME.old`, cleared by
    the next call).
    """
    tmp = target.with_name(f".{target.name}.tmp")
    old = target.with_name(f".{target.name}.old")
    for stale in (tmp, old):
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir(parents=True)
    build(tmp)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


class TensorBoardLog:
    """The run's event files, fed with the calls `metrics.csv` gets (see `run.sinks`).

    Args:
      run_dir: the run folder; events go to `run_dir/tensorboard/seed_<s>/`.
      metric_names: the per-update metrics (tags).
    """

    def __init__(self, run_dir: Path, metric_names: Sequence[str]) -> None:
        self.root = Path(run_dir) / TB_DIR
        self.names = tuple(metric_names)
        self._writers: dict[int, ScalarWriter] = {}
        self._flushed = -math.inf

    def start(self) -> None:
        """A new run: nothing to do until the first chunk (the folder is made then)."""

    def resume(self, update: int, columns: Mapping[str, np.ndarray]) -> None:
        """Rebuild the event files from `metrics.csv`'s `columns` (rows up to `update`)."""
        seeds = sorted({int(s) for s in columns.get("seed", ())})

        def build(tmp: Path) -> None:
            for seed in seeds:
                mask = columns["seed"] == seed
                order = np.argsort(columns["update"][mask], kind="stable")
                steps = columns["env_steps"][mask][order]
                data = {n: columns[n][mask][order] for n in self.names if n in columns}
                write_scalars(tmp / seed_folder(seed), steps, data, suffix=".u0000000000")

        replace_folder(self.root, build)

    def append(
        self,
        first_update: int,
        seeds: Sequence[int],
        batch_size: int,
        wall_time_s: float,
        metrics: Mapping[str, np.ndarray],
    ) -> None:
        """Add a chunk (`metrics[name]` `[S, K]` for updates `first_update ..`); flushed
        after the first chunk, then every `FLUSH_EVERY_S` seconds and on `close`."""
        del wall_time_s  # TensorBoard stamps events with the clock itself
        num = next(iter(metrics.values())).shape[1]
        for s, seed in enumerate(seeds):
            writer = self._writers.get(seed)
            if writer is None:  # one file per seed and session, named after its first update
                folder = self.root / seed_folder(seed)
                writer = self._writers[seed] = ScalarWriter(folder, f".u{first_update:010d}")
            rows = {
                n: metrics[n][s].astype(np.float64).tolist() for n in self.names if n in metrics
            }
            for k in range(num):
                step = (first_update + k) * batch_size
                writer.write(step, {n: values[k] for n, values in rows.items()})
        if time.monotonic() - self._flushed >= FLUSH_EVERY_S:  # a flush fsyncs each file
            for writer in self._writers.values():
                writer.flush()
            self._flushed = time.monotonic()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


def read_scalars(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`tag -> (steps, values)` of every event file in `folder`, in file-name order, read
    with tensorboardX's own record reader (for checks and tools; no TensorBoard needed)."""
    from tensorboardX.proto.event_pb2 import Event

    out: dict[str, tuple[list[int], list[float]]] = {}
    for path in sorted(Path(folder).glob("events.out.tfevents.*")):
        for record in _records(path.read_bytes()):
            event = Event.FromString(record)
            for value in event.summary.value:
                steps, values = out.setdefault(value.tag, ([], []))
                steps.append(int(event.step))
                values.append(float(value.simple_value))
    return {tag: (np.asarray(s), np.asarray(v)) for tag, (s, v) in out.items()}


def _records(data: bytes) -> list[bytes]:
    """The records of a TFRecord file: `uint64 length, uint32 crc, data, uint32 crc`."""
    records, pos = [], 0
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 8], "little")
        start = pos + 12
        if start + length + 4 > len(data):
            break  # a record cut short by a crash
        records.append(data[start : start + length])
        pos = start + length + 4
    return records
