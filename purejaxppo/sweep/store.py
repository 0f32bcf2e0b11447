"""The sweep's output folder on disk: manifest, chunk files, their merge (resume bookkeeping).

The output folder holds:

    sweep.json        what is being swept (refuses a changed search space on rerun)
    SWEEP.yaml        a copy of the sweep file it holds
    chunks/gGG-cCCCC.npz   one per finished chunk (written atomically)

A chunk file holds the per-update metrics of its members, each named by its
identity `(set index, seed)`, so finished work is found by member, not by
position: a rerun trains only the members of the population that no chunk
file holds (all of them after a kill mid-chunk, the new seeds' members after
`seeds` grew) in new chunks numbered after the group's last one. With several
processes, each writes the rows its devices trained (`gGG-cCCCC.pPPP.npz`)
and process 0 merges them (`merge_parts`). `collect_results` reads the chunks
back into results rows and learning curves. Host side; no JAX.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from purejaxppo.run.progress import count
from purejaxppo.sweep.population import Population, StaticGroup
from purejaxppo.sweep.report import atomic_write_bytes
from purejaxppo.sweep.results import MemberResult, member_result
from purejaxppo.sweep.spec import OUTPUT_MANIFEST as MANIFEST

# 1: chunk files named members by index only (upgraded on open); 2: chunk sizes per group
# (members per chunk, split over the devices: replanned on open); 3: members per device.
MANIFEST_FORMAT = 3
CHUNK_DIR = "chunks"
CHUNK_NAME = re.compile(r"g(\d+)-c(\d+)\.npz")
RESEEDABLE = ("seeds", "base.seed")  # may change in a folder: members are found by seed
_ID_KEYS = ("set_index", "seed", "members")


class SweepError(ValueError):
    """Bad sweep input or output folder; `str(err)` is the one-line message."""


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


def manifest_for(
    spec_dict: dict[str, Any],
    max_batch: int | None,
    segment: int,
    old: dict[str, Any] | None = None,
    members_per_device: int | None = None,
) -> dict[str, Any]:
    """The folder's record of what it holds (plain JSON values).

    `members_per_device` is the width asked for (`--members-per-device`);
    `widths` (group index -> the balanced members per device it runs with) is
    filled in as groups are planned. With the `old` record of the folder: its
    `max_batch` and `members_per_device` when it has them, and its widths while
    the members are the same (after a change of seeds, the widths are planned
    again for the members left; a format-2 record's chunk sizes, which were
    split over the devices, are dropped).
    """
    record = {
        "format": MANIFEST_FORMAT,
        "spec": spec_dict,
        "members_per_device": members_per_device,
        "max_batch": max_batch,
        "segment_updates": segment,
        "widths": {},
    }
    record = json.loads(json.dumps(record))
    if old is not None:
        record["max_batch"] = old.get("max_batch")
        if old.get("members_per_device") is not None:
            record["members_per_device"] = old["members_per_device"]
        if old["spec"] == record["spec"]:
            record["widths"] = dict(old.get("widths", {}))
    return record


def seed_range(spec_dict: dict[str, Any]) -> str:
    """`0..3` (or `0`): the seeds of a recorded spec."""
    first, n = int(spec_dict["base"]["seed"]), int(spec_dict["seeds"])
    return f"{first}..{first + n - 1}" if n > 1 else str(first)


def check_manifest(path: Path, spec_dict: dict[str, Any]) -> dict[str, Any] | None:
    """The existing manifest, or None.

    Raises `SweepError` if the folder holds a different sweep: anything but
    `seed` and `seeds` changed (members of other seeds are trained, finished
    ones reused).
    """
    if not path.exists():
        return None
    try:
        old = json.loads(path.read_text())
        old_spec = old["spec"]
        a, b = _flat(old_spec), _flat(json.loads(json.dumps(spec_dict)))
    except (OSError, ValueError, KeyError, TypeError):
        raise SweepError(
            f"{path}: not a readable sweep record; use another --out or delete the folder"
        ) from None
    changed = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k) and k not in RESEEDABLE)
    if old.get("format") not in (1, 2, MANIFEST_FORMAT) or changed:
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        shown = ", ".join(changed[:4]) + more
        raise SweepError(
            f"{path.parent}: holds a different sweep (changed: {shown or 'format'}); "
            "use another --out or delete the folder (only seed and seeds may change)"
        )
    return old


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Write `sweep.json` atomically."""
    atomic_write_bytes(out / MANIFEST, json.dumps(manifest, indent=1).encode())


def prepare_folder(
    out: Path,
    sweep_path: Path,
    manifest: dict[str, Any],
    old: dict[str, Any] | None,
    population: Population,
    sets: Sequence[str] = (),
) -> list[str]:
    """Process 0: the chunk folder without stale temporary files or damaged chunk files
    (their members train again), chunk files of an older format upgraded, the records
    (`SWEEP.yaml` with the `--set` overrides as a comment, `sweep.json`) of what it now
    holds, and, while members are left to
    train, no report of an earlier population (it would look complete). Returns notes
    for the user."""
    import shutil

    from purejaxppo.run.tensorboard_log import TB_DIR
    from purejaxppo.sweep.report import REPORT_FILES

    notes = []
    (out / CHUNK_DIR).mkdir(parents=True, exist_ok=True)
    for stale in (out / CHUNK_DIR).glob(".*.tmp-*"):
        stale.unlink(missing_ok=True)  # a killed writer's leftovers
    if old is not None and old.get("format") == 1:
        _upgrade_chunks(out, old["spec"])
    for _, _, path in chunk_files(out):
        problem = chunk_problem(path)
        if problem is not None:
            path.unlink()
            notes.append(f"{path}: damaged ({problem}); discarded, its members train again")
    if old is None or old["spec"] != manifest["spec"]:
        header = "".join(f"# run with --set {item}\n" for item in sets).encode()
        atomic_write_bytes(out / "SWEEP.yaml", header + sweep_path.read_bytes())
    if manifest != old:
        write_manifest(out, manifest)
    pending = scan_folder(out, population, population.groups()).pending
    if any(pending.values()):
        for name in REPORT_FILES:
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / TB_DIR, ignore_errors=True)
    return notes


def chunk_problem(path: Path) -> str | None:
    """Why a chunk file cannot be read back (truncated, not a zip, rows missing), or None."""
    try:
        ids, metrics, info = read_chunk(path)
    except Exception as err:  # numpy/zipfile raise many types for a damaged file
        return f"{type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}"
    if "run_s" not in info or "episode_return" not in metrics:
        return "missing arrays"
    if any(v.shape[0] != len(ids) for v in metrics.values()):
        return "rows do not match their members"
    return None


def chunk_path(out: Path, group: int, chunk: int, process: int | None = None) -> Path:
    """`chunks/gGG-cCCCC.npz`, or a process's part `chunks/gGG-cCCCC.pPPP.npz`."""
    part = "" if process is None else f".p{process:03d}"
    return out / CHUNK_DIR / f"g{group:02d}-c{chunk:04d}{part}.npz"


def chunk_files(out: Path) -> list[tuple[int, int, Path]]:
    """The finished chunk files as `(group, chunk, path)`, in order (parts excluded)."""
    found = []
    for path in (out / CHUNK_DIR).glob("g*-c*.npz"):
        match = CHUNK_NAME.fullmatch(path.name)
        if match:
            found.append((int(match[1]), int(match[2]), path))
    return sorted(found)


def write_chunk(path: Path, ids: np.ndarray, metrics: dict[str, np.ndarray], **info: float) -> None:
    """Save a chunk's rows atomically (temporary file, fsync, `os.replace`).

    Args:
      ids: `[n, 2]` the `(set index, seed)` of each row.
      metrics: name -> `[n, U]` per-update metrics.
      info: scalars (`run_s`, `compile_s`, `devices`).
    """
    ids = np.asarray(ids, np.int64).reshape(-1, 2)
    arrays = {f"metric_{k}": v for k, v in metrics.items()}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, set_index=ids[:, 0], seed=ids[:, 1], **arrays, **info)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_chunk(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, float]]:
    """`(ids [n, 2] (set index, seed), metrics name -> [n, U], info)` of a chunk file."""
    with np.load(path) as z:
        ids = np.stack([z["set_index"], z["seed"]], axis=1).astype(np.int64)
        metrics = {k.removeprefix("metric_"): z[k] for k in z.files if k.startswith("metric_")}
        info = {
            k: float(z[k]) for k in z.files if k not in _ID_KEYS and not k.startswith("metric_")
        }
    return ids, metrics, info


def read_ids(path: Path) -> np.ndarray:
    """`[n, 2]` the `(set index, seed)` of a chunk file's rows (metrics left unread)."""
    with np.load(path) as z:
        return np.stack([z["set_index"], z["seed"]], axis=1).astype(np.int64)


def _upgrade_chunks(out: Path, old_spec: dict[str, Any]) -> None:
    """Add `(set, seed)` to format-1 chunk files, which name members by index only.

    The seeds of a format-1 folder never changed, so its record gives them:
    member `m` is set `m // seeds`, seed `seed + m % seeds`.
    """
    n, first = int(old_spec["seeds"]), int(old_spec["base"]["seed"])
    for _, _, path in chunk_files(out):
        try:
            with np.load(path) as z:
                if "set_index" in z.files:
                    continue
                data = {k: z[k] for k in z.files}
        except Exception:  # a damaged file: left to `chunk_problem`, which discards it
            continue
        members = data.pop("members").astype(np.int64)
        metrics = {k.removeprefix("metric_"): v for k, v in data.items() if k.startswith("metric_")}
        info = {k: float(v) for k, v in data.items() if not k.startswith("metric_")}
        write_chunk(path, np.stack([members // n, first + members % n], axis=1), metrics, **info)


def merge_parts(out: Path, group: int, chunk: int, processes: int) -> None:
    """Process 0: join the processes' parts of a chunk into one file, then delete the parts."""
    parts = [read_chunk(chunk_path(out, group, chunk, p)) for p in range(processes)]
    ids = np.concatenate([p[0] for p in parts])
    order = np.lexsort((ids[:, 1], ids[:, 0]))  # member order: set, then seed
    metrics = {k: np.concatenate([p[1][k] for p in parts])[order] for k in parts[0][1]}
    info = {k: max(p[2][k] for p in parts) for k in parts[0][2]}
    write_chunk(chunk_path(out, group, chunk), ids[order], metrics, **info)
    for p in range(processes):
        chunk_path(out, group, chunk, p).unlink(missing_ok=True)


@dataclasses.dataclass(frozen=True)
class FolderState:
    """What the chunk files already hold of a population.

    Attributes:
      pending: group index -> its members that no chunk file holds, in member order.
      next_chunk: group index -> the number of its next chunk file.
      done_members: members of the population found in chunk files.
      done_chunks: chunk files holding at least one of them.
    """

    pending: dict[int, tuple[int, ...]]
    next_chunk: dict[int, int]
    done_members: int
    done_chunks: int


def scan_folder(out: Path, population: Population, groups: Sequence[StaticGroup]) -> FolderState:
    """Which members are finished (by `(set, seed)`) and where each group's new chunks go."""
    done: set[int] = set()
    next_chunk: dict[int, int] = {}
    done_chunks = 0
    for g, c, path in chunk_files(out):
        found = {population.index_of(int(s), int(seed)) for s, seed in read_ids(path)}
        found.discard(None)
        done |= found  # type: ignore[arg-type]
        done_chunks += bool(found)
        next_chunk[g] = max(next_chunk.get(g, 0), c + 1)
    return FolderState(
        pending={g.index: tuple(m for m in g.members if m not in done) for g in groups},
        next_chunk={g.index: next_chunk.get(g.index, 0) for g in groups},
        done_members=len(done),
        done_chunks=done_chunks,
    )


def collect_results(
    out: Path, population: Population
) -> tuple[list[MemberResult], dict[int, np.ndarray]]:
    """Read the chunk files: results rows of the population's members, in member order, and
    their episode-return curves (rows of seeds no longer in the population are left out)."""
    results, curves = [], {}
    for g, c, path in chunk_files(out):
        ids, metrics, info = read_chunk(path)
        for row, (set_index, seed) in enumerate(ids):
            m = population.index_of(int(set_index), int(seed))
            if m is None or m in curves:
                continue
            curves[m] = metrics["episode_return"][row]
            results.append(member_result(population, m, curves[m], g, c, info["run_s"]))
    results.sort(key=lambda r: r.member)
    if len(results) != population.size:
        missing = count(population.size - len(results), "member")
        raise SweepError(f"{out}: {missing} missing from {CHUNK_DIR}/")
    return results, curves
