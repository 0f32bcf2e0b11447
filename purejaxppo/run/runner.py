"""Chunked, checkpointed, interruptible training of S seeds (host side).

The pure trainer is split into `init` (compiled once) and `run(state, hparams,
K)` (compiled once per chunk size K, normally one size), both vmapped over the
seed axis. Between chunks the host reports progress, appends to
`metrics.csv`, checks for NaN/inf and writes orbax checkpoints. Chunks give the
same bits as one `jax.jit(jax.vmap(train))` call, and a resumed run the same
bits as an uninterrupted one, because the state carried between chunks is the
whole `TrainState`.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from purejaxppo.config import HParams
from purejaxppo.run import jaxcache, rundir
from purejaxppo.run.checkpoint import Checkpointer, CheckpointError, CheckpointMeta
from purejaxppo.run.config import RunConfig, dump_run_config, run_config_to_dict
from purejaxppo.run.progress import Progress
from purejaxppo.sharding import POP_AXIS, population_map, population_mesh
from purejaxppo.train import METRIC_NAMES, Trainer, TrainState

TARGET_CHUNKS = 25
CHECKPOINTS_PER_RUN = 10
# Metrics that must stay finite: all but the episode statistics (NaN when no episode
# ended) and explained variance (NaN when the returns have zero variance).
CHECKED_METRICS = tuple(
    name
    for name in METRIC_NAMES
    if name not in ("episode_return", "episode_length", "explained_variance")
)
EXIT_INTERRUPTED = {signal.SIGINT: 130, signal.SIGTERM: 143}
EXIT_NONFINITE = 1


# --------------------------------------------------------------------------- chunk plan
def default_chunk(num_updates: int, target_chunks: int = TARGET_CHUNKS) -> int:
    """A chunk size near `num_updates / target_chunks` that divides `num_updates` if possible.

    Picks the divisor closest (in ratio) to the target; only when none lies
    within a factor 4 of it (e.g. a large prime) the target itself is returned,
    and the run then needs a second compiled size for the remainder.
    """
    target = max(1, round(num_updates / target_chunks))
    divisors = [d for d in range(1, num_updates + 1) if num_updates % d == 0]
    best = min(divisors, key=lambda d: abs(math.log(d / target)))
    return best if max(best / target, target / best) <= 4 else target


def plan_chunks(start: int, total: int, chunk: int) -> list[int]:
    """Chunk sizes covering updates `start .. total`: full chunks, then the remainder."""
    remaining = total - start
    sizes = [chunk] * (remaining // chunk)
    if remaining % chunk:
        sizes.append(remaining % chunk)
    return sizes


def describe_plan(sizes: Sequence[int]) -> str:
    """`16 x 61 updates` or `25 x 400 + 1 x 7 updates (2 compiled sizes)`."""
    if not sizes:
        return "nothing left to run"
    parts = []
    for size in dict.fromkeys(sizes):
        parts.append(f"{sizes.count(size)} x {size}")
    text = " + ".join(parts) + " updates"
    distinct = len(set(sizes))
    return text + (f" ({distinct} compiled sizes)" if distinct > 1 else " (one compiled size)")


# --------------------------------------------------------------------------- compiled functions
def seed_keys(seeds: Sequence[int]) -> jax.Array:
    """Typed PRNG keys `[S]`: member i is `jax.random.key(seeds[i])`."""
    return jnp.stack([jax.random.key(int(s)) for s in seeds])


class Compiled(NamedTuple):
    """Ahead-of-time compiled, seed-vmapped functions.

    `init(keys [S], hparams) -> TrainState [S]`;
    `run[K](state [S], hparams) -> (state [S], metrics {name: [S, K]})`.
    `place(tree, batched)` puts host or device arrays where the compiled code
    expects them: split over `devices` along the seed axis when `batched`,
    replicated otherwise (a restored checkpoint, the hyperparameters).
    """

    init: Callable[[jax.Array, HParams], TrainState] | None
    run: dict[int, Callable[[TrainState, HParams], tuple[TrainState, dict[str, jax.Array]]]]
    state_shape: TrainState
    compile_time_s: float
    devices: int
    place: Callable[[Any, bool], Any]


def _vmapped_run(trainer: Trainer, num_updates: int, state: TrainState, hparams: HParams):
    return jax.vmap(functools.partial(trainer.run, num_updates=num_updates), (0, None))(
        state, hparams
    )


def _add_axis(tree: Any) -> Any:
    return jax.tree.map(lambda x: x[None], tree)


def _drop_axis(tree: Any) -> Any:
    return jax.tree.map(lambda x: x[0], tree)


def _single_init(trainer: Trainer, keys: jax.Array, hparams: HParams) -> TrainState:
    return _add_axis(trainer.init(keys[0], hparams))


def _single_run(trainer: Trainer, num_updates: int, state: TrainState, hparams: HParams):
    return _add_axis(trainer.run(_drop_axis(state), hparams, num_updates))


def seed_devices(num_seeds: int, num_devices: int | None = None) -> int:
    """Local devices the seed axis is split over: the most (up to `num_devices`,
    default all local devices) that divide `num_seeds` evenly, so no seed is padded."""
    available = len(jax.local_devices()) if num_devices is None else num_devices
    return max(d for d in range(1, min(num_seeds, available) + 1) if num_seeds % d == 0)


def _placer(mesh: Mesh | None) -> Callable[[Any, bool], Any]:
    def place(tree: Any, batched: bool) -> Any:
        if mesh is None:
            return tree
        spec = P(POP_AXIS) if batched else P()
        return jax.device_put(tree, NamedSharding(mesh, spec))

    return place


def _with_sharding(tree: Any, sharding: NamedSharding | None) -> Any:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def compile_trainer(
    trainer: Trainer,
    hparams: HParams,
    keys: jax.Array,
    chunk_sizes: Sequence[int],
    with_init: bool = True,
    num_devices: int | None = None,
) -> Compiled:
    """Lower and compile `init` (unless `with_init` is off: a resume restores the state)
    and one `run` per distinct chunk size, timed.

    With several seeds the functions are vmapped over the seed axis, giving the
    bits of `jax.jit(jax.vmap(train, (0, None)))(keys, hparams)`; the seed axis
    is split over `seed_devices(S, num_devices)` local devices (on a CPU, one
    host device per core: `purejaxppo.run.devices`), each running the vmap of
    its own seeds, which gives the same bits. With one seed they are not
    vmapped, only given a leading axis of size 1 at the boundary (XLA:CPU
    compiles a size-1 vmap differently), so a one-seed run has exactly the bits
    of `jax.jit(make_train(cfg))(key, hparams)`.
    """
    start = time.perf_counter()
    num_seeds = keys.shape[0]
    used = seed_devices(num_seeds, num_devices) if num_seeds > 1 else 1
    mesh = population_mesh(jax.local_devices()[:used]) if used > 1 else None
    place = _placer(mesh)
    keys, hparams = place(keys, True), place(hparams, False)
    if mesh is not None:
        init_fn = population_map(trainer.init, mesh, (True, False))

        def run_fn(size: int) -> Callable[..., Any]:
            member = functools.partial(trainer.run, num_updates=size)
            return population_map(member, mesh, (True, False))

    else:
        if num_seeds == 1:
            init_fn = jax.jit(functools.partial(_single_init, trainer))
            run_impl = _single_run
        else:
            init_fn = jax.jit(jax.vmap(trainer.init, (0, None)))
            run_impl = _vmapped_run

        def run_fn(size: int) -> Callable[..., Any]:
            return jax.jit(functools.partial(run_impl, trainer, size))

    sharding = NamedSharding(mesh, P(POP_AXIS)) if mesh is not None else None
    state_shape = _with_sharding(jax.eval_shape(init_fn, keys, hparams), sharding)
    # Trace and lower here (Python, one at a time); XLA compiles the programs in
    # parallel threads (it releases the GIL), so the init and the chunk programs
    # cost the longest of their compile times, not the sum.
    lowered: dict[Any, Any] = {
        size: run_fn(size).lower(state_shape, hparams) for size in sorted(set(chunk_sizes))
    }
    if with_init:
        lowered["init"] = init_fn.lower(keys, hparams)
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(lowered)) as pool:
        done = dict(
            zip(lowered, pool.map(lambda low: low.compile(), lowered.values()), strict=True)
        )
    init = done.pop("init", None)
    return Compiled(init, done, state_shape, time.perf_counter() - start, used, place)


# --------------------------------------------------------------------------- signals
class StopRequest:
    """SIGINT/SIGTERM handling: the first signal asks to stop after the current chunk,
    a second one abandons it (raises `KeyboardInterrupt`)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        del frame
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _wait(tree: Any) -> None:
    """Block until `tree` is computed, in short sleeps so signals are handled promptly."""
    leaves = [x for x in jax.tree.leaves(tree) if hasattr(x, "is_ready")]  # not typed keys
    while not all(x.is_ready() for x in leaves):
        time.sleep(0.01)


# --------------------------------------------------------------------------- NaN checks
class NonFinite(NamedTuple):
    """Where training blew up: 1-based update number, seed, and what was not finite."""

    update: int
    seed: int
    what: str


def find_nonfinite(
    first_update: int,
    seeds: Sequence[int],
    metrics: dict[str, np.ndarray],
    params: Any,
) -> NonFinite | None:
    """The first update (and seed) of a chunk with a NaN/inf loss metric or parameter.

    Args:
      first_update: update number of the chunk's first row.
      seeds: the seed of each member.
      metrics: `{name: [S, K]}` host arrays.
      params: parameters after the chunk, leaves `[S, ...]`.
    """
    first: NonFinite | None = None
    for name in CHECKED_METRICS:
        bad = ~np.isfinite(metrics[name])  # [S, K]
        if bad.any():
            s, k = np.argwhere(bad)[np.argmin(np.argwhere(bad)[:, 1])]
            hit = NonFinite(first_update + int(k), int(seeds[s]), name)
            if first is None or hit.update < first.update:
                first = hit
    if first is not None:
        return first
    num_updates = next(iter(metrics.values())).shape[1]
    for leaf in jax.tree.leaves(jax.device_get(params)):
        bad_seeds = ~np.isfinite(np.reshape(leaf, (leaf.shape[0], -1))).all(axis=1)
        if bad_seeds.any():
            s = int(np.argmax(bad_seeds))
            return NonFinite(first_update + num_updates - 1, int(seeds[s]), "parameters")
    return None


# --------------------------------------------------------------------------- the run
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


class JobResult(NamedTuple):
    """How a job ended: `status` is completed / interrupted / nonfinite; `exit_code` for the CLI."""

    status: str
    exit_code: int
    update: int
    summary: dict[str, Any]


def _mean_recent_return(history: list[np.ndarray]) -> tuple[float, float]:
    """Mean and std over seeds of each seed's mean return over its last 10 finite updates."""
    if not history:
        return float("nan"), float("nan")
    returns = np.concatenate(history, axis=1)  # [S, U]
    per_seed = []
    for row in returns:
        finite = row[np.isfinite(row)][-10:]
        if finite.size:
            per_seed.append(float(finite.mean()))
    if not per_seed:
        return float("nan"), float("nan")
    return float(np.mean(per_seed)), float(np.std(per_seed))


class _Session:
    """State of one `run_job` call (kept out of function locals so helpers stay small)."""

    def __init__(self, job: Job, out: TextIO, err: TextIO) -> None:
        self.job, self.out, self.err = job, out, err
        cfg = job.rc.ppo
        self.num_updates = cfg.num_updates
        self.batch_size = cfg.batch_size
        self.checkpointer: Checkpointer | None = None
        self.metrics = rundir.MetricsLog(job.run_dir / rundir.METRICS_FILE, METRIC_NAMES)
        self.returns: list[np.ndarray] = []  # this session's [S, K] chunks
        self.train_time_s = 0.0  # all sessions, compilation excluded
        self.session_time_s = 0.0
        self.update = 0
        self.last_saved = -1
        self.chunk = 0
        self.compile_time_s = 0.0
        self.cache_info = ""
        self.wall_start = time.perf_counter()
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
        )

    def save(self, state: TrainState) -> None:
        if self.last_saved == self.update:
            return
        assert self.checkpointer is not None
        self.checkpointer.save(state, self.meta())
        self.last_saved = self.update


def _start_new(session: _Session) -> None:
    job = session.job
    rundir.create_run_dir(job.run_dir, job.overwrite)
    header = "# Fully resolved config of this run (purejaxppo train).\n"
    rundir.atomic_write_text(job.run_dir / rundir.CONFIG_FILE, header + dump_run_config(job.rc))
    session.metrics.start()


def _compile(session: _Session, keys: jax.Array, sizes: Sequence[int]) -> Compiled:
    configured = jax.config.jax_compilation_cache_dir
    cache = Path(configured) if configured else None
    before = jaxcache.count_entries(cache)
    job = session.job
    compiled = compile_trainer(job.trainer, job.rc.hparams, keys, sizes, with_init=not job.resume)
    new = jaxcache.count_entries(cache) - before
    if cache is None:
        session.cache_info = "compilation cache off"
    elif new == 0:
        session.cache_info = f"loaded from the compilation cache {cache}"
    else:
        session.cache_info = f"{new} new entries in the compilation cache {cache}"
    session.compile_time_s = compiled.compile_time_s
    split = f"; seeds split over {compiled.devices} devices" if compiled.devices > 1 else ""
    session.say(f"compiled in {compiled.compile_time_s:.1f} s ({session.cache_info}){split}")
    return compiled


def _summary(session: _Session, status: str, wall_start: float) -> dict[str, Any]:
    job = session.job
    columns = rundir.read_metrics(job.run_dir / rundir.METRICS_FILE)
    returns = rundir.metrics_matrix(columns, "episode_return", job.seeds)
    steps = session.update * session.batch_size
    stats = rundir.final_and_best(returns) if returns.size else {}
    expected = job.rc.expected_return
    final = stats.get("final_return")
    return {
        "status": status,
        "env_name": job.rc.ppo.env_name,
        "seeds": list(job.seeds),
        "updates_done": session.update,
        "num_updates": session.num_updates,
        "env_steps_per_seed": steps,
        **stats,
        "expected_return": expected,
        "reached_expected_return": (
            None if expected is None or final is None else bool(final >= expected)
        ),
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
        "session_wall_time_s": round(time.perf_counter() - wall_start, 3),
        "versions": rundir.versions(),
        "device": rundir.device_description(),
    }


def _finish_files(session: _Session, status: str, wall_start: float) -> dict[str, Any]:
    """Write summary.json and curve.png for the rows written so far."""
    from purejaxppo.run.plots import plot_curve

    job = session.job
    summary = _summary(session, status, wall_start)
    columns = rundir.read_metrics(job.run_dir / rundir.METRICS_FILE)
    returns = rundir.metrics_matrix(columns, "episode_return", job.seeds)
    if returns.size:
        steps = np.arange(1, returns.shape[1] + 1) * session.batch_size
        seeds = len(job.seeds)
        title = f"{job.rc.ppo.env_name}: PPO, {seeds} seed{'s' if seeds != 1 else ''}"
        summary["curve_smoothing_updates"] = plot_curve(
            job.run_dir / rundir.CURVE_FILE, steps, returns, title, job.rc.expected_return
        )
    rundir.write_summary(job.run_dir / rundir.SUMMARY_FILE, summary)
    return summary


def run_job(job: Job, out: TextIO | None = None, err: TextIO | None = None) -> JobResult:
    """Train `job` to `total_timesteps` (or until stopped); see the module docstring.

    SIGINT/SIGTERM are handled from the start: the first stops after the current
    step (compilation or chunk) with a checkpoint, a second abandons the chunk.
    """
    out, err = out or sys.stdout, err or sys.stderr
    session = _Session(job, out, err)
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


def _run(session: _Session, stop: StopRequest) -> JobResult:
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
        saved_chunk = checkpointer.read_meta(latest).chunk
    else:
        _start_new(session)
        checkpointer = Checkpointer(job.run_dir / rundir.CHECKPOINT_DIR)
        saved_chunk = 0
    session.checkpointer = checkpointer
    try:
        # On resume, the original chunk size keeps the plan (and compiled code) the same.
        chunk = job.chunk or saved_chunk or default_chunk(session.num_updates)
        session.chunk = chunk
        sizes = plan_chunks(session.update, session.num_updates, chunk)
        every = job.checkpoint_every or max(
            chunk, math.ceil(session.num_updates / CHECKPOINTS_PER_RUN)
        )
        _announce(session, sizes, every)
        compiled = _compile(session, keys, sizes or [chunk])
        if job.resume:
            # Restored straight onto the compiled program's devices (the shape carries them).
            state, meta = checkpointer.restore(session.update, compiled.state_shape)
            session.train_time_s = float(meta.train_time_s)
            session.last_saved = session.update
            session.metrics.truncate_after(session.update)
        else:
            assert compiled.init is not None
            state = compiled.init(compiled.place(keys, True), compiled.place(hp, False))
            session.save(state)  # update 0: there is always a good checkpoint to go back to
        status, exit_code = _chunks(session, stop, compiled, state, sizes, every)
    finally:
        checkpointer.close()
    summary = _finish_files(session, status, wall_start)
    if status == "completed":
        _report_done(session, summary)
    return JobResult(status, exit_code, session.update, summary)


def _announce(session: _Session, sizes: Sequence[int], every: int) -> None:
    job = session.job
    seeds_text = ", ".join(str(s) for s in job.seeds)
    plural = "s" if len(job.seeds) != 1 else ""
    session.say(
        f"{'resuming' if job.resume else 'training'} {job.rc.ppo.env_name}: "
        f"{len(job.seeds)} seed{plural} ({seeds_text}), "
        f"{session.num_updates} updates x {session.batch_size} steps "
        f"= {session.num_updates * session.batch_size:,} steps per seed"
    )
    session.say(f"run folder: {job.run_dir}")
    if job.resume:
        session.say(f"continuing from the checkpoint at update {session.update}")
    session.say(
        f"chunks: {describe_plan(sizes)}; checkpoint every {every} updates "
        f"on {jax.devices()[0].platform}"
    )


def _chunks(
    session: _Session,
    stop: StopRequest,
    compiled: Compiled,
    state: TrainState,
    sizes: Sequence[int],
    every: int,
) -> tuple[str, int]:
    """Run the chunks; return `(status, exit_code)`. The last good state is checkpointed."""
    job = session.job
    hp = compiled.place(job.rc.hparams, False)
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
            new_state, metrics = compiled.run[size](state, hp)
            _wait((new_state, metrics))
            metrics = {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}
            first = session.update + 1
            bad = find_nonfinite(first, job.seeds, metrics, new_state.params)
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
            mean, std = _mean_recent_return(session.returns)
            progress.update(session.update, session.session_time_s, mean, std)
            _note_expected(session)
            if since_save >= every or session.update == session.num_updates:
                session.save(state)
                since_save = 0
    if stop.signum is not None and session.update < session.num_updates:
        session.save(state)
        name = signal.Signals(stop.signum).name
        print(
            f"purejaxppo: interrupted ({name}) at update {session.update}/{session.num_updates}; "
            f"checkpoint saved. Resume with: purejaxppo train --resume {job.run_dir}",
            file=session.err,
            flush=True,
        )
        return "interrupted", EXIT_INTERRUPTED.get(stop.signum, 130)
    return "completed", 0


def _note_expected(session: _Session) -> None:
    """Record the first chunk end at which the seeds' windowed return reaches
    `expected_return` (the time to solve, compilation included)."""
    expected = session.job.rc.expected_return
    if session.reached is not None or expected is None:
        return
    returns = np.concatenate(session.returns, axis=1)  # [S, updates so far]
    value = rundir.recent_mean(returns, rundir.final_window(session.num_updates))
    if math.isfinite(value) and value >= expected:
        session.reached = {
            "update": session.update,
            "env_steps_per_seed": session.update * session.batch_size,
            "return": round(value, 3),
            "wall_time_s": round(time.perf_counter() - session.wall_start, 3),
            "wall_time_counts": (
                "seconds from the start of this session (compilation, checkpoints and "
                "file writes included) to the end of the chunk that reached it"
                + ("; this session resumed a run" if session.job.resume else "")
            ),
        }


def _report_done(session: _Session, summary: dict[str, Any]) -> None:
    final, std = summary.get("final_return"), summary.get("final_return_std")
    expected = summary.get("expected_return")
    final_text = "n/a" if final is None else f"{final:.2f}"
    if final is not None and std and len(session.job.seeds) > 1:
        final_text += f" ± {std:.2f}"
    verdict = ""
    if expected is not None and final is not None:
        reached = "reached" if summary["reached_expected_return"] else "NOT reached"
        verdict = f" (expected {expected:g}: {reached})"
    reached = session.reached
    if reached is not None:
        verdict += (
            f"; first reached at update {reached['update']} "
            f"({reached['env_steps_per_seed']:,} steps/seed), {reached['wall_time_s']:.1f} s "
            "after start incl. compilation"
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
