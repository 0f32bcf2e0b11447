"""The population axis over several devices gives the unsharded bits.

XLA_FLAGS must be set before jax starts, so the sharded runs are subprocesses
with `--xla_force_host_platform_device_count=4` (and 3). The comparison is
bit-exact: the unsharded reference runs 2 members per device (`--max-batch 2`)
on one device and the sharded runs keep 2 members per device, so every device
runs the very same program on the very same inputs (with a different number of
members per device the batched program compiles differently and agrees only to
float rounding; one member per device runs the unbatched program, see
test_cli.py::test_two_seed_run_equals_single_runs). test_device_count.py checks
the default flags on 1 and 2 devices.
"""

import jax
import numpy as np
import pytest
from sweep_testing import assert_same_bits, reference_sweep, results_without, run_sweep

from purejaxppo.sharding import local_rows, population_map, population_mesh, shard_rows


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    return reference_sweep(tmp_path_factory.getbasetemp() / "sweep")


def test_population_map_runs_each_member_and_reads_rows_back():
    mesh = population_mesh(jax.local_devices()[:1])
    fn = population_map(lambda x, scale: x * scale + 1.0, mesh, (True, False))
    rows = np.arange(12, dtype=np.float32).reshape(4, 3)
    out = fn(shard_rows(mesh, rows), np.float32(2.0))
    index, values = local_rows(out)
    np.testing.assert_array_equal(index, [0, 1, 2, 3])
    np.testing.assert_array_equal(values, rows * 2 + 1)


@pytest.mark.slow
def test_four_devices_give_the_unsharded_bits_with_and_without_padding(reference, tmp_path):
    spec, ref, cache = reference
    whole = tmp_path / "whole"
    proc = run_sweep(spec, whole, 4, cache, "--members-per-device", "2")  # one round: 4 x 2
    assert "8 members on 4 cpu devices" in proc.stdout
    assert "8 members in 1 chunk of 8 (2 per device)" in proc.stdout
    assert_same_bits(ref, whole)
    assert results_without(ref, "wall_time_s", "chunk") == results_without(
        whole, "wall_time_s", "chunk"
    )

    # 4 groups of 2 on 3 devices: the second round holds one group and two dummy groups
    # of padding (the same compiled shape); the padding rows are dropped and change
    # nothing in the real ones
    padded = tmp_path / "padded"
    proc = run_sweep(spec, padded, 3, cache, "--members-per-device", "2")
    assert "8 members in 2 chunks of 6 (2 per device)" in proc.stdout
    assert_same_bits(ref, padded)
