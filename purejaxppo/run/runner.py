"""Chunked, checkpointed, interruptible training of S seeds (host side).

`run_job(job)` compiles the seed-vmapped trainer (`purejaxppo.run.compiled`),
then runs it chunk by chunk. Between chunks the host reports progress, appends
to `metrics.csv`, checks for NaN/inf (`purejaxppo.run.guards`) and writes orbax
checkpoints. A resumed run gives the same bits as an uninterrupted one, because
the state carried between chunks and checkpointed is the whole `TrainState`.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import jax
import numpy as np

from purejaxppo.run import jaxcache, rundir
from purejaxppo.run.checkpoint import Checkpointer, CheckpointError
from purejaxppo.run.compiled import (
    Compiled,
    compile_trainer,
    default_chunk,
    describe_plan,
    plan_chunks,
    seed_keys,
)
from purejaxppo.run.config import dump_run_config
from purejaxppo.run.envmodule import env_module_note
from purejaxppo.run.guards import (
    EXIT_INTERRUPTED,
    EXIT_NONFINITE,
    StopRequest,
    find_nonfinite,
)
from purejaxppo.run.progress import Progress, count
from purejaxppo.run.session import (
    Job,
    JobResult,
    Session,
    finish_files,
    load_history,
    note_expected,
    report_done,
)
from purejaxppo.train import TrainState

CHECKPOINTS_PER_RUN = 10


# --------------------------------------------------------------------------- the run


def _start_new(session: Session) -> None:
    job = session.job
    rundir.create_run_dir(job.run_dir, job.overwrite)
    _write_config(session)
    session.metrics.start()


def _write_config(session: Session) -> None:
    """config.yaml, atomically: the run's fully resolved config (an extended run's new total)."""
    job = session.job
    header = "# Fully resolved config of this run (purejaxppo train).\n"
    if job.extends is not None:
        header += (
            f"# Extended from {job.extends} to {job.rc.ppo.num_updates} updates by "
            "train --resume with a larger ppo.total_timesteps.\n"
        )
    header += env_module_note(job.rc.ppo.env_name)
    rundir.atomic_write_text(job.run_dir / rundir.CONFIG_FILE, header + dump_run_config(job.rc))


def _compile(session: Session, keys: jax.Array, sizes: Sequence[int]) -> Compiled:
    configured = jax.config.jax_compilation_cache_dir
    cache = Path(configured) if configured else None
    before = jaxcache.count_entries(cache)
    job = session.job
    compiled = compile_trainer(
        job.trainer,
        job.rc.hparams,
        keys,
        sizes,
        with_init=not job.resume,
        members_per_device=session.members_per_device,
    )
    new = jaxcache.count_entries(cache) - before
    if cache is None:
        session.cache_info = "compilation cache off"
    elif new == 0:
        session.cache_info = f"loaded from the compilation cache {cache}"
    else:
        session.cache_info = (
            f"{count(new, 'new entry', 'new entries')} in the compilation cache {cache}"
        )
    session.compile_time_s = compiled.compile_time_s
    session.members_per_device = compiled.members_per_device  # recorded in checkpoints
    split = f"; {compiled.describe()}" if compiled.describe() else ""
    session.say(f"compiled in {compiled.compile_time_s:.1f} s ({session.cache_info}){split}")
    return compiled


def run_job(job: Job, out: TextIO | None = None, err: TextIO | None = None) -> JobResult:
    """Train `job` to `total_timesteps` (or until stopped); see the module docstring.

    SIGINT/SIGTERM are handled from the start: the first stops after the current
    step (compilation or chunk) with a checkpoint, a second abandons the chunk.
    """
    out, err = out or sys.stdout, err or sys.stderr
    session = Session(job, out, err)
    try:
        with StopRequest() as stop:
            return _run(session, stop)
    except KeyboardInterrupt:
        saved = session.last_saved
        where = (
            f"The last good checkpoint (update {saved}) is in "
            f"{job.run_dir / rundir.CHECKPOINT_DIR}."
            f" Resume with: purejaxppo train --resume {job.run_dir}"
            if saved >= 0
            else "No checkpoint was written yet."
        )
        print(f"purejaxppo: interrupted twice; abandoned the run. {where}", file=err, flush=True)
        out.flush()
        # A chunk may still be running in XLA's threads; exit without waiting for it
        # (no checkpoint write is in progress: a write finishes before this point).
        os._exit(EXIT_INTERRUPTED[signal.SIGINT])


def _run(session: Session, stop: StopRequest) -> JobResult:
    job = session.job
    wall_start = session.wall_start
    hp = job.rc.hparams
    keys = seed_keys(job.seeds)
    if job.resume:
        checkpointer = Checkpointer(job.run_dir / rundir.CHECKPOINT_DIR)
        latest = checkpointer.latest_update()
        if latest is None:
            raise CheckpointError(f"{checkpointer.directory}: no complete checkpoint")
        session.update = latest
        saved = checkpointer.read_meta(latest)
        saved_chunk = saved.chunk
        # the run's own members per device keeps the per-device program (and the bits)
        session.members_per_device = job.members_per_device or saved.members_per_device or None
    else:
        _start_new(session)
        checkpointer = Checkpointer(job.run_dir / rundir.CHECKPOINT_DIR)
        saved_chunk = 0
    session.checkpointer = checkpointer
    try:
        # On resume, the original chunk size keeps the plan (and compiled code) the same.
        # A --chunk longer than the run is one chunk of the whole run (and says so).
        chunk = min(
            job.chunk or saved_chunk or default_chunk(session.num_updates), session.num_updates
        )
        session.chunk = chunk
        sizes = plan_chunks(session.update, session.num_updates, chunk)
        every = job.checkpoint_every or max(
            chunk, math.ceil(session.num_updates / CHECKPOINTS_PER_RUN)
        )
        _announce(session, sizes, every)
        compiled = _compile(session, keys, sizes or [chunk])
        if job.resume:
            # The whole population [S, ...] in member order, split into this run's rounds.
            restored, meta = checkpointer.restore(session.update, compiled.member_shape)
            state = compiled.scatter(restored)
            session.train_time_s = float(meta.train_time_s)
            session.last_saved = session.update
            session.metrics.truncate_after(session.update)
            load_history(session)
            if job.extends is not None:
                _write_config(session)
        else:
            state = compiled.init_states(keys, hp)
            # update 0: there is always a good checkpoint to go back to
            session.save(compiled.gather(state))
        status, exit_code = _chunks(session, stop, compiled, state, sizes, every)
    finally:
        checkpointer.close()
    summary = finish_files(session, status, wall_start)
    if status == "completed":
        report_done(session, summary)
    return JobResult(status, exit_code, session.update, summary)


def _announce(session: Session, sizes: Sequence[int], every: int) -> None:
    job = session.job
    seeds_text = ", ".join(str(s) for s in job.seeds)
    session.say(
        f"{'resuming' if job.resume else 'training'} {job.rc.ppo.env_name}: "
        f"{count(len(job.seeds), 'seed')} ({seeds_text}), "
        f"{session.num_updates} updates x {session.batch_size} steps "
        f"= {session.num_updates * session.batch_size:,} steps per seed"
        + _remainder_text(job.rc.ppo.total_timesteps, session.batch_size)
    )
    session.say(f"run folder: {job.run_dir}")
    if job.resume:
        session.say(f"continuing from the checkpoint at update {session.update}")
    if job.extends is not None:
        session.say(
            f"extending the run from {job.extends} to {session.num_updates} updates"
            + (
                " (anneal_lr: the learning rate now decays to 0 at the new end)"
                if job.rc.ppo.anneal_lr
                else ""
            )
        )
    session.say(
        f"chunks: {describe_plan(sizes)}; checkpoint every {every} updates "
        f"on {jax.devices()[0].platform}"
    )


def _remainder_text(total_timesteps: int, batch_size: int) -> str:
    """What of `total_timesteps` is not run (it is not a whole batch), or ""."""
    left = total_timesteps % batch_size
    if not left:
        return ""
    total = f"{total_timesteps:,}"
    return f" (the last {left:,} of total_timesteps {total} are not a whole batch: not run)"


def _chunks(
    session: Session,
    stop: StopRequest,
    compiled: Compiled,
    state: list[TrainState],
    sizes: Sequence[int],
    every: int,
) -> tuple[str, int]:
    """Run the chunks (each: every round of groups); return `(status, exit_code)`. The last
    good state is checkpointed."""
    job = session.job
    hp = job.rc.hparams
    since_save = 0
    with Progress(
        session.num_updates,
        session.batch_size,
        len(job.seeds),
        start_update=session.update,
        bar=job.progress_bar,
        stream=session.out,
    ) as progress:
        for size in sizes:
            if stop.signum is not None:
                break
            t0 = time.perf_counter()
            new_state, metrics = compiled.run_chunk(size, state, hp)
            first = session.update + 1
            bad = find_nonfinite(first, job.seeds, metrics, compiled.member_params(new_state))
            dt = time.perf_counter() - t0
            session.train_time_s += dt
            session.session_time_s += dt
            if bad is not None:
                keep = bad.update - first + 1
                rows = {k: v[:, :keep] for k, v in metrics.items()}
                session.metrics.append(
                    first, job.seeds, session.batch_size, session.train_time_s, rows
                )
                print(
                    f"purejaxppo: error: non-finite {bad.what} at update {bad.update} "
                    f"(seed {bad.seed}); stopped. The last good checkpoint (update "
                    f"{session.last_saved}) is kept in {job.run_dir / rundir.CHECKPOINT_DIR}; "
                    "try a lower hparams.learning_rate or hparams.max_grad_norm",
                    file=session.err,
                    flush=True,
                )
                return "nonfinite", EXIT_NONFINITE
            state = new_state
            session.update += size
            since_save += size
            session.returns.append(metrics["episode_return"])
            session.metrics.append(
                first, job.seeds, session.batch_size, session.train_time_s, metrics
            )
            history = np.concatenate(session.returns, axis=1)
            mean, std = rundir.run_return_spread(history, session.num_updates)
            progress.update(session.update, session.session_time_s, mean, std)
            note_expected(session, history)
            if since_save >= every or session.update == session.num_updates:
                session.save(compiled.gather(state))
                since_save = 0
    if stop.signum is not None and session.update < session.num_updates:
        session.save(compiled.gather(state))
        name = signal.Signals(stop.signum).name
        print(
            f"purejaxppo: interrupted ({name}) at update {session.update}/{session.num_updates}; "
            f"checkpoint saved. Resume with: purejaxppo train --resume {job.run_dir}",
            file=session.err,
            flush=True,
        )
        return "interrupted", EXIT_INTERRUPTED.get(stop.signum, 130)
    return "completed", 0
