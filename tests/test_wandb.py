"""Weights & Biases: `train --wandb PROJECT` logs the config and every metric of
metrics.csv (offline into RUN/wandb/ without a login); wandb is never imported otherwise,
and a missing wandb package or a bad project name is a one-line error (exit 2)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _cli_support import REPO, cli_env, tree_digest, write_config

from purejaxppo import cli
from purejaxppo.run import rundir
from purejaxppo.train import METRIC_NAMES


def wandb_records(path: Path) -> Iterator[Any]:
    """The protobuf records of a `.wandb` transaction log (a LevelDB-style log: a 7-byte
    header, 32 KiB blocks, records of `crc32, length u16, type u8, data`)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, pending, block = path.read_bytes(), 7, b"", 32768
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or kind == 0:  # block trailer / zero padding
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL, LAST
            yield pb.Record.FromString(pending + chunk)
            pending = b""
        else:  # FIRST, MIDDLE
            pending += chunk


@pytest.fixture(scope="module")
def wandb_run(tmp_path_factory):
    pytest.importorskip("wandb", reason="the wandb extra is not installed")
    root = tmp_path_factory.mktemp("wandb")
    env = cli_env(None)
    env.update(HOME=str(root), WANDB_SILENT="true")  # no ~/.netrc login: offline
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR"):
        env.pop(name, None)
    run = root / "run"
    args = ["train", write_config(root / "tiny.yaml"), "--seeds", "2", "--out", run]
    proc = subprocess.run(
        [sys.executable, "-m", "purejaxppo", *map(str, args), "--wandb", "purejaxppo-test"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return {"run": run, "proc": proc}


def test_offline_run_holds_config_and_metrics(wandb_run):
    run, proc = wandb_run["run"], wandb_run["proc"]
    assert "W&B: offline run purejaxppo-test/" in proc.stdout
    logs = list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(logs) == 1, logs
    history, config = [], {}
    for record in wandb_records(logs[0]):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            items = record.history.item
            history.append(
                {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items}
            )
        elif kind == "run":
            config.update({i.key: json.loads(i.value_json) for i in record.run.config.update})
    assert config["ppo"]["env_name"] == "CartPole-v1" and config["seeds"] == [0, 1]
    columns = rundir.read_metrics(run / rundir.METRICS_FILE)
    assert [row.get("update") for row in history] == list(range(1, 13)), history[:2]
    for row in history:
        for seed in (0, 1):
            mask = (columns["seed"] == seed) & (columns["update"] == row["update"])
            assert row["env_steps"] == int(columns["env_steps"][mask][0])
            for name in METRIC_NAMES:
                value = np.float32(columns[name][mask][0])
                key = f"seed_{seed}/{name}"
                if np.isfinite(value):
                    assert np.float32(row[key]) == value, key
                else:
                    assert key not in row


def test_wandb_is_not_imported_unless_asked():
    code = (
        "import sys; from purejaxppo import cli; cli.build_parser();"
        "import purejaxppo.run.session, purejaxppo.run.runner, purejaxppo.run.sinks;"
        "print('wandb' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize(
    ("project", "missing", "fragment"),
    [
        ("ok-project", True, "--wandb: the wandb package is not installed; pip install"),
        ("bad/name", False, "--wandb 'bad/name': expected a W&B project name"),
    ],
)
def test_wandb_bad_input(tmp_path, capsys, monkeypatch, project, missing, fragment):
    monkeypatch.setenv("PUREJAXPPO_CACHE_DIR", "off")
    if missing:
        monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    config = write_config(tmp_path / "c.yaml")
    before = tree_digest(tmp_path)
    capsys.readouterr()
    status = cli.main(["train", str(config), "--out", str(tmp_path / "run"), "--wandb", project])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and fragment in err[0], err
    assert tree_digest(tmp_path) == before
