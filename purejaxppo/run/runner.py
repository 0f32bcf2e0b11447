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

from purejaxppo.run import jaxcache, outdir, rundir
from purejaxppo.run.checkpoint import Checkpointer
from purejaxppo.run.compiled import (
    Compiled,
    compile_trainer,
    default_chunk,
    describe_plan,
    plan_chunks,
    population_shape,
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
    mark_running,
    note_expected,
    report_done,
)
from purejaxppo.train import TrainState

CHECKPOINTS_PER_RUN = 10


# --------------------------------------------------------------------------- the run


def _start_new(session: Session) -> None:
    """Create the run folder. An old run there (`--overwrite`) is set aside, not deleted: it
    comes back if the new run ends before its first chunk is trained (`_settle`)."""
    job = session.job
    if job.overwrite and outdir.folder_kind(job.run_dir) == "run":
        session.aside = outdir.set_aside(job.run_dir)
    job.run_dir.mkdir(parents=True, exist_ok=True)
    _write_config(session)
    session.metrics.start()


def _settle(session: Session, started: bool) -> None:
    """An old run set aside by `--overwrite`: dropped once the new run has `started` (its
    first chunk trained), else put back as it was, the new run's files removed."""
    aside, session.aside = session.aside, None
    if aside is None:
        return
    if started:
        outdir.drop_aside(aside)
        return
    outdir.put_back(session.job.run_dir, aside)
    print(
        f"purejaxppo: the new run ended before it finished its first chunk; the old run in "
        f"{session.job.run_dir} is kept unchanged",
        file=session.err,
        flush=True,
    )


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
        job.rc.train_hparams,
        keys,
        sizes,
        with_init=not job.resume,
        members_per_device=session.members_per_device,
    )
    new = jaxcache.count_entries(cache) - before
    if cache is None:
        why = f": {jaxcache.off_reason}" if jaxcache.off_reason else ""
        session.cache_info = f"compilation cache off{why}"
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
        replaced = session.aside is not None
        _settle(session, started=False)
        saved = session.last_saved
        where = (
            "No checkpoint of the new run was kept."
            if replaced or saved < 0
            else f"The last good checkpoint (update {saved}) is in "
            f"{job.run_dir / rundir.CHECKPOINT_DIR}."
            f" Resume with: purejaxppo train --resume {job.run_dir}"
        )
        print(f"purejaxppo: interrupted twice; abandoned the run. {where}", file=err, flush=True)
        out.flush()
        # A chunk may still be running in XLA's threads; exit without waiting for it
        # (no checkpoint write is in progress: a write finishes before this point).
        os._exit(EXIT_INTERRUPTED[signal.SIGINT])
    except BaseException:
        _settle(session, started=False)
        raise


def _restore(session: Session, checkpointer: Checkpointer, keys: jax.Array) -> TrainState:
    """On resume: the newest intact checkpoint's population `[S, ...]` (a damaged newer one
    is skipped, saying so), the metrics rows after it dropped, the earlier sessions' record."""
    job = session.job
    like = population_shape(job.trainer, job.rc.train_hparams, keys)
    restored, meta, skipped = checkpointer.restore_newest_intact(like)
    for update, reason in skipped:
        kept = checkpointer.set_aside(update)  # the run saves this update again
        print(
            f"purejaxppo: warning: checkpoint {update} cannot be restored ({reason}); "
            f"resuming from the intact checkpoint {meta.update} (the damaged one is kept as "
            f"{kept})",
            file=session.err,
            flush=True,
        )
    session.update = meta.update
    session.chunk = meta.chunk
    # the run's own members per device keeps the per-device program (and the bits)
    session.members_per_device = job.members_per_device or meta.members_per_device or None
    session.train_time_s = float(meta.train_time_s)
    session.last_saved = session.update
    return restored


def _run(session: Session, stop: StopRequest) -> JobResult:
    job = session.job
    hp = job.rc.train_hparams
    keys = seed_keys(job.seeds)
    checkpointer = None
    restored = None
    try:
        if job.resume:
            checkpointer = session.checkpointer = Checkpointer(job.run_dir / rundir.CHECKPOINT_DIR)
            restored = _restore(session, checkpointer, keys)
        # On resume, the original chunk size keeps the plan (and compiled code) the same.
        # A --chunk longer than the run is one chunk of the whole run (and says so).
        chunk = min(
            job.chunk or session.chunk or default_chunk(session.num_updates), session.num_updates
        )
        session.chunk = chunk
        sizes = plan_chunks(session.update, session.num_updates, chunk)
        every = job.checkpoint_every or max(
            chunk, math.ceil(session.num_updates / CHECKPOINTS_PER_RUN)
        )
        _announce(session, sizes, every)
        compiled = _compile(session, keys, sizes or [chunk])
        if restored is not None:
            state = compiled.scatter(restored)
            session.metrics.truncate_after(session.update)
            load_history(session)
            if job.extends is not None:
                _write_config(session)
        else:
            state = compiled.init_states(keys, hp)
            # Nothing is written before the new run has compiled and initialised.
            _start_new(session)
            checkpointer = session.checkpointer = Checkpointer(job.run_dir / rundir.CHECKPOINT_DIR)
            # update 0: there is always a good checkpoint to go back to
            session.save(compiled.gather(state))
        mark_running(session)
        status, exit_code = _chunks(session, stop, compiled, state, sizes, every)
    finally:
        if checkpointer is not None:
            checkpointer.close()
    if session.aside is not None:  # ended before its first chunk: the old run comes back
        _settle(session, started=False)
        return JobResult(status, exit_code, session.update, {})
    summary = finish_files(session, status)
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
    hp = job.rc.train_hparams
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
                kept = (
                    "the new run is discarded"
                    if session.aside is not None
                    else f"the last good checkpoint (update {session.last_saved}) is kept in "
                    f"{job.run_dir / rundir.CHECKPOINT_DIR}"
                )
                print(
                    f"purejaxppo: error: non-finite {bad.what} at update {bad.update} "
                    f"(seed {bad.seed}); stopped: {kept}; "
                    "try a lower hparams.learning_rate or hparams.max_grad_norm",
                    file=session.err,
                    flush=True,
                )
                return "nonfinite", EXIT_NONFINITE
            state = new_state
            _settle(session, started=True)
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
        name = signal.Signals(stop.signum).name
        if session.aside is not None:  # before the first chunk of a run that replaces one
            return "interrupted", EXIT_INTERRUPTED.get(stop.signum, 130)
        session.save(compiled.gather(state))
        print(
            f"purejaxppo: interrupted ({name}) at update {session.update}/{session.num_updates}; "
            f"checkpoint saved. Resume with: purejaxppo train --resume {job.run_dir}",
            file=session.err,
            flush=True,
        )
        return "interrupted", EXIT_INTERRUPTED.get(stop.signum, 130)
    return "completed", 0
