"""TensorBoard event files: every `train` run (per seed) and every sweep (per set) writes
them, and they hold exactly the numbers of `metrics.csv` / the chunk files, read back with
TensorBoard's own event reader; a resumed run holds every step once."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from _cli_support import REPO, run_cli, write_config

from purejaxppo.run import rundir
from purejaxppo.run.tensorboard_log import (
    TB_DIR,
    TensorBoardLog,
    read_scalars,
    replace_folder,
    seed_folder,
)
from purejaxppo.train import METRIC_NAMES


def tensorboard_scalars(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`tag -> (steps, values)` read with TensorBoard's EventAccumulator (all events kept)."""
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = accumulator.EventAccumulator(str(folder), size_guidance={accumulator.SCALARS: 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags()["scalars"]:
        events = acc.Scalars(tag)
        out[tag] = (np.array([e.step for e in events]), np.array([e.value for e in events]))
    return out


def assert_events_match_csv(run_dir: Path, seeds: list[int]) -> None:
    """Per seed and metric: the event files hold the finite values of metrics.csv at its
    env steps, each step once, read by TensorBoard and by our own reader alike."""
    columns = rundir.read_metrics(run_dir / rundir.METRICS_FILE)
    assert sorted(p.name for p in (run_dir / TB_DIR).iterdir()) == [seed_folder(s) for s in seeds]
    for seed in seeds:
        folder = run_dir / TB_DIR / seed_folder(seed)
        ours, theirs = read_scalars(folder), tensorboard_scalars(folder)
        mask = columns["seed"] == seed
        logged = {n for n in METRIC_NAMES if np.isfinite(columns[n][mask]).any()}
        assert set(theirs) == set(ours) == logged  # (`kl` is NaN throughout for `clip`)
        for name in logged:
            values = columns[name][mask].astype(np.float32)
            finite = np.isfinite(values)
            expected_steps = columns["env_steps"][mask][finite]
            for steps, got in (ours[name], theirs[name]):
                assert len(set(steps.tolist())) == len(steps), f"{name}: a step twice"
                np.testing.assert_array_equal(steps, expected_steps, err_msg=name)
                np.testing.assert_array_equal(got.astype(np.float32), values[finite], name)


# --------------------------------------------------------------------------- the writer
def _chunk(first: int, num: int, seeds: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    metrics = {n: rng.normal(size=(seeds, num)).astype(np.float32) for n in METRIC_NAMES}
    metrics["episode_return"][0, 0] = np.nan  # no episode ended: left out
    return metrics


def test_writer_appends_and_rebuilds_on_resume(tmp_path):
    """Chunks appended, then a 'resume' at update 5 of 8: the rebuilt files hold updates
    1..5 once, the new session's file 6.., nothing twice; the swap is all or nothing."""
    rng = np.random.default_rng(0)
    seeds, batch = [3, 4], 32
    log = rundir.MetricsLog(tmp_path / rundir.METRICS_FILE, METRIC_NAMES)
    log.start()
    tb = TensorBoardLog(tmp_path, METRIC_NAMES)
    for first in (1, 5):
        chunk = _chunk(first, 4, len(seeds), rng)
        log.append(first, seeds, batch, 1.0, chunk)
        tb.append(first, seeds, batch, 1.0, chunk)
    tb.close()
    assert_events_match_csv(tmp_path, seeds)

    log.truncate_after(5)  # what the runner does on resume, then the sinks rebuild
    tb = TensorBoardLog(tmp_path, METRIC_NAMES)
    tb.resume(5, rundir.read_metrics(log.path))
    chunk = _chunk(6, 3, len(seeds), rng)  # different numbers: recomputed rows may differ
    log.append(6, seeds, batch, 2.0, chunk)
    tb.append(6, seeds, batch, 2.0, chunk)
    tb.close()
    assert_events_match_csv(tmp_path, seeds)
    assert len(list((tmp_path / TB_DIR / "seed_3").iterdir())) == 2  # rebuilt + this session

    before = {p: p.read_bytes() for p in (tmp_path / TB_DIR).rglob("*") if p.is_file()}

    def broken(tmp: Path) -> None:
        (tmp / "half").write_text("x")
        raise OSError("disk full")

    with pytest.raises(OSError):
        replace_folder(tmp_path / TB_DIR, broken)
    assert {p: p.read_bytes() for p in (tmp_path / TB_DIR).rglob("*") if p.is_file()} == before


# --------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """A 2-seed tiny run, and a copy resumed from its second-to-last checkpoint as after a
    crash (the rows and events after it are recomputed)."""
    root = tmp_path_factory.mktemp("tb")
    config = write_config(root / "tiny.yaml")
    run = root / "run"
    proc = run_cli("train", config, "--seeds", "2", "--out", run, cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    resumed = root / "resumed"
    shutil.copytree(run, resumed)
    checkpoints = sorted(int(p.name) for p in (resumed / rundir.CHECKPOINT_DIR).iterdir())
    shutil.rmtree(resumed / rundir.CHECKPOINT_DIR / str(checkpoints[-1]))
    proc = run_cli("train", "--resume", resumed, cwd=root)
    assert proc.returncode == 0, proc.stderr
    return {"run": run, "resumed": resumed, "from": checkpoints[-2]}


def test_train_writes_event_files_per_seed(tiny_runs):
    assert_events_match_csv(tiny_runs["run"], [0, 1])


def test_resumed_run_continues_the_event_files(tiny_runs):
    resumed = tiny_runs["resumed"]
    assert tiny_runs["from"] < 12
    columns = rundir.read_metrics(resumed / rundir.METRICS_FILE)
    assert columns["update"].max() == 12 and len(columns["update"]) == 24
    assert_events_match_csv(resumed, [0, 1])
    names = sorted(p.name for p in (resumed / TB_DIR / "seed_0").iterdir())
    assert len(names) == 2 and names[1].endswith(f".u{tiny_runs['from'] + 1:010d}"), names


# --------------------------------------------------------------------------- sweeps
SWEEP = """\
ppo: {env_name: CartPole-v1, num_envs: 2, num_steps: 16, total_timesteps: 384,
      update_epochs: 1, num_minibatches: 2}
seeds: 2
grid:
  hparams.learning_rate: [1.0e-3, 3.0e-3]
"""


def test_sweep_writes_seed_means_per_set(tmp_path):
    from purejaxppo.sweep.curves import folder_population, set_curves
    from purejaxppo.sweep.tensorboard_sets import set_folder

    spec = tmp_path / "sweep.yaml"
    spec.write_text(SWEEP)
    out = tmp_path / "out"
    proc = run_cli("sweep", spec, "--out", out, "--no-progress", cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    sets = set_curves(out, folder_population(out))
    assert [s.label for s in sets] == ["learning_rate=0.001", "learning_rate=0.003"]
    assert sorted(p.name for p in (out / TB_DIR).iterdir()) == [set_folder(s) for s in sets]
    for s in sets:
        got = tensorboard_scalars(out / TB_DIR / set_folder(s))
        assert set(got) == {n for n in METRIC_NAMES if np.isfinite(s.metrics[n]).any()}
        for name in got:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column
                mean = np.nanmean(s.metrics[name].astype(np.float64), axis=0)
            finite = np.isfinite(mean)
            steps, values = got[name]
            np.testing.assert_array_equal(steps, s.env_steps[finite])
            np.testing.assert_allclose(values, mean[finite], rtol=1e-6, err_msg=name)
