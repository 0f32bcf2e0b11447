"""One training job and what it reports: `Job`, `JobResult`, the per-session state,
summary.json, the curve, the time to the expected return and the closing lines (host side)."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import numpy as np

from purejaxppo.run import rundir
from purejaxppo.run.checkpoint import Checkpointer, CheckpointMeta
from purejaxppo.run.config import RunConfig, run_config_to_dict
from purejaxppo.run.progress import count
from purejaxppo.run.sinks import metric_sinks
from purejaxppo.train import METRIC_NAMES, Trainer, TrainState


@dataclasses.dataclass
class Job:
    """A training job as the CLI resolved it.

    Attributes:
      rc: the run config.
      trainer: `make_trainer(rc.ppo)` (or with a custom env).
      seeds: integer seed of each member (`rc.seed + i`).
      run_dir: the run folder.
      resume: continue from the latest checkpoint in `run_dir`.
      overwrite: replace an existing run in `run_dir` (new runs only).
      chunk: updates per compiled chunk (None: `default_chunk`).
      checkpoint_every: updates between checkpoints (None: about 10 per run).
      progress_bar: True/False, or None for "on a terminal".
      extends: on a resume that extends the run to a larger `total_timesteps`, the old
        update count (config.yaml is rewritten with the new total before training).
      members_per_device: seeds vmapped together on one device (None: the run's own on a
        resume, else `purejaxppo.sharding.default_members_per_device("train")`).
    """

    rc: RunConfig
    trainer: Trainer
    seeds: list[int]
    run_dir: Path
    resume: bool = False
    overwrite: bool = False
    chunk: int | None = None
    checkpoint_every: int | None = None
    progress_bar: bool | None = None
    extends: int | None = None
    members_per_device: int | None = None
    tensorboard: bool = True  # also TensorBoard event files (purejaxppo.run.tensorboard_log)
    wandb_project: str | None = None  # also log to this W&B project (purejaxppo.run.wandb_log)


class JobResult(NamedTuple):
    """How a job ended: `status` is completed / interrupted / nonfinite; `exit_code` for the CLI."""

    status: str
    exit_code: int
    update: int
    summary: dict[str, Any]


class Session:
    """State of one `run_job` call (kept out of function locals so helpers stay small)."""

    def __init__(self, job: Job, out: TextIO, err: TextIO) -> None:
        self.job, self.out, self.err = job, out, err
        cfg = job.rc.ppo
        self.num_updates = cfg.num_updates
        self.batch_size = cfg.batch_size
        self.checkpointer: Checkpointer | None = None
        csv_log = rundir.MetricsLog(job.run_dir / rundir.METRICS_FILE, METRIC_NAMES)
        self.metrics = metric_sinks(csv_log, job)  # metrics.csv, TensorBoard, W&B
        self.returns: list[np.ndarray] = []  # [S, K] chunks of every session (resume loads)
        self.train_time_s = 0.0  # all sessions, compilation excluded
        self.session_time_s = 0.0
        self.update = 0
        self.last_saved = -1
        self.chunk = 0
        self.members_per_device = job.members_per_device  # None: the platform's default
        self.compile_time_s = 0.0
        self.cache_info = ""
        self.wall_start = process_start()
        self.aside: Path | None = None  # an old run set aside by --overwrite (runner._settle)
        self.reached: dict[str, Any] | None = None  # when the expected return was first reached

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def meta(self) -> CheckpointMeta:
        return CheckpointMeta(
            update=self.update,
            num_updates=self.num_updates,
            seeds=list(self.job.seeds),
            train_time_s=self.train_time_s,
            config=run_config_to_dict(self.job.rc),
            chunk=self.chunk,
            members_per_device=self.members_per_device or 0,
        )

    def save(self, state: TrainState) -> None:
        if self.last_saved == self.update:
            return
        assert self.checkpointer is not None
        self.checkpointer.save(state, self.meta())
        self.last_saved = self.update


def process_start() -> float:
    """`time.perf_counter()`'s value when this process started (Linux: from /proc; else
    now), so wall times count Python's start-up and imports too."""
    now = time.perf_counter()
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22 of proc(5): start time in clock ticks after boot
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        age = uptime - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return now
    return now - min(max(age, 0.0), 86_400.0)


def summary_of(session: Session, status: str, returns: np.ndarray) -> dict[str, Any]:
    """summary.json's contents; `returns` `[S, U]` are the episode returns of every row
    written (all sessions)."""
    job = session.job
    steps = session.update * session.batch_size
    stats = rundir.final_and_best(returns) if returns.size else {}
    expected = job.rc.expected_return
    return {
        "status": status,
        "env_name": job.rc.ppo.env_name,
        "seeds": list(job.seeds),
        "updates_done": session.update,
        "num_updates": session.num_updates,
        "env_steps_per_seed": steps,
        **stats,
        "expected_return": expected,
        "reached_expected_return": rundir.reached_expected(returns, session.num_updates, expected),
        "reached_expected_return_rule": rundir.REACHED_RULE,
        "expected_return_reached": session.reached,
        "compile_time_s": round(session.compile_time_s, 3),
        "compilation_cache": session.cache_info,
        "train_time_s": round(session.train_time_s, 3),
        "steps_per_second": (
            round(steps * len(job.seeds) / session.train_time_s, 1)
            if session.train_time_s > 0
            else None
        ),
        "steps_per_second_counts": "env steps of all seeds per second of training time",
        "session_wall_time_s": round(time.perf_counter() - session.wall_start, 3),
        "session_wall_time_counts": "seconds since this process started",
        "versions": rundir.versions(),
        "device": rundir.device_description(),
    }


def finish_files(session: Session, status: str) -> dict[str, Any]:
    """Write summary.json and curve.png for the rows written so far."""
    from purejaxppo.run.plots import plot_curve

    job = session.job
    session.metrics.close()  # TensorBoard / W&B: the session's last rows are in
    columns = rundir.read_metrics(job.run_dir / rundir.METRICS_FILE)
    returns = rundir.metrics_matrix(columns, "episode_return", job.seeds)
    summary = summary_of(session, status, returns)
    if returns.size:
        steps = np.arange(1, returns.shape[1] + 1) * session.batch_size
        title = f"{job.rc.ppo.env_name}: PPO, {count(len(job.seeds), 'seed')}"
        summary["curve_smoothing_updates"] = plot_curve(
            job.run_dir / rundir.CURVE_FILE, steps, returns, title, job.rc.expected_return
        )
    rundir.write_summary(job.run_dir / rundir.SUMMARY_FILE, summary)
    return summary


def mark_running(session: Session) -> None:
    """summary.json says the run is in progress until the session rewrites it at its end
    (a killed session leaves it so, never a stale "completed")."""
    job = session.job
    rundir.write_summary(
        job.run_dir / rundir.SUMMARY_FILE,
        {
            "status": "in_progress",
            "status_counts": (
                "a purejaxppo train session is running in this folder, or was killed; "
                f"resume with: purejaxppo train --resume {job.run_dir}"
            ),
            "env_name": job.rc.ppo.env_name,
            "seeds": list(job.seeds),
            "updates_done": session.update,
            "num_updates": session.num_updates,
            "checkpointed_update": session.last_saved,
        },
    )


def load_history(session: Session) -> None:
    """On resume: the returns of the rows already written, and when the run first reached
    `expected_return` in an earlier session, derived from those rows (metrics.csv is
    written every chunk, so this holds after a kill too)."""
    job = session.job
    columns = rundir.read_metrics(job.run_dir / rundir.METRICS_FILE)
    returns = rundir.metrics_matrix(columns, "episode_return", job.seeds)
    if not returns.size:
        return
    returns = returns[:, : session.update]
    session.returns = [returns]
    first = rundir.first_reached(returns, session.num_updates, job.rc.expected_return)
    if first is None:
        return
    train_time = columns["wall_time_s"][columns["update"] == first]
    session.reached = {
        "update": first,
        "env_steps_per_seed": first * session.batch_size,
        "return": round(rundir.run_return(returns[:, :first], session.num_updates), 3),
        "train_time_s": float(train_time.max()) if train_time.size else None,
        "session": "an earlier session of this run",
    }


def note_expected(session: Session, returns: np.ndarray) -> None:
    """Record the first update at which the run's return (`rundir.run_return` of
    `returns[:, :u]`, every session's rows) reaches `expected_return`, searched over the
    chunk just trained: the time to solve, measured at that chunk's end."""
    expected = session.job.rc.expected_return
    if session.reached is not None or expected is None:
        return
    start = returns.shape[1] - len(session.returns[-1][0]) if session.returns else 0
    first = rundir.first_reached(returns, session.num_updates, expected, start)
    if first is not None:
        session.reached = {
            "update": first,
            "env_steps_per_seed": first * session.batch_size,
            "return": round(rundir.run_return(returns[:, :first], session.num_updates), 3),
            "wall_time_s": round(time.perf_counter() - session.wall_start, 3),
            "wall_time_counts": (
                "seconds from the start of this process (Python start-up, compilation, "
                "checkpoints and file writes included) to the end of the chunk in which it "
                "was reached" + ("; this session resumed a run" if session.job.resume else "")
            ),
        }


def report_done(session: Session, summary: dict[str, Any]) -> None:
    final, std = summary.get("final_return"), summary.get("final_return_std")
    expected = summary.get("expected_return")
    final_text = "n/a" if final is None else f"{final:.2f}"
    if final is not None and std and len(session.job.seeds) > 1:
        final_text += f" ± {std:.2f}"
    verdict = ""
    if expected is not None:
        flag = summary["reached_expected_return"]
        reached = {True: "reached", False: "NOT reached"}.get(flag, "not measurable")
        verdict = f" (expected {expected:g}: {reached})"
    first = session.reached
    if first is not None:
        when = (
            "in an earlier session"
            if "session" in first
            else f"{first['wall_time_s']:.1f} s after the process started"
        )
        verdict += (
            f"; first reached at update {first['update']} "
            f"({first['env_steps_per_seed']:,} steps/seed), {when}"
        )
    best = summary.get("best_return")
    rate = summary.get("steps_per_second") or 0.0
    session.say(
        f"done: final return {final_text}{verdict}, best {best if best is None else f'{best:.2f}'}"
    )
    session.say(
        f"time: compile {session.compile_time_s:.1f} s, train {session.train_time_s:.1f} s "
        f"({rate:,.0f} steps/s)"
    )
    session.say(
        f"wrote {session.job.run_dir}/: {rundir.CONFIG_FILE}, {rundir.METRICS_FILE}, "
        f"{rundir.SUMMARY_FILE}, {rundir.CURVE_FILE}, {rundir.CHECKPOINT_DIR}/{session.update}"
    )
