"""Same `purejaxppo rlhf` command twice on one machine: the same bits (issue 25, item 5).

The first run compiles both programs (SFT/reward model and the vmapped RL population) into
an empty compilation cache; the second loads them from it, with another Python hash seed.
Everything but the wall-clock timings must be equal, byte for byte. Both runs may use the
same cores: on CPU the bits depend on how many (docs/rlhf.md#determinism).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _cli_support import REPO, cli_env
from test_rlhf_cli import TINY_SETS

from purejaxppo.run.jaxcache import count_entries


def _rlhf(out: Path, cache: Path, hash_seed: str) -> dict:
    env = cli_env(cache) | {"PYTHONHASHSEED": hash_seed}
    sets = [a for s in [*TINY_SETS, "rl.iterations=2"] for a in ("--set", s)]
    proc = subprocess.run(
        [sys.executable, "-m", "purejaxppo", "rlhf", "configs/rlhf/ppo.yaml", "--out", out, *sets],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    summary.pop("timings_s")  # wall clock: the only field allowed to differ
    return summary


@pytest.mark.slow
def test_rlhf_twice_gives_the_same_bits_cache_miss_then_hit(tmp_path):
    cache = tmp_path / "cache"
    first = _rlhf(tmp_path / "a", cache, "1")
    compiled = count_entries(cache)
    assert compiled > 0
    second = _rlhf(tmp_path / "b", cache, "2")
    assert count_entries(cache) == compiled  # every program came from the cache
    assert first["device"]["usable_cpus"] >= 1  # recorded: the bits depend on it
    assert second == first  # json floats round-trip exactly (repr), so this is bit equality
    for name in ("metrics.csv", "rlhf.yaml"):
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "a" / name).read_bytes()
