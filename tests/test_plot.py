"""`purejaxppo plot`: mean ± 95% CI over seeds of runs and sweep sets, against env steps or
training time; bad folders, metrics and --out paths are one-line errors (exit 2). Run and
sweep folders are made here from synthetic metrics (no training)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from PIL import Image
from scipy import stats

from purejaxppo import cli
from purejaxppo.run import plots, rundir
from purejaxppo.sweep import compare, report
from purejaxppo.sweep.spec import sweep_from_dict
from purejaxppo.sweep.store import chunk_path, manifest_for, write_chunk, write_manifest
from purejaxppo.train import METRIC_NAMES

SEEDS, UPDATES, BATCH = (0, 1, 2), 100, 32


def fake_run(folder: Path, rng: np.random.Generator, offset: float = 0.0) -> dict:
    """A run folder with metrics.csv: 3 seeds, 100 updates in 4 chunks of 25."""
    folder.mkdir()
    (folder / rundir.CONFIG_FILE).write_text("# fake\n")
    log = rundir.MetricsLog(folder / rundir.METRICS_FILE, METRIC_NAMES)
    log.start()
    data = {
        n: rng.normal(offset, 1.0, (len(SEEDS), UPDATES)).astype(np.float32) for n in METRIC_NAMES
    }
    data["episode_return"][1, 7] = np.nan  # no episode ended for seed 1 at update 8
    for c in range(4):
        chunk = {n: v[:, 25 * c : 25 * (c + 1)] for n, v in data.items()}
        log.append(25 * c + 1, SEEDS, BATCH, 10.0 * (c + 1), chunk)
    return data


def fake_sweep(folder: Path, rng: np.random.Generator) -> dict:
    """A sweep folder: 2 learning rates x 2 seeds, one chunk file, run_s 8.0."""
    doc = {
        "ppo": {"env_name": "CartPole-v1", "num_envs": 2, "num_steps": 16, "total_timesteps": 640,
                "update_epochs": 1, "num_minibatches": 2},
        "seeds": 2,
        "grid": {"hparams.learning_rate": [1.0e-3, 3.0e-3]},
    }  # fmt: skip
    spec = sweep_from_dict(doc)
    folder.mkdir()
    write_manifest(folder, manifest_for(spec.to_dict(), None, 32))
    (folder / "chunks").mkdir()
    ids = np.array([[s, seed] for s in (0, 1) for seed in (0, 1)])
    metrics = {n: rng.normal(size=(4, 20)).astype(np.float32) for n in METRIC_NAMES}
    write_chunk(chunk_path(folder, 0, 0), ids, metrics, run_s=8.0, compile_s=1.0, devices=1)
    return metrics


def test_mean_ci_is_the_t_interval_clipped_to_the_seeds():
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(4, 30))
    rows[2, 5] = np.nan
    mean, low, high = compare.mean_ci(rows)  # window 1: no smoothing
    for u in range(30):
        vals = rows[:, u][np.isfinite(rows[:, u])]
        half = stats.t.ppf(0.975, len(vals) - 1) * vals.std(ddof=1) / np.sqrt(len(vals))
        np.testing.assert_allclose(
            [mean[u], low[u], high[u]],
            [vals.mean(), max(vals.mean() - half, vals.min()), min(vals.mean() + half, vals.max())],
        )
    one = compare.mean_ci(rows[:1])
    np.testing.assert_array_equal(one[1], one[0])  # one seed: no band
    np.testing.assert_array_equal(one[2], one[0])


def test_band_never_leaves_what_the_seeds_reach():
    """CartPole-like seeds capped at 500: the t interval of 3 seeds (t = 4.3) would reach far
    above 500 and below the worst seed; the band stops at the seeds' own range."""
    rows = np.array([[10.0, 480.0, 500.0], [30.0, 500.0, 500.0], [200.0, 350.0, 500.0]])
    mean, low, high = plots.mean_ci(rows)
    np.testing.assert_allclose(mean, rows.mean(axis=0))
    np.testing.assert_allclose(high, [200.0, 500.0, 500.0])
    np.testing.assert_allclose(low, [10.0, 350.0, 500.0])
    assert compare.mean_ci is plots.mean_ci  # `purejaxppo plot` draws the same band


def test_every_curve_plot_names_one_convention(monkeypatch):
    """curve.png's legend and the sweep's curves.png title say "mean ± 95% CI over N seeds";
    curve.png's y-range is the data's, not a wide early band's."""
    rng = np.random.default_rng(0)
    returns = np.minimum(rng.normal(250.0, 150.0, (4, 100)).cumsum(axis=1) / 10 + 20, 500.0)
    returns[:, :3] = rng.uniform(0, 600, (4, 3))  # a wide start
    fig, window = plots.curve_figure(np.arange(1, 101) * 512.0, returns, "t", 475.0)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == [
        "mean ± 95% CI over 4 seeds (2-update moving average)",
        "expected return (475)",
    ]
    smoothed = plots.smooth(returns, window)
    low, high = ax.get_ylim()
    span = np.nanmax(smoothed) - np.nanmin(smoothed)
    assert np.nanmin(smoothed) - 0.1 * span < low <= np.nanmin(smoothed)
    assert np.nanmax(smoothed) <= high < np.nanmax(smoothed) + 0.1 * span
    assert plots.band_label(1) == "1 seed (no band)"

    doc = {"ppo": {"env_name": "CartPole-v1", "num_envs": 2, "num_steps": 16,
                   "total_timesteps": 640, "update_epochs": 1, "num_minibatches": 2},
           "seeds": 3, "grid": {"hparams.learning_rate": [1.0e-3, 3.0e-3]}}  # fmt: skip
    population = sweep_from_dict(doc).population()
    summary = [SimpleNamespace(set_index=i, rank=i + 1, mean_return=1.0) for i in (0, 1)]
    figures: list = []
    monkeypatch.setattr(report, "_png", figures.append)
    report.plot_curves(population, summary, {i: returns[i % 3, :20] for i in range(6)})
    titles = [figures[0].axes[0].get_title()]
    assert "mean ± 95% CI over 3 seeds" in titles[0], titles


def test_time_is_spread_within_chunks():
    ends = np.array([2.0, 2.0, 5.0, 5.0, 5.0])
    np.testing.assert_allclose(compare._spread_in_chunks(ends), [1.0, 2.0, 3.0, 4.0, 5.0])


def test_curves_of_runs_and_sweeps(tmp_path):
    rng = np.random.default_rng(0)
    data = fake_run(tmp_path / "a", rng)
    fake_run(tmp_path / "b", rng, offset=3.0)
    sweep = fake_sweep(tmp_path / "sw", rng)
    curves = compare.load_curves([tmp_path / "a", tmp_path / "b", tmp_path / "sw"], "entropy")
    assert [c.label for c in curves] == [
        "a",
        "b",
        "sw: learning_rate=0.001",
        "sw: learning_rate=0.003",
    ]
    a = curves[0]
    np.testing.assert_array_equal(a.x, (np.arange(UPDATES) + 1) * BATCH)
    mean, low, high = compare.mean_ci(data["entropy"], window=2)  # 2% of 100 updates
    np.testing.assert_allclose(a.mean, mean)
    np.testing.assert_allclose(a.low, low)
    np.testing.assert_allclose(a.high, high)
    assert a.seeds == 3
    s1 = curves[3]
    np.testing.assert_array_equal(s1.x, (np.arange(20) + 1) * 32)
    np.testing.assert_allclose(s1.mean, compare.mean_ci(sweep["entropy"][2:], 1)[0])

    timed = compare.load_curves([tmp_path / "a", tmp_path / "sw"], "episode_return", "time")
    np.testing.assert_allclose(timed[0].x[[0, 24, 25, 99]], [0.4, 10.0, 10.4, 40.0])
    np.testing.assert_allclose(timed[1].x[[0, 19]], [0.4, 8.0])  # run_s spread over updates


def test_plot_command_writes_the_figure(tmp_path, capsys):
    rng = np.random.default_rng(0)
    fake_run(tmp_path / "a", rng)
    fake_sweep(tmp_path / "sw", rng)
    out = tmp_path / "cmp.png"
    status = cli.main(
        ["plot", str(tmp_path / "a"), str(tmp_path / "sw"), "--out", str(out), "--x", "time"]
    )
    assert status == 0
    assert "3 lines: a (3 seeds), sw: learning_rate=0.001 (2 seeds)" in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (880, 550)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "cmp.png", "sw"]  # no temp file


@pytest.mark.parametrize(
    ("make", "args", "fragment"),
    [
        (None, ["{t}/nope", "--out", "{t}/c.png"], "nope: no such run or sweep folder"),
        ("empty", ["{t}/empty", "--out", "{t}/c.png"], "empty: not a run folder (no metrics.csv)"),
        ("run", ["{t}/run", "--out", "{t}/c.txt"], "c.txt: expected a file name ending in"),
        ("run", ["{t}/run", "--out", "{t}/no/c.png"], "--out {t}/no/c.png: no such folder"),
        ("run", ["{t}/run", "--out", "{t}/c.png", "--metric", "reward"], "reward: unknown"),
        ("nochunks", ["{t}/nochunks", "--out", "{t}/c.png"], "no finished chunk yet"),
        ("notime", ["{t}/notime", "--out", "{t}/c.png", "--x", "time"], "records no wall_time_s"),
        ("run", ["{t}/run", "--out", "{t}/c.png", "--x", "wall"], "invalid choice: 'wall'"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line(tmp_path, capsys, make, args, fragment):
    rng = np.random.default_rng(0)
    if make == "empty":
        (tmp_path / "empty").mkdir()
    elif make == "run":
        fake_run(tmp_path / "run", rng)
    elif make == "nochunks":
        fake_sweep(tmp_path / "nochunks", rng)
        for f in (tmp_path / "nochunks" / "chunks").iterdir():
            f.unlink()
    elif make == "notime":
        fake_run(tmp_path / "notime", rng)
        path = tmp_path / "notime" / rundir.METRICS_FILE
        lines = [
            ",".join(c for i, c in enumerate(line.split(",")) if i != 3)
            for line in path.read_text().splitlines()
        ]
        path.write_text("\n".join(lines) + "\n")
    argv = ["plot", *(a.format(t=tmp_path) for a in args)]
    capsys.readouterr()
    try:
        status = cli.main(argv)
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert fragment.format(t=tmp_path) in err[0], err[0]
    assert not (tmp_path / "c.png").exists()


def test_sweep_population_comes_from_the_folder(tmp_path):
    from purejaxppo.sweep.curves import folder_population

    fake_sweep(tmp_path / "sw", np.random.default_rng(0))
    population = folder_population(tmp_path / "sw")
    assert [s.label() for s in population.sets] == ["learning_rate=0.001", "learning_rate=0.003"]
    assert population.seeds == (0, 1)
    record = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert yaml.safe_load(yaml.safe_dump(record["spec"]))["seeds"] == 2


# --------------------------------------------------------------------------- RLHF run folders
ITERATIONS = 30


def fake_rlhf(folder: Path, rng: np.random.Generator, targets=(1.0, 4.0), seeds=2) -> dict:
    """An RLHF run folder as `purejaxppo rlhf` writes it (rlhf.yaml, metrics.csv with one row
    per member and iteration, summary.json): kl_target values x seeds members."""
    from purejaxppo.rlhf.config import Member, RLHFHParams
    from purejaxppo.rlhf.report import metrics_csv
    from purejaxppo.rlhf.trainer import RLMetrics

    members = [
        Member(seed, RLHFHParams(kl_target=t), f"kl_target={t:g} seed={seed}")
        for t in targets
        for seed in range(seeds)
    ]
    shape = (len(members), ITERATIONS)
    metrics = RLMetrics(*(rng.normal(size=shape).astype(np.float32) for _ in RLMetrics._fields))
    folder.mkdir()
    (folder / "rlhf.yaml").write_text("seed: 0\n")
    (folder / "metrics.csv").write_text(metrics_csv(members, metrics))
    (folder / "summary.json").write_text(json.dumps({"timings_s": {"train": 6.0}}))
    return metrics._asdict()


def test_rlhf_folders_are_drawn_side_by_side(tmp_path, capsys):
    rng = np.random.default_rng(0)
    fake_rlhf(tmp_path / "ppo", rng)
    fake_rlhf(tmp_path / "grpo", rng)
    out = tmp_path / "c.png"
    assert cli.main(["plot", str(tmp_path / "ppo"), str(tmp_path / "grpo"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "gold_reward, proxy_reward, kl against iterations, 4 lines: " in printed
    assert "ppo: kl_target=1 (2 seeds), ppo: kl_target=4 (2 seeds), grpo: kl_target=1" in printed
    with Image.open(out) as im:
        assert im.size == (1650, 495)  # three panels


def test_rlhf_lines_are_the_mean_over_seeds(tmp_path):
    data = fake_rlhf(tmp_path / "r", np.random.default_rng(1), targets=(1.0,), seeds=3)
    (panel,) = compare.load_panels([tmp_path / "r"], "kl_coef")
    (curve,) = panel.curves  # 30 iterations: a window of 1, no smoothing
    assert curve.label == "kl_target=1" and curve.seeds == 3
    np.testing.assert_allclose(curve.mean, data["kl_coef"].astype(np.float64).mean(0), rtol=1e-6)
    np.testing.assert_array_equal(curve.x, np.arange(1, ITERATIONS + 1))
    (timed,) = compare.load_panels([tmp_path / "r"], "kl", "time")[0].curves
    np.testing.assert_allclose(timed.x[[0, -1]], [0.2, 6.0])  # summary's train time, spread


@pytest.mark.parametrize(
    ("layout", "args", "fragment"),
    [
        ("mixed", ["{t}/run", "{t}/rl"], "rl: an RLHF run folder (rlhf.yaml) is plotted against"),
        ("mixed", ["{t}/rl", "{t}/run"], "iterations, {t}/run (not one) against env steps; plot"),
        ("mixed", ["{t}/rl", "--metric", "episode_return"], "episode_return: unknown RLHF metric"),
        ("empty_csv", ["{t}/run"], "run/metrics.csv: is empty"),
        ("garbage_csv", ["{t}/run"], "run/metrics.csv: not a metrics file of purejaxppo train"),
        ("binary_csv", ["{t}/run"], "run/metrics.csv: cannot be read"),
        ("garbage_rlhf", ["{t}/rl"], "rl: metrics.csv: expected the columns member, label"),
        ("short_rlhf", ["{t}/rl"], "rl: metrics.csv: holds rows that are not numbers"),
    ],
)  # fmt: skip
def test_bad_rlhf_and_metrics_files_are_one_line(tmp_path, capsys, layout, args, fragment):
    rng = np.random.default_rng(0)
    fake_run(tmp_path / "run", rng)
    fake_rlhf(tmp_path / "rl", rng)
    run_csv, rl_csv = tmp_path / "run" / "metrics.csv", tmp_path / "rl" / "metrics.csv"
    if layout == "empty_csv":
        run_csv.write_text("")
    elif layout == "garbage_csv":
        run_csv.write_text("update,seed,env_steps\nthis,is,garbage\n")
    elif layout == "binary_csv":
        run_csv.write_bytes(b"\xff\xfe\x00garbage")
    elif layout == "garbage_rlhf":
        rl_csv.write_text("a,b\n1,2\n")
    elif layout == "short_rlhf":
        rl_csv.write_text(rl_csv.read_text().splitlines()[0] + "\n0,x,0,1.0\n")
    capsys.readouterr()
    argv = ["plot", *(a.format(t=tmp_path) for a in args), "--out", str(tmp_path / "c.png")]
    status = cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert fragment.format(t=tmp_path) in err[0], err[0]
    assert not (tmp_path / "c.png").exists()
