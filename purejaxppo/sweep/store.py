"""The sweep's output folder on disk: manifest, chunk files, their merge (resume bookkeeping).

The output folder holds:

    sweep.json        what is being swept (refuses a changed SWEEP.yaml on rerun)
    SWEEP.yaml        a copy of the sweep file as first run
    chunks/gGG-cCCCC.npz   one per finished chunk (written atomically)

A chunk file that exists is finished: a rerun skips it. With several
processes, each writes the rows its devices trained (`gGG-cCCCC.pPPP.npz`) and
process 0 merges them (`merge_parts`). `collect_results` reads every chunk
back into results rows and learning curves.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from purejaxppo.sweep.population import Population, StaticGroup
from purejaxppo.sweep.report import atomic_write_bytes
from purejaxppo.sweep.results import MemberResult, member_result
from purejaxppo.sweep.runner import chunk_bounds

MANIFEST = "sweep.json"
MANIFEST_FORMAT = 1
CHUNK_DIR = "chunks"


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


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Write `sweep.json` atomically."""
    atomic_write_bytes(out / MANIFEST, json.dumps(manifest, indent=1).encode())


def prepare_folder(out: Path, sweep_path: Path, manifest: dict[str, Any], fresh: bool) -> None:
    """Process 0: the chunk folder without stale temporary files; a new folder's records."""
    (out / CHUNK_DIR).mkdir(parents=True, exist_ok=True)
    for stale in (out / CHUNK_DIR).glob(".*.tmp-*"):
        stale.unlink(missing_ok=True)  # a killed writer's leftovers
    if fresh:
        atomic_write_bytes(out / "SWEEP.yaml", sweep_path.read_bytes())
        write_manifest(out, manifest)


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


def collect_results(
    out: Path, population: Population, groups: Sequence[StaticGroup], sizes: dict[str, int]
) -> tuple[list[MemberResult], dict[int, np.ndarray]]:
    """Read every chunk file: results rows in member order and episode-return curves."""
    results, curves = [], {}
    for g in groups:
        for c, _ in enumerate(chunk_bounds(len(g.members), sizes[str(g.index)])):
            members, metrics, info = read_chunk(chunk_path(out, g.index, c))
            for row, m in enumerate(members):
                curve = metrics["episode_return"][row]
                curves[int(m)] = curve
                row_result = member_result(population, int(m), curve, g.index, c, info["run_s"])
                results.append(row_result)
    results.sort(key=lambda r: r.member)
    if len(results) != population.size:
        raise SweepError(f"{out}: {population.size - len(results)} member(s) missing from chunks/")
    return results, curves
