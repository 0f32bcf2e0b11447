"""Two real processes on 127.0.0.1 (jax.distributed, CPU collectives) give one process's bits.

Each process has one CPU device; the mesh spans both, each process trains the
members on its device, writes its part of every chunk, and process 0 merges.
With 2 members per device (`--max-batch 2`), like the single-process reference
(2 per device on one device), the comparison is bit-exact.
"""

import socket
import subprocess
import time

import pytest
from sweep_testing import (
    TIMEOUT_S,
    assert_same_bits,
    cli_env,
    reference_sweep,
    results_without,
    sweep_command,
)


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    return reference_sweep(tmp_path_factory.getbasetemp() / "sweep")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_give_the_single_process_result(reference, tmp_path):
    spec, ref, cache = reference
    out = tmp_path / "two"
    flags = [
        "--max-batch",
        "2",
        "--coordinator",
        f"127.0.0.1:{free_port()}",
        "--num-processes",
        "2",
    ]
    procs = [
        subprocess.Popen(
            sweep_command(spec, out, *flags, "--process-id", str(i)),
            env=cli_env(1, cache),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + TIMEOUT_S
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=max(1.0, deadline - time.monotonic())))
    except subprocess.TimeoutExpired:
        pytest.fail("a process of the two-process sweep hung")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
    for p, (stdout, stderr) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, stdout[-2000:] + stderr[-4000:]
    lead, other = outputs[0][0], outputs[1][0]
    assert "8 members on 2 cpu devices in 2 processes" in lead
    assert "8 members in 2 chunks of 4 (2 per device)" in lead
    assert "members" not in other and "wrote" not in other  # only process 0 reports
    assert sorted(p.name for p in (out / "chunks").iterdir()) == ["g00-c0000.npz", "g00-c0001.npz"]
    assert_same_bits(ref, out)
    assert results_without(ref, "wall_time_s", "chunk") == results_without(
        out, "wall_time_s", "chunk"
    )
