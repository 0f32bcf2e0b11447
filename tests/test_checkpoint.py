"""Chunked execution, checkpoints, resume, interruption and NaN stops.

- chunks give the bits of one `jax.jit(make_train(cfg))` call, whatever the chunk size;
- a run stopped by SIGINT/SIGTERM and resumed ends bit-identical to an uninterrupted run;
- a NaN stops the run naming the update and keeps the last good checkpoint;
- orbax's atomic writes: a half-written checkpoint is ignored, the previous one is used.

The CLI runs share one compilation cache, so after the reference run the others load
their programs from disk.
"""

from __future__ import annotations

import io
import shutil
import signal
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _cli_support import (
    TINY,
    assert_bad_input,
    run_cli,
    start_cli,
    tree_digest,
    write_config,
)

import purejaxppo as ppo
from purejaxppo.probe_envs import ConstantReward, ProbeParams
from purejaxppo.run import rundir
from purejaxppo.run.checkpoint import Checkpointer
from purejaxppo.run.compiled import default_chunk, describe_plan, plan_chunks, seed_keys
from purejaxppo.run.config import RunConfig, run_config_from_dict
from purejaxppo.run.runner import Job, run_job

NUM_UPDATES = 12  # TINY: 384 steps of 2 envs x 16 steps


def _tiny_rc(**ppo_fields) -> RunConfig:
    return run_config_from_dict({**TINY, "ppo": {**TINY["ppo"], **ppo_fields}})


def _same(a, b) -> bool:
    a_leaves, b_leaves = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(a_leaves) == len(b_leaves)
    return all(
        np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
        for x, y in zip(a_leaves, b_leaves, strict=True)
    )


def _latest(run_dir: Path) -> int | None:
    checkpointer = Checkpointer(run_dir / rundir.CHECKPOINT_DIR, read_only=True)
    try:
        return checkpointer.latest_update()
    finally:
        checkpointer.close()


def _restore(run_dir: Path, rc: RunConfig, seeds: list[int]):
    """The newest checkpoint's state (typed keys as raw key data) and record."""
    trainer = ppo.make_trainer(rc.ppo)
    checkpointer = Checkpointer(run_dir / rundir.CHECKPOINT_DIR, read_only=True)
    like = jax.eval_shape(jax.vmap(trainer.init, (0, None)), seed_keys(seeds), rc.hparams)
    state, meta = checkpointer.restore(checkpointer.latest_update(), like)
    checkpointer.close()
    return state.replace(key=jax.random.key_data(state.key)), meta


def _rows(run_dir: Path) -> list[list[str]]:
    """metrics.csv cells, every column but wall_time_s."""
    lines = (run_dir / rundir.METRICS_FILE).read_text().splitlines()
    return [cells[:3] + cells[4:] for cells in (line.split(",") for line in lines)]


# --------------------------------------------------------------------------- chunk plans
def test_chunk_plans():
    assert default_chunk(976) == 61  # 976 = 16 * 61: one compiled size
    assert default_chunk(12) == 1
    assert default_chunk(10_007) == 400  # a prime: no divisor near 400, remainder chunk
    assert plan_chunks(0, 12, 5) == [5, 5, 2]
    assert plan_chunks(10, 12, 5) == [2]
    assert plan_chunks(12, 12, 5) == []
    assert describe_plan([5, 5, 2]) == "2 x 5 + 1 x 2 updates (2 compiled sizes)"
    assert describe_plan([4, 4]) == "2 x 4 updates (one compiled size)"


# --------------------------------------------------------------------------- one reference run
@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted one-seed TINY run in chunks of 1 update, made by the CLI."""
    root = tmp_path_factory.mktemp("reference")
    config = write_config(root / "tiny.yaml")
    run_dir = root / "run"
    proc = run_cli("train", config, "--out", run_dir, "--chunk", "1", cwd=root)
    assert proc.returncode == 0, proc.stderr
    return {"root": root, "config": config, "run": run_dir}


@pytest.mark.slow
def test_chunked_runs_equal_one_jit_call(reference, tmp_path):
    """Chunks of 1, and of 5 + 5 + 2 (two compiled sizes), vs one compiled `train` call."""
    rc = _tiny_rc()
    out = jax.jit(ppo.make_train(rc.ppo))(jax.random.key(rc.seed), rc.hparams)
    state, meta = _restore(reference["run"], rc, [0])
    assert meta.update == NUM_UPDATES
    full = jax.tree.map(lambda x: x[None], out.state)
    assert _same(state, full.replace(key=jax.random.key_data(full.key)))  # the whole state

    cols = rundir.read_metrics(reference["run"] / rundir.METRICS_FILE)
    for name in ppo.METRIC_NAMES:
        from_csv = rundir.metrics_matrix(cols, name, [0])[0].astype(np.float32)
        assert np.array_equal(from_csv, np.asarray(out.metrics[name]), equal_nan=True), name

    other = tmp_path / "chunks-of-5"
    proc = run_cli("train", reference["config"], "--out", other, "--chunk", "5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "2 x 5 + 1 x 2 updates (2 compiled sizes)" in proc.stdout
    assert _rows(other) == _rows(reference["run"])
    assert _same(_restore(other, rc, [0])[0], state)


# --------------------------------------------------------------------------- interruption
def _interrupt(proc, sig: signal.Signals, after_lines: int) -> tuple[str, str]:
    """Send `sig` once `after_lines` progress lines were printed; return (stdout, stderr)."""
    lines: list[str] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if sum(x.startswith("  update") for x in lines) >= after_lines:
            proc.send_signal(sig)
            break
    out, err = proc.communicate(timeout=240)
    return "".join(lines) + out, err


@pytest.mark.slow
def test_interrupted_and_resumed_run_is_bit_identical(reference, tmp_path):
    """SIGINT, resume, SIGTERM, resume: the same state and metrics as the uninterrupted run.

    A checkpoint after every update makes each chunk take a while, so the signal lands
    mid-run; the stop happens at the next chunk boundary.
    """
    run_dir = tmp_path / "interrupted"
    args = ("train", reference["config"], "--out", run_dir, "--chunk", "1")
    proc = start_cli(*args, "--checkpoint-every", "1", cwd=tmp_path)
    _, err = _interrupt(proc, signal.SIGINT, after_lines=1)
    assert proc.returncode == 130, err
    assert "interrupted (SIGINT)" in err and "Traceback" not in err
    assert f"checkpoint saved. Resume with: purejaxppo train --resume {run_dir}" in err
    first_stop = _latest(run_dir)
    assert 0 < first_stop < NUM_UPDATES

    proc = start_cli("train", "--resume", run_dir, "--checkpoint-every", "1", cwd=tmp_path)
    out, err = _interrupt(proc, signal.SIGTERM, after_lines=1)
    assert proc.returncode == 143, err
    assert f"continuing from the checkpoint at update {first_stop}" in out
    assert "interrupted (SIGTERM)" in err
    second_stop = _latest(run_dir)
    assert first_stop < second_stop < NUM_UPDATES

    done = run_cli("train", "--resume", run_dir, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "loaded from the compilation cache" in done.stdout

    rc = _tiny_rc()
    state, meta = _restore(run_dir, rc, [0])
    ref_state, _ = _restore(reference["run"], rc, [0])
    assert meta.update == NUM_UPDATES
    assert _same(state, ref_state)
    assert _rows(run_dir) == _rows(reference["run"])


# --------------------------------------------------------------------------- atomic writes
@pytest.mark.slow
def test_half_written_checkpoint_is_ignored_and_damaged_one_refused(reference, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_cli(
        "train",
        reference["config"],
        "--out",
        run_dir,
        "--chunk",
        "1",
        "--checkpoint-every",
        "4",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    ckpt = run_dir / rundir.CHECKPOINT_DIR
    assert sorted(int(p.name) for p in ckpt.iterdir()) == [8, 12]  # the previous one is kept
    rc = _tiny_rc()
    final, _ = _restore(run_dir, rc, [0])

    # A crash during orbax's write leaves only its temporary folder behind: ignored.
    partial = ckpt / "13.orbax-checkpoint-tmp-1234567"
    shutil.copytree(ckpt / "12", partial)
    for f in partial.rglob("*"):
        if f.is_file():
            f.write_bytes(b"\0" * 7)
    assert _latest(run_dir) == 12
    state, meta = _restore(run_dir, rc, [0])
    assert meta.update == 12 and _same(state, final)
    shutil.rmtree(partial)

    # Killed before the final checkpoint: resume from the previous one, same end state.
    shutil.move(ckpt / "12", tmp_path / "12")
    proc = run_cli("train", "--resume", run_dir, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "continuing from the checkpoint at update 8" in proc.stdout
    state, meta = _restore(run_dir, rc, [0])
    assert meta.update == 12 and _same(state, final)
    assert _rows(run_dir) == _rows(reference["run"])

    # A damaged committed checkpoint is refused by eval with one line (exit 2), nothing
    # changed; --resume falls back to the intact one before it and ends as the reference.
    for f in (ckpt / "12").rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    before = tree_digest(run_dir)
    assert_bad_input(run_cli("eval", run_dir, cwd=tmp_path), "cannot load the checkpoint")
    assert tree_digest(run_dir) == before
    proc = run_cli("train", "--resume", run_dir, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "checkpoint 12 cannot be restored (damaged" in proc.stderr
    assert "resuming from the intact checkpoint 10" in proc.stderr
    assert (ckpt / ".damaged-12").is_dir()
    state, meta = _restore(run_dir, rc, [0])
    assert meta.update == 12 and _same(state, final)
    assert _rows(run_dir) == _rows(reference["run"])
    # with no intact checkpoint left, --resume is refused in one line, nothing changed
    for step in ckpt.iterdir():
        for f in step.rglob("*") if step.name.isdigit() else ():
            if f.is_file():
                f.write_bytes(b"garbage")
    before = tree_digest(run_dir)
    assert_bad_input(run_cli("train", "--resume", run_dir, cwd=tmp_path), "corrupt checkpoint")
    assert tree_digest(run_dir) == before


# --------------------------------------------------------------------------- NaN stop
class NanAfter(ConstantReward):
    """ConstantReward whose reward turns NaN at step 100 of its (1000-step) episode."""

    @property
    def default_params(self) -> ProbeParams:
        return ProbeParams(max_steps_in_episode=1000)

    def step_env(self, key, state, action, params):
        obs, new_state, reward, done, info = super().step_env(key, state, action, params)
        reward = jnp.where(new_state.time >= 100, jnp.nan, reward)
        return obs, new_state, reward, done, info


@pytest.mark.slow
def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    rc = _tiny_rc(env_name="ConstantReward-probe")
    env = NanAfter()
    trainer = ppo.make_trainer(rc.ppo, env=env, env_params=env.default_params)
    err = io.StringIO()
    job = Job(rc, trainer, [0], tmp_path / "run", chunk=2, checkpoint_every=2)
    result = run_job(job, out=io.StringIO(), err=err)
    # Step 100 of every env falls in update 7 (16 steps per update).
    assert result.status == "nonfinite" and result.exit_code == 1
    message = err.getvalue().strip()
    assert "\n" not in message
    assert "non-finite" in message and "at update 7 (seed 0)" in message, message
    assert "last good checkpoint (update 6)" in message
    assert _latest(job.run_dir) == 6
    cols = rundir.read_metrics(job.run_dir / rundir.METRICS_FILE)
    assert cols["update"].max() == 7  # rows up to the bad update, for diagnosis
    assert np.isfinite(cols["total_loss"][cols["update"] <= 6]).all()
    assert not np.isfinite(cols["total_loss"][cols["update"] == 7]).all()
