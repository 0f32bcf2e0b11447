"""The memory estimate of `purejaxppo.run.memory` against XLA's memory analysis, per program.

For each config this traces the programs a run compiles (PPO: `init` and one update of one
seed; RLHF: `prepare` and the vmapped population), estimates their device memory from the
jaxpr (no compile), then compiles them and reads `compiled.memory_analysis()` (arguments +
outputs + temporaries - aliased), and prints both and their ratio. It only compiles; nothing
is trained.

    .venv/bin/python scripts/memory_estimate.py configs/CartPole-v1.yaml configs/rlhf/grpo.yaml
    .venv/bin/python scripts/memory_estimate.py configs/CartPole-v1.yaml --set ppo.num_envs=256
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import yaml

from purejaxppo.run import memory
from purejaxppo.run.errors import ConfigError

RLHF_SECTIONS = ("language", "model", "sft", "reward", "rl", "population")


def analysed(fn: Callable[..., Any], *args: Any) -> int:
    """XLA's bytes for `jax.jit(fn)(*args)`: arguments + outputs + temporaries - aliased."""
    m = jax.jit(fn).lower(*args).compile().memory_analysis()
    return (
        m.argument_size_in_bytes
        + m.output_size_in_bytes
        + m.temp_size_in_bytes
        - m.alias_size_in_bytes
    )


def ppo_programs(path: Path, sets: Sequence[str]) -> list[tuple[str, Callable, tuple]]:
    from purejaxppo.config import HParams
    from purejaxppo.run.config import load_run_config, make_run_trainer

    trainer = make_run_trainer(load_run_config(path, sets), str(path))
    key, hparams = jax.random.key(0), HParams()
    state = jax.eval_shape(trainer.init, key, hparams)
    update = functools.partial(trainer.run, num_updates=1)
    return [("init", trainer.init, (key, hparams)), ("update", update, (state, hparams))]


def rlhf_programs(path: Path, sets: Sequence[str]) -> list[tuple[str, Callable, tuple]]:
    from purejaxppo.rlhf.config import population_members, stack_rlhf_hparams
    from purejaxppo.rlhf.pipeline import make_pipeline, member_keys, prepare_key
    from purejaxppo.rlhf.yamlconfig import load_rlhf_config

    cfg = load_rlhf_config(path, sets)
    pipeline, key = make_pipeline(cfg), prepare_key(cfg)
    members = population_members(cfg)
    keys = member_keys(cfg, [m.seed for m in members])
    hparams = stack_rlhf_hparams([m.hparams for m in members])
    frozen = jax.eval_shape(pipeline.prepare, key).frozen
    return [
        ("prepare", pipeline.prepare, (key,)),
        (f"population ({len(members)} members)", pipeline.population, (keys, hparams, frozen)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", type=Path, help="run or RLHF config files")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    print(f"one {jax.devices()[0].platform} device; MB = 1e6 bytes")
    for path in args.configs:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
            rlhf = isinstance(doc, dict) and any(k in doc for k in RLHF_SECTIONS)
            programs = (rlhf_programs if rlhf else ppo_programs)(path, args.set)
        except (OSError, ConfigError, ValueError) as err:
            sys.exit(f"{path}: {str(err).splitlines()[0]}")
        for name, fn, fn_args in programs:
            start = time.perf_counter()
            estimate = memory.traced_bytes(fn, *fn_args)
            traced_s = time.perf_counter() - start
            real = analysed(fn, *fn_args)
            print(
                f"{path!s:36s} {name:26s} estimate {estimate / 1e6:10.2f} MB "
                f"({traced_s:4.1f} s)  XLA {real / 1e6:10.2f} MB  ratio {estimate / real:5.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
