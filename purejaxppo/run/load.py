"""Load a run folder written by `purejaxppo train` into Python: `load_run(RUN_DIR)`.

    run = load_run("runs/CartPole-v1-20260101-120000")
    run.config.ppo, run.seeds, run.update        # RunConfig, [S] seeds, checkpointed update
    dist, value = run.network.apply(run.params(0), run.observe(obs, 0))   # seed index 0
    action = run.act(obs, key, seed_index=0)     # normalisation applied for you
    result = run.evaluate(key, num_episodes=10)  # fresh episodes, as `purejaxppo eval`

The state is the full checkpointed `TrainState` with a leading seed axis `[S, ...]`,
so `trainer.run(jax.tree.map(lambda x: x[i], run.state), hparams, k)` continues seed i.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import jax

from purejaxppo.envs import RunningStats, env_action, normalize_observation
from purejaxppo.networks import ActorCritic
from purejaxppo.run import rundir
from purejaxppo.run.checkpoint import Checkpointer, CheckpointError
from purejaxppo.run.compiled import seed_keys
from purejaxppo.run.config import RunConfig, make_run_trainer
from purejaxppo.run.evaluate import EvalResult, evaluate
from purejaxppo.run.progress import count
from purejaxppo.run.rundir import RunDirError, read_run_config
from purejaxppo.train import Trainer, TrainState


@dataclasses.dataclass(frozen=True)
class LoadedRun:
    """A run folder's config, seeds and checkpointed state, ready for `network.apply`.

    Attributes:
      run_dir: the folder.
      config: its `RunConfig` (`config.ppo`, `config.hparams`, `config.seed`).
      seeds: the integer seed of each member of the seed axis `[S]`.
      update: the update count of the checkpoint loaded.
      state: the full `TrainState`, leaves `[S, ...]`.
      trainer: `make_trainer(config.ppo)` (env, spaces, network).
    """

    run_dir: Path
    config: RunConfig
    seeds: list[int]
    update: int
    state: TrainState
    trainer: Trainer

    @property
    def network(self) -> ActorCritic:
        """The Flax actor-critic: `dist, value = network.apply(params, obs)`."""
        return self.trainer.network

    def _member(self, tree: Any, seed_index: int) -> Any:
        if not -len(self.seeds) <= seed_index < len(self.seeds):
            raise IndexError(
                f"seed_index: {seed_index} is out of range for {count(len(self.seeds), 'seed')}"
            )
        return jax.tree.map(lambda x: x[seed_index], tree)

    def params(self, seed_index: int = 0) -> Any:
        """The parameters of one seed (an index into `seeds`, not the seed value)."""
        return self._member(self.state.params, seed_index)

    def observe(self, obs: jax.Array, seed_index: int = 0) -> jax.Array:
        """What the network sees for raw observations `[..., *obs_shape]`: normalised with
        the seed's saved running statistics when the run had `normalize_observations`."""
        if not self.config.ppo.normalize_observations:
            return obs
        return normalize_observation(self.obs_stats(seed_index), obs)

    def obs_stats(self, seed_index: int = 0) -> RunningStats:
        """The seed's saved observation statistics (unused when the run did not normalise)."""
        return self._member(self.state.obs_stats, seed_index)

    def evaluate(
        self,
        key: jax.Array,
        num_episodes: int = 10,
        seed_index: int = 0,
        deterministic: bool = False,
    ) -> EvalResult:
        """Fresh episodes of one seed's policy (what `purejaxppo eval` runs): `returns`
        and `lengths` `[num_episodes]`."""
        run = jax.jit(
            functools.partial(
                evaluate, self.trainer, num_episodes=num_episodes, deterministic=deterministic
            )
        )
        return run(self.params(seed_index), self.obs_stats(seed_index), key)

    def act(
        self,
        obs: jax.Array,
        key: jax.Array,
        seed_index: int = 0,
        deterministic: bool = False,
        clip: bool = True,
    ) -> jax.Array:
        """An action for raw observations `obs` (sampled, or the mode when `deterministic`).

        With `clip` (default) a continuous action is clipped to the action space's bounds,
        as the env receives it (`purejaxppo.env_action`); `clip=False` gives the unclipped
        action the trainer stores and scores. Feed-forward policies only: a recurrent one
        (`gru_size > 0`) acts with `network.apply(params, hidden, obs, reset,
        method=ActorCritic.step)`, carrying its hidden state."""
        if self.config.ppo.gru_size:
            raise ValueError(
                "act: this run's policy is recurrent (gru_size > 0); step it with "
                "network.apply(params, hidden, obs, reset, method=ActorCritic.step)"
            )
        dist = self.network.apply(
            self.params(seed_index), self.observe(obs, seed_index), method=ActorCritic.policy
        )
        action = dist.mode() if deterministic else dist.sample(seed=key)
        return env_action(self.trainer.space, action) if clip else action


def load_run(run_dir: str | Path, update: int | None = None) -> LoadedRun:
    """Load a run folder: its config, a trainer for it and a checkpoint (the latest, or
    `update`), onto the default device. Raises `RunDirError`/`ConfigError` (both
    `ValueError`) with one line naming the folder and what is wrong."""
    run_dir, rc = read_run_config(run_dir)
    trainer = make_run_trainer(rc, str(run_dir / rundir.CONFIG_FILE))
    checkpoints = run_dir / rundir.CHECKPOINT_DIR
    try:
        checkpointer = Checkpointer(checkpoints, read_only=True)
        try:
            available = checkpointer.all_updates()
            if not available:
                raise CheckpointError(f"{checkpoints}: no complete checkpoint")
            if update is None:
                update = available[-1]
            elif update not in available:
                raise CheckpointError(f"no checkpoint at update {update} (have {available})")
            seeds = list(checkpointer.read_meta(update).seeds)
            init = jax.vmap(trainer.init, (0, None))
            like = jax.eval_shape(init, seed_keys(seeds), rc.train_hparams)
            state, _ = checkpointer.restore(update, like)
        finally:
            checkpointer.close()
    except CheckpointError as err:
        raise RunDirError(f"{run_dir}: cannot load the checkpoint ({err})") from None
    return LoadedRun(run_dir, rc, seeds, update, state, trainer)
