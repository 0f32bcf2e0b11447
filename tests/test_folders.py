"""Folders that commands write: each refuses every other kind of folder untouched, one writer
at a time (an OS lock), `--overwrite` keeps the old run until the new one has started, and
run folders never look complete when they are not (issues 26 and 27)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _cli_support import (
    REPO,
    assert_bad_input,
    cli_env,
    run_cli,
    start_cli,
    tree_digest,
    write_config,
)
from test_rlhf_cli import TINY_SETS

from purejaxppo.run import outdir, rundir
from purejaxppo.run.rundir import RunDirError

RLHF_CONFIG = REPO / "configs" / "rlhf" / "ppo.yaml"
RLHF_SETS = [a for s in TINY_SETS for a in ("--set", s)]
SWEEP = "base: tiny.yaml\nseeds: 2\ngrid:\n  hparams.learning_rate: [1.0e-3, 3.0e-3]\n"


def _wait_for_lock(proc: subprocess.Popen, folder: Path, timeout: float = 240) -> None:
    """Until `proc` holds `folder`'s lock (its pid is in the lock file)."""
    lock = outdir.lock_path(folder)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode}: {proc.communicate()}")
        if lock.is_file() and f"pid {proc.pid}:" in lock.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{proc.pid} never took {folder}")


def _contended(root: Path, folder: Path, *args: str | Path) -> tuple[str, str]:
    """Start `purejaxppo ARGS` (writer A), freeze it once it holds `folder`, run the same
    command again (writer B, which must be refused in one line, leaving the folder as it
    was), then let A finish; returns A's `(stdout, stderr)`."""
    first = start_cli(*args, cwd=root)
    try:
        _wait_for_lock(first, folder)
        os.kill(first.pid, signal.SIGSTOP)
        before = tree_digest(folder)
        second = run_cli(*args, cwd=root)
        assert_bad_input(second, "in use by another purejaxppo process", f"pid {first.pid}")
        assert tree_digest(folder) == before
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=400)
    assert first.returncode == 0, (out, err)
    assert not outdir.lock_path(folder).exists()  # released at the end
    return out, err


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """One real folder of every kind, each written while a second writer was refused: a
    training run, a sweep, an RLHF run; plus a benchmark record and a folder of other
    files."""
    root = tmp_path_factory.mktemp("folders")
    config = write_config(root / "tiny.yaml")
    (root / "sweep.yaml").write_text(SWEEP)
    found = {"root": root, "config": config, "sweep_file": root / "sweep.yaml"}
    found["run"] = root / "run"
    _contended(root, found["run"], "train", config, "--out", found["run"], "--no-bar")
    found["sweep"] = root / "sweep"
    _contended(root, found["sweep"], "sweep", "sweep.yaml", "--out", found["sweep"],
               "--no-progress")  # fmt: skip
    found["rlhf"] = root / "rlhf"
    _contended(root, found["rlhf"], "rlhf", RLHF_CONFIG, "--out", found["rlhf"], *RLHF_SETS)
    found["bench"] = root / "bench"
    found["bench"].mkdir()
    (found["bench"] / "bench.json").write_text("{}\n")
    found["other"] = root / "other"
    found["other"].mkdir()
    (found["other"] / "notes.txt").write_text("keep me\n")
    return found


def test_concurrent_writers_leave_one_uninterrupted_run(folders):
    """The contended writers above: the train run equals an uncontended run of its config
    (every metric but wall time), the sweep and the RLHF run are complete."""
    root = folders["root"]
    alone = root / "alone"
    proc = run_cli("train", folders["config"], "--out", alone, "--no-bar", cwd=root)
    assert proc.returncode == 0, proc.stderr
    a = rundir.read_metrics(folders["run"] / rundir.METRICS_FILE)
    b = rundir.read_metrics(alone / rundir.METRICS_FILE)
    for name in a:
        if name != "wall_time_s":
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert json.loads((folders["run"] / "summary.json").read_text())["status"] == "completed"
    rows = (folders["sweep"] / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 4  # 2 sets x 2 seeds, each once
    assert json.loads((folders["rlhf"] / "summary.json").read_text())["num_members"] == 6


def test_two_resumes_of_one_run_leave_one_resumed_run(folders, tmp_path):
    """`train --resume` twice at once: one is refused, the other ends as a resume alone."""
    import shutil

    root = folders["root"]
    alone, contended = tmp_path / "alone", tmp_path / "contended"
    shutil.copytree(folders["run"], alone)
    shutil.copytree(folders["run"], contended)
    extend = ("--set", "ppo.total_timesteps=768", "--no-bar")
    proc = run_cli("train", "--resume", alone, *extend, cwd=root)
    assert proc.returncode == 0, proc.stderr
    _contended(root, contended, "train", "--resume", contended, *extend)
    a = rundir.read_metrics(alone / rundir.METRICS_FILE)
    b = rundir.read_metrics(contended / rundir.METRICS_FILE)
    assert np.array_equal(b["update"], np.repeat(np.arange(1, 25), 1))  # each update once
    for name in a:
        if name != "wall_time_s":
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


WRITERS = {
    "train": ("run", ["train", "{config}", "--out", "{dir}"]),
    "train --overwrite": ("run", ["train", "{config}", "--out", "{dir}", "--overwrite"]),
    "sweep": ("sweep", ["sweep", "{sweep_file}", "--out", "{dir}"]),
    "rlhf": ("rlhf", ["rlhf", str(RLHF_CONFIG), "--out", "{dir}"]),
    "rlhf --overwrite": ("rlhf", ["rlhf", str(RLHF_CONFIG), "--out", "{dir}", "--overwrite"]),
    "bench": ("bench", ["bench", "--quick", "--out", "{dir}"]),
    "bench --overwrite": ("bench", ["bench", "--quick", "--out", "{dir}", "--overwrite"]),
}
KINDS = ("run", "sweep", "rlhf", "bench", "other")


@pytest.mark.parametrize("writer", list(WRITERS))
def test_every_writer_refuses_every_other_kind_of_folder(folders, writer, capsys):
    """Pointed at a folder of another kind (or of its own kind without --overwrite), every
    command that writes a folder exits 2 with one line naming what the folder holds, and
    leaves the whole tree byte-identical."""
    from purejaxppo.cli import main

    own, template = WRITERS[writer]
    for kind in KINDS:
        if kind == own and ("--overwrite" in template or own == "sweep"):
            continue  # replacing / resuming its own kind is what these are for
        target = folders[kind]
        argv = [
            a.format(config=folders["config"], sweep_file=folders["sweep_file"], dir=target)
            for a in template
        ]
        before = tree_digest(folders["root"])
        code = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, (writer, kind, err)
        assert len(err) == 1 and "Traceback" not in err[0], (writer, kind, err)
        assert f"--out {target}: " in err[0], err[0]
        assert outdir.describe(kind) in err[0], err[0]
        assert tree_digest(folders["root"]) == before, (writer, kind)


def _refusal_in_a_child(call: str, target: Path) -> str:
    """Run `call` (from `purejaxppo.run.outdir`, with `target` bound) in another process,
    which must refuse it with a `ValueError`; returns the error's text."""
    code = (
        "import sys; from pathlib import Path; from purejaxppo.run.outdir import *\n"
        f"target = Path(sys.argv[1])\ntry:\n    {call}\n"
        "except ValueError as err:\n    print(err); sys.exit(3)"
    )
    other = subprocess.run(
        [sys.executable, "-c", code, str(target)],
        capture_output=True, text=True, env=cli_env(None), timeout=60,
    )  # fmt: skip
    assert other.returncode == 3, other.stderr
    return other.stdout


def test_folder_kinds_and_the_lock(tmp_path):
    assert outdir.folder_kind(tmp_path / "missing") is None
    assert outdir.folder_kind(tmp_path) is None  # empty
    (tmp_path / "rlhf.yaml").write_text("")
    (tmp_path / "metrics.csv").write_text("")
    assert outdir.folder_kind(tmp_path) == "rlhf"  # its metrics.csv does not make it a run

    target = tmp_path / "deep" / "run"
    with outdir.FolderLock(target, "train") as lock:
        assert lock.file.read_text().startswith(f"pid {os.getpid()}: purejaxppo train")
        other = _refusal_in_a_child("FolderLock(target, 'sweep')", target)
        assert "in use by another purejaxppo process" in other
        # a writer still filling the folder in (no marker yet): the check before the lock
        # says "in use", not "files that are not a purejaxppo folder"; its own lock is not
        # another's
        target.mkdir(parents=True)
        (target / "partial.tmp").write_text("")
        with pytest.raises(RunDirError, match="holds files that are not a purejaxppo folder"):
            outdir.check_out(target, "sweep")
        other = _refusal_in_a_child("check_out(target, 'sweep')", target)
        assert "in use by another purejaxppo process (pid" in other
        shutil.rmtree(target)
    assert not lock.file.exists() and not target.exists()
    # a lock file left by a killed process holds no lock
    lock.file.write_text("pid 1: purejaxppo train, since long ago\n")
    with outdir.FolderLock(target, "train"):
        pass
    # a place where nothing can be created: one line, nothing made
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RunDirError, match=r"--out .*file/run: cannot write in .*a file stands"):
        outdir.FolderLock(blocker / "run", "train")


def test_overwrite_keeps_the_old_run_until_the_new_one_has_started(folders, tmp_path):
    """`--overwrite` with an invalid config, or with a run that dies in its first chunk
    (NaN), leaves the old run byte-identical; a good one replaces it."""
    root, config = folders["root"], folders["config"]
    old = tmp_path / "old"
    proc = run_cli("train", config, "--out", old, "--no-bar", cwd=root)
    assert proc.returncode == 0, proc.stderr
    before = tree_digest(old)

    bad = run_cli("train", config, "--out", old, "--overwrite", "--set", "ppo.num_envs=0",
                  cwd=root)  # fmt: skip
    assert_bad_input(bad, "ppo.num_envs")
    nan = run_cli("train", config, "--out", old, "--overwrite", "--no-bar",
                  "--set", "hparams.learning_rate=1e30", "--set", "hparams.max_grad_norm=1e30",
                  cwd=root)  # fmt: skip
    assert nan.returncode == 1, nan.stderr
    assert "the new run is discarded" in nan.stderr and "kept unchanged" in nan.stderr
    assert tree_digest(old) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]  # nothing set aside is left

    good = run_cli("train", config, "--out", old, "--overwrite", "--no-bar", "--seeds", "2",
                   cwd=root)  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert json.loads((old / "summary.json").read_text())["seeds"] == [0, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


def _flip_bytes(checkpoint: Path) -> None:
    """Flip 64 bytes in the middle of the largest array file of a checkpoint folder."""
    files = [p for p in checkpoint.rglob("*") if p.is_file() and "/state/" in str(p)]
    target = max(files, key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(b ^ 0xFF for b in data[mid : mid + 64])
    target.write_bytes(bytes(data))


def test_a_damaged_checkpoint_is_refused_by_eval_and_skipped_by_resume(folders, tmp_path):
    root, config = folders["root"], folders["config"]
    run = tmp_path / "run"
    proc = run_cli("train", config, "--out", run, "--no-bar", "--set",
                   "ppo.total_timesteps=768", cwd=root)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    updates = sorted(int(p.name) for p in (run / "checkpoint").iterdir())
    assert updates[-1] == 24 and len(updates) == 2
    _flip_bytes(run / "checkpoint" / "24")
    assert_bad_input(run_cli("eval", run, "--episodes", "1", cwd=root),
                     "checkpoint/24: damaged")  # fmt: skip
    # a checkpoint whose manifest is lost: the same one line, no orbax traceback
    lost = tmp_path / "lost"
    lost.mkdir()
    os.rename(run / "checkpoint" / "24", lost / "24")
    (run / "checkpoint" / "24").mkdir()
    for p in (lost / "24").iterdir():
        if p.name != "_CHECKPOINT_METADATA":
            os.rename(p, run / "checkpoint" / "24" / p.name)
    assert_bad_input(run_cli("eval", run, "--episodes", "1", cwd=root),
                     "_CHECKPOINT_METADATA is missing")  # fmt: skip
    resumed = run_cli("train", "--resume", run, "--no-bar", "--set", "ppo.total_timesteps=1536",
                      cwd=root)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert f"resuming from the intact checkpoint {updates[0]}" in resumed.stderr
    rows = rundir.read_metrics(run / rundir.METRICS_FILE)
    assert np.array_equal(rows["update"], np.arange(1, 49))  # each update once


def test_summary_says_in_progress_and_first_reached_comes_from_metrics(folders, tmp_path):
    """A killed session leaves summary.json "in_progress" (never a stale "completed"), and
    the resumed run's first-reached update is the one metrics.csv shows."""
    root = folders["root"]
    config = write_config(tmp_path / "long.yaml", total_timesteps=320_000, num_envs=4)
    run = tmp_path / "run"
    proc = start_cli("train", config, "--out", run, "--no-bar", "--chunk", "20",
                     "--checkpoint-every", "20", cwd=root)  # fmt: skip
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        rows = (
            (run / "metrics.csv").read_text().count("\n") if (run / "metrics.csv").exists() else 0
        )
        if rows > 60 or proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.communicate()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "in_progress"
    resumed = run_cli("train", "--resume", run, "--no-bar", cwd=root)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((run / "summary.json").read_text())
    cols = rundir.read_metrics(run / rundir.METRICS_FILE)
    returns = rundir.metrics_matrix(cols, "episode_return", [0])
    first = rundir.first_reached(returns, returns.shape[1], 20.0)
    assert first is not None and summary["expected_return_reached"]["update"] == first


def test_rlhf_stops_on_nan_naming_the_stage_and_writes_nothing(folders, tmp_path):
    out = tmp_path / "nan"
    proc = run_cli("rlhf", RLHF_CONFIG, "--out", out, *RLHF_SETS,
                   "--set", "sft.learning_rate=1e30", cwd=folders["root"])  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "SFT (sft.learning_rate): non-finite loss at step" in line, line
    assert not out.exists() and not outdir.lock_path(out).exists()


def test_rlhf_checks_before_it_works(tmp_path, capsys):
    from purejaxppo.cli import main
    from purejaxppo.rlhf.cli import NonFiniteError, check_finite

    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    out = ["--out", str(tmp_path / "o")]
    cases = [
        ([str(empty), *out], "the file is empty"),
        ([str(RLHF_CONFIG), *out, "--set", "sft.learning_rate=.inf"],
         "sft.learning_rate: expected a finite number > 0"),
        ([str(RLHF_CONFIG), *out, "--set", "population.grid.kl_target=[-1.0]"],
         "population.grid.kl_target: expected a finite number > 0, got -1.0"),
        ([str(RLHF_CONFIG), *out, "--set", "population.grid.kl_targt=[1, 2]"],
         "did you mean population.grid.kl_target?"),
        ([str(RLHF_CONFIG), "--out", str(empty / "x")], "cannot write in"),
    ]  # fmt: skip
    for argv, fragment in cases:
        assert main(["rlhf", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and fragment in err[0], (argv, err)
    assert not (tmp_path / "o").exists()
    run = tmp_path / "a-run"
    run.mkdir()
    (run / "rlhf.yaml").write_text("seed: 0\n")
    assert main(["rlhf", str(run)]) == 2
    assert f"its config is {run / 'rlhf.yaml'}" in capsys.readouterr().err
    with pytest.raises(NonFiniteError, match=r"RL: non-finite kl at iteration 1 \(member b\)"):
        check_finite("RL", {"kl": np.array([[0.0, 1.0, np.nan], [0.0, np.inf, 2.0]])}, ["a", "b"])


def _interrupt(args: list, root: Path, wait_for: str, sig: int) -> subprocess.CompletedProcess:
    proc = start_cli(*args, cwd=root)
    deadline = time.monotonic() + 240
    seen = ""
    while wait_for not in seen and time.monotonic() < deadline and proc.poll() is None:
        seen += proc.stdout.readline()
    time.sleep(0.5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(args, proc.returncode, seen + out, err)


@pytest.mark.parametrize(
    ("command", "sig", "code"),
    [("rlhf", signal.SIGINT, 130), ("rlhf", signal.SIGTERM, 143), ("sweep", signal.SIGTERM, 143)],
)
def test_sigint_and_sigterm_end_every_command_in_one_line(folders, tmp_path, command, sig, code):
    root = folders["root"]
    out = tmp_path / "out"
    if command == "rlhf":
        args, wait_for = ["rlhf", RLHF_CONFIG, "--out", out, *RLHF_SETS], "prepare:"
    else:
        (root / "sweep-long.yaml").write_text(SWEEP.replace("seeds: 2", "seeds: 64"))
        args, wait_for = ["sweep", "sweep-long.yaml", "--out", out, "--no-progress"], "sweep "
    proc = _interrupt(args, root, wait_for, sig)
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "interrupted (" in lines[0], proc.stderr
    assert not outdir.lock_path(out).exists()
    if command == "rlhf":
        assert not out.exists()


def test_sweep_discards_a_damaged_chunk_and_drops_stale_reports(folders, tmp_path):
    import shutil

    from purejaxppo.sweep.store import chunk_files

    root = folders["root"]
    out = tmp_path / "sweep"
    shutil.copytree(folders["sweep"], out)
    results = (out / "results.csv").read_text()
    _, _, first = chunk_files(out)[0]
    first.write_bytes(first.read_bytes()[:100])  # truncated
    proc = run_cli("sweep", "sweep.yaml", "--out", out, "--no-progress", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert f"{first}: damaged (" in proc.stdout and "its members train again" in proc.stdout
    assert (out / "results.csv").read_text().split("\n")[0] == results.split("\n")[0]
    # more seeds, killed before they train: no report of the old population is left
    (root / "sweep3.yaml").write_text(SWEEP.replace("seeds: 2", "seeds: 3"))
    from purejaxppo.sweep.spec import load_sweep
    from purejaxppo.sweep.store import check_manifest, manifest_for, prepare_folder

    spec = load_sweep(root / "sweep3.yaml")
    old = check_manifest(out / "sweep.json", spec.to_dict())
    notes = prepare_folder(out, root / "sweep3.yaml", manifest_for(spec.to_dict(), None, 32, old),
                           old, spec.population())  # fmt: skip
    assert notes == []
    assert not (out / "results.csv").exists() and not (out / "best.yaml").exists()
    assert not (out / "tensorboard").exists()


def test_small_bounds_are_one_line(folders):
    root, config = folders["root"], folders["config"]
    for args, fragment in (
        (("eval", folders["run"], "--seed", "99999999999999999999"), "--seed: expected"),
        (("eval", folders["run"], "--episodes", "10000000"), "--episodes: at most"),
        (("train", config, "--seeds", "100000"), "--seeds: at most"),
        (("train", config, "--set", "expected_return=.nan"), "expected a finite number"),
    ):
        assert_bad_input(run_cli(*args, cwd=root), fragment)


def test_rlhf_run_folder_has_the_usual_mode(folders):
    assert folders["rlhf"].stat().st_mode & 0o777 == folders["run"].stat().st_mode & 0o777


def test_an_unwritable_compilation_cache_is_off_and_said(folders, tmp_path):
    blocker = tmp_path / "cache-file"
    blocker.write_text("")
    env = cli_env(blocker / "jax")
    proc = subprocess.run(
        [sys.executable, "-m", "purejaxppo", "train", str(folders["config"]), "--out",
         str(tmp_path / "r"), "--no-bar"],
        cwd=folders["root"], env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "compilation cache off: " in proc.stdout and "is not writable" in proc.stdout
    assert "WARNING" not in proc.stderr


def test_sweep_takes_set_like_train(tmp_path):
    from purejaxppo.run.errors import ConfigError
    from purejaxppo.sweep.spec import load_sweep

    write_config(tmp_path / "tiny.yaml")
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    spec = load_sweep(tmp_path / "sweep.yaml", ["seeds=3", "ppo.total_timesteps=768"])
    assert spec.num_seeds == 3 and spec.base.ppo.total_timesteps == 768
    assert spec.population().size == 2 * 3
    with pytest.raises(ConfigError, match=r"ppo.num_env: unknown key.*ppo.num_envs"):
        load_sweep(tmp_path / "sweep.yaml", ["ppo.num_env=3"])
