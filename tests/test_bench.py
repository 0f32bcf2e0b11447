"""`purejaxppo bench`: the report's structure end to end (never timings), bad input, FLOPs."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from purejaxppo.bench import cli as bench_cli
from purejaxppo.bench.measure import final_return, mean_ci95, recent_mean
from purejaxppo.bench.suite import BenchInputError, parse_envs, resolve_env

REPO = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RESULT_KEYS = {
    "format",
    "plan",
    "started",
    "command",
    "device",
    "versions",
    "matmul",
    "envs",
    "device_split",
    "compute",
    "scaling",
    "peers",
    "reference",
    "wall_s",
    "headline",
}
ENV_KEYS = {
    "name",
    "compile_s",
    "steps_per_s",
    "steps_per_s_per_seed",
    "threshold",
    "solve_wall_s",
    "final_return",
    "final_return_ci95",
    "final_returns",
    "flops",
    "xla_flops",
    "gflops",
    "utilisation",
    "env_steps",
    "complete",
    "curve",
    "devices",
    "members_per_device",
    "rounds",
    "updates_per_call",
}
POINT_KEYS = {
    "name",
    "members",
    "members_per_device",
    "width",
    "groups",
    "devices",
    "rounds",
    "updates_per_call",
    "compile_s",
    "steps_per_s",
    "steps_per_s_per_device",
    "flops_per_step",
    "gflops",
    "peak_gflops",
    "utilisation",
    "utilisation_best",
}


@functools.cache
def _bench_registered() -> bool:
    """True once `purejaxppo.cli` has the `bench` subcommand."""
    from purejaxppo import cli

    return any(
        isinstance(action, argparse._SubParsersAction) and "bench" in action.choices
        for action in cli.build_parser()._actions
    )


def _command() -> list[str]:
    """The real entry point: `python -m purejaxppo bench`, or the subcommand's own module."""
    if _bench_registered():
        return [sys.executable, "-m", "purejaxppo", "bench"]
    return [sys.executable, "-m", "purejaxppo.bench.cli", "bench"]


def _main(argv: list[str]) -> int:
    """Run the subcommand in-process through the same parser as the CLI."""
    if _bench_registered():
        from purejaxppo import cli

        return cli.main(["bench", *argv])
    return bench_cli.main(["bench", *argv])


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.slow
def test_quick_bench_writes_a_complete_report(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [*_command(), "--quick", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "device: " in proc.stdout and "versions: " in proc.stdout

    doc = json.loads((out / "bench.json").read_text())
    assert set(doc) >= RESULT_KEYS
    assert doc["format"] == 2 and doc["plan"]["mode"] == "quick"
    assert doc["device"]["device_count"] >= 1 and doc["device"]["cpu_model"]
    assert doc["versions"]["jax"]
    assert doc["matmul"]["size"] == 2048 and doc["matmul"]["best_gflops"] > 0

    (cartpole,) = doc["envs"]
    assert set(cartpole) >= ENV_KEYS
    assert cartpole["name"] == "CartPole-v1" and cartpole["threshold"] == 475.0
    assert cartpole["seeds"] == 2 and len(cartpole["final_returns"]) == 2
    assert "init_compile_s" not in cartpole  # one total, as train reports it (format 2)
    # train's chunk size for 976 updates, train's grouping (2 seeds: one group of 2)
    # (fewer only if a busy machine's low matmul peak made a call look too long for the budget)
    assert cartpole["train_chunk"] == 61 and 976 % cartpole["updates_per_call"] == 0
    assert cartpole["rounds"] == 1
    assert cartpole["steps_per_s"] > 0 and cartpole["compile_s"] > 0
    assert cartpole["flops"]["per_step"] == 236_032
    assert 1.0 <= cartpole["xla_flops"]["ratio"] < 1.1
    assert 0 < cartpole["env_steps"] <= cartpole["total_timesteps"]
    assert cartpole["curve"] and all(c["wall_s"] > 0 for c in cartpole["curve"])

    whole, per_device = doc["device_split"]
    assert (whole["name"], per_device["name"]) == ("whole machine", "per device")
    for point in (whole, per_device):
        assert set(point) >= POINT_KEYS
        assert point["members"] == 2 and point["updates_per_call"] == 61
        assert point["steps_per_s"] > 0 and point["steps_per_s_per_device"] > 0
    assert per_device["devices"] == 1
    (compute,) = doc["compute"]
    assert set(compute) >= POINT_KEYS
    assert compute["hidden_sizes"] == [256, 256] and compute["num_envs"] == 256
    assert compute["members"] == 1 and compute["devices"] == 1
    assert compute["flops_per_step"] == 3_598_336
    assert compute["steps_per_s"] > 0 and compute["utilisation"] > 0
    assert compute["peak_gflops"] >= doc["matmul"]["best_gflops"]

    axes = {(p["axis"], p["value"]) for p in doc["scaling"]}
    assert axes == {("num_envs", 4), ("num_envs", 64), ("population", 1), ("population", 2)}
    assert all(p["steps_per_s"] > 0 and p["utilisation"] > 0 for p in doc["scaling"])
    sb3, rejax = doc["peers"]
    assert sb3["name"] == "stable-baselines3"
    assert sb3["available"] == (sb3["steps_per_s"] is not None)
    assert rejax["name"] == "rejax" and not rejax["available"]  # no --rejax given
    assert rejax["note"].startswith("not given") and "\n" not in rejax["note"]
    head = doc["headline"]
    assert head["single_seed_steps_per_s"] > 0 and head["multi_seed_members"] == 2
    assert head["multi_seed_source"] == "device split"
    assert head["multi_seed_steps_per_s"] == whole["steps_per_s"]
    assert head["per_device_steps_per_s"] == per_device["steps_per_s"] > 0
    assert head["compute_utilisation"] == compute["utilisation"] > 0

    md = (out / "BENCHMARKS.md").read_text()
    for heading in (
        "## Reference recipe",
        "## Environments",
        "### FLOP count cross-check",
        "## Whole machine and per device",
        "## Compute-bound point",
        "## Scaling with num_envs",
        "## Scaling with population size",
        "## Peers",
    ):
        assert heading in md
    assert "| env | recipe |" in md and "| CartPole-v1 | configs/CartPole-v1.yaml |" in md
    assert "reference (issue 5)" in md and "PureJaxRL 130,000" in md
    assert "| steps/s, 2 seeds, per device (1 device, 1 round per call) |" in md
    assert "compute-bound point (256x256 net, 1 seed): share of the matmul peak" in md
    for name in ("scaling_num_envs.png", "scaling_population.png", "learning_curves.png"):
        assert f"]({name})" in md
        width, height = _png_size(out / name)
        assert width >= 300 and height >= 200

    # Rerunning into the same folder is refused without --overwrite.
    again = subprocess.run(
        [*_command(), "--quick", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 2 and "--overwrite" in again.stderr


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def test_unknown_env_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    out = tmp_path / "new"
    assert _main(["--quick", "--envs", "CartPole-v1,CartPol-v1", "--out", str(out)]) == 2
    line = _error_line(capsys)
    assert "--envs" in line and "CartPol-v1" in line and "CartPole-v1" in line
    assert not out.exists()


def test_rejax_peer_is_skipped_in_one_line_when_absent(tmp_path: Path) -> None:
    """Not given, not found, or not importing rejax: each a one-line skip, nothing run."""
    from purejaxppo.bench.peers import measure_peers, measure_rejax

    lines: list[str] = []
    results = measure_peers(0, lines.append, rejax_python=str(tmp_path / "no-python"))
    rejax = next(r for r in results if r.name == "rejax")
    assert not rejax.available and math.isnan(rejax.steps_per_s)
    assert rejax.note == f"{tmp_path / 'no-python'} not found"
    assert f"peer rejax: skipped, {rejax.note}" in lines
    assert all("\n" not in line for line in lines)
    assert measure_rejax(512, None).note.startswith("not given (--rejax PYTHON")
    # an interpreter that runs but has no rejax (ours, in the test environment)
    if importlib.util.find_spec("rejax") is None:
        note = measure_rejax(512, sys.executable).note
        assert note.startswith(f"{sys.executable} cannot import rejax")
    missing_script = measure_rejax(512, sys.executable, script=tmp_path / "time_rejax.py")
    assert missing_script.note.startswith("time_rejax.py not found")


def test_side_by_side_reports_missing_peers_in_one_line(tmp_path: Path) -> None:
    """`--rejax` naming no interpreter: one line, exit 2, before anything is timed."""
    script = REPO / "scripts" / "side_by_side.py"
    bad = str(tmp_path / "no-python")
    proc = subprocess.run(
        [sys.executable, str(script), "--rejax", bad], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"--rejax: expected the python of rejax's environment, {bad} not found"
    ]
    proc = subprocess.run(
        [sys.executable, str(script), "--rounds", "0"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_out_under_a_file_is_refused(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert _main(["--quick", "--out", str(blocker / "sub")]) == 2
    assert "--out" in _error_line(capsys)
    assert _main(["--quick", "--out", str(blocker)]) == 2
    assert "not a folder" in _error_line(capsys)


def test_existing_folders_are_refused(tmp_path: Path, capsys) -> None:
    done = tmp_path / "done"
    done.mkdir()
    (done / "bench.json").write_text("{}")
    assert _main(["--quick", "--out", str(done)]) == 2
    line = _error_line(capsys)
    assert "--out" in line and "--overwrite" in line
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert _main(["--quick", "--overwrite", "--out", str(other)]) == 2
    assert "not a purejaxppo folder, not a benchmark report" in _error_line(capsys)
    assert (other / "notes.txt").read_text() == "mine"


def test_bad_seeds_and_modes(tmp_path: Path, capsys) -> None:
    assert _main(["--seeds", "0", "--out", str(tmp_path / "x")]) == 2
    assert "--seeds" in _error_line(capsys)
    with pytest.raises(SystemExit) as exit_info:
        _main(["--quick", "--full"])
    assert exit_info.value.code == 2


def test_suite_resolution() -> None:
    spec = resolve_env("Acrobot-v1")
    assert spec.source.endswith("configs/Acrobot-v1.yaml")
    assert (spec.threshold, spec.threshold_source) == (-100.0, "gym reward_threshold")
    assert spec.ppo.num_envs == 16
    pendulum = resolve_env("Pendulum-v1")
    assert pendulum.threshold_source == "config expected_return"
    probe = resolve_env("SignAction-probe")  # no shipped config: the built-in recipe
    assert probe.source == "built-in" and probe.threshold is None
    yaml_path = str(REPO / "configs" / "CartPole-v1.yaml")
    assert resolve_env(yaml_path).ppo.env_name == "CartPole-v1"
    with pytest.raises(BenchInputError, match="did you mean"):
        resolve_env("Acrobot-v2")
    with pytest.raises(BenchInputError, match="no such config file"):
        resolve_env("missing.yaml")
    assert parse_envs(" A, B ", ()) == ("A", "B")
    assert parse_envs(None, ("C",)) == ("C",)
    with pytest.raises(BenchInputError, match="twice"):
        parse_envs("A,A", ())
    with pytest.raises(BenchInputError, match="comma-separated"):
        parse_envs(" , ", ())


def test_statistics() -> None:
    mean, half = mean_ci95([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert math.isnan(mean_ci95([5.0])[1]) and mean_ci95([5.0])[0] == 5.0
    # 40 updates: the window is the last 2 finite values.
    returns = np.r_[np.zeros(37), 10.0, 20.0, np.nan]
    assert final_return(returns) == 15.0
    assert math.isnan(final_return(np.full(10, np.nan)))
    history = np.array([[1.0, 3.0, np.nan], [0.0, 5.0, 7.0]])
    assert recent_mean(history, 2) == pytest.approx((2.0 + 6.0) / 2)  # last 2 finite values
    assert final_return(np.r_[1.0, 2.0, 3.0, 4.0], window=3) == 3.0


def test_flop_count_by_hand() -> None:
    from purejaxppo.bench.flops import count_flops
    from purejaxppo.config import PPOConfig
    from purejaxppo.envs import SpaceInfo

    cfg = PPOConfig(env_name=None, hidden_sizes=(8,), update_epochs=2)
    box = SpaceInfo((3,), 0, 2, False, None, None)
    flops = count_flops(cfg, box)
    actor, critic = 2 * (3 * 8 + 8 * 2), 2 * (3 * 8 + 8 * 1)
    first = 2 * 3 * 8 * 2  # first layers of actor and critic: no input gradient
    assert (flops.actor_forward, flops.critic_forward) == (actor, critic)
    assert flops.per_step == actor + 2 * critic + 2 * (3 * (actor + critic) - first)
    one_hot = count_flops(cfg, SpaceInfo((), 5, 2, False, None, None))
    assert one_hot.actor_forward == 2 * (5 * 8 + 8 * 2)


def test_flop_count_matches_xla_cost_analysis() -> None:
    import purejaxppo as ppo
    from purejaxppo.bench.flops import count_flops, xla_flops

    for cfg in (ppo.PPOConfig(), ppo.PPOConfig(env_name="Pendulum-v1", update_epochs=2)):
        trainer = ppo.make_trainer(cfg)
        analytic = count_flops(cfg, trainer.space)
        xla = xla_flops(trainer, ppo.HParams(), analytic)
        # XLA also counts the elementwise work (tanh, softmax, losses): a few percent more.
        assert 1.0 <= xla.ratio < 1.1, (cfg.env_name, analytic, xla)


def _synthetic_result():
    """A small BenchResult with made-up numbers: two CartPole entries, a missing peer, NaNs."""
    from purejaxppo.bench.flops import FlopCount
    from purejaxppo.bench.hw import DeviceInfo, MatmulPeak
    from purejaxppo.bench.peers import PeerResult
    from purejaxppo.bench.results import (
        BenchResult,
        CurvePoint,
        EnvResult,
        ScalingPoint,
        ThroughputPoint,
    )
    from purejaxppo.bench.suite import PLANS, REFERENCE

    flops = FlopCount(8960, 8832, 8960, 17664, 209408, 236032)

    def env(name: str, solve: float | None, seeds: int) -> EnvResult:
        return EnvResult(
            name=name,
            env_name="CartPole-v1",
            source="built-in",
            seeds=seeds,
            devices=1,
            members_per_device=4,
            rounds=1,
            num_envs=4,
            num_steps=128,
            hidden_sizes=(64, 64),
            update_epochs=4,
            num_minibatches=4,
            total_timesteps=1024,
            env_steps=512,
            complete=False,
            updates_per_call=1,
            train_chunk=1 if seeds == 1 else 4,
            compile_s=1.0,
            train_s=1.0,
            steps_per_s=1000.0,
            steps_per_s_best=1100.0,
            steps_per_s_per_seed=1000.0 / seeds,
            threshold=475.0,
            threshold_source="gym reward_threshold",
            solve_wall_s=solve,
            solve_env_steps=None if solve is None else 512,
            final_return=20.0,
            final_return_ci95=float("nan") if seeds == 1 else 3.0,
            final_returns=(20.0,) * seeds,
            flops=flops,
            xla_flops=None,
            gflops=0.24,
            utilisation=0.01,
            curve=(CurvePoint(1.5, 512, 20.0),),
        )

    def point(axis: str, value: int) -> ScalingPoint:
        members = value if axis == "population" else 1
        rates = (900.0 * members, 1000.0 * members, 1300.0 * members)
        return ScalingPoint(
            axis=axis,
            value=value,
            members=members,
            devices=1,
            width=members,
            rounds=1,
            num_envs=4,
            updates_per_call=1,
            calls=len(rates),
            compile_s=1.0 + members,
            compiled_here=True,
            steps_per_s=1000.0 * members,
            steps_per_s_best=1300.0 * members,
            call_rates=rates,
            gflops=0.2,
            utilisation=0.01,
        )

    def throughput(name: str, members: int, devices: int, hidden: int, rate: float):
        return ThroughputPoint(
            name=name,
            env_name="CartPole-v1",
            num_envs=4,
            num_steps=128,
            hidden_sizes=(hidden, hidden),
            update_epochs=4,
            num_minibatches=4,
            members=members,
            members_per_device=4,
            width=min(members, 4),
            groups=-(-members // 4),
            devices=devices,
            rounds=-(-members // 4) // devices,
            updates_per_call=61,
            calls=2,
            compile_s=1.0,
            compiled_here=True,
            steps_per_s=rate,
            steps_per_s_best=rate,
            steps_per_s_per_device=rate / devices,
            call_rates=(rate, rate),
            flops_per_step=236_032,
            gflops=rate * 236_032 / 1e9,
            peak_gflops=80.0,
            utilisation=rate * 236_032 / 1e9 / 80.0,
            utilisation_best=rate * 236_032 / 1e9 / 80.0,
        )

    missing = PeerResult("stable-baselines3", None, False, 0, math.nan, math.nan, "not installed")
    return BenchResult(
        plan=PLANS["quick"],
        started="2026-01-01T00:00:00+0000",
        command="purejaxppo bench",
        device=DeviceInfo("cpu", "cpu", 1, "Test CPU", 2, 2, "3.11", "Linux"),
        versions={"jax": "0.10.2", "torch": None},
        matmul=MatmulPeak(2048, 2 * 2048**3, 3, 80.0, 79.0),
        envs=(env("CartPole-v1", None, 1), env("CartPole-v1-fast", 4.2, 8)),
        device_split=(
            throughput("whole machine", 8, 2, 64, 3000.0),
            throughput("per device", 8, 1, 64, 2000.0),
        ),
        compute=(
            throughput("compute-bound", 1, 1, 256, 100_000.0),
            throughput("compute-bound", 1, 1, 512, 200_000.0),
        ),
        scaling=(point("num_envs", 4), point("population", 1), point("population", 2)),
        peers=(missing,),
        reference=REFERENCE,
        wall_s=10.0,
    )


def test_report_from_a_synthetic_result(tmp_path: Path) -> None:
    from purejaxppo.bench.headline import headline
    from purejaxppo.bench.report import write_report

    result = _synthetic_result()
    head = headline(result)
    assert head.solve_entry == "CartPole-v1-fast" and head.solve_wall_s == 4.2
    assert head.multi_seed_members == 8 and head.multi_seed_source == "device split"
    assert head.multi_seed_steps_per_s == 3000.0 and head.multi_seed_devices == 2
    assert head.per_device_steps_per_s == 2000.0 and head.per_device_rounds == 2
    assert head.device_efficiency == pytest.approx(0.75)
    # The widest compute-bound point is the headline's.
    assert head.compute_hidden_sizes == (512, 512) and head.compute_steps_per_s == 200_000.0
    fallback = headline(dataclasses.replace(result, device_split=(), compute=()))
    assert fallback.multi_seed_members == 2 and fallback.multi_seed_source == "scaling"
    assert fallback.per_device_steps_per_s is None and fallback.compute_utilisation is None
    # num_envs=4 and population=1 pooled: median of (900, 1000, 1300) x 2 = 1000.
    assert head.single_seed_steps_per_s == 1000.0 and head.single_seed_compile_s == 2.0
    assert head.sb3_steps_per_s is None
    paths = write_report(result, tmp_path)
    assert {p.name for p in paths} == {
        "bench.json",
        "BENCHMARKS.md",
        "scaling_num_envs.png",
        "scaling_population.png",
        "learning_curves.png",
    }
    doc = json.loads((tmp_path / "bench.json").read_text())  # NaN became null
    assert doc["envs"][0]["final_return_ci95"] is None and doc["peers"][0]["steps_per_s"] is None
    md = (tmp_path / "BENCHMARKS.md").read_text()
    assert "| Stable-Baselines3 steps/s | not installed |" in md
    assert "| stable-baselines3 |  | skipped |" in md
    assert "CartPole time to 475 (CartPole-v1-fast, 8 seeds), incl. compile (s) | 4.2 |" in md
    assert "| 20.0 |" in md and "| 20.0 ± 3.0 |" in md
    # the IQM column: all seeds at 20, so is the IQM and its interval; one seed: no interval
    assert "| 20.0 ± 3.0 | 20.0 [20.0, 20.0] |" in md and "| 20.0 | 20.0 |" in md
    assert "final return IQM [95% CI]" in md and "2,000 resamples" in md
    assert "512 of 1,024 (budget) | 1 |" in md and "| 1 (train: 4) |" in md
    assert "| steps/s, 8 seeds, whole machine (2 devices) | 3,000 |" in md
    assert "| steps/s, 8 seeds, per device (1 device, 2 rounds per call) | 2,000 |" in md
    assert "0.75 device efficiency" in md
    assert "## Whole machine and per device (reference recipe)" in md
    assert "| per device | 8 | 2 groups of 4 on 1, 2 rounds | 61 |" in md
    assert "## Compute-bound point" in md and "| 512x512 | 4x128 | 4x4 | 61 |" in md
    assert doc["format"] == 2 and [p["name"] for p in doc["device_split"]] == [
        "whole machine",
        "per device",
    ]
    for name in ("scaling_num_envs.png", "scaling_population.png", "learning_curves.png"):
        assert _png_size(tmp_path / name)[0] >= 300


def test_population_runs_trains_programs() -> None:
    """A bench population is `compile_trainer`'s layout and call pattern (tiny config)."""
    from purejaxppo.bench.population import PopulationCache, plan_layout
    from purejaxppo.config import HParams, PPOConfig

    cfg = PPOConfig(
        env_name="CartPole-v1",
        num_envs=2,
        num_steps=8,
        hidden_sizes=(8,),
        update_epochs=1,
        num_minibatches=1,
        total_timesteps=2 * 8 * 4,
    )
    cache = PopulationCache()
    pop, cached = cache.get(cfg, HParams(), 3, 2)
    assert not cached and pop.layout == plan_layout(3)
    assert (pop.compiled.num_members, pop.updates_per_call) == (3, 2)
    assert pop.steps_per_call() == 3 * 2 * 16
    seconds, metrics = pop.call()
    assert seconds > 0 and metrics["episode_return"].shape == (3, 2)
    # Another chunk size may reuse the compiled population (and keeps its size).
    again, cached = cache.get(cfg, HParams(), 3, 1, any_chunk=True)
    assert cached and again is pop and again.updates_per_call == 2
    times = again.time_calls(0.0)  # warm-up, then 2 calls; restarts before update 4
    assert len(times) == 2 and all(t > 0 for t in times) and again.nonfinite is None


def test_compute_recipe_is_wide() -> None:
    from purejaxppo.bench.flops import count_flops
    from purejaxppo.bench.suite import PLANS, compute_recipe
    from purejaxppo.train import make_trainer

    cfg, _ = compute_recipe(256)
    assert (cfg.num_envs, cfg.num_steps, cfg.hidden_sizes) == (256, 32, (256, 256))
    assert cfg.batch_size == 8192 and cfg.batch_size // cfg.num_minibatches == 2048
    assert count_flops(cfg, make_trainer(cfg).space).per_step == 3_598_336
    assert all(PLANS[m].compute_widths for m in ("quick", "default", "full"))
