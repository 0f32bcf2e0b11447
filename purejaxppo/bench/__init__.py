"""Host shell of `purejaxppo bench`: measurements, suite, hardware, peers, FLOP count,
report and the subcommand. Imports the core and `purejaxppo.run`; nothing imports it
except `purejaxppo.cli`.

Modules (importing this package imports none of them, so neither the CLI nor
matplotlib):

- `suite`: modes (`PLANS`), the env suite, the reference recipe and figures;
- `measure`: `run_benchmark` (the whole run) and `measure_env` (one suite env);
- `population`: populations of seeds compiled and called as `purejaxppo train` does
  (`purejaxppo.run.compiled`), cached; their chunk size;
- `throughput`: the reference recipe over the whole machine and per device, and the
  compute-bound points;
- `scaling`: steps/s of the reference recipe against `num_envs` and population size;
- `results`: the result dataclasses (`BenchResult`, `EnvResult`, `ScalingPoint`, ...);
- `hw`: the machine (device, CPU, library versions) and its matmul peak;
- `flops`: the analytic FLOP count per env step and XLA's cross-check;
- `peers`: other PPO implementations timed on the reference recipe;
- `headline`: the reference-recipe figures picked out of a result;
- `report`: `bench.json` and `BENCHMARKS.md`; `tables`: its throughput tables;
  `plots`: the PNG plots;
- `cli`: the `purejaxppo bench` subcommand.
"""
