"""`purejaxppo sweep` end to end in subprocesses: outputs, resume, kill-and-resume."""

import math
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from sweep_testing import (
    TIMEOUT_S,
    assert_same_bits,
    cli_env,
    member_rows,
    reference_sweep,
    results_without,
    run_sweep,
    sweep_command,
)

from purejaxppo.run.config import load_run_config
from purejaxppo.sweep.store import read_chunk


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    return reference_sweep(tmp_path_factory.getbasetemp() / "sweep")


def test_outputs(reference):
    _, out, _ = reference
    names = {p.name for p in out.iterdir()}
    assert {"results.csv", "summary.csv", "best.yaml", "curves.png", "sensitivity.png"} <= names
    assert sorted(p.name for p in (out / "chunks").iterdir()) == [
        f"g00-c000{c}.npz" for c in range(4)
    ]
    results = (out / "results.csv").read_text().splitlines()
    assert len(results) == 1 + 8
    header = results[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=True)) for line in results[1:]]
    assert [r["member"] for r in rows] == [str(i) for i in range(8)]
    assert [r["seed"] for r in rows] == ["0", "1"] * 4
    assert {r["hparams.learning_rate"] for r in rows} == {"0.001", "0.003"}
    assert all(r["env_steps"] == "64000" for r in rows)
    # final return: the mean of the member's last 50 (5% of 1000) updates with finished episodes
    curves = member_rows(out)
    for r in rows:
        curve = curves[int(r["set"]), int(r["seed"])]["episode_return"].astype(np.float64)
        expected = np.mean(curve[np.isfinite(curve)][-50:])
        assert float(r["final_return"]) == pytest.approx(expected, rel=1e-12)
    # members learn something in 1000 updates (random CartPole policies score ~22)
    assert max(float(r["final_return"]) for r in rows) > 60
    summary = (out / "summary.csv").read_text().splitlines()
    assert len(summary) == 1 + 4 and summary[0].startswith("rank,set,hparams.learning_rate,")
    means = [float(line.split(",")[5]) for line in summary[1:]]
    assert means == sorted(means, reverse=True)
    # robust statistics (purejaxppo.run.stats), appended after the first columns
    assert summary[0].endswith(
        ",mean_auc,iqm,iqm_ci95_low,iqm_ci95_high,p_improve,p_improve_low,p_improve_high"
    )
    stats = [dict(zip(summary[0].split(","), line.split(","), strict=True)) for line in summary[1:]]
    for rank, row in enumerate(stats, 1):
        iqm, low, high = (float(row[k]) for k in ("iqm", "iqm_ci95_low", "iqm_ci95_high"))
        assert low <= iqm <= high  # 2 seeds: the IQM is their mean, the interval spans them
        p = [float(row[k]) for k in ("p_improve", "p_improve_low", "p_improve_high")]
        assert all(map(math.isnan, p)) if rank == 1 else 0 <= p[1] <= p[0] <= p[2] <= 1
    best_set = int(summary[1].split(",")[1])
    best = load_run_config(out / "best.yaml")
    best_row = next(r for r in rows if int(r["set"]) == best_set)
    assert best.hparams.learning_rate == float(best_row["hparams.learning_rate"])
    assert best.hparams.ent_coef == float(best_row["hparams.ent_coef"])
    assert best.ppo.total_timesteps == 64000 and best.seed == 0
    for name in ("curves.png", "sensitivity.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_skips_finished_chunks_without_compiling(reference):
    spec, out, cache = reference
    before = {p.name: p.stat().st_mtime_ns for p in (out / "chunks").iterdir()}
    proc = run_sweep(spec, out, 1, cache)  # --max-batch comes from the folder's record
    assert "resuming: 4/4 chunks already done" in proc.stdout
    assert "group 1/1 (all): all 8 members done" in proc.stdout
    assert "compiled" not in proc.stdout
    assert {p.name: p.stat().st_mtime_ns for p in (out / "chunks").iterdir()} == before


def test_changed_sweep_file_is_refused(reference, tmp_path):
    spec, out, cache = reference
    changed = tmp_path / "sweep.yaml"
    changed.write_text(spec.read_text().replace("3.0e-3", "2.0e-3"))
    proc = subprocess.run(
        sweep_command(changed, out), env=cli_env(1, cache), capture_output=True, text=True,
        timeout=TIMEOUT_S,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        f"purejaxppo sweep: error: {out}: holds a different sweep "
        "(changed: grid.hparams.learning_rate); use another --out or delete the folder "
        "(only seed and seeds may change)\n"
    )


def test_more_seeds_train_only_the_new_members(reference, tmp_path):
    """seeds 1 -> 2 reuses the first seed's chunks and gives the 2-seed sweep's results;
    back to 1 reports over the first seed's members again, training nothing."""
    spec, ref, cache = reference
    path, out = tmp_path / "sweep.yaml", tmp_path / "reseeded"
    path.write_text(spec.read_text().replace("seeds: 2", "seeds: 1"))
    first = run_sweep(path, out, 1, cache, "--max-batch", "2")
    assert "4 hyperparameter sets x 1 seed = 4 members on 1 cpu device" in first.stdout
    assert "expected_return: null (one seed" in (out / "best.yaml").read_text()
    one_seed = (out / "results.csv").read_text()
    before = {p.name: p.stat().st_mtime_ns for p in (out / "chunks").iterdir()}
    assert sorted(before) == ["g00-c0000.npz", "g00-c0001.npz"]

    path.write_text(spec.read_text())  # seeds: 2
    proc = run_sweep(path, out, 1, cache)  # --max-batch 2 comes from the folder's record
    assert "seeds changed (0 -> 0..1): 4 of 8 members already trained, reused as" in proc.stdout
    assert "resuming: 2/4 chunks already done, skipping them" in proc.stdout
    assert "4 members in 2 chunks of 2 (2 per device), 1000 updates each (4 already done)" in (
        proc.stdout
    )
    after = {p.name: p.stat().st_mtime_ns for p in (out / "chunks").iterdir()}
    assert {name: after[name] for name in before} == before  # nothing finished is rerun
    assert sorted(after) == [f"g00-c000{c}.npz" for c in range(4)]
    for name in ("g00-c0002.npz", "g00-c0003.npz"):  # only the new seed's members
        assert set(read_chunk(out / "chunks" / name)[0][:, 1]) == {1}
    assert_same_bits(ref, out)  # the same chunk shape: the very bits of the 2-seed sweep
    assert results_without(ref, "wall_time_s", "chunk") == results_without(
        out, "wall_time_s", "chunk"
    )
    for name in ("summary.csv", "best.yaml"):
        assert (ref / name).read_bytes() == (out / name).read_bytes(), name
    assert (out / "SWEEP.yaml").read_text() == spec.read_text()

    path.write_text(spec.read_text().replace("seeds: 2", "seeds: 1"))
    proc = run_sweep(path, out, 1, cache)
    assert "seeds changed (0..1 -> 0): 4 of 4 members already trained" in proc.stdout
    assert "group 1/1 (all): all 4 members done" in proc.stdout and "compiled" not in proc.stdout
    assert (out / "results.csv").read_text() == one_seed


@pytest.mark.slow
def test_killed_sweep_resumes_to_the_uninterrupted_result(reference, tmp_path):
    """SIGKILL after the first chunk is written; the rerun computes only the rest."""
    spec, ref, cache = reference
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        sweep_command(spec, out, "--max-batch", "2"),
        env=cli_env(1, cache),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    first = out / "chunks" / "g00-c0000.npz"
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not first.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no chunk written in time"
            time.sleep(0.005)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
    done = sorted(p.name for p in (out / "chunks").glob("g*.npz"))
    assert 1 <= len(done) < 4, f"kill came too late to test resuming: {done}"
    first_stat = first.stat().st_mtime_ns

    rerun = run_sweep(spec, out, 1, cache, "--max-batch", "2")
    assert f"resuming: {len(done)}/4 chunks already done, skipping them" in rerun.stdout
    assert first.stat().st_mtime_ns == first_stat  # not recomputed
    assert not list((out / "chunks").glob(".*tmp*"))  # a killed writer's leftovers are gone
    assert_same_bits(ref, out)
    assert results_without(ref, "wall_time_s") == results_without(out, "wall_time_s")
    assert (ref / "summary.csv").read_bytes() == (out / "summary.csv").read_bytes()
