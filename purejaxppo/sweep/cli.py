"""`purejaxppo sweep SWEEP.yaml`: run a population, resumably, and report (host side).

    purejaxppo sweep configs/sweeps/cartpole_lr.yaml [--out DIR] [--max-batch N]
        [--coordinator HOST:PORT --num-processes N --process-id I | --distributed]

The output folder holds:

    sweep.json        what is being swept (refuses a changed SWEEP.yaml on rerun)
    SWEEP.yaml        a copy of the sweep file as first run
    chunks/gGG-cCCCC.npz   one per finished chunk (written atomically)
    results.csv summary.csv best.yaml curves.png sensitivity.png

Re-running the same command skips finished chunks, so a killed sweep loses at
most the chunk in flight. With several processes, each writes the rows its
devices trained (`gGG-cCCCC.pPPP.npz`) and process 0 merges them; the output
folder must then be on a filesystem every process sees.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
MANIFEST = "sweep.json"
MANIFEST_FORMAT = 1
CHUNK_DIR = "chunks"
MEMORY_FRACTION = 0.7  # of a device's memory a chunk may plan to use
LOG_EVERY_S = 30.0  # not on a terminal: a progress line at most this often inside a chunk


class SweepError(ValueError):
    """Bad sweep input or output folder; `str(err)` is the one-line message."""


# =========================================================================== argparse
def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `sweep` subcommand to the `purejaxppo` parser's subparsers (sets `func=run`)."""
    p = subparsers.add_parser(
        "sweep",
        help="run a hyperparameter sweep (hparam sets x seeds) and rank the sets",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("sweep", help="SWEEP.yaml: base config, search space, seeds")
    p.add_argument("--out", default=None, help="output folder (default runs/sweeps/NAME)")
    p.add_argument(
        "--max-batch",
        type=int,
        default=None,
        help="members per chunk (one compiled shape; default: as many as fit in device memory)",
    )
    p.add_argument(
        "--segment-updates",
        type=int,
        default=None,
        help="PPO updates per device call (default 32; progress and metrics arrive per segment)",
    )
    p.add_argument("--top", type=int, default=5, help="sets to print and plot (default 5)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("several processes (hosts); see docs/sweeps.md")
    g.add_argument("--coordinator", default=None, help="HOST:PORT of process 0")
    g.add_argument("--num-processes", type=int, default=None, help="processes in the run")
    g.add_argument("--process-id", type=int, default=None, help="this process's rank")
    g.add_argument(
        "--distributed",
        action="store_true",
        help="join a multi-process run detected by JAX (SLURM, Open MPI, TPU pod, ...)",
    )
    p.set_defaults(func=run)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m purejaxppo.sweep.cli ...`: the `sweep` subcommand on its own."""
    from purejaxppo.run.devices import use_all_cores

    use_all_cores()
    parser = argparse.ArgumentParser(prog="purejaxppo")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def run(args: argparse.Namespace) -> int:
    """Run the sweep described by `args`; returns the exit status (2: bad input)."""
    from purejaxppo.run.config import ConfigError

    try:
        return _run(args, sys.stdout, sys.stderr)
    except (ConfigError, SweepError) as err:
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"purejaxppo sweep: error: {text}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(
            "purejaxppo sweep: interrupted; finished chunks are kept, rerun the command to resume",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_INTERRUPTED


# =========================================================================== folder
def default_out(sweep_path: str | Path) -> Path:
    """`runs/sweeps/<SWEEP file stem>`."""
    return Path("runs") / "sweeps" / Path(sweep_path).stem


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: data}


def manifest_for(spec_dict: dict[str, Any], max_batch: int | None, segment: int) -> dict[str, Any]:
    """The folder's record of what it holds; any difference on rerun is refused."""
    return {
        "format": MANIFEST_FORMAT,
        "spec": spec_dict,
        "max_batch": max_batch,
        "segment_updates": segment,
        "chunk_sizes": {},
    }


def check_manifest(path: Path, spec_dict: dict[str, Any]) -> dict[str, Any] | None:
    """The existing manifest, or None; raises `SweepError` if it holds a different sweep."""
    if not path.exists():
        return None
    try:
        old = json.loads(path.read_text())
        old_spec = old["spec"]
    except (OSError, ValueError, KeyError, TypeError):
        raise SweepError(
            f"{path}: not a readable sweep record; use another --out or delete the folder"
        ) from None
    if old.get("format") != MANIFEST_FORMAT or old_spec != json.loads(json.dumps(spec_dict)):
        a, b = _flat(old_spec), _flat(json.loads(json.dumps(spec_dict)))
        changed = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        shown = ", ".join(changed[:4]) + more
        raise SweepError(
            f"{path.parent}: holds a different sweep (changed: {shown or 'format'}); "
            "use another --out or delete the folder"
        )
    return old


def chunk_path(out: Path, group: int, chunk: int, process: int | None = None) -> Path:
    """`chunks/gGG-cCCCC.npz`, or a process's part `chunks/gGG-cCCCC.pPPP.npz`."""
    part = "" if process is None else f".p{process:03d}"
    return out / CHUNK_DIR / f"g{group:02d}-c{chunk:04d}{part}.npz"


def write_chunk(
    path: Path, members: np.ndarray, metrics: dict[str, np.ndarray], **info: float
) -> None:
    """Save a chunk's rows atomically: temporary file, fsync, `os.replace`."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, members=members, **{f"metric_{k}": v for k, v in metrics.items()}, **info)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_chunk(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, float]]:
    """`(members [n], metrics name -> [n, U], info)` of a chunk file."""
    with np.load(path) as z:
        members = z["members"]
        metrics = {k.removeprefix("metric_"): z[k] for k in z.files if k.startswith("metric_")}
        info = {k: float(z[k]) for k in z.files if k != "members" and not k.startswith("metric_")}
    return members, metrics, info


def merge_parts(out: Path, group: int, chunk: int, processes: int) -> None:
    """Process 0: join the processes' parts of a chunk into one file, then delete the parts."""
    parts = [read_chunk(chunk_path(out, group, chunk, p)) for p in range(processes)]
    members = np.concatenate([p[0] for p in parts])
    order = np.argsort(members)
    metrics = {k: np.concatenate([p[1][k] for p in parts])[order] for k in parts[0][1]}
    info = {k: max(p[2][k] for p in parts) for k in parts[0][2]}
    write_chunk(chunk_path(out, group, chunk), members[order], metrics, **info)
    for p in range(processes):
        chunk_path(out, group, chunk, p).unlink(missing_ok=True)


# =========================================================================== progress
class ProgressBar:
    """One status line over members, chunks and updates (redrawn on a terminal).

    Not on a terminal (a log file), it prints a line per finished chunk and,
    inside a long chunk, one every `LOG_EVERY_S` seconds.
    """

    def __init__(self, total_members: int, total_chunks: int, stream: TextIO, enabled: bool):
        self.total_members = total_members
        self.total_chunks = total_chunks
        self.stream = stream
        self.enabled = enabled
        self.tty = enabled and stream.isatty()
        self.members = 0
        self.chunks = 0
        self.start = time.perf_counter()
        self.work_done = 0.0  # members x fraction of their updates, this session
        self.work_start = 0
        self.last_line = self.start
        self.excluded = 0.0  # compile seconds, not part of the training rate

    def resume(self, members: int, chunks: int) -> None:
        """Count already finished chunks (they do not enter the rate)."""
        self.members, self.chunks, self.work_start = members, chunks, members

    def exclude(self, seconds: float) -> None:
        """Leave `seconds` (compilation) out of the rate behind the ETA."""
        self.excluded += seconds

    def _line(self, chunk_members: int, frac: float | None, group: str) -> str:
        done = self.members + chunk_members * (frac or 0.0)
        width = 24
        fill = int(width * done / max(1, self.total_members))
        elapsed = time.perf_counter() - self.start
        work = done - self.work_start
        left = self.total_members - done
        eta = max(0.0, elapsed - self.excluded) * left / work if work > 0 else math.nan
        eta_text = "?" if math.isnan(eta) else f"{eta:.0f}s"
        chunk = "" if frac is None else f" | {frac * 100:3.0f}% of chunk"
        return (
            f"[{'#' * fill}{'.' * (width - fill)}] {int(done)}/{self.total_members} members | "
            f"chunk {min(self.chunks + 1, self.total_chunks)}/{self.total_chunks} | "
            f"{group}{chunk} | {elapsed:.0f}s, eta {eta_text}"
        )

    def update(self, chunk_members: int, frac: float, group: str) -> None:
        """Progress inside the running chunk (`frac` of its updates done)."""
        if self.tty:
            self.stream.write("\r" + self._line(chunk_members, frac, group)[:160] + "\x1b[K")
            self.stream.flush()
        elif self.enabled and time.perf_counter() - self.last_line > LOG_EVERY_S:
            self.last_line = time.perf_counter()
            self.stream.write(self._line(chunk_members, frac, group) + "\n")
            self.stream.flush()

    def chunk_done(self, chunk_members: int, group: str, seconds: float) -> None:
        """A chunk finished and was written."""
        self.members += chunk_members
        self.chunks += 1
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r" + self._line(0, None, group)[:160] + "\x1b[K")
            if self.chunks == self.total_chunks:
                self.stream.write("\n")
        else:
            self.stream.write(
                f"chunk {self.chunks}/{self.total_chunks} done ({group}, {chunk_members} members, "
                f"{seconds:.1f}s): {self.members}/{self.total_members} members\n"
            )
        self.stream.flush()


# =========================================================================== the run
def _memory_budget(device: Any, local_devices: int) -> int | None:
    """Bytes one chunk may plan to use on `device` (None: unknown)."""
    stats = None
    try:
        stats = device.memory_stats()
    except Exception:  # backends without memory stats raise various errors
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"] * MEMORY_FRACTION)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return int(total * MEMORY_FRACTION / max(1, local_devices))


def _plan_chunk_size(
    sweep_mod: Any, config: Any, group_size: int, segment: int, mesh: Any
) -> tuple[int, Any]:
    """Largest chunk (<= the group) whose compiled programs fit in device memory.

    Compiles at the whole group; if the memory analysis says it does not fit,
    shrinks in proportion (memory is linear in the chunk size) and compiles again.
    """
    import jax

    size = group_size
    budget = _memory_budget(jax.local_devices()[0], len(jax.local_devices()))
    for _ in range(4):
        runner = sweep_mod.GroupRunner(config, size, mesh, segment)
        need = runner.memory_bytes()
        if budget is None or need <= budget or size <= mesh.devices.size:
            return size, runner
        size = max(mesh.devices.size, int(size * budget / need * 0.9))
    return size, sweep_mod.GroupRunner(config, size, mesh, segment)


def _run(args: argparse.Namespace, out_stream: TextIO, err_stream: TextIO) -> int:
    from purejaxppo.sharding import DistributedArgs, barrier, initialize_distributed
    from purejaxppo.sweep import core as sw
    from purejaxppo.train import make_trainer

    for name in ("max_batch", "segment_updates", "top"):
        value = getattr(args, name)
        if value is not None and value < 1:
            flag = "--" + name.replace("_", "-")
            raise SweepError(f"{flag}: expected a positive integer, got {value}")
    try:
        dist = DistributedArgs.from_env(
            args.coordinator, args.num_processes, args.process_id, args.distributed
        ).validate()
    except ValueError as err:
        raise SweepError(str(err)) from None
    # before anything touches a device (validating HParams does): JAX's own runtime
    initialize_distributed(dist)
    spec = sw.load_sweep(args.sweep)
    population = spec.population()
    for g in population.groups():  # env construction and network checks, before any output
        try:
            make_trainer(g.config)
        except ValueError as err:
            where = "" if len(population.groups()) == 1 else f" (group {g.label()})"
            raise SweepError(f"{args.sweep}{where}: {str(err).splitlines()[0]}") from None
    out = Path(args.out) if args.out else default_out(args.sweep)
    if out.exists() and not out.is_dir():
        raise SweepError(f"--out {out}: exists and is not a folder")
    manifest_path = out / MANIFEST
    old = check_manifest(manifest_path, spec.to_dict())
    if old is not None:
        for name, flag in (("max_batch", "--max-batch"), ("segment_updates", "--segment-updates")):
            given = getattr(args, name)
            if given is not None and old.get(name) is not None and given != old[name]:
                raise SweepError(
                    f"{flag}: the sweep in {out} was started with {flag} {old[name]}, "
                    f"got {given}; "
                    f"rerun with {flag} {old[name]} or use another --out"
                )
    max_batch = args.max_batch if args.max_batch is not None else (old or {}).get("max_batch")
    segment = (
        args.segment_updates or (old or {}).get("segment_updates") or sw.DEFAULT_SEGMENT_UPDATES
    )
    manifest = old or manifest_for(spec.to_dict(), max_batch, segment)

    import jax

    from purejaxppo.run import jaxcache
    from purejaxppo.sharding import population_mesh
    from purejaxppo.sweep.report import atomic_write_bytes, write_report

    jaxcache.enable()
    pid, nproc = jax.process_index(), jax.process_count()
    lead = pid == 0

    def say(text: str) -> None:
        if lead:
            print(text, file=out_stream, flush=True)

    if lead:
        (out / CHUNK_DIR).mkdir(parents=True, exist_ok=True)
        for stale in (out / CHUNK_DIR).glob(".*.tmp-*"):
            stale.unlink(missing_ok=True)  # a killed writer's leftovers
        if old is None:
            atomic_write_bytes(out / "SWEEP.yaml", Path(args.sweep).read_bytes())
            atomic_write_bytes(manifest_path, json.dumps(manifest, indent=1).encode())
    barrier("purejaxppo-sweep-start")

    mesh = population_mesh()
    groups = population.groups()
    say(
        f"sweep {args.sweep}: {len(population.sets)} hyperparameter set(s) x "
        f"{len(population.seeds)} seed(s) = {population.size} members on "
        f"{mesh.devices.size} {jax.devices()[0].platform} device(s)"
        + (f" in {nproc} processes" if nproc > 1 else "")
        + f" -> {out}"
    )
    if len(groups) > 1:
        static = sorted({k for g in groups for k, _ in g.values})
        say(
            f"{len(groups)} static groups (different {', '.join(static)}): each compiles once "
            "and they run in turn"
        )

    # chunk layout per group: recorded in the manifest so reruns keep it
    sizes: dict[str, int] = dict(manifest.get("chunk_sizes", {}))
    planned = {
        g.index: sizes.get(str(g.index)) or min(len(g.members), max_batch or len(g.members))
        for g in groups
    }
    total_chunks = sum(len(sw.chunk_bounds(len(g.members), planned[g.index])) for g in groups)
    bar = ProgressBar(population.size, total_chunks, err_stream, lead and not args.no_progress)
    done_members = done_chunks = 0
    for g in groups:
        for c, (lo, hi) in enumerate(sw.chunk_bounds(len(g.members), planned[g.index])):
            if chunk_path(out, g.index, c).exists():
                done_members, done_chunks = done_members + hi - lo, done_chunks + 1
    bar.resume(done_members, done_chunks)
    if done_chunks:
        say(f"resuming: {done_chunks}/{total_chunks} chunks already done, skipping them")

    for g in groups:
        label = f"group {g.index + 1}/{len(groups)} ({g.label()})"
        runner = None
        if str(g.index) not in sizes:
            if max_batch is None:
                size, runner = _plan_chunk_size(sw, g.config, len(g.members), segment, mesh)
                if nproc > 1:  # every process must use the same layout
                    from jax.experimental import multihost_utils

                    size = int(multihost_utils.broadcast_one_to_all(np.int32(size)))
                    if runner.chunk_size != size:
                        runner = None
            else:
                size = planned[g.index]
            sizes[str(g.index)] = size
            bar.total_chunks += len(sw.chunk_bounds(len(g.members), size)) - len(
                sw.chunk_bounds(len(g.members), planned[g.index])
            )
            manifest["chunk_sizes"] = sizes
            if lead:
                atomic_write_bytes(manifest_path, json.dumps(manifest, indent=1).encode())
        size = sizes[str(g.index)]
        bounds = sw.chunk_bounds(len(g.members), size)
        pending = [c for c in range(len(bounds)) if not chunk_path(out, g.index, c).exists()]
        if not pending:
            say(f"{label}: all {len(bounds)} chunk(s) done")
            continue
        if runner is None:
            runner = sw.GroupRunner(g.config, size, mesh, segment)
        compile_s = runner.compile()
        bar.exclude(compile_s)
        say(
            f"{label}: {len(g.members)} members in {len(bounds)} chunk(s) of {size} "
            f"({runner.padded // mesh.devices.size} per device), "
            f"{g.config.num_updates} updates each; compiled once in {compile_s:.1f}s"
        )
        for c in pending:
            lo, hi = bounds[c]
            ids = np.asarray(g.members[lo:hi], np.int64)
            n = hi - lo
            total = g.config.num_updates
            res = runner.run_chunk(
                population.seeds_of(ids),
                population.hparams_of(ids),
                lambda k, n=n, total=total, label=label: bar.update(n, k / total, label),
            )
            info = {"run_s": res.run_s, "compile_s": compile_s, "devices": mesh.devices.size}
            if nproc == 1:
                write_chunk(chunk_path(out, g.index, c), ids[res.rows], res.metrics, **info)
            else:
                write_chunk(chunk_path(out, g.index, c, pid), ids[res.rows], res.metrics, **info)
                barrier(f"purejaxppo-sweep-g{g.index}-c{c}")
                if lead:
                    merge_parts(out, g.index, c, nproc)
            bar.chunk_done(n, label, res.run_s)
    barrier("purejaxppo-sweep-done")
    if not lead:
        return 0

    # ---- results (process 0)
    results, curves = collect_results(out, population, groups, sizes)
    summary = sw.summarize(results, population)
    files = write_report(out, population, results, summary, curves)
    say(format_top(summary, population, args.top))
    say("wrote " + ", ".join(str(f) for f in files))
    return 0


def collect_results(
    out: Path, population: Any, groups: Sequence[Any], sizes: dict[str, int]
) -> tuple[list[Any], dict[int, np.ndarray]]:
    """Read every chunk file: results rows in member order and episode-return curves."""
    from purejaxppo.sweep import core as sw

    results, curves = [], {}
    for g in groups:
        for c, _ in enumerate(sw.chunk_bounds(len(g.members), sizes[str(g.index)])):
            members, metrics, info = read_chunk(chunk_path(out, g.index, c))
            for row, m in enumerate(members):
                curve = metrics["episode_return"][row]
                curves[int(m)] = curve
                row_result = sw.member_result(population, int(m), curve, g.index, c, info["run_s"])
                results.append(row_result)
    results.sort(key=lambda r: r.member)
    if len(results) != population.size:
        raise SweepError(f"{out}: {population.size - len(results)} member(s) missing from chunks/")
    return results, curves


def format_top(summary: Sequence[Any], population: Any, top: int) -> str:
    """A small text table of the best sets."""
    head = f"top {min(top, len(summary))} of {len(summary)} sets"
    lines = [f"{head} (final return, 95% CI over seeds):"]
    for s in summary[:top]:
        ci = "" if math.isnan(s.ci95) else f" +- {s.ci95:.2f}"
        label = population.sets[s.set_index].label()
        lines.append(f"  #{s.rank:<3d} {s.mean_return:9.2f}{ci:10s}  set {s.set_index}: {label}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
