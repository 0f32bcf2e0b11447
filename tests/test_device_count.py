"""Results do not depend on the device count: `--members-per-device` fixes the per-device program.

The seeds of `purejaxppo train --seeds N` and the members of a sweep run in balanced
groups of at most W members per device (`purejaxppo.sharding.member_groups`), one group
per device per call, the groups in rounds over however many devices there are. So the
same command on 1 and on 2 host devices (`XLA_FLAGS=--xla_force_host_platform_device_count`,
fixed when jax starts, hence subprocesses) gives the same bits: metrics.csv and
results.csv are compared cell by cell (wall times aside, and a sweep's `chunk` column,
which numbers rounds of one group per device).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import pytest
from sweep_testing import TINY_PPO, results_without, run_command

from purejaxppo import cli
from purejaxppo.sharding import default_members_per_device, member_groups, round_rows
from purejaxppo.sweep import store as sweep_store

TINY = TINY_PPO + "hparams: {learning_rate: 1.0e-3}\nseed: 0\n"
TINY_SWEEP = TINY + "seeds: 2\ngrid:\n  hparams.learning_rate: [1.0e-3, 3.0e-3]\n"
# 18 members: more than the CPU sweep default of 16 per device, so 2 groups of 9
WIDE_SWEEP = TINY + "seeds: 9\ngrid:\n  hparams.learning_rate: [1.0e-3, 3.0e-3]\n"


# --------------------------------------------------------------------------- the grouping rule
def test_member_groups_are_balanced_and_ignore_the_device_count():
    assert member_groups(1, 4) == (1, 1)
    assert member_groups(4, 4) == (1, 4)
    assert member_groups(5, 4) == (2, 3)  # not 4 + 1: balanced
    assert member_groups(9, 4) == (3, 3)
    assert member_groups(10, 4) == (3, 4)  # 4 + 4 + 2 (the last one padded)
    assert member_groups(3, 16) == (1, 3)
    assert member_groups(7, 1) == (7, 1)
    for n in range(1, 40):
        for width in range(1, 12):
            groups, eff = member_groups(n, width)
            assert eff <= width and (groups - 1) * eff < n <= groups * eff
            assert groups == -(-n // width)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="expected a positive integer"):
            member_groups(4, bad)
        with pytest.raises(ValueError, match="expected a positive integer"):
            member_groups(bad, 4)


def test_rounds_hold_one_group_per_device_padded_with_the_last_member():
    # 5 members in groups of 2 (member_groups(5, 2) == (3, 2)) on 2 devices: 2 rounds
    assert round_rows(5, 2, 2, 0).tolist() == [0, 1, 2, 3]
    assert round_rows(5, 2, 2, 1).tolist() == [4, 4, 4, 4]  # group 2 padded + a dummy group
    # on 1 device: 3 rounds, the same groups
    assert [round_rows(5, 2, 1, r).tolist() for r in range(3)] == [[0, 1], [2, 3], [4, 4]]
    assert round_rows(1, 1, 1, 0).tolist() == [0]


def test_defaults_depend_on_the_platform_only():
    assert default_members_per_device("train", "cpu") == 4
    assert default_members_per_device("sweep", "cpu") == 16
    for platform in ("gpu", "cuda", "rocm", "tpu"):
        assert default_members_per_device("train", platform) == 1024
        assert default_members_per_device("sweep", platform) == 1024
    assert default_members_per_device("train") == default_members_per_device(
        "train", jax.default_backend()
    )
    with pytest.raises(ValueError):
        default_members_per_device("bench", "cpu")


# --------------------------------------------------------------------------- flag validation
def _main(capsys, *argv: str | Path) -> tuple[int, str]:
    jax.devices()  # backends up: the command leaves this process's XLA_FLAGS alone
    try:
        status = cli.main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    return status, capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "sweep"])
@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("0", "--members-per-device: expected a positive integer, got 0"),
        ("-3", "--members-per-device: expected a positive integer, got -3"),
        ("two", "argument --members-per-device: invalid int value: 'two'"),
    ],
)
def test_bad_members_per_device_exits_2_with_one_line(
    tmp_path, capsys, monkeypatch, command, value, fragment
):
    monkeypatch.setenv("PUREJAXPPO_CACHE_DIR", "off")
    path = tmp_path / "x.yaml"
    path.write_text(TINY_SWEEP if command == "sweep" else TINY)
    out = tmp_path / "out"
    status, err = _main(capsys, command, path, "--out", out, "--members-per-device", value)
    assert status == 2 and len(err.strip().splitlines()) == 1 and fragment in err, err
    assert "Traceback" not in err and not out.exists()


def test_a_sweep_rerun_with_another_members_per_device_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PUREJAXPPO_CACHE_DIR", "off")
    path = tmp_path / "sweep.yaml"
    path.write_text(TINY_SWEEP)
    out = tmp_path / "out"
    out.mkdir()
    from purejaxppo.sweep import load_sweep

    manifest = sweep_store.manifest_for(load_sweep(path).to_dict(), None, 32, None, 2)
    (out / sweep_store.MANIFEST).write_text(json.dumps(manifest))
    status, err = _main(capsys, "sweep", path, "--out", out, "--members-per-device", "3")
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert "--members-per-device: the sweep in" in err
    assert "started with --members-per-device 2, got 3" in err


# --------------------------------------------------------------------------- 1 vs 2 devices
def _cli(devices: int, cache: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_command([sys.executable, "-m", "purejaxppo", *map(str, args)], devices, cache)


def _metrics_rows(run_dir: Path) -> list[list[str]]:
    """metrics.csv cells, every column but wall_time_s."""
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    assert lines[0].split(",")[3] == "wall_time_s"
    return [cells[:3] + cells[4:] for cells in (line.split(",") for line in lines)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("device-count")
    (root / "tiny.yaml").write_text(TINY)
    (root / "sweep.yaml").write_text(TINY_SWEEP)
    (root / "wide-sweep.yaml").write_text(WIDE_SWEEP)
    return root


@pytest.mark.slow
def test_train_seeds_give_the_same_bits_on_1_and_2_devices_and_resume_across(workdir):
    """5 seeds, 2 per device: groups (0, 1), (2, 3), (4 + padding); 3 rounds of one group on
    1 device, 2 rounds (the second with a dummy group) on 2. A resume on 1 device of the
    2-device run gives the same bits again."""
    cache, config = workdir / "cache", workdir / "tiny.yaml"
    runs = {}
    for devices in (1, 2):
        run = workdir / f"train-w2-d{devices}"
        proc = _cli(devices, cache, "train", config, "--seeds", "5", "--members-per-device", "2",
                    "--out", run, "--checkpoint-every", "3", "--no-bar")  # fmt: skip
        rounds = {1: ", 3 rounds per chunk", 2: ", 2 rounds per chunk"}[devices]
        assert f"5 seeds in 3 groups of 2 (--members-per-device 2) on {devices} device" in (
            proc.stdout
        )
        assert rounds in proc.stdout
        runs[devices] = run
    assert _metrics_rows(runs[1]) == _metrics_rows(runs[2])
    assert len(_metrics_rows(runs[1])) == 1 + 5 * 10

    resumed = workdir / "train-w2-resumed"
    shutil.copytree(runs[2], resumed)
    shutil.rmtree(resumed / "checkpoint" / "10")  # back to the checkpoint at update 9
    proc = _cli(1, cache, "train", "--resume", resumed, "--no-bar")
    assert "continuing from the checkpoint at update 9" in proc.stdout
    assert "(--members-per-device 2) on 1 device" in proc.stdout  # the run's own W
    assert _metrics_rows(resumed) == _metrics_rows(runs[1])


@pytest.mark.slow
def test_train_default_flags_give_the_same_bits_on_1_and_2_devices(workdir):
    cache, config = workdir / "cache", workdir / "tiny.yaml"
    rows = []
    for devices in (1, 2):
        run = workdir / f"train-default-d{devices}"
        proc = _cli(devices, cache, "train", config, "--seeds", "8", "--out", run, "--no-bar")
        layout = f"8 seeds in 2 groups of 4 (--members-per-device 4) on {devices} device"
        assert layout in proc.stdout  # 2 devices really split the seeds
        rows.append(_metrics_rows(run))
    assert rows[0] == rows[1]


@pytest.mark.slow
@pytest.mark.parametrize("flags", [(), ("--members-per-device", "1")], ids=["default", "w1"])
def test_sweep_gives_the_same_results_on_1_and_2_devices(workdir, flags):
    """Default flags: 2 sets x 9 seeds, 2 groups of 9 (the CPU default is 16 per device), one
    per device on 2 devices, 2 rounds on 1. With 1 member per device, 2 sets x 2 seeds: 4
    rounds on 1 device, 2 rounds on 2."""
    cache = workdir / "cache"
    spec = workdir / ("sweep.yaml" if flags else "wide-sweep.yaml")
    width = 1 if flags else 9
    outs = []
    for devices in (1, 2):
        out = workdir / f"sweep-{'-'.join(flags) or 'default'}-d{devices}"
        proc = _cli(devices, cache, "sweep", spec, "--out", out, "--no-progress", *flags)
        assert f"({width} per device)" in proc.stdout
        outs.append(out)
    assert results_without(outs[0], "wall_time_s", "chunk") == results_without(
        outs[1], "wall_time_s", "chunk"
    )
    for name in ("summary.csv", "best.yaml"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    manifests = [json.loads((o / sweep_store.MANIFEST).read_text()) for o in outs]
    assert manifests[0]["widths"] == manifests[1]["widths"] == {"0": width}
