"""`purejaxppo train`, `eval` and `envs`: the command line of one training run (host side).

    purejaxppo train CONFIG [--set KEY=VALUE ...] [--seeds N] [--out DIR] [--overwrite]
                            [--no-tensorboard] [--wandb PROJECT] [--gif]
    purejaxppo train --resume DIR
    purejaxppo eval RUN_DIR [--episodes N] [--deterministic] [--seed S] [--gif OUT.gif]
    purejaxppo envs

Bad input (missing or invalid config, unknown env, unusable --out/--resume
folder) raises `UsageError`/`ConfigError`/`RunDirError`/`CheckpointError`,
which `purejaxppo.cli.main` prints as one line with exit status 2, before
anything on disk is changed. An interrupted run (Ctrl-C, SIGTERM) exits
130/143 after saving a checkpoint; a run stopped by NaN/inf exits 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from purejaxppo.run.errors import UsageError

if TYPE_CHECKING:
    from purejaxppo.run.config import RunConfig

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
MAX_EVAL_EPISODES = 10_000  # per seed, for `eval`
MAX_SEEDS = 10_000  # per run: keys, metrics rows and compile stay bounded (a sweep for more)


# --------------------------------------------------------------------------- helpers
def find_config_dir() -> Path:
    """The shipped `configs/` folder (next to the package in a source checkout, or ./configs)."""
    for candidate in (CONFIG_DIR, Path.cwd() / "configs"):
        if candidate.is_dir():
            return candidate
    return CONFIG_DIR


def _positive(name: str, value: int | None) -> None:
    if value is not None and value <= 0:
        raise UsageError(f"{name}: expected a positive integer, got {value}")


# --------------------------------------------------------------------------- train
def _train(args: argparse.Namespace) -> int:
    from purejaxppo.run import jaxcache, outdir, rundir
    from purejaxppo.run.config import MAX_SEED, load_run_config, make_run_trainer
    from purejaxppo.run.memory import check_train_memory
    from purejaxppo.run.resume import resolve_resume
    from purejaxppo.run.runner import Job, run_job

    _positive("--seeds", args.seeds)
    _positive("--chunk", args.chunk)
    _positive("--checkpoint-every", args.checkpoint_every)
    _positive("--members-per-device", args.members_per_device)
    if args.seeds is not None and args.seeds > MAX_SEEDS:
        raise UsageError(f"--seeds: at most {MAX_SEEDS:,} seeds in one run, got {args.seeds:,}")
    if args.config is None and args.resume is None:
        raise UsageError("train: expected a CONFIG file (or --resume DIR)")
    jaxcache.enable()  # before anything compiles

    if args.resume is not None:
        if args.overwrite:
            raise UsageError("--overwrite: not allowed with --resume")
        resumed = resolve_resume(args.resume, args.config, args.set, args.seeds, args.out)
        rc, seeds, run_dir, extends = resumed.rc, resumed.seeds, resumed.run_dir, resumed.extends
        source = str(Path(args.resume) / rundir.CONFIG_FILE)
        if resumed.latest == rc.ppo.num_updates:
            print(
                f"{run_dir}: the run is already complete ({resumed.latest} updates); nothing "
                "to do (to train further: --set ppo.total_timesteps=N with a larger N)"
            )
            return 0
        flag = "--resume"
    else:
        rc = load_run_config(args.config, args.set)
        source = str(args.config)
        num_seeds = args.seeds or 1
        if rc.seed + num_seeds - 1 > MAX_SEED:
            raise UsageError(f"--seeds: seed {rc.seed} + {num_seeds} seeds exceeds {MAX_SEED}")
        seeds = [rc.seed + i for i in range(num_seeds)]
        extends = None
        run_dir = Path(args.out) if args.out else rundir.default_run_dir(rc.ppo.env_name)
        outdir.check_out(run_dir, "run", overwrite=args.overwrite)
        flag = "--out"
    trainer = make_run_trainer(rc, source)
    check_train_memory(trainer, len(seeds), args.members_per_device, source)
    _check_extras(args, rc)
    # One writer per folder: checked again under the lock (another command may have
    # written the folder since the check above), then nothing else writes it until we end.
    with outdir.FolderLock(run_dir, "train", flag):
        if args.resume is not None:
            resumed = resolve_resume(args.resume, args.config, args.set, args.seeds, args.out)
            if resumed.latest == rc.ppo.num_updates:
                print(f"{run_dir}: the run is already complete ({resumed.latest} updates)")
                return 0
        else:
            outdir.check_out(run_dir, "run", overwrite=args.overwrite)
        if run_dir.is_dir():
            outdir.check_writable(run_dir, flag)
        outdir.note_leftovers(run_dir)
        job = Job(
            rc=rc,
            trainer=trainer,
            seeds=seeds,
            run_dir=run_dir,
            resume=args.resume is not None,
            overwrite=args.overwrite,
            chunk=args.chunk,
            checkpoint_every=args.checkpoint_every,
            progress_bar=False if args.no_bar else None,
            extends=extends,
            members_per_device=args.members_per_device,
            tensorboard=not args.no_tensorboard,
            wandb_project=args.wandb,
        )
        result = run_job(job)
        if args.gif and result.status == "completed":
            from purejaxppo.run.gif import write_policy_gif

            print(write_policy_gif(run_dir), flush=True)
    return result.exit_code


def _check_extras(args: argparse.Namespace, rc: RunConfig) -> None:
    """`--wandb` and `--gif` can be served (package installed, env drawable), before
    anything is written."""
    if args.wandb is not None:
        from purejaxppo.run.wandb_log import check_wandb

        check_wandb(args.wandb)
    if args.gif:
        from purejaxppo.run.gif import check_gif_env

        check_gif_env(rc.ppo.env_name, rc.ppo.gru_size)


# --------------------------------------------------------------------------- eval
def _eval(args: argparse.Namespace) -> int:
    import functools

    import jax
    import numpy as np

    from purejaxppo.run import jaxcache
    from purejaxppo.run.config import MAX_SEED
    from purejaxppo.run.evaluate import evaluate
    from purejaxppo.run.guards import wait_ready
    from purejaxppo.run.load import load_run

    _positive("--episodes", args.episodes)
    if args.episodes is not None and args.episodes > MAX_EVAL_EPISODES:
        raise UsageError(
            f"--episodes: at most {MAX_EVAL_EPISODES:,} episodes per seed (they run side by "
            f"side in memory), got {args.episodes:,}"
        )
    if not 0 <= args.seed <= MAX_SEED:
        raise UsageError(f"--seed: expected an integer in [0, {MAX_SEED}], got {args.seed}")
    jaxcache.enable()  # before anything compiles
    if args.gif is not None:
        from purejaxppo.run.gif import eval_gif

        print(eval_gif(args.run_dir, args.gif, args.episodes or 1, args.seed, args.deterministic))
        return 0
    args.episodes = args.episodes or 10
    run = load_run(args.run_dir)
    trainer, state, seeds, rc, update = run.trainer, run.state, run.seeds, run.config, run.update

    run_eval = jax.jit(
        jax.vmap(
            functools.partial(
                evaluate,
                trainer,
                num_episodes=args.episodes,
                deterministic=args.deterministic,
            ),
            (0, 0, 0),
        )
    )
    keys = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.key(args.seed), np.arange(len(seeds)))
    result = run_eval(state.params, state.obs_stats, keys)
    wait_ready(result)  # in short sleeps: Ctrl-C stops a long evaluation at once
    result = jax.device_get(result)
    policy = "deterministic (mode)" if args.deterministic else "stochastic (sampled)"
    print(
        f"{rc.ppo.env_name}: checkpoint at update {update}/{rc.ppo.num_updates}, "
        f"{args.episodes} episodes per seed, {policy} actions, eval seed {args.seed}"
    )
    for i, seed in enumerate(seeds):
        returns, lengths = np.asarray(result.returns[i]), np.asarray(result.lengths[i])
        print(
            f"  seed {seed}: return {returns.mean():.2f} ± {returns.std():.2f}  "
            f"(min {returns.min():.2f}, max {returns.max():.2f}, mean length {lengths.mean():.1f})"
        )
    means = np.asarray(result.returns).mean(axis=1)
    if len(seeds) > 1:
        print(f"  all seeds: return {means.mean():.2f} ± {means.std():.2f} (std over seed means)")
    return 0


# --------------------------------------------------------------------------- envs
def _envs(args: argparse.Namespace) -> int:
    del args
    from purejaxppo.run.envs_table import print_envs

    print_envs(find_config_dir())
    return 0


# --------------------------------------------------------------------------- parsers
def register(sub: argparse._SubParsersAction) -> None:
    """Add the `train`, `eval` and `envs` subcommands to the `purejaxppo` parser."""
    _add_train(sub)
    _add_eval(sub)
    _add_envs(sub)


def _add_train(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser(
        "train",
        help="train from a YAML config (or resume a run)",
        description="Train PPO from a YAML config in chunks of updates, writing a run folder\n"
        "(config.yaml, metrics.csv, summary.json, curve.png, checkpoint/).\n\n"
        "Ctrl-C or SIGTERM stops after the current chunk with a checkpoint (exit 130/143);\n"
        "a second Ctrl-C abandons the chunk. A NaN/inf loss or parameter stops the run\n"
        "(exit 1), keeping the last good checkpoint. Bad input exits 2 with one line.",
        epilog="Examples:\n"
        "  purejaxppo train configs/CartPole-v1.yaml\n"
        "  purejaxppo train configs/Pendulum-v1.yaml --seeds 4 --set hparams.learning_rate=3e-4\n"
        "  purejaxppo train --resume runs/CartPole-v1-20250101-120000\n"
        "Compiled code is cached in ~/.cache/purejaxppo/jax ($PUREJAXPPO_CACHE_DIR; 'off' "
        "disables).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument(
        "config",
        nargs="?",
        metavar="CONFIG",
        help="YAML run config (configs/<env>.yaml); optional with --resume, which uses the "
        "run's own config.yaml",
    )
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, type-checked like the file: ppo.num_envs=8, "
        "hparams.learning_rate=1e-3, seed=3 (repeatable)",
    )
    train.add_argument(
        "--seeds",
        type=int,
        metavar="N",
        help="train N seeds at once (vmapped): seed, seed+1, ... (default 1)",
    )
    train.add_argument(
        "--out", metavar="DIR", help="run folder (default runs/<env>-<YYYYmmdd-HHMMSS>)"
    )
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing run folder given with --out (refused otherwise)",
    )
    train.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run in DIR from its last checkpoint to total_timesteps; the result "
        "is bit-identical to an uninterrupted run. A CONFIG/--set given must match the run's",
    )
    train.add_argument(
        "--chunk",
        type=int,
        metavar="UPDATES",
        help="updates per compiled chunk (default: a divisor of the update count giving about "
        "25 chunks; on --resume the run's own); the results do not depend on it",
    )
    train.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="UPDATES",
        help="checkpoint after the chunk that completes UPDATES more updates (default: about "
        "10 per run); always at the end and when interrupted",
    )
    train.add_argument(
        "--members-per-device",
        type=int,
        metavar="W",
        help="seeds vmapped together on one device: the seeds run in balanced groups of at "
        "most W, one group per device at a time (default: 4 on a CPU, 1024 on a GPU/TPU; on "
        "--resume the run's own). The same W gives the same bits on any number of devices",
    )
    train.add_argument(
        "--no-tensorboard",
        action="store_true",
        help="do not write TensorBoard event files (default: RUN/tensorboard/seed_<s>/, every "
        "metric against env steps)",
    )
    train.add_argument(
        "--wandb",
        metavar="PROJECT",
        help="also log the config and every metric to this Weights & Biases project (the "
        "wandb extra; offline into RUN/wandb/ without a W&B login)",
    )
    train.add_argument(
        "--gif",
        action="store_true",
        help="at the end of the run, draw an episode of the policy (first seed) into "
        "RUN/policy.gif (gymnax's visualiser; classic control needs the gif extra)",
    )
    train.add_argument(
        "--no-bar",
        action="store_true",
        help="plain progress lines (at most one per 5%% of the run or 10 s) instead of a "
        "progress bar; automatic when stdout is not a terminal",
    )
    train.set_defaults(func=_train)


def _add_eval(sub: argparse._SubParsersAction) -> None:
    evaluate = sub.add_parser(
        "eval",
        help="evaluate a run's last checkpoint on fresh episodes",
        description="Load the last checkpoint of RUN_DIR and run fresh episodes for every "
        "seed of the run, with the run's observation normalisation applied; prints the mean ± "
        "std return per seed.",
    )
    evaluate.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by train")
    evaluate.add_argument(
        "--episodes",
        type=int,
        metavar="N",
        help="episodes per seed (default 10); with --gif, episodes drawn (default 1)",
    )
    evaluate.add_argument(
        "--gif",
        metavar="OUT.gif",
        help="instead of the statistics, draw --episodes episodes of the first seed's policy "
        "into this GIF (gymnax's visualiser; classic control needs the gif extra)",
    )
    evaluate.add_argument(
        "--deterministic",
        action="store_true",
        help="act with the policy's mode (argmax / Gaussian mean) instead of sampling",
    )
    evaluate.add_argument(
        "--seed", type=int, default=0, metavar="S", help="PRNG seed of the evaluation (default 0)"
    )
    evaluate.set_defaults(func=_eval)


def _add_envs(sub: argparse._SubParsersAction) -> None:
    envs = sub.add_parser(
        "envs",
        help="list the gymnax (and Brax) environments, their action spaces and shipped configs",
        description="List every registered gymnax environment, and the Brax ones (brax/NAME) "
        "when the brax extra is installed, with its action space, observation shape, and "
        "whether a tuned config ships in configs/ (with the return it is expected to reach).",
    )
    envs.set_defaults(func=_envs)
