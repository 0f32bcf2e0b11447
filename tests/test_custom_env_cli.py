"""A custom environment named by an import string (`env_name: corridor_env:Corridor`)
gets run folders, checkpoints, `eval`, `load_run` and sweeps, like a gymnax id."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _cli_support import assert_bad_input, run_cli

from purejaxppo.run import load_run
from purejaxppo.run.rundir import RunDirError

ENV_MODULE = textwrap.dedent(
    '''
    import jax, jax.numpy as jnp
    from flax import struct
    from gymnax.environments import environment, spaces


    @struct.dataclass
    class CorridorState(environment.EnvState):
        pos: jax.Array
        time: int


    class Corridor(environment.Environment):
        """Step left (0) or right (1) from 0; reaching +3 pays 1 and ends the episode."""

        @property
        def default_params(self):
            return environment.EnvParams(max_steps_in_episode=12)

        def reset_env(self, key, params):
            state = CorridorState(pos=jnp.int32(0), time=0)
            return self.get_obs(state), state

        def step_env(self, key, state, action, params):
            pos = jnp.clip(state.pos + 2 * action - 1, -3, 3)
            state = CorridorState(pos=pos, time=state.time + 1)
            done = pos == 3
            return self.get_obs(state), state, done.astype(jnp.float32), done, {}

        def get_obs(self, state, params=None, key=None):
            return jnp.array([state.pos / 3.0], jnp.float32)

        def action_space(self, params=None):
            return spaces.Discrete(2)

        def observation_space(self, params=None):
            return spaces.Box(-1.0, 1.0, (1,), jnp.float32)


    def make_short():
        env = Corridor()
        return env, env.default_params.replace(max_steps_in_episode=6)
    '''
)

CONFIG = """\
ppo:
  env_name: {env}
  num_envs: 4
  num_steps: 16
  total_timesteps: 1024
  update_epochs: 1
  num_minibatches: 2
  hidden_sizes: [16]
expected_return: 0.5
"""


@pytest.fixture(scope="module")
def custom_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("custom")
    (root / "corridor_env.py").write_text(ENV_MODULE)
    (root / "corridor.yaml").write_text(CONFIG.format(env="corridor_env:Corridor"))
    proc = run_cli("train", "corridor.yaml", "--out", "run", "--no-bar", cwd=root, cache_dir=None)
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.mark.slow
def test_custom_env_trains_and_evaluates_from_the_cli(custom_run):
    root = custom_run
    summary = json.loads((root / "run" / "summary.json").read_text())
    assert summary["env_name"] == "corridor_env:Corridor" and summary["status"] == "completed"
    proc = run_cli("eval", "run", "--episodes", "3", "--deterministic", cwd=root, cache_dir=None)
    assert proc.returncode == 0, proc.stderr
    assert "corridor_env:Corridor: checkpoint at update 16/16" in proc.stdout


@pytest.mark.slow
def test_load_run_gives_a_ready_network(custom_run, monkeypatch):
    monkeypatch.syspath_prepend(str(custom_run))
    run = load_run(custom_run / "run")
    assert run.config.ppo.env_name == "corridor_env:Corridor"
    assert run.seeds == [0] and run.update == 16
    assert jax.tree.leaves(run.state.params)[0].shape[0] == 1  # leading seed axis
    dist, value = run.network.apply(run.params(0), run.observe(jnp.zeros((5, 1))))
    assert dist.mode().shape == (5,) and value.shape == (5,)
    result = run.evaluate(jax.random.key(0), num_episodes=3)
    assert result.returns.shape == (3,)
    earlier = load_run(custom_run / "run", update=14)  # the two newest checkpoints are kept
    old, new = jax.tree.leaves(earlier.state.params), jax.tree.leaves(run.state.params)
    assert earlier.update == 14
    assert any(not np.array_equal(a, b) for a, b in zip(old, new, strict=True))
    with pytest.raises(RunDirError, match=r"no checkpoint at update 5 \(have \[14, 16\]\)"):
        load_run(custom_run / "run", update=5)
    with pytest.raises(IndexError, match="seed_index: 1 is out of range"):
        run.params(1)


def test_factory_import_string_and_bad_import_strings(tmp_path, monkeypatch):
    import purejaxppo as ppo

    (tmp_path / "corridor_env.py").write_text(ENV_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    env, params = ppo.make_env("corridor_env:make_short")
    assert params.max_steps_in_episode == 6 and type(env).__name__ == "Corridor"
    for name, message in [
        ("corridor_env:Nope", "env_name: corridor_env:Nope: corridor_env has no attribute Nope"),
        ("no_such_mod:Env", "env_name: no_such_mod:Env: cannot import no_such_mod"),
        ("corridor_env:", "expected an import string module:ClassOrFactory"),
    ]:
        with pytest.raises(ValueError, match=message):
            ppo.make_train(ppo.PPOConfig(env_name=name))


def test_eval_and_load_run_name_what_they_got(tmp_path):
    sweep_out = tmp_path / "sweep-out"
    sweep_out.mkdir()
    (sweep_out / "sweep.json").write_text("{}")
    with pytest.raises(RunDirError, match=r"a sweep output folder .*purejaxppo train .*best.yaml"):
        load_run(sweep_out)
    proc = run_cli("eval", sweep_out, cwd=tmp_path, cache_dir=None)
    assert_bad_input(proc, "a sweep output folder (purejaxppo sweep), not a run folder")
    with pytest.raises(RunDirError, match="no such run folder"):
        load_run(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RunDirError, match=r"not a purejaxppo run folder \(no config.yaml\)"):
        load_run(Path(empty))


@pytest.mark.slow
def test_custom_env_sweeps(custom_run):
    root = custom_run
    (root / "sweep.yaml").write_text(
        "base: corridor.yaml\nseeds: 2\ngrid:\n  hparams.learning_rate: [1.0e-3, 3.0e-3]\n"
    )
    proc = run_cli("sweep", "sweep.yaml", "--out", "sweep-out", "--no-progress", cwd=root)
    assert proc.returncode == 0, proc.stderr
    rows = (root / "sweep-out" / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 4  # header + 2 sets x 2 seeds
    best = (root / "sweep-out" / "best.yaml").read_text()
    assert "env_name: corridor_env:Corridor" in best
