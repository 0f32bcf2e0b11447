"""A sweep output folder's per-update metrics, grouped by hyperparameter set (host side).

`folder_population(out)` rebuilds the population from the folder's own record
(`sweep.json`), so no sweep file is needed; `set_curves(out, population)` reads every
finished chunk file into one `SetCurves` per set: each metric `[seeds, updates]`, the
env steps per update and the wall time of the chunk that trained each seed. Used by the
sweep's TensorBoard files and by `purejaxppo plot`. No JAX.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from purejaxppo.sweep.population import Population
from purejaxppo.sweep.spec import OUTPUT_MANIFEST, sweep_from_dict
from purejaxppo.sweep.store import chunk_files, read_chunk


@dataclasses.dataclass(frozen=True)
class SetCurves:
    """The finished members of one hyperparameter set.

    Attributes:
      set_index: the set's index in the population; label: its `HParamSet.label()`.
      seeds: the seed of each row, increasing.
      env_steps: `[U]` env steps per seed after each update.
      metrics: name -> `[S, U]` per-update values (NaN where no episode ended).
      run_s: `[S]` wall time of the chunk that trained each seed (shared by its members).
    """

    set_index: int
    label: str
    seeds: tuple[int, ...]
    env_steps: np.ndarray
    metrics: dict[str, np.ndarray]
    run_s: np.ndarray


def folder_population(out: Path) -> Population:
    """The population recorded in `out/sweep.json` (`ValueError`, one line, if unreadable)."""
    path = Path(out) / OUTPUT_MANIFEST
    try:
        spec = json.loads(path.read_text())["spec"]
        base = spec["base"]
        doc = {
            "ppo": base["ppo"],
            "hparams": base["hparams"],
            "seed": base["seed"],
            "seeds": spec["seeds"],
        }
        doc.update({k: spec[k] for k in ("grid", "random") if spec.get(k)})
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{out}: not a readable sweep record ({OUTPUT_MANIFEST})") from None
    return sweep_from_dict(doc, str(path)).population()


def set_curves(out: Path, population: Population) -> list[SetCurves]:
    """Every set with at least one finished member, in set order (members of seeds no
    longer in the population are left out)."""
    rows: dict[int, dict[int, tuple[dict[str, np.ndarray], float]]] = {}
    for _, _, path in chunk_files(Path(out)):
        ids, metrics, info = read_chunk(path)
        for row, (set_index, seed) in enumerate(ids.tolist()):
            if population.index_of(set_index, seed) is None:
                continue
            member = {k: v[row] for k, v in metrics.items()}
            rows.setdefault(set_index, {}).setdefault(seed, (member, info.get("run_s", np.nan)))
    out_sets = []
    for set_index in sorted(rows):
        by_seed = rows[set_index]
        seeds = tuple(sorted(by_seed))
        names = by_seed[seeds[0]][0].keys()
        metrics = {n: np.stack([by_seed[s][0][n] for s in seeds]) for n in names}
        hs = population.sets[set_index]
        num_updates = next(iter(metrics.values())).shape[1]
        out_sets.append(
            SetCurves(
                set_index=set_index,
                label=hs.label(),
                seeds=seeds,
                env_steps=(np.arange(num_updates) + 1) * hs.config.batch_size,
                metrics=metrics,
                run_s=np.asarray([by_seed[s][1] for s in seeds], np.float64),
            )
        )
    return out_sets
