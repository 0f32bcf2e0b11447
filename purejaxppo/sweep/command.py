"""The work of `purejaxppo sweep` (its parsing is `purejaxppo.sweep.cli`): take the output
folder, train every static group's members that no chunk file holds, chunk by chunk, and
report (host side). See `purejaxppo.sweep.cli` for the folder's layout and the guarantees.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import jax
import numpy as np

from purejaxppo.run import jaxcache, outdir
from purejaxppo.run.guards import raise_if_interrupted
from purejaxppo.run.progress import count
from purejaxppo.run.rundir import RunDirError
from purejaxppo.sharding import (
    DistributedArgs,
    barrier,
    default_members_per_device,
    initialize_distributed,
    member_groups,
    population_mesh,
)
from purejaxppo.sweep.population import Population, StaticGroup
from purejaxppo.sweep.progress import ProgressBar
from purejaxppo.sweep.report import format_top, write_report
from purejaxppo.sweep.results import summarize
from purejaxppo.sweep.runner import (
    DEFAULT_SEGMENT_UPDATES,
    GroupRunner,
    check_groups_fit,
    chunk_bounds,
    plan_width,
)
from purejaxppo.sweep.spec import SweepSpec, load_sweep
from purejaxppo.sweep.store import (
    MANIFEST,
    FolderState,
    SweepError,
    check_manifest,
    chunk_path,
    collect_results,
    default_out,
    manifest_for,
    merge_parts,
    prepare_folder,
    scan_folder,
    seed_range,
    write_chunk,
    write_manifest,
)
from purejaxppo.sweep.strategy import strategy_module
from purejaxppo.train import make_trainer


@dataclasses.dataclass
class _Sweep:
    """What the steps of one `purejaxppo sweep` run share.

    Attributes:
      args: the command line.
      population: the members; groups: their static groups.
      out: the output folder; manifest: its `sweep.json` record (updated as
        group widths are fixed).
      max_batch, segment: the cap on the members per device (None: fit to memory)
        and the updates per device call, as given or recorded.
      pid, nproc: this process and the number of processes.
      mesh: the device mesh of the population axis.
      stream: where process 0 prints.
      spec: the sweep file (its strategy and settings, the search space).
      width: the members per device asked for (`--members-per-device`, recorded).
      widths: group index (str) -> its balanced members per device, as recorded in
        the manifest (so a rerun keeps the per-device program).
      folder: the members that chunk files already hold, what each group has left.
      planned: group index -> members per device expected before planning (progress total).
    """

    args: argparse.Namespace
    population: Population
    out: Path
    manifest: dict[str, Any]
    max_batch: int | None
    segment: int
    pid: int
    nproc: int
    mesh: Any
    stream: TextIO
    spec: SweepSpec | None = None
    groups: tuple[StaticGroup, ...] = dataclasses.field(init=False)
    width: int = dataclasses.field(init=False)
    widths: dict[str, int] = dataclasses.field(init=False)
    folder: FolderState = dataclasses.field(init=False)
    planned: dict[int, int] = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.groups = self.population.groups()
        self.width = int(self.manifest["members_per_device"])
        cap = min(self.width, self.max_batch or self.width)
        # members per device of each group: recorded in the manifest so reruns keep it
        self.widths = dict(self.manifest.get("widths", {}))
        self.folder = scan_folder(self.out, self.population, self.groups)
        left = {g: len(members) for g, members in self.folder.pending.items()}
        self.planned = {
            g: self.widths.get(str(g)) or member_groups(max(1, n), cap)[1] for g, n in left.items()
        }

    def group_mesh(self, g: int) -> Any:
        """The mesh group `g` runs on: every device, or in one process no more devices than
        it has groups of members (the others would only run padding)."""
        n = len(self.folder.pending[g])
        groups = member_groups(max(1, n), self.widths.get(str(g)) or self.planned[g])[0]
        if self.nproc > 1 or groups >= self.mesh.devices.size:
            return self.mesh
        return population_mesh(list(self.mesh.devices.flat)[:groups])

    @property
    def lead(self) -> bool:
        """Process 0: writes the manifest, merges parts, reports and prints."""
        return self.pid == 0

    def say(self, text: str) -> None:
        """Print a line (process 0 only)."""
        if self.lead:
            print(text, file=self.stream, flush=True)

    def save_manifest(self) -> None:
        """Write `sweep.json` (process 0 only)."""
        if self.lead:
            write_manifest(self.out, self.manifest)


def run_sweep(args: argparse.Namespace, out_stream: TextIO, err_stream: TextIO) -> int:
    """Check, load, take the folder, train every group's pending chunks, report (process 0)."""
    _check_flags(args)
    _start_processes(args)
    spec, population = _load(args)
    check_groups_fit(population.groups())  # before the folder is touched
    out = Path(args.out) if args.out else default_out(args.sweep)
    pid, nproc = jax.process_index(), jax.process_count()
    if spec.strategy != "grid" and nproc > 1:
        raise SweepError(
            f"{args.sweep}: strategy: {spec.strategy} runs in one process (on all its devices); "
            "run it without --distributed"
        )
    with _take_folder(out, pid, nproc):
        out, old, max_batch, segment = _open_folder(args, spec, out)
        width = args.members_per_device or (old or {}).get("members_per_device")
        manifest = manifest_for(
            spec.to_dict(), max_batch, segment, old, width or default_members_per_device("sweep")
        )
        if spec.strategy != "grid" and old is not None and old["spec"] != manifest["spec"]:
            raise SweepError(  # an adaptive sweep's members depend on each other: no reuse
                f"--out {out}: holds a {spec.strategy} sweep with other seeds; a {spec.strategy} "
                "sweep cannot add or drop seeds: rerun it as it was or use another --out"
            )
        jaxcache.enable()
        if pid == 0:
            notes = prepare_folder(out, Path(args.sweep), manifest, old, population, args.set)
            for note in notes:
                print(f"purejaxppo sweep: {note}", file=out_stream, flush=True)
        barrier("purejaxppo-sweep-start")
        mesh = population_mesh()
        s = _Sweep(
            args, population, out, manifest, max_batch, segment, pid, nproc, mesh, out_stream, spec
        )
        _announce(s, old)
        if spec.strategy != "grid":
            strategy_module(spec.strategy).run_strategy(s, err_stream)
            return 0
        bar = _progress_bar(s, err_stream)
        for g in s.groups:
            _run_group(s, g, bar)
        raise_if_interrupted()
        barrier("purejaxppo-sweep-done")
        if s.lead:  # results: process 0
            _report(s)
    return 0


@contextlib.contextmanager
def _take_folder(out: Path, pid: int, nproc: int) -> Iterator[None]:
    """Process 0 holds the folder's lock (`purejaxppo.run.outdir.FolderLock`) for the whole
    sweep, after checking that it is empty or a sweep's; every process learns whether it got
    it, so a refused sweep stops everywhere at once."""
    lock, error = None, None
    if pid == 0:
        try:
            outdir.check_out(out, "sweep", resume=True)
            lock = outdir.FolderLock(out, "sweep")
            outdir.check_out(out, "sweep", resume=True)  # again, under the lock
            if out.is_dir():
                outdir.check_writable(out)
        except RunDirError as err:
            if lock is not None:
                lock.release()
            lock, error = None, err
    if nproc > 1:
        from jax.experimental import multihost_utils

        got = int(multihost_utils.broadcast_one_to_all(np.int32(error is None)))
        if not got and error is None:
            error = SweepError(f"--out {out}: process 0 could not take the folder (its error)")
    if error is not None:
        raise error
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def _check_flags(args: argparse.Namespace) -> None:
    """`--members-per-device`, `--max-batch`, `--segment-updates` and `--top` are positive
    when given."""
    for name in ("members_per_device", "max_batch", "segment_updates", "top"):
        value = getattr(args, name)
        if value is not None and value < 1:
            flag = "--" + name.replace("_", "-")
            raise SweepError(f"{flag}: expected a positive integer, got {value}")


def _start_processes(args: argparse.Namespace) -> None:
    """Join a multi-process run if asked (flags or environment)."""
    try:
        dist = DistributedArgs.from_env(
            args.coordinator, args.num_processes, args.process_id, args.distributed
        ).validate()
    except ValueError as err:
        raise SweepError(str(err)) from None
    # before anything touches a device (validating HParams does): JAX's own runtime
    initialize_distributed(dist)


def _load(args: argparse.Namespace) -> tuple[SweepSpec, Population]:
    """The sweep file and its population; every group's trainer is checked to build."""
    spec = load_sweep(args.sweep, args.set)
    population = spec.population()
    for g in population.groups():  # env construction and network checks, before any output
        try:
            make_trainer(g.config)
        except ValueError as err:
            where = "" if len(population.groups()) == 1 else f" (group {g.label()})"
            raise SweepError(f"{args.sweep}{where}: {str(err).splitlines()[0]}") from None
    return spec, population


def _open_folder(
    args: argparse.Namespace, spec: SweepSpec, out: Path
) -> tuple[Path, dict[str, Any] | None, int | None, int]:
    """`(out, old manifest or None, max_batch, segment)`; refuses a folder of another sweep."""
    old = check_manifest(out / MANIFEST, spec.to_dict())
    if old is not None:
        for name, flag in (
            ("members_per_device", "--members-per-device"),
            ("max_batch", "--max-batch"),
            ("segment_updates", "--segment-updates"),
        ):
            given = getattr(args, name)
            if given is not None and old.get(name) is not None and given != old[name]:
                raise SweepError(
                    f"{flag}: the sweep in {out} was started with {flag} {old[name]}, "
                    f"got {given}; "
                    f"rerun with {flag} {old[name]} or use another --out"
                )
    max_batch = args.max_batch if args.max_batch is not None else (old or {}).get("max_batch")
    segment = args.segment_updates or (old or {}).get("segment_updates") or DEFAULT_SEGMENT_UPDATES
    return out, old, max_batch, segment


def _announce(s: _Sweep, old: dict[str, Any] | None) -> None:
    """What runs where, members reused after a change of seeds, the static groups."""
    pop = s.population
    s.say(
        f"sweep {s.args.sweep}: {count(len(pop.sets), 'hyperparameter set')} x "
        f"{count(len(pop.seeds), 'seed')} = {count(pop.size, 'member')} on "
        f"{count(s.mesh.devices.size, jax.devices()[0].platform + ' device')}"
        + (f" in {s.nproc} processes" if s.nproc > 1 else "")
        + f" -> {s.out}"
    )
    if old is not None and old["spec"] != s.manifest["spec"]:
        s.say(
            f"seeds changed ({seed_range(old['spec'])} -> {seed_range(s.manifest['spec'])}): "
            f"{s.folder.done_members} of {count(pop.size, 'member')} already trained"
            + (", reused as they are" if s.folder.done_members else "")
        )
    if len(s.groups) > 1:
        static = sorted({k for g in s.groups for k, _ in g.values})
        s.say(
            f"{len(s.groups)} static groups (different {', '.join(static)}): each compiles once "
            "and they run in turn"
        )


def _progress_bar(s: _Sweep, err_stream: TextIO) -> ProgressBar:
    """The progress bar over all planned chunks, counting those already on disk."""
    done = s.folder.done_chunks
    total_chunks = done + sum(_chunk_count(s, g) for g in s.folder.pending)
    bar = ProgressBar(
        s.population.size, total_chunks, err_stream, s.lead and not s.args.no_progress
    )
    bar.resume(s.folder.done_members, done)
    if done:
        s.say(f"resuming: {done}/{total_chunks} chunks already done, skipping them")
    return bar


def _run_group(s: _Sweep, g: StaticGroup, bar: ProgressBar) -> None:
    """Train a static group's members that no chunk file holds, in new chunks (compiling
    once), writing each when done."""
    label = f"group {g.index + 1}/{len(s.groups)} ({g.label()})"
    pending = s.folder.pending[g.index]
    if not pending:
        s.say(f"{label}: all {count(len(g.members), 'member')} done")
        return
    runner = None
    if str(g.index) not in s.widths:
        runner = _fix_width(s, g, bar)
    width = s.widths[str(g.index)]
    if runner is None:
        runner = GroupRunner(g.config, width, s.group_mesh(g.index), s.segment)
    bounds = chunk_bounds(len(pending), runner.chunk_size)
    compile_s = runner.compile()
    bar.exclude(compile_s)
    done = len(g.members) - len(pending)
    s.say(
        f"{label}: {count(len(pending), 'member')} in {count(len(bounds), 'chunk')} of "
        f"{runner.chunk_size} ({width} per device), "
        f"{g.config.num_updates} updates each" + (f" ({done} already done)" if done else "")
        + f"; compiled once in {compile_s:.1f}s"
    )  # fmt: skip
    first = s.folder.next_chunk[g.index]
    for i, (lo, hi) in enumerate(bounds):
        raise_if_interrupted()
        _train_chunk(s, g, first + i, pending[lo:hi], runner, compile_s, bar, label)


def _chunk_count(s: _Sweep, g: int) -> int:
    """Chunks group `g`'s pending members take at its (planned) width: one group per device
    of its mesh per chunk."""
    n = len(s.folder.pending[g])
    if not n:
        return 0
    groups = member_groups(n, s.widths.get(str(g)) or s.planned[g])[0]
    return -(-groups // s.group_mesh(g).devices.size)


def _fix_width(s: _Sweep, g: StaticGroup, bar: ProgressBar) -> GroupRunner | None:
    """Choose a group's members per device (the same in every process) and record it in
    the manifest: the balanced width of `--members-per-device` capped by `--max-batch`,
    or, without `--max-batch`, by what fits in one device's memory.

    Returns the runner compiled while planning, if it has that width.
    """
    runner = None
    before = _chunk_count(s, g.index)
    left = len(s.folder.pending[g.index])
    if s.max_batch is None:
        width, runner = plan_width(g.config, left, s.width, s.segment, s.group_mesh(g.index))
        if s.nproc > 1:  # every process must use the same layout
            from jax.experimental import multihost_utils

            width = int(multihost_utils.broadcast_one_to_all(np.int32(width)))
            if runner.width != width:
                runner = None
    else:
        width = s.planned[g.index]
    s.widths[str(g.index)] = width
    if runner is not None and runner.mesh.devices.size != s.group_mesh(g.index).devices.size:
        runner = None  # a narrower width than planned: more groups, more devices
    bar.total_chunks += _chunk_count(s, g.index) - before
    s.manifest["widths"] = s.widths
    s.save_manifest()
    return runner


def _train_chunk(
    s: _Sweep,
    g: StaticGroup,
    c: int,
    members: Sequence[int],
    runner: GroupRunner,
    compile_s: float,
    bar: ProgressBar,
    label: str,
) -> None:
    """Train `members` as chunk `c` of group `g` and write its file, naming each row by
    `(set, seed)` (processes' parts merged by process 0)."""
    ids = np.asarray(members, np.int64)
    n = len(members)
    total = g.config.num_updates
    res = runner.run_chunk(
        s.population.seeds_of(ids),
        s.population.hparams_of(ids),
        lambda k, n=n, total=total, label=label: bar.update(n, k / total, label),
    )
    info = {"run_s": res.run_s, "compile_s": compile_s, "devices": s.mesh.devices.size}
    named = [(m.set_index, m.seed) for m in map(s.population.member, ids[res.rows].tolist())]
    part = None if s.nproc == 1 else s.pid  # several processes: each writes its part
    write_chunk(chunk_path(s.out, g.index, c, part), np.array(named), res.metrics, **info)
    if s.nproc > 1:
        barrier(f"purejaxppo-sweep-g{g.index}-c{c}")
        if s.lead:
            merge_parts(s.out, g.index, c, s.nproc)
    bar.chunk_done(n, label, res.run_s)


def _report(s: _Sweep) -> None:
    """Process 0: read every chunk, write the report files, print the best sets."""
    results, curves = collect_results(s.out, s.population)
    summary = summarize(results, s.population)
    files = write_report(s.out, s.population, results, summary, curves)
    if not getattr(s.args, "no_tensorboard", False):
        from purejaxppo.sweep.tensorboard_sets import write_sweep_tensorboard

        files.append(write_sweep_tensorboard(s.out, s.population))
    s.say(format_top(summary, s.population, s.args.top))
    s.say("wrote " + ", ".join(str(f) for f in files))
