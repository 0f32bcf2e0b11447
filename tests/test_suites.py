"""The suite adapters (`env_name: navix/<name>`, `xminigrid/<name>`, `craftax/<name>`,
`jumanji/<name>`): the gymnax 1.x interface, termination kept apart from the time limit,
auto-reset with `info["final_observation"]`, and a few PPO updates on each; a Jumanji env with
a structured observation and an action mask trained through `purejaxppo train`.

The shared wrapper's logic (on a tiny fake suite) and the one-line error of each missing
extra always run; each adapter's own tests are skipped when its package is
not installed (`make test-envs` installs the extras and runs this file).
"""

from __future__ import annotations

import functools
import shutil
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxppo as ppo
from purejaxppo.envs import check_env_name, check_env_signature, space_info
from purejaxppo.envs.suite import SuiteEnv

# One env per suite: `(env_name, module to import, obs shape, number of actions)`.
NAVIX = ("navix/Navix-Empty-8x8-v0", "navix", (8, 8, 3), 7)
XMINIGRID = ("xminigrid/MiniGrid-Empty-8x8", "xminigrid", (7, 7, 2), 6)
CRAFTAX = ("craftax/Craftax-Symbolic-v1", "craftax.craftax_env", (8268,), 43)
SUITES = [
    pytest.param(NAVIX, id="navix"),
    pytest.param(XMINIGRID, id="xminigrid"),
    pytest.param(CRAFTAX, id="craftax", marks=pytest.mark.slow),  # ~1 min of compiling
]
# Modules that hide each suite (None in sys.modules: `import` raises ImportError).
HIDDEN = {
    "navix": ("navix",),
    "xminigrid": ("xminigrid",),
    "craftax": ("craftax", "craftax.craftax_env"),
    "jumanji": ("jumanji",),
}


# --------------------------------------------------------------------------- the wrapper
class Walk(SuiteEnv):
    """A fake suite: obs `[1]` = position, +1 per step; action 1 ends the episode (a true
    termination, reward 10), any other gives reward 1. Resets at position 100."""

    def __init__(self) -> None:
        super().__init__("walk", None, obs_shape=(1,), num_actions=2, max_steps=4)

    def _reset_inner(self, key: jax.Array) -> tuple[jax.Array, Any]:
        del key
        return jnp.array([100.0]), jnp.asarray(100.0)

    def _step_inner(self, key, inner, action):
        del key
        position = inner + 1.0
        terminated = action == 1
        reward = jnp.where(terminated, 10.0, 1.0)
        return position[None], position, reward, terminated


def _walk(actions: list[int], limit: int = 4) -> dict[str, np.ndarray]:
    env = Walk()
    params = env.default_params.replace(max_steps_in_episode=limit)
    _, state = env.reset(jax.random.key(0), params)
    rows = []
    for i, action in enumerate(actions):
        obs, state, reward, terminated, truncated, info = env.step(
            jax.random.key(i), state, jnp.asarray(action), params
        )
        rows.append((obs[0], reward, terminated, truncated, info["final_observation"][0]))
    names = ("obs", "reward", "terminated", "truncated", "final")
    return {n: np.asarray(col) for n, col in zip(names, zip(*rows, strict=True), strict=True)}


def test_wrapper_time_limit_is_a_truncation():
    out = _walk([0] * 6, limit=4)
    np.testing.assert_array_equal(out["truncated"], [0, 0, 0, 1, 0, 0])
    assert not out["terminated"].any()
    np.testing.assert_array_equal(out["final"], [101, 102, 103, 104, 101, 102])
    np.testing.assert_array_equal(out["obs"], [101, 102, 103, 100, 101, 102])  # auto-reset


def test_wrapper_termination_on_the_last_step_stays_a_termination():
    out = _walk([0, 1, 0, 0, 1], limit=4)
    np.testing.assert_array_equal(out["terminated"], [0, 1, 0, 0, 1])
    np.testing.assert_array_equal(out["truncated"], [0, 0, 0, 0, 0])  # step 4: terminated
    np.testing.assert_array_equal(out["reward"], [1, 10, 1, 1, 10])
    np.testing.assert_array_equal(out["final"], [101, 102, 101, 102, 103])
    np.testing.assert_array_equal(out["obs"], [101, 100, 101, 102, 100])


# --------------------------------------------------------------------------- without extras
@pytest.mark.parametrize("suite", sorted(HIDDEN))
def test_missing_extra_is_a_one_line_error(monkeypatch, suite):
    for module in HIDDEN[suite]:
        monkeypatch.setitem(sys.modules, module, None)
    name = f"{suite}/Some-Env"
    with pytest.raises(ValueError) as err:
        check_env_name(name)
    expected = f"env_name: {name} needs the {suite} extra: pip install -e '.[{suite}]'"
    assert str(err.value) == expected
    with pytest.raises(ValueError, match=rf"^env_name: {name} needs the {suite} extra"):
        ppo.make_env(name)


@pytest.mark.parametrize("suite", sorted(HIDDEN))
def test_missing_extra_in_a_run_config_exits_2(monkeypatch, tmp_path, capsys, suite):
    from _cli_support import write_config

    from purejaxppo import cli

    for module in HIDDEN[suite]:
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setenv("PUREJAXPPO_CACHE_DIR", "off")
    path = write_config(tmp_path / "c.yaml", env_name=f"{suite}/Some-Env")
    assert cli.main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    hint = f"needs the {suite} extra: pip install -e '.[{suite}]'"
    assert "\n" not in err and hint in err, err
    assert not (tmp_path / "run").exists()


def test_import_purejaxppo_loads_no_suite():
    import subprocess

    code = (
        "import sys, purejaxppo, purejaxppo.envs; "
        "print([m for m in ('navix', 'xminigrid', 'craftax', 'jumanji') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- each adapter
@functools.cache
def _built(name: str) -> tuple[Any, Any, Any, Any]:
    """`(env, params, jitted reset, jitted step)`, built and jitted once per test session
    (a Craftax step compiles for ~35 s)."""
    env, params = ppo.make_env(name)
    return env, params, jax.jit(env.reset), jax.jit(env.step)


@pytest.fixture(scope="module", params=SUITES)
def suite(request):
    name, module, obs_shape, actions = request.param
    pytest.importorskip(module)
    env, params, _, _ = _built(name)
    return name, env, params, obs_shape, actions


def test_spaces_and_signature(suite):
    name, env, params, obs_shape, actions = suite
    info = space_info(env, params, name)
    assert info.obs_shape == obs_shape and info.action_dim == actions and not info.continuous
    check_env_signature(env, params, info, f"env_name: {name}")
    _, _, reset, step = _built(name)
    obs, state = reset(jax.random.key(0), params)
    assert obs.shape == obs_shape and obs.dtype == jnp.float32
    # checkpointable: orbax refuses typed PRNG keys (navix, xminigrid, craftax keep some)
    dtypes = {leaf.dtype for leaf in jax.tree.leaves(state)}
    assert not any(jnp.issubdtype(d, jax.dtypes.prng_key) for d in dtypes), dtypes
    obs, _, reward, terminated, truncated, info = step(
        jax.random.key(1), state, jnp.asarray(0), params
    )
    assert obs.shape == obs_shape and reward.shape == () and terminated.dtype == jnp.bool_
    assert truncated.dtype == jnp.bool_
    assert info["final_observation"].shape == obs_shape


def test_unknown_name_lists_close_ones(suite):
    name = suite[0]
    with pytest.raises(ValueError, match=r"^env_name: unknown .* environment .*did you mean"):
        check_env_name(name[:-1] + "X")


STEPS = 40
ENVS = 64


def _random_rollout(env, params, limit: int) -> dict[str, np.ndarray]:
    """`ENVS` vmapped rollouts of `STEPS` uniformly random actions; leaves `[ENVS, STEPS]`."""
    params = params.replace(max_steps_in_episode=limit)
    n = env.action_space(params).n

    def one(key):
        reset_key, key = jax.random.split(key)
        first, state = env.reset(reset_key, params)

        def body(state, key):
            act_key, step_key = jax.random.split(key)
            action = jax.random.randint(act_key, (), 0, n)
            obs, nxt, reward, terminated, truncated, info = env.step(
                step_key, state, action, params
            )
            row = {
                "time": state.time + 1,  # this step's number in its episode
                "reward": reward,
                "terminated": terminated,
                "truncated": truncated,
                "at_start": jnp.all(obs == first),
                "final_at_start": jnp.all(info["final_observation"] == first),
            }
            return nxt, row

        return jax.lax.scan(body, state, jax.random.split(key, STEPS))[1]

    keys = jax.random.split(jax.random.key(0), ENVS)
    return jax.tree.map(np.asarray, jax.jit(jax.vmap(one))(keys))


@pytest.mark.parametrize(
    ("name", "module"),
    [("navix/Navix-Empty-5x5-v0", "navix"), ("xminigrid/MiniGrid-Empty-5x5", "xminigrid")],
)
def test_termination_and_truncation(name, module):
    """On the 5x5 empty grids (the goal 4 moves and a turn away) a random walk sometimes
    reaches the goal (a termination, rewarded); the time limit (here 10) is a truncation;
    after either, the obs returned is a reset's, the final one in `info`."""
    pytest.importorskip(module)
    env, params = ppo.make_env(name)
    out = _random_rollout(env, params, limit=10)
    done = out["terminated"] | out["truncated"]
    assert out["terminated"].any() and out["truncated"].any()
    assert not (out["terminated"] & out["truncated"]).any()
    assert (out["reward"][out["terminated"]] > 0).all()  # the goal reached
    assert (out["reward"][~out["terminated"]] == 0).all()
    # truncated exactly at the 10th step of an episode, and no episode runs longer
    assert (out["time"][out["truncated"]] == 10).all() and (out["time"] <= 10).all()
    # Empty-5x5 always starts in the same place: after `done` the obs is a reset's
    assert out["at_start"][done].all() and not out["final_at_start"][out["terminated"]].any()


@pytest.mark.slow
def test_craftax_death_is_a_termination_and_the_time_limit_a_truncation():
    pytest.importorskip("craftax.craftax_env")
    env, params, reset, step = _built(CRAFTAX[0])
    params = params.replace(max_steps_in_episode=3)  # a traced leaf: no new compile
    _, state = reset(jax.random.key(0), params)
    noop = jnp.asarray(0)
    results = []
    for i in range(3):
        obs, state, _, terminated, truncated, info = step(jax.random.key(i), state, noop, params)
        results.append((bool(terminated), bool(truncated)))
    assert results == [(False, False), (False, False), (False, True)]
    assert int(state.time) == 0 and not np.array_equal(obs, info["final_observation"])
    inner = env.inner(state)
    health = jnp.zeros_like(inner.player_health)  # same dtype: no new compile
    dying = env.replace_inner(state, inner.replace(player_health=health))
    _, after, _, terminated, truncated, _ = step(jax.random.key(9), dying, noop, params)
    assert bool(terminated) and not bool(truncated) and int(after.time) == 0


def _three_updates(name: str, env, params) -> np.ndarray:
    """The total loss `[3]` of three tiny PPO updates on `env` (2 envs x 8 steps)."""
    cfg = ppo.PPOConfig(
        env_name=name,
        num_envs=2,
        num_steps=8,
        total_timesteps=3 * 16,
        update_epochs=1,
        num_minibatches=2,
        hidden_sizes=(16,),
    )
    out = jax.jit(ppo.make_train(cfg, env, params))(jax.random.key(0), ppo.HParams())
    return np.asarray(out.metrics["total_loss"])


def test_a_few_updates(suite):
    name, env, params, _, _ = suite
    losses = _three_updates(name, env, params)
    assert losses.shape == (3,) and np.all(np.isfinite(losses))


def test_envs_command_lists_each_suite(monkeypatch):
    """`purejaxppo envs`: one line per suite, from the package metadata (nothing imported)."""
    from importlib import metadata

    from purejaxppo.run import envs_table

    def version(dist: str) -> str:
        if dist == "navix":
            return "0.7.4"
        raise metadata.PackageNotFoundError(dist)

    monkeypatch.setattr(envs_table.metadata, "version", version)
    assert envs_table.suite_lines() == [
        "navix/NAME: navix 0.7.4 installed (e.g. navix/Navix-Empty-8x8-v0)",
        "xminigrid/NAME needs the xminigrid extra: pip install -e '.[xminigrid]'",
        "craftax/NAME needs the craftax extra: pip install -e '.[craftax]'",
        "jumanji/NAME needs the jumanji extra: pip install -e '.[jumanji]'",
    ]


# --------------------------------------------------------------------------- jumanji
# `(env_name, observation fields, number of actions)`: structured observations, each with an
# action mask.
JUMANJI = [
    ("jumanji/Snake-v1", ("grid", "step_count", "action_mask"), 4),
    ("jumanji/Maze-v0", ("agent_position", "target_position", "walls", "action_mask"), 4),
    ("jumanji/Game2048-v1", ("board", "action_mask"), 4),
    ("jumanji/Knapsack-v1", ("weights", "values", "packed_items", "action_mask"), 50),
]


@pytest.mark.parametrize(("name", "fields", "actions"), JUMANJI, ids=lambda v: str(v))
def test_jumanji_spaces_and_signature(name, fields, actions):
    pytest.importorskip("jumanji")
    env, params = ppo.make_env(name)
    info = space_info(env, params, name)
    assert info.action_dim == actions and not info.continuous and info.obs_spec is not None
    paths = [leaf.path for leaf in info.obs_spec.leaves]
    assert all(any(p.startswith(f".{f}") for p in paths) for f in fields), paths
    assert info.obs_spec.leaves[info.obs_spec.mask_index].shape == (actions,)
    check_env_signature(env, params, info, f"env_name: {name}")  # traced, nothing compiled


def test_jumanji_refuses_multi_dimensional_actions():
    pytest.importorskip("jumanji")
    with pytest.raises(ValueError, match=r"^env_name: jumanji/BinPack-v2 is not supported: "):
        ppo.make_env("jumanji/BinPack-v2")


def test_jumanji_knapsack_trains_through_the_cli_and_takes_no_masked_action(tmp_path):
    """Knapsack-v1 (weights, values, packed items, and a mask that changes as items are
    packed): `purejaxppo train` with a run folder, `purejaxppo eval`; then the trained policy acts
    over a rollout and every action it takes is valid."""
    pytest.importorskip("jumanji")
    from _cli_support import TINY, run_cli, write_config

    from purejaxppo.run.load import load_run

    config = write_config(
        tmp_path / "knapsack.yaml",
        {**TINY, "expected_return": None},
        env_name="jumanji/Knapsack-v1",
        num_envs=4,
        num_steps=16,
        total_timesteps=3 * 64,
        hidden_sizes=[16],
        normalize_observations=True,
    )
    out = run_cli("train", config, "--out", tmp_path / "run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    out = run_cli("eval", tmp_path / "run", "--episodes", "4", cwd=tmp_path)
    assert out.returncode == 0 and "seed 0" in out.stdout, out.stdout + out.stderr
    run = load_run(tmp_path / "run")
    trainer, params = run.trainer, run.params(0)

    def body(carry, key):
        env_state, obs = carry
        act_key, step_key = jax.random.split(key)
        dist = trainer.network.apply(params, run.observe(obs), method="policy")
        action = dist.sample(seed=act_key)
        valid = jnp.take_along_axis(obs.action_mask, action[:, None], axis=-1)[:, 0]
        keys = jax.random.split(step_key, 4)
        obs, env_state, *_ = jax.vmap(trainer.env.step, (0, 0, 0, None))(
            keys, env_state, action, trainer.env_params
        )
        return (env_state, obs), valid

    obs, env_state = jax.vmap(trainer.env.reset, (0, None))(
        jax.random.split(jax.random.key(5), 4), trainer.env_params
    )
    keys = jax.random.split(jax.random.key(6), 64)
    _, valid = jax.jit(lambda c, k: jax.lax.scan(body, c, k))((env_state, obs), keys)
    assert np.asarray(valid).all()


# --------------------------------------------------------------------------- XLand rulesets
XLAND = "xminigrid/XLand-MiniGrid-R1-9x9"


def _write_benchmark(root) -> None:
    """A two-ruleset benchmark in xminigrid's own file format (`save_bz2_pickle` of goals
    `[N, 5]`, rules `[N, R, 7]`, init_tiles `[N, T, 2]`, num_rules `[N]`), under the file
    name of `trivial-21k`, which cannot be fetched here: ruleset 0 "go next to the blue
    ball" with a blue ball placed, ruleset 1 "pick up the green key" with a green key."""
    from xminigrid.benchmarks import NAME2HFFILENAME, save_bz2_pickle
    from xminigrid.core.constants import TILES_REGISTRY, Colors, Tiles
    from xminigrid.core.goals import AgentHoldGoal, AgentNearGoal
    from xminigrid.core.rules import EmptyRule

    ball, key = TILES_REGISTRY[Tiles.BALL, Colors.BLUE], TILES_REGISTRY[Tiles.KEY, Colors.GREEN]
    bench = {
        "goals": np.stack([AgentNearGoal(tile=ball).encode(), AgentHoldGoal(tile=key).encode()]),
        "rules": np.stack([EmptyRule().encode()[None]] * 2),
        "init_tiles": np.stack([np.asarray(ball)[None], np.asarray(key)[None]]),
        "num_rules": np.zeros(2, np.uint8),
    }
    save_bz2_pickle(bench, str(root / NAME2HFFILENAME["trivial-21k"]))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (XLAND, r"needs a ruleset: .*/<benchmark>/<ruleset id>, e\.g\."),
        (XLAND + "/trivial-21k", r"expected xminigrid/<XLand env>/<benchmark>/<ruleset id>"),
        (XLAND + "/trivial-21k/x", r"expected xminigrid/<XLand env>/<benchmark>/<ruleset id>"),
        (XLAND + "/trivial-2k/0", r"unknown xminigrid benchmark 'trivial-2k'; known: "),
        (XLAND[:-1] + "8/trivial-21k/0", r"unknown xminigrid XLand environment .*did you mean"),
        (XLAND + "/trivial-21k/0", r"needs xminigrid's trivial-21k benchmark at .*never downloads"),
        (XLAND + "/trivial-21k/2", r"ruleset id 2 out of range; trivial-21k has 2 rulesets"),
    ],
)
def test_xland_names_are_refused_in_one_line(monkeypatch, tmp_path, name, message):
    pytest.importorskip("xminigrid")
    monkeypatch.setenv("XLAND_MINIGRID_DATA", str(tmp_path))
    if "out of range" in message:
        _write_benchmark(tmp_path)
    with pytest.raises(ValueError, match="^env_name: .*" + message) as err:
        ppo.make_env(name)
    assert "\n" not in str(err.value)


def test_xland_ruleset_sets_the_task_and_trains(monkeypatch, tmp_path):
    """The ruleset read from the benchmark file places its objects and sets the goal:
    ruleset 0 puts a blue ball in the room, ruleset 1 a green key; a random walk that
    reaches a goal is rewarded and terminates; a few PPO updates run."""
    pytest.importorskip("xminigrid")
    from xminigrid.core.constants import TILES_REGISTRY, Colors, Tiles

    monkeypatch.setenv("XLAND_MINIGRID_DATA", str(tmp_path))
    _write_benchmark(tmp_path)
    for rid, tile in ((0, (Tiles.BALL, Colors.BLUE)), (1, (Tiles.KEY, Colors.GREEN))):
        env, params = ppo.make_env(f"{XLAND}/trivial-21k/{rid}")
        _, state = jax.jit(env.reset)(jax.random.key(rid), params)
        grid = np.asarray(env.inner(state).state.grid)
        wanted = np.asarray(TILES_REGISTRY[tile])
        assert (grid == wanted).all(-1).sum() == 1, rid  # exactly the ruleset's object
    env, params = ppo.make_env(f"{XLAND}/trivial-21k/0")
    out = _random_rollout(env, params, limit=60)
    assert out["terminated"].any()  # next to the ball, facing forward, in 40 random steps
    assert (out["reward"][out["terminated"]] > 0).all()
    assert (out["reward"][~out["terminated"]] == 0).all()
    assert np.all(np.isfinite(_three_updates(f"{XLAND}/trivial-21k/0", env, params)))


@pytest.mark.parametrize(
    ("config", "module"),
    [
        ("navix/Navix-Empty-8x8-v0", "navix"),
        ("xminigrid/MiniGrid-Empty-8x8", "xminigrid"),
        pytest.param(
            "craftax/Craftax-Classic-Symbolic-v1", "craftax.craftax_env", marks=pytest.mark.slow
        ),
    ],
)
def test_shipped_config_trains_resumes_and_evaluates_through_the_cli(tmp_path, config, module):
    """The suite's shipped config, shrunk by `--set`, through `purejaxppo train` (run folder,
    checkpoints, TensorBoard), then its last checkpoint removed and `--resume`: the resumed
    metrics equal the uninterrupted ones (wall time aside); then `purejaxppo eval`."""
    pytest.importorskip(module)
    from _cli_support import REPO, run_cli

    tiny = [
        "--set", "ppo.num_envs=2", "--set", "ppo.num_steps=16", "--set", "ppo.update_epochs=1",
        "--set", "ppo.num_minibatches=2", "--set", "ppo.total_timesteps=128",
    ]  # fmt: skip
    path = REPO / "configs" / f"{config}.yaml"
    run = tmp_path / "run"
    out = run_cli("train", path, *tiny, "--checkpoint-every", "2", "--out", run, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert any((run / "tensorboard").rglob("events.out.tfevents.*"))
    full = (run / "metrics.csv").read_text()
    checkpoints = sorted(int(p.name) for p in (run / "checkpoint").iterdir())
    assert checkpoints[-2:] == [2, 4], checkpoints
    shutil.rmtree(run / "checkpoint" / "4")
    out = run_cli("train", "--resume", run, cwd=tmp_path)
    assert out.returncode == 0, out.stderr

    def without_wall(text: str) -> list[list[str]]:
        rows = [line.split(",") for line in text.splitlines()]
        col = rows[0].index("wall_time_s")
        return [r[:col] + r[col + 1 :] for r in rows]

    assert without_wall((run / "metrics.csv").read_text()) == without_wall(full)
    out = run_cli("eval", run, "--episodes", "2", cwd=tmp_path)
    assert out.returncode == 0 and "seed 0" in out.stdout, out.stdout + out.stderr
