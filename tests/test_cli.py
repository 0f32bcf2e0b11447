"""The `purejaxppo` command line, run as a real subprocess.

Bad input: exit status 2, one line on stderr, no traceback, nothing on disk changed.
One tiny real run (module fixture) backs the run-folder, eval, overwrite, resume-refusal
and compilation-cache tests.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnax
import numpy as np
import pytest
from _cli_support import (
    assert_bad_input,
    run_cli,
    tree_digest,
    write_config,
)

from purejaxppo import cli
from purejaxppo.run import cli as run_commands
from purejaxppo.run import rundir
from purejaxppo.run.config import load_run_config
from purejaxppo.train import METRIC_NAMES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- in-process
@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        ([], ["train", "eval", "envs"]),
        (
            ["train"],
            ["CONFIG", "--set", "--seeds", "--out", "--overwrite", "--resume", "--chunk"],
        ),
        (["eval"], ["RUN_DIR", "--episodes", "--deterministic", "--seed"]),
        (["envs"], ["action space"]),
    ],
)
def test_help_is_complete(capsys, argv, fragments):
    with pytest.raises(SystemExit) as info:
        cli.main([*argv, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for fragment in fragments:
        assert fragment in text


def test_envs_lists_every_registered_env(capsys):
    assert cli.main(["envs"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    for name in gymnax.registered_envs:
        assert name in lines, name
        assert f"configs/{name}.yaml" in lines[name], lines[name]
    assert "Discrete(2)" in lines["CartPole-v1"]
    assert "Box(1,) [-2, 2]" in lines["Pendulum-v1"]
    assert "needs the MNIST files" in lines["MNISTBandit-bsuite"]
    assert "26 gymnax environments, 26 with a config" in out


# --------------------------------------------------------------------------- bad input
BAD_CONFIGS = {
    "yaml_syntax": ("ppo:\n  num_envs: 4\n num_steps: 3\n", "invalid YAML"),
    "unknown_key": ("ppo:\n  num_env: 4\n", "ppo.num_env: unknown key; did you mean ppo.num_envs?"),
    "wrong_type": ("ppo:\n  num_envs: four\n", "ppo.num_envs: expected an integer, got 'four'"),
    "non_dividing_minibatches": (
        "ppo:\n  num_envs: 2\n  num_steps: 16\n  num_minibatches: 3\n",
        "ppo.num_minibatches: 3 does not divide the batch",
    ),
    "lr_not_positive": ("hparams:\n  learning_rate: 0.0\n", "hparams.learning_rate: expected"),
    "unknown_env": ("ppo:\n  env_name: CartPol-v1\n", "did you mean CartPole-v1"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_file(tmp_path, case):
    text, fragment = BAD_CONFIGS[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    before = tree_digest(tmp_path)
    proc = run_cli("train", path, "--out", tmp_path / "run", cwd=tmp_path)
    line = assert_bad_input(proc, str(path), fragment)
    assert line.startswith("purejaxppo train: error: ")
    assert tree_digest(tmp_path) == before  # no run folder, config untouched


def _main_in_process(capsys, *argv: str | Path) -> tuple[int, str, str]:
    """`cli.main(argv)` in this process: (exit status, stdout, stderr)."""
    try:
        status = cli.main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--set", "ppo.num_envs=four"], "--set ppo.num_envs: expected an integer, got 'four'"),
        (["--set", "hparams.learning_rate=-1"], "--set hparams.learning_rate: expected a number >"),
        (["--set", "hparams.lr=1"], "--set hparams.lr: unknown key"),
        (["--set", "ppo.num_envs"], "expected KEY=VALUE"),
        (["--seeds", "0"], "--seeds: expected a positive integer, got 0"),
        (["--seeds", "two"], "--seeds: invalid int value"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_command_line(tmp_path, capsys, monkeypatch, args, fragment):
    """In-process (the file-level cases above and below go through a subprocess)."""
    monkeypatch.setenv("PUREJAXPPO_CACHE_DIR", "off")
    config = write_config(tmp_path / "c.yaml")
    before = tree_digest(tmp_path)
    status, _, err = _main_in_process(capsys, "train", config, "--out", tmp_path / "run", *args)
    assert status == 2 and len(err.strip().splitlines()) == 1 and fragment in err, err
    assert tree_digest(tmp_path) == before


def test_missing_config_file(tmp_path):
    proc = run_cli("train", tmp_path / "nope.yaml", cwd=tmp_path)
    assert_bad_input(proc, "nope.yaml: no such config file")
    assert not (tmp_path / "runs").exists()


def test_mnist_bandit_without_data_is_bad_input(tmp_path, monkeypatch):
    monkeypatch.setenv("PUREJAXPPO_MNIST_DIR", str(tmp_path / "no-mnist"))
    config = run_commands.find_config_dir() / "MNISTBandit-bsuite.yaml"
    proc = run_cli("train", config, "--out", tmp_path / "run", cwd=tmp_path)
    assert_bad_input(proc, "ppo.env_name: MNISTBandit-bsuite needs the MNIST files")
    assert not (tmp_path / "run").exists()


def test_resume_of_missing_or_corrupt_folder(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path / "c.yaml")
    proc = run_cli("train", "--resume", tmp_path / "nothing", cwd=tmp_path)
    assert_bad_input(proc, "--resume", "no such run folder")

    garbage = tmp_path / "garbage"
    (garbage / rundir.CHECKPOINT_DIR / "5").mkdir(parents=True)
    shutil.copy(config, garbage / rundir.CONFIG_FILE)
    (garbage / rundir.CHECKPOINT_DIR / "5" / "junk").write_text("not a checkpoint")
    proc = run_cli("train", "--resume", garbage, cwd=tmp_path)
    assert_bad_input(proc, "corrupt checkpoint")

    # The other corrupt-folder cases in-process (same code path, no process start-up).
    monkeypatch.setenv("PUREJAXPPO_CACHE_DIR", "off")
    not_a_run = tmp_path / "not_a_run"
    not_a_run.mkdir()
    (not_a_run / "notes.txt").write_text("hello")
    no_ckpt = tmp_path / "no_ckpt"
    no_ckpt.mkdir()
    shutil.copy(config, no_ckpt / rundir.CONFIG_FILE)
    bad_yaml = tmp_path / "bad_yaml"
    bad_yaml.mkdir()
    (bad_yaml / rundir.CONFIG_FILE).write_text("ppo: [\n")
    before = tree_digest(tmp_path)
    for folder, fragment in [
        (not_a_run, "not a purejaxppo run folder"),
        (no_ckpt, "no checkpoint/ folder to resume from"),
        (bad_yaml, "invalid YAML"),
    ]:
        status, _, err = _main_in_process(capsys, "train", "--resume", folder)
        assert status == 2 and len(err.strip().splitlines()) == 1 and fragment in err, err
    assert tree_digest(tmp_path) == before


# --------------------------------------------------------------------------- one real run
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished 2-seed tiny run made by the CLI, with a fresh compilation cache: one seed
    per device (`--members-per-device 1`), each running the unvmapped trainer."""
    root = tmp_path_factory.mktemp("cli")
    cache = root / "jax-cache"
    config = write_config(root / "tiny.yaml")
    run_dir = root / "run"
    args = ("train", config, "--seeds", "2", "--members-per-device", "1", "--out", run_dir)
    proc = run_cli(*args, cwd=root, cache_dir=cache)
    assert proc.returncode == 0, proc.stderr
    return {"root": root, "cache": cache, "config": config, "run": run_dir, "proc": proc}


@pytest.mark.slow
def test_train_writes_the_run_folder(tiny_run):
    run_dir, proc = tiny_run["run"], tiny_run["proc"]
    assert proc.stderr.strip() == ""
    assert "compiled in" in proc.stdout and "done: final return" in proc.stdout
    assert load_run_config(run_dir / rundir.CONFIG_FILE) == load_run_config(tiny_run["config"])

    cols = rundir.read_metrics(run_dir / rundir.METRICS_FILE)
    num_updates, batch = 12, 32
    assert list(cols) == ["update", "seed", "env_steps", "wall_time_s", *METRIC_NAMES]
    assert len(cols["update"]) == num_updates * 2
    assert sorted(set(cols["seed"].tolist())) == [0, 1]
    assert np.array_equal(np.unique(cols["update"]), np.arange(1, num_updates + 1))
    assert np.array_equal(cols["env_steps"], cols["update"] * batch)
    assert np.all(np.diff(cols["wall_time_s"]) >= 0)

    summary = json.loads((run_dir / rundir.SUMMARY_FILE).read_text())
    assert summary["status"] == "completed" and summary["seeds"] == [0, 1]
    assert summary["updates_done"] == num_updates
    assert summary["compile_time_s"] > 0 and summary["train_time_s"] > 0
    assert summary["steps_per_second"] > 0
    for key in ("final_return", "best_return", "versions", "device"):
        assert summary[key] is not None, key
    assert {"jax", "flax", "gymnax"} <= set(summary["versions"])
    assert summary["device"]["platform"] == "cpu"

    # Time to solve: the first chunk end (chunks of 1 update here) whose windowed seed mean
    # reaches expected_return (20), recomputed from metrics.csv.
    returns = rundir.metrics_matrix(cols, "episode_return", [0, 1])
    window = rundir.final_window(num_updates)
    first = next(
        (u for u in range(1, num_updates + 1) if rundir.recent_mean(returns[:, :u], window) >= 20),
        None,
    )
    reached = summary["expected_return_reached"]
    assert (reached or {}).get("update") == first
    if first is not None:
        assert reached["env_steps_per_seed"] == first * batch
        assert 0 < reached["wall_time_s"] < summary["session_wall_time_s"]
        assert f"first reached at update {first} " in proc.stdout

    png = (run_dir / rundir.CURVE_FILE).read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000

    updates = sorted(int(p.name) for p in (run_dir / rundir.CHECKPOINT_DIR).iterdir())
    assert updates[-1] == num_updates and len(updates) == 2  # the previous good one is kept


@pytest.mark.slow
def test_two_seed_run_equals_single_runs(tiny_run):
    """Each seed of a 2-seed CLI run (one seed per device: `--members-per-device 1`, on 2
    host devices, in chunks, checkpointed) has the bits of
    `jax.jit(make_train(cfg))(key(seed), hparams)`."""
    import jax

    import purejaxppo as ppo
    from purejaxppo.run.checkpoint import Checkpointer
    from purejaxppo.run.compiled import seed_keys

    assert "2 seeds in 2 groups of 1 (--members-per-device 1) on 2 devices" in (
        tiny_run["proc"].stdout
    )
    rc = load_run_config(tiny_run["config"])
    train = jax.jit(ppo.make_train(rc.ppo))
    trainer = ppo.make_trainer(rc.ppo)
    checkpointer = Checkpointer(tiny_run["run"] / rundir.CHECKPOINT_DIR, read_only=True)
    like = jax.eval_shape(jax.vmap(trainer.init, (0, None)), seed_keys([0, 1]), rc.hparams)
    state, _ = checkpointer.restore(12, like)
    cols = rundir.read_metrics(tiny_run["run"] / rundir.METRICS_FILE)
    for seed in (0, 1):
        out = train(jax.random.key(seed), rc.hparams)
        got_params = jax.tree.map(lambda x, s=seed: x[s], state.params)
        for got, want in zip(jax.tree.leaves(got_params), jax.tree.leaves(out.params), strict=True):
            assert np.array_equal(got, want)
        got_key = jax.random.key_data(state.key)[seed]
        assert np.array_equal(got_key, jax.random.key_data(out.state.key))
        for name in METRIC_NAMES:
            got = rundir.metrics_matrix(cols, name, [seed])[0].astype(np.float32)
            assert np.array_equal(got, np.asarray(out.metrics[name]), equal_nan=True), name


@pytest.mark.slow
def test_eval_prints_return_per_seed(tiny_run):
    root = tiny_run["root"]
    proc = run_cli("eval", tiny_run["run"], "--episodes", "3", "--deterministic", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "checkpoint at update 12/12" in proc.stdout and "deterministic" in proc.stdout
    for seed in (0, 1):
        assert f"seed {seed}: return " in proc.stdout
    assert "all seeds: return" in proc.stdout
    assert_bad_input(run_cli("eval", root / "nope", cwd=root), "no such run folder")
    assert_bad_input(run_cli("eval", tiny_run["run"], "--episodes", "0", cwd=root), "--episodes")


@pytest.mark.slow
def test_existing_out_is_refused_without_overwrite(tiny_run):
    run_dir, root = tiny_run["run"], tiny_run["root"]
    before = tree_digest(run_dir)
    proc = run_cli("train", tiny_run["config"], "--out", run_dir, cwd=root)
    assert_bad_input(proc, "holds a training run (purejaxppo train); pass --overwrite")
    assert tree_digest(run_dir) == before

    other = root / "someone-elses"
    other.mkdir()
    (other / "data.txt").write_text("keep me")
    proc = run_cli("train", tiny_run["config"], "--out", other, "--overwrite", cwd=root)
    assert_bad_input(proc, "holds files that are not a purejaxppo folder, not a training run")
    assert (other / "data.txt").read_text() == "keep me"


@pytest.mark.slow
def test_incompatible_resume_is_refused(tiny_run, capsys, monkeypatch):
    run_dir, root = tiny_run["run"], tiny_run["root"]
    before = tree_digest(run_dir)
    changed = write_config(root / "changed.yaml", num_envs=4)
    proc = run_cli("train", changed, "--resume", run_dir, cwd=root)
    assert_bad_input(proc, "incompatible config", "ppo.num_envs (2 -> 4)")

    monkeypatch.setenv("PUREJAXPPO_CACHE_DIR", "off")
    for args, fragment in [
        (["--set", "hparams.gamma=0.5"], "incompatible config, it differs from the run's in "),
        (["--seeds", "3"], "has 2 seeds, got --seeds 3"),
        (["--out", root / "x"], "--out: not allowed with --resume"),
        (["--overwrite"], "--overwrite: not allowed with --resume"),
    ]:
        status, _, err = _main_in_process(capsys, "train", "--resume", run_dir, *args)
        assert status == 2 and len(err.strip().splitlines()) == 1 and fragment in err, err
    # A finished run resumes to "nothing to do".
    status, out, _ = _main_in_process(capsys, "train", "--resume", run_dir)
    assert status == 0 and "already complete" in out
    assert tree_digest(run_dir) == before


@pytest.mark.slow
def test_resume_with_a_larger_total_extends_the_run(tiny_run, capsys, monkeypatch, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run["run"], run_dir)
    monkeypatch.setenv("PUREJAXPPO_CACHE_DIR", "off")
    before = tree_digest(run_dir)
    for total, fragment in [
        (200, "ppo.total_timesteps: the run has 384 (12 updates); extending it needs"),
        (400, "extending it needs at least one more update of 32 steps, got 400"),
    ]:
        status, _, err = _main_in_process(
            capsys, "train", "--resume", run_dir, "--set", f"ppo.total_timesteps={total}"
        )
        assert status == 2 and fragment in err and len(err.strip().splitlines()) == 1, err
    assert tree_digest(run_dir) == before

    args = ("train", "--resume", run_dir, "--set", "ppo.total_timesteps=512", "--no-bar")
    status, out, err = _main_in_process(capsys, *args)
    assert status == 0, err
    assert "extending the run from 12 to 16 updates" in out
    rc = load_run_config(run_dir / rundir.CONFIG_FILE)
    assert rc.ppo.total_timesteps == 512
    assert "Extended from 12 to 16 updates" in (run_dir / rundir.CONFIG_FILE).read_text()
    cols = rundir.read_metrics(run_dir / rundir.METRICS_FILE)
    assert np.array_equal(np.unique(cols["update"]), np.arange(1, 17))
    new_rows = cols["update"] > 12
    lr = cols["learning_rate"][new_rows]
    assert (lr > 0).all() and np.isclose(lr.max(), 2.5e-4 * (1 - 12 / 16), rtol=1e-5)
    summary = json.loads((run_dir / rundir.SUMMARY_FILE).read_text())
    assert summary["updates_done"] == 16 and summary["status"] == "completed"
    # The reached flag counts every session's rows, by the one rule.
    returns = rundir.metrics_matrix(cols, "episode_return", [0, 1])
    assert summary["reached_expected_return"] == rundir.reached_expected(returns, 16, 20.0)
    # Done again: the extended run is complete, and resumes to "nothing to do".
    status, out, _ = _main_in_process(capsys, "train", "--resume", run_dir)
    assert status == 0 and "already complete (16 updates)" in out


@pytest.mark.slow
def test_overwrite_and_compilation_cache(tiny_run):
    """A rerun with --overwrite replaces the run and loads its programs from the cache."""
    run_dir, root, cache = tiny_run["run"], tiny_run["root"], tiny_run["cache"]
    first = json.loads((run_dir / rundir.SUMMARY_FILE).read_text())
    assert "new entries in the compilation cache" in first["compilation_cache"]
    assert any(cache.iterdir())
    old_metrics = (run_dir / rundir.METRICS_FILE).read_text()
    proc = run_cli(
        "train",
        tiny_run["config"],
        "--seeds",
        "2",
        "--members-per-device",
        "1",
        "--out",
        run_dir,
        "--overwrite",
        cwd=root,
        cache_dir=cache,
    )
    assert proc.returncode == 0, proc.stderr
    second = json.loads((run_dir / rundir.SUMMARY_FILE).read_text())
    assert second["compilation_cache"].startswith("loaded from the compilation cache")
    assert second["compile_time_s"] < first["compile_time_s"]
    # Same config, same seeds: the same numbers (wall times aside).
    strip = [line.split(",", 4)[:3] + line.split(",", 4)[4:] for line in old_metrics.splitlines()]
    new = (run_dir / rundir.METRICS_FILE).read_text().splitlines()
    assert strip == [line.split(",", 4)[:3] + line.split(",", 4)[4:] for line in new]


def test_make_train_target_uses_this_cli():
    makefile = (Path(cli.__file__).resolve().parent.parent / "Makefile").read_text()
    assert "purejaxppo train configs/CartPole-v1.yaml" in makefile


def test_version_names_the_libraries(capsys):
    status, out, _ = _main_in_process(capsys, "--version")
    assert status == 0 and out.startswith("purejaxppo 0.") and "jax 0." in out


def test_envs_shows_config_paths_that_resolve_from_anywhere(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, _ = _main_in_process(capsys, "envs")
    assert status == 0
    row = next(line for line in out.splitlines() if line.startswith("CartPole-v1 "))
    shown = next(word for word in row.split() if word.endswith(".yaml"))
    assert Path(shown).is_file(), shown


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (
            lambda root: Path(__file__).parent.parent / "configs/sweeps/cartpole_lr.yaml",
            "a sweep file (it has grid, seeds, base), not a run config: run it with "
            "purejaxppo sweep ",
        ),
        (lambda root: _fake_folder(root, "config.yaml"), "is a run folder (for purejaxppo eval"),
        (lambda root: _fake_folder(root, "sweep.json"), "is a sweep output folder"),
    ],
)
def test_train_says_what_the_file_is(capsys, tmp_path, make, fragment):
    status, _, err = _main_in_process(capsys, "train", make(tmp_path))
    assert status == 2 and fragment in err and len(err.strip().splitlines()) == 1, err


def _fake_folder(root: Path, marker: str) -> Path:
    folder = root / "folder"
    folder.mkdir()
    (folder / marker).write_text("{}")
    return folder


@pytest.mark.slow
def test_a_chunk_longer_than_the_run_is_clamped_in_the_header(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PUREJAXPPO_CACHE_DIR", "off")
    config = write_config(tmp_path / "tiny.yaml")
    args = ("train", config, "--out", tmp_path / "run", "--chunk", "1000", "--no-bar")
    status, out, err = _main_in_process(capsys, *args)
    assert status == 0, err
    assert "1 seed (0)" in out and "1 seeds" not in out
    assert "chunks: 1 x 12 updates (one compiled size); checkpoint every 12 updates" in out
