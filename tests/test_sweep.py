"""Sweeps without training: SWEEP.yaml parsing and errors, populations, statistics, reports.

Nothing here compiles a trainer, so the whole file runs in a few seconds.
"""

import argparse
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from sweep_testing import TINY_PPO

import purejaxppo as ppo
from purejaxppo import sweep as sw
from purejaxppo.run.config import ConfigError, load_run_config
from purejaxppo.run.progress import count
from purejaxppo.run.rundir import final_return
from purejaxppo.sweep import cli as sweep_cli
from purejaxppo.sweep import progress as sw_progress
from purejaxppo.sweep import report as sweep_report
from purejaxppo.sweep import store as sweep_store


def write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load(tmp_path: Path, body: str) -> sw.SweepSpec:
    return sw.load_sweep(write(tmp_path, TINY_PPO + body))


# --------------------------------------------------------------------------- populations
def test_grid_times_random_times_seeds_in_set_major_order(tmp_path):
    spec = load(
        tmp_path,
        """
seed: 7
seeds: 3
grid:
  hparams.learning_rate: [1.0e-4, 1.0e-3]
  hparams.clip_eps: [0.1, 0.2, 0.3]
random:
  count: 4
  seed: 5
  hparams.ent_coef: {log_uniform: [1.0e-4, 0.1]}
  hparams.gae_lambda: {uniform: [0.8, 0.99]}
  hparams.vf_coef: {choice: [0.25, 0.5]}
""",
    )
    pop = spec.population()
    assert len(pop.sets) == 2 * 3 * 4 and pop.size == 72 and pop.seeds == (7, 8, 9)
    assert pop.swept == (
        "hparams.learning_rate",
        "hparams.clip_eps",
        "hparams.ent_coef",
        "hparams.gae_lambda",
        "hparams.vf_coef",
    )
    assert pop.member(5) == sw.Member(index=5, set_index=1, seed=9)
    # the grid is the outer loop (file order), the random draws the inner one
    first = [dict(s.values) for s in pop.sets[:4]]
    assert all(v["hparams.learning_rate"] == 1e-4 and v["hparams.clip_eps"] == 0.1 for v in first)
    assert len({v["hparams.ent_coef"] for v in first}) == 4
    # the same draws are crossed with every grid point
    assert [dict(s.values)["hparams.ent_coef"] for s in pop.sets[4:8]] == [
        v["hparams.ent_coef"] for v in first
    ]
    for s in pop.sets:
        v = dict(s.values)
        assert 1e-4 <= v["hparams.ent_coef"] <= 0.1 and 0.8 <= v["hparams.gae_lambda"] <= 0.99
        assert v["hparams.vf_coef"] in (0.25, 0.5)
        assert s.hparams.ent_coef == v["hparams.ent_coef"]  # values reach the HParams
        assert s.config == pop.sets[0].config
    assert len(pop.groups()) == 1 and pop.groups()[0].members == tuple(range(72))
    # deterministic: the same file gives the same population; another sampler seed does not
    assert spec.population() == pop
    other = load(tmp_path, "random: {count: 4, seed: 6, hparams.ent_coef: {uniform: [0.0, 1.0]}}")
    again = load(tmp_path, "random: {count: 4, seed: 6, hparams.ent_coef: {uniform: [0.0, 1.0]}}")
    assert other.population() == again.population()
    assert (
        other.population()
        != load(
            tmp_path, "random: {count: 4, seed: 7, hparams.ent_coef: {uniform: [0.0, 1.0]}}"
        ).population()
    )


def test_log_uniform_covers_decades_evenly(tmp_path):
    spec = load(
        tmp_path, "random: {count: 400, hparams.learning_rate: {log_uniform: [1.0e-5, 1.0e-1]}}"
    )
    logs = np.log10([s.hparams.learning_rate for s in spec.population().sets])
    counts, _ = np.histogram(logs, bins=4, range=(-5, -1))
    assert counts.min() > 60  # ~100 per decade; a linear draw would put ~90% in the last one


def test_static_fields_make_groups_in_order_of_appearance(tmp_path):
    spec = load(
        tmp_path,
        """
seeds: 2
grid:
  hparams.learning_rate: [1.0e-4, 1.0e-3]
  ppo.num_envs: [4, 8]
  ppo.hidden_sizes: [[16], [8, 8]]
""",
    )
    pop = spec.population()
    groups = pop.groups()
    assert len(groups) == 4 and sum(len(g.members) for g in groups) == pop.size == 16
    assert groups[0].values == (("ppo.num_envs", 4), ("ppo.hidden_sizes", (16,)))
    assert groups[0].config.num_envs == 4 and groups[0].config.hidden_sizes == (16,)
    # learning rate is traced: both values share each group
    for g in groups:
        lrs = {pop.sets[pop.member(m).set_index].hparams.learning_rate for m in g.members}
        assert lrs == {1e-4, 1e-3}
        assert all(pop.sets[pop.member(m).set_index].config == g.config for m in g.members)
    assert groups[1].label() == "num_envs=4 hidden_sizes=8x8"


def test_base_file_and_overrides(tmp_path):
    base = write(tmp_path, TINY_PPO + "hparams: {gamma: 0.9}\nseed: 3\n", "base.yaml")
    spec = sw.load_sweep(
        write(
            tmp_path,
            f"base: {base.name}\nppo: {{num_envs: 8}}\nhparams: {{clip_eps: 0.3}}\nseeds: 2\n",
        )
    )
    assert spec.base.ppo.num_envs == 8 and spec.base.ppo.hidden_sizes == (16,)
    assert spec.base.hparams.gamma == 0.9 and spec.base.hparams.clip_eps == 0.3
    pop = spec.population()
    assert pop.seeds == (3, 4) and len(pop.sets) == 1 and pop.swept == ()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("grids: {}", r"sweep.yaml: grids: unknown key; did you mean grid\?"),
        (
            "grid: {learning_rate: [0.1]}",
            r"grid.learning_rate: unknown key; did you mean hparams.learning_rate\?",
        ),
        (
            "grid: {hparams.learning_rat: [0.1]}",
            r"grid.hparams.learning_rat: unknown key; did you mean hparams.learning_rate\?",
        ),
        (
            "grid: {hparams.learning_rate: 0.1}",
            r"grid.hparams.learning_rate: expected a non-empty list",
        ),
        (
            "grid: {hparams.learning_rate: [-0.1]}",
            r"grid.hparams.learning_rate: expected a number > 0, got -0.1",
        ),
        (
            "grid: {hparams.gamma: [0.9, 1.5]}",
            r"grid.hparams.gamma: expected a number in \[0, 1\], got 1.5",
        ),
        ("grid: {hparams.gamma: [0.9, 0.9]}", r"grid.hparams.gamma: a value appears twice"),
        ("grid: {ppo.num_envs: [4, x]}", r"grid.ppo.num_envs: expected an integer, got 'x'"),
        ("grid: {ppo.num_minibatches: [3]}", r"grid.ppo.num_minibatches: .*does not divide"),
        ("seeds: 0", r"sweep.yaml: seeds: expected a positive integer, got 0"),
        (
            "random: {hparams.clip_eps: {uniform: [0.1, 0.3]}}",
            r"random.count: expected a positive integer",
        ),
        (
            "random: {count: 2, hparams.clip_eps: {gaussian: [0.1, 0.3]}}",
            r"random.hparams.clip_eps: gaussian: unknown distribution",
        ),
        (
            "random: {count: 2, hparams.clip_eps: {uniform: [0.3, 0.1]}}",
            r"random.hparams.clip_eps.uniform: expected lo < hi",
        ),
        (
            "random: {count: 2, hparams.ent_coef: {log_uniform: [0.0, 0.1]}}",
            r"random.hparams.ent_coef.log_uniform: expected lo > 0",
        ),
        (
            "random: {count: 2, hparams.gamma: {uniform: [0.5, 1.5]}}",
            r"random.hparams.gamma.uniform: expected a number in \[0, 1\], got 1.5",
        ),
        (
            "random: {count: 2, ppo.num_envs: {uniform: [4, 8]}}",
            r"random.ppo.num_envs: uniform: static fields can only be sampled with choice",
        ),
        ("random: {count: 2}", r"random: no key to sample"),
        (
            "grid: {hparams.gamma: [0.9]}\n"
            "random: {count: 2, hparams.gamma: {uniform: [0.5, 0.9]}}",
            r"random.hparams.gamma: also in grid",
        ),
        (
            "hparams: {gamma: 2.0}\nseeds: 2",
            r"sweep.yaml: hparams.gamma: expected a number in \[0, 1\], got 2",
        ),
        ("base: missing.yaml\nseeds: 2", r"missing.yaml: no such config file"),
        (
            "grid: {ppo.env_name: [CartPole-v1, Acrobot-v1]}",
            r"sweep.yaml: grid.ppo.env_name: cannot be swept \(returns of different envs do not "
            r"rank against each other\); run one sweep per env$",
        ),
        (
            "random: {count: 2, ppo.env_name: {choice: [CartPole-v1, Acrobot-v1]}}",
            r"sweep.yaml: random.ppo.env_name: cannot be swept .*; run one sweep per env$",
        ),
        (
            "hparams: {gamma: 0.9}",
            r"sweep.yaml is a run config \(for purejaxppo train\), not a sweep file \(it has no "
            r"grid, random or seeds section\)$",
        ),
        ("base: ../x.yaml", r"sweep.yaml: nothing to sweep; add a grid, random or seeds section$"),
    ],
)
def test_bad_sweep_files_give_one_line_naming_the_key(tmp_path, body, message):
    with pytest.raises(ConfigError, match=message) as info:
        load(tmp_path, body)
    assert "\n" not in str(info.value)


def test_missing_sweep_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.yaml: no such sweep file"):
        sw.load_sweep(tmp_path / "nope.yaml")


# --------------------------------------------------------------------------- statistics
def test_final_return_and_auc_skip_updates_without_episodes():
    curve = np.array([np.nan, 2.0, 4.0] + [np.nan] * 5 + [10.0] * 12)
    assert final_return(curve) == 10.0  # window: 5% of 20 updates = 1
    assert sw.area_under_curve(curve) == pytest.approx((2 + 4 + 120) / 14)
    # 100 updates: window 5; NaN updates (no episode ended) are skipped, not counted
    curve = np.r_[np.zeros(90), 1.0, 2.0, 3.0, np.nan, 4.0, 5.0, np.nan, np.nan, np.nan, np.nan]
    assert final_return(curve) == pytest.approx(3.0)
    assert math.isnan(final_return(np.full(5, np.nan)))


def _fake_results(pop: sw.Population, finals: list[float]) -> list[sw.MemberResult]:
    return [
        sw.member_result(pop, i, np.full(12, f), group=0, chunk=i // 2, wall_time_s=1.5)
        for i, f in enumerate(finals)
    ]


def test_summary_ranks_sets_with_student_t_confidence_intervals(tmp_path):
    spec = load(tmp_path, "seeds: 3\ngrid: {hparams.learning_rate: [1.0e-4, 1.0e-3, 1.0e-2]}")
    pop = spec.population()
    finals = [1.0, 2.0, 3.0, 10.0, 20.0, 30.0, 5.0, np.nan, 5.0]
    summary = sw.summarize(_fake_results(pop, finals), pop)
    assert [s.set_index for s in summary] == [1, 0, 2]  # the set with a NaN seed goes last
    assert [s.rank for s in summary] == [1, 2, 3]
    top = summary[0]
    assert top.mean_return == 20.0 and top.std_return == pytest.approx(10.0)
    # t_{0.975, 2} = 4.302652729911275
    assert top.ci95 == pytest.approx(4.302652729911275 * 10.0 / math.sqrt(3), rel=1e-9)
    assert math.isnan(summary[2].mean_return)
    one_seed = sw.summarize(_fake_results(pop, finals)[:1], pop)
    assert math.isnan(one_seed[0].ci95)


def test_reports_are_real_files_and_best_yaml_loads(tmp_path):
    spec = load(
        tmp_path,
        "seeds: 2\ngrid: {hparams.learning_rate: [1.0e-4, 1.0e-3], ppo.hidden_sizes: [[16], [8]]}",
    )
    pop = spec.population()
    finals = [1.0, 3.0, 50.0, 52.0, 7.0, 9.0, 20.0, 22.0]
    results = _fake_results(pop, finals)
    curves = {i: np.linspace(0, f, 10) for i, f in enumerate(finals)}
    summary = sw.summarize(results, pop)
    files = sweep_report.write_report(tmp_path, pop, results, summary, curves)
    assert [f.name for f in files] == [
        "results.csv",
        "summary.csv",
        "best.yaml",
        "curves.png",
        "sensitivity.png",
    ]
    rows = (tmp_path / "results.csv").read_text().splitlines()
    assert rows[0].startswith("member,set,seed,group,chunk,ppo.hidden_sizes,hparams.learning_rate")
    assert rows[0].endswith("env_steps,final_return,auc,wall_time_s") and len(rows) == 9
    assert rows[3].split(",")[:6] == ["2", "1", "0", "0", "1", "8"]
    summary_rows = (tmp_path / "summary.csv").read_text().splitlines()
    assert summary_rows[0] == (
        "rank,set,hparams.learning_rate,ppo.hidden_sizes,seeds,mean_return,ci95_low,ci95_high,"
        "std_return,mean_auc,iqm,iqm_ci95_low,iqm_ci95_high,p_improve,p_improve_low,p_improve_high"
    )
    assert summary_rows[1].startswith("1,1,0.0001,8,2,51.0,")
    # IQM of two seeds is their mean; the bootstrap interval spans them; rank 1: no P(improve)
    assert summary_rows[1].endswith(",51.0,50.0,52.0,nan,nan,nan")
    assert summary_rows[2].startswith("2,3,0.001,8,2,21.0,")  # (20, 22): both below 50 and 52
    assert summary_rows[2].endswith(",21.0,20.0,22.0,1.0,1.0,1.0")
    best = load_run_config(tmp_path / "best.yaml")
    assert best.ppo == pop.sets[1].config and best.hparams == pop.sets[1].hparams
    # expected_return: the lowest final return of the best set's seeds (50 and 52)
    assert best.seed == 0 and best.expected_return == 50.0
    text = (tmp_path / "best.yaml").read_text()
    assert "# mean final return 51.00 over 2 seeds (95% CI +-12.71); expected_return: " in text
    assert "the lowest seed's final return (every seed reached it)" in text
    import matplotlib.image

    for name in ("curves.png", "sensitivity.png"):
        image = matplotlib.image.imread(tmp_path / name)
        assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 600
        assert image[..., :3].std() > 0.05  # not a blank canvas


# --------------------------------------------------------------------------- select
def test_select_checks_its_input():
    batched = ppo.TrainOutput(
        params={"w": np.zeros((3, 2))},
        metrics={n: np.zeros((3, 5)) for n in ppo.METRIC_NAMES},
        state=None,
    )
    one = sw.select(batched, 2)
    assert one.params["w"].shape == (2,) and one.metrics["episode_return"].shape == (5,)
    with pytest.raises(ValueError, match=r"^i: expected a member index in \[0, 3\), got 3"):
        sw.select(batched, 3)
    with pytest.raises(ValueError, match=r"^output: expected a batched TrainOutput"):
        sw.select(one, 0)


# --------------------------------------------------------------------------- CLI checks
def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """`purejaxppo sweep ...` in this process (without touching XLA_FLAGS)."""
    parser = argparse.ArgumentParser(prog="purejaxppo")
    sweep_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = args.func(args)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--max-batch", "0"], "--max-batch: expected a positive integer, got 0"),
        (["--coordinator", "nohost"], "--coordinator: expected HOST:PORT, got 'nohost'"),
        (["--num-processes", "2", "--process-id", "2"], "--process-id: expected < --num-processes"),
    ],
)
def test_cli_bad_flags_exit_2_with_one_line(tmp_path, extra, message):
    path = write(tmp_path, TINY_PPO + "grid: {hparams.learning_rate: [0.1]}")
    code, _, err = run_cli(["sweep", str(path), "--out", str(tmp_path / "o"), *extra])
    assert code == 2
    assert err == f"purejaxppo sweep: error: {message}" + err.split(message, 1)[1]
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_bad_sweep_file_exit_2_before_touching_the_output(tmp_path):
    path = write(tmp_path, TINY_PPO + "grid: {hparams.gamma: [2.0]}")
    code, _, err = run_cli(["sweep", str(path), "--out", str(tmp_path / "o")])
    assert code == 2 and err.count("\n") == 1
    assert "grid.hparams.gamma: expected a number in [0, 1], got 2" in err
    assert not (tmp_path / "o").exists()


def test_changed_sweep_is_refused_naming_what_changed(tmp_path):
    spec = load(tmp_path, "seeds: 2\ngrid: {hparams.learning_rate: [1.0e-4, 1.0e-3]}")
    out = tmp_path / "out"
    out.mkdir()
    manifest = sweep_store.manifest_for(spec.to_dict(), 2, 4)
    (out / sweep_store.MANIFEST).write_text(json.dumps(manifest))
    assert sweep_store.check_manifest(out / sweep_store.MANIFEST, spec.to_dict()) is not None
    changed = load(tmp_path, "seeds: 3\ngrid: {hparams.learning_rate: [1.0e-4, 3.0e-3]}")
    with pytest.raises(sweep_store.SweepError) as info:
        sweep_store.check_manifest(out / sweep_store.MANIFEST, changed.to_dict())
    assert str(info.value) == (
        f"{out}: holds a different sweep (changed: grid.hparams.learning_rate); "
        "use another --out or delete the folder (only seed and seeds may change)"
    )
    # other seeds are the same sweep, with other members
    reseeded = load(tmp_path, "seed: 5\nseeds: 3\ngrid: {hparams.learning_rate: [1.0e-4, 1.0e-3]}")
    assert sweep_store.check_manifest(out / sweep_store.MANIFEST, reseeded.to_dict()) == manifest
    body = "hparams: {gamma: 0.95}\nseeds: 3\ngrid: {hparams.learning_rate: [1.0e-4, 1.0e-3]}"
    with pytest.raises(sweep_store.SweepError, match=r"\(changed: base.hparams.gamma\);"):
        sweep_store.check_manifest(out / sweep_store.MANIFEST, load(tmp_path, body).to_dict())
    # the same through the command line: exit 2, one line, nothing written
    path = write(tmp_path, TINY_PPO + "seeds: 3\ngrid: {hparams.learning_rate: [1.0e-4, 3.0e-3]}")
    code, _, err = run_cli(["sweep", str(path), "--out", str(out)])
    assert code == 2 and "holds a different sweep (changed: grid.hparams.learning_rate)" in err
    assert sorted(p.name for p in out.iterdir()) == [sweep_store.MANIFEST]
    # and a different --max-batch against the same sweep
    same = write(tmp_path, TINY_PPO + "seeds: 2\ngrid: {hparams.learning_rate: [1.0e-4, 1.0e-3]}")
    code, _, err = run_cli(["sweep", str(same), "--out", str(out), "--max-batch", "3"])
    assert code == 2 and "--max-batch: the sweep in" in err and "started with --max-batch 2" in err


def test_chunk_files_are_written_atomically_and_merged(tmp_path):
    (tmp_path / "chunks").mkdir()
    metrics = {"episode_return": np.arange(6, dtype=np.float32).reshape(3, 2)}
    for p, ids in ((0, [(2, 0), (0, 1)]), (1, [(1, 0)])):
        rows = {"episode_return": metrics["episode_return"][: len(ids)] + p}
        path = sweep_store.chunk_path(tmp_path, 0, 3, p)
        sweep_store.write_chunk(path, np.array(ids), rows, run_s=1.0 + p)
    assert sweep_store.chunk_files(tmp_path) == []  # parts are not finished chunks
    sweep_store.merge_parts(tmp_path, 0, 3, 2)
    assert sorted(p.name for p in (tmp_path / "chunks").iterdir()) == ["g00-c0003.npz"]
    ids, merged, info = sweep_store.read_chunk(sweep_store.chunk_path(tmp_path, 0, 3))
    np.testing.assert_array_equal(ids, [[0, 1], [1, 0], [2, 0]])  # (set, seed), member order
    np.testing.assert_array_equal(merged["episode_return"], [[2, 3], [1, 2], [0, 1]])
    assert info == {"run_s": 2.0}


def test_a_format_1_folder_is_upgraded_and_resumes(tmp_path):
    """Chunk files of format 1 name members by index; opening the folder adds (set, seed)."""
    spec = load(tmp_path, "seed: 3\nseeds: 2\ngrid: {hparams.learning_rate: [1.0e-4, 1.0e-3]}")
    out = tmp_path / "out"
    (out / "chunks").mkdir(parents=True)
    old = sweep_store.manifest_for(spec.to_dict(), 2, 4) | {"format": 1, "chunk_sizes": {"0": 2}}
    (out / sweep_store.MANIFEST).write_text(json.dumps(old))
    curve = np.full((2, 12), 7.0, np.float32)
    with open(sweep_store.chunk_path(out, 0, 1), "wb") as f:  # members 2, 3: set 1, seeds 3, 4
        np.savez(f, members=np.array([2, 3]), metric_episode_return=curve, run_s=1.5)
    assert sweep_store.check_manifest(out / sweep_store.MANIFEST, spec.to_dict()) == old
    manifest = sweep_store.manifest_for(spec.to_dict(), 2, 4, old)
    # chunk sizes of an older format were split over the devices: planned again, per device
    assert manifest["widths"] == {} and manifest["format"] == 3 and "chunk_sizes" not in manifest
    notes = sweep_store.prepare_folder(
        out, tmp_path / "sweep.yaml", manifest, old, spec.population()
    )
    assert notes == []
    ids, metrics, info = sweep_store.read_chunk(sweep_store.chunk_path(out, 0, 1))
    np.testing.assert_array_equal(ids, [[1, 3], [1, 4]])
    assert info == {"run_s": 1.5} and metrics["episode_return"].shape == (2, 12)
    assert json.loads((out / sweep_store.MANIFEST).read_text()) == manifest
    pop = spec.population()
    state = sweep_store.scan_folder(out, pop, pop.groups())
    assert state.pending == {0: (0, 1)} and state.next_chunk == {0: 2}
    assert (state.done_members, state.done_chunks) == (2, 1)


# --------------------------------------------------------------------------- helpers
def test_ensure_host_devices_respects_the_users_count():
    from purejaxppo.run.devices import ensure_host_devices

    env = {}
    assert ensure_host_devices(3, environ=env) == 3
    assert env["XLA_FLAGS"] == "--xla_force_host_platform_device_count=3"
    assert ensure_host_devices(5, environ=env) == 3  # already set: kept
    env = {"XLA_FLAGS": "--xla_cpu_use_thunk_runtime=false"}
    ensure_host_devices(2, environ=env)
    assert env["XLA_FLAGS"] == (
        "--xla_cpu_use_thunk_runtime=false --xla_force_host_platform_device_count=2"
    )
    assert ensure_host_devices(environ={}) >= 1
    with pytest.raises(ValueError, match="count: expected a positive integer"):
        ensure_host_devices(0, environ={})


def test_distributed_args_from_flags_and_environment(monkeypatch):
    from purejaxppo.sharding import DistributedArgs, padded_size

    monkeypatch.delenv("JAX_COORDINATOR_ADDRESS", raising=False)
    monkeypatch.delenv("JAX_NUM_PROCESSES", raising=False)
    monkeypatch.delenv("JAX_PROCESS_ID", raising=False)
    assert not DistributedArgs.from_env().requested
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:1234")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
    monkeypatch.setenv("JAX_PROCESS_ID", "3")
    d = DistributedArgs.from_env(process_id=1).validate()
    assert (d.coordinator, d.num_processes, d.process_id, d.requested) == (
        "10.0.0.1:1234",
        4,
        1,
        True,
    )
    monkeypatch.setenv("JAX_NUM_PROCESSES", "four")
    with pytest.raises(ValueError, match="JAX_NUM_PROCESSES: expected an integer, got 'four'"):
        DistributedArgs.from_env()
    assert [padded_size(n, 4) for n in (1, 4, 5, 8)] == [4, 4, 8, 8]
    assert DistributedArgs(auto=True).requested


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parent.parent / "configs" / "sweeps").glob("*.yaml"))
)
def test_shipped_sweeps_load(path):
    pop = sw.load_sweep(path).population()
    assert pop.size >= 8 and pop.swept
    assert len(pop.groups()) == len({s.config for s in pop.sets})


def test_smoothing_skips_updates_without_episodes():
    curve = np.array([1.0, np.nan, 3.0, 5.0, np.nan, np.nan, np.nan])
    np.testing.assert_allclose(
        sweep_report.smooth(curve, 2), [1.0, 1.0, 3.0, 4.0, 5.0, np.nan, np.nan]
    )
    np.testing.assert_array_equal(sweep_report.smooth(curve, 1), curve)


def test_ties_are_ranked_by_area_under_the_curve(tmp_path):
    pop = load(tmp_path, "grid: {hparams.learning_rate: [1.0e-4, 1.0e-3, 1.0e-2]}").population()
    curves = [np.r_[np.zeros(50), np.full(50, 500.0)], np.full(100, 500.0), np.full(100, 20.0)]
    results = [sw.member_result(pop, i, c, 0, 0, 1.0) for i, c in enumerate(curves)]
    assert [s.set_index for s in sw.summarize(results, pop)] == [1, 0, 2]


def test_cli_env_errors_are_one_line_before_any_output(tmp_path):
    body = "ppo: {env_name: FrozenLake-misc, normalize_observations: true}\nseeds: 2\n"
    code, _, err = run_cli(["sweep", str(write(tmp_path, body)), "--out", str(tmp_path / "o")])
    assert code == 2 and err.count("\n") == 1
    assert "sweep.yaml: normalize_observations: FrozenLake-misc has a Discrete observation" in err
    assert not (tmp_path / "o").exists()


def test_expected_return_is_what_every_seed_reached_and_null_with_one_seed(tmp_path):
    pop = load(tmp_path, "seeds: 3\ngrid: {hparams.learning_rate: [1.0e-4, 1.0e-3]}").population()
    # the 95% CI of (-200, 180, 200) reaches far below -200: no run can miss its lower end
    summary = sw.summarize(_fake_results(pop, [-200.126, 180.0, 200.0, 1.0, 2.0, 3.0]), pop)
    assert summary[0].set_index == 0 and summary[0].mean_return - summary[0].ci95 < -400
    assert sw.best_run_config(pop, summary).expected_return == -200.13  # rounded down
    # a seed without any finished episode: the lowest of the others, if two are left
    summary = sw.summarize(_fake_results(pop, [5.0, 9.0, 7.0, 0.29, np.nan, 0.3]), pop)
    assert sw.best_run_config(pop, summary).expected_return == 5.0
    assert summary[1].min_return == 0.29
    one = load(tmp_path, "grid: {hparams.learning_rate: [1.0e-4, 1.0e-3]}").population()
    summary = sw.summarize(_fake_results(one, [3.0, 4.0]), one)
    assert sw.best_run_config(one, summary).expected_return is None
    text = sweep_report.best_yaml(one, summary).decode()
    assert "# best of 2 hyperparameter sets: learning_rate=0.001\n" in text
    assert "over 1 seed; expected_return: null (one seed says nothing about reruns)\n" in text
    assert "expected_return: null\n" in text


def test_singular_counts_in_the_printed_lines(tmp_path):
    assert [count(n, "member") for n in (0, 1, 2)] == [
        "0 members",
        "1 member",
        "2 members",
    ]
    pop = load(tmp_path, "grid: {hparams.learning_rate: [1.0e-4]}").population()
    summary = sw.summarize(_fake_results(pop, [3.0]), pop)
    assert sweep_report.format_top(summary, pop, 5).startswith("top 1 of 1 set (final return")
    stream = io.StringIO()
    bar = sw_progress.ProgressBar(1, 1, stream, enabled=True)
    bar.chunk_done(1, "group 1/1 (all)", 0.5)
    assert stream.getvalue() == "chunk 1/1 done (group 1/1 (all), 1 member, 0.5s): 1/1 members\n"


def test_cli_says_what_it_got_instead_of_a_sweep_file(tmp_path):
    """A run config or a folder: one line naming it and the command that takes it, exit 2."""
    config = write(tmp_path, TINY_PPO + "seed: 3\nexpected_return: 20.0\n", "CartPole-v1.yaml")
    run = tmp_path / "run"
    (run / "checkpoint").mkdir(parents=True)
    (run / "config.yaml").write_text(config.read_text())
    swept = tmp_path / "swept"
    swept.mkdir()
    (swept / "sweep.json").write_text("{}")
    expected = {
        config: f"{config} is a run config (for purejaxppo train), not a sweep file "
        "(it has no grid, random or seeds section)",
        run: f"{run} is a run folder (for purejaxppo eval / train --resume), not a sweep file",
        swept: f"{swept} is a sweep output folder, not a sweep file; to rerun it: "
        f"purejaxppo sweep {swept / 'SWEEP.yaml'} --out {swept}",
        tmp_path: f"{tmp_path} is a folder, not a sweep file",
    }
    for path, message in expected.items():
        code, out, err = run_cli(["sweep", str(path), "--out", str(tmp_path / "o")])
        assert (code, out, err) == (2, "", f"purejaxppo sweep: error: {message}\n")
    assert not (tmp_path / "o").exists()


def test_unused_settings_are_refused_per_set_and_allowed_where_read(tmp_path):
    spec = load(tmp_path, "grid: {ppo.objective: [kl_penalty], hparams.kl_target: [0.03]}")
    assert spec.population().sets[0].hparams.kl_target == pytest.approx(0.03)
    spec = load(tmp_path, "grid: {ppo.objective: [clip+kl], ppo.kl_direction: [old_new]}")
    assert spec.population().sets[0].config.kl_direction == "old_new"
    spec = load(tmp_path, "grid: {ppo.objective: [kl_penalty, clip], hparams.kl_coef: [3.0]}")
    with pytest.raises(ConfigError) as info:
        spec.population()
    assert str(info.value).endswith(
        "the set ppo.objective=clip, hparams.kl_coef=3: kl_coef: 3 has no effect with objective: "
        "clip; it is read only with objective: kl_penalty or clip+kl (leave it at its default 1 "
        "otherwise)"
    )
    with pytest.raises(ConfigError, match=r"hparams.ref_kl_coef: 0.1 has no effect with advan"):
        load(tmp_path, "hparams: {ref_kl_coef: 0.1}\nseeds: 2")
