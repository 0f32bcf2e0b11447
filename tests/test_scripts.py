"""Scripts: `time_purejaxrl.py` (input errors, the gymnax 1.x adapter; no PureJaxRL needed),
`arithmetic_floor.py` (a tiny run)
and `kl_direction.py` and `grpo_entropy.py` (input errors)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import gymnax
import jax
import numpy as np

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "time_purejaxrl.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60
    )


def test_bad_checkout_and_counts_exit_2_with_one_line(tmp_path):
    missing = _run("--purejaxrl", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"--purejaxrl: expected a checkout holding purejaxrl/ppo.py, got {tmp_path / 'nowhere'}"
    ]
    (tmp_path / "purejaxrl").mkdir()
    (tmp_path / "purejaxrl" / "ppo.py").write_text("")
    zero = _run("--purejaxrl", str(tmp_path), "--seeds", "0")
    assert zero.returncode == 2
    assert zero.stderr.strip().splitlines() == ["--seeds and --repeats: expected integers >= 1"]


def test_five_tuple_step_merges_termination_and_truncation():
    spec = importlib.util.spec_from_file_location("time_purejaxrl", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    env, params = gymnax.make("CartPole-v1")
    wrapped = module.FiveTupleStep(env)
    key = jax.random.key(0)
    _, state = wrapped.reset(key, params)
    assert wrapped.num_actions == env.num_actions  # other attributes pass through
    # One step short of the time limit: the next step truncates without terminating.
    state = state.replace(time=params.max_steps_in_episode - 1)
    step = wrapped.step(key, state, 0, params)
    full = env.step(key, state, 0, params)
    assert len(step) == 5
    assert not bool(full[3]) and bool(full[4])
    assert bool(step[3])
    np.testing.assert_array_equal(step[0], full[0])
    assert float(step[2]) == float(full[2])


def test_kl_direction_script_refuses_zero_seeds(capsys):
    path = SCRIPT.parent / "kl_direction.py"
    spec = importlib.util.spec_from_file_location("kl_direction", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--seeds", "0"]) == 2
    assert capsys.readouterr().err.strip() == "kl_direction: --seeds: expected a positive integer"
    assert [case[0] for case in module.CASES] == ["CartPole-v1", "Pendulum-v1"]


def test_grpo_entropy_script_refuses_bad_counts(capsys):
    module = _load_script("grpo_entropy")
    for argv in (["--seeds", "0"], ["--group-size", "3"]):
        assert module.main(argv) == 2
        assert capsys.readouterr().err.strip() == (
            "grpo_entropy: --seeds >= 1 and a --group-size dividing 16"
        )


def _load_script(name: str):
    path = SCRIPT.parent / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rlhf_and_minatar_scripts_refuse_bad_counts(capsys):
    rlhf = _load_script("rlhf_experiments")
    assert rlhf.main(["critic", "--seeds", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        "rlhf_experiments: --seeds and --iterations: expected integers >= 1"
    )
    minatar = _load_script("minatar_torso")
    assert minatar.main(["--envs", "Breakout-MinAtar,Pong-Atari"]) == 2
    assert capsys.readouterr().err.strip() == "minatar_torso: --envs: no config for Pong-Atari"
    assert minatar.main(["--seeds", "0"]) == 2
    assert "expected positive integers" in capsys.readouterr().err


def test_purejaxrl_checkout_with_top_level_wrappers_and_missing_optional_modules(tmp_path):
    """PureJaxRL's newer ppo.py imports `wrappers` as a top-level module, and wrappers.py
    imports navix and brax at import time: the script's import copes with both."""
    pkg = tmp_path / "purejaxrl"
    pkg.mkdir()
    (pkg / "wrappers.py").write_text(
        "import navix as nx\n"
        "from brax.envs.wrappers.training import EpisodeWrapper, AutoResetWrapper\n"
        "class LogWrapper:\n    pass\n"
    )
    (pkg / "ppo.py").write_text(
        "from wrappers import LogWrapper\n\ndef make_train(config):\n    return 'made'\n"
    )
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('t', {str(SCRIPT)!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        f"make_train = m.import_make_train(m.Path({str(tmp_path)!r}))\n"
        "print(make_train({}), type(sys.modules['navix']).__name__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1].split() == ["made", "module"]  # (brax may print first)


def test_profile_op_counts_multiply_loop_bodies_by_their_trips(capsys):
    """`_op_counts` reads a compiled program: a 7-trip scan's body counts 7 times."""
    module = _load_script("profile_train")

    def body(c, x):
        return jax.numpy.tanh(c * x + 1.0), None

    def fn(c, xs):
        return jax.lax.scan(body, c, xs)[0]

    text = jax.jit(fn).lower(np.ones(3, np.float32), np.ones((7, 3), np.float32))
    module._op_counts(text.compile().as_text())
    out = capsys.readouterr().out
    assert "trips    7" in out
    comps, entry = module._computations(text.compile().as_text())
    ops = module.collections.Counter()
    loops: list = []
    module._executed(comps, entry, 1, ops, loops)
    assert [trips for _, trips, _ in loops] == [7]
    inner = module.collections.Counter()
    module._executed(comps, loops[0][0], 1, inner, [])
    assert sum(ops.values()) >= 7 * sum(inner.values()) > 0


def test_restoring_the_tfp_alias_touches_nothing_else():
    module = _load_script("time_purejaxrl")
    import jax.interpreters.xla as xla

    restored = module.restore_names_tfp_reads()
    assert hasattr(xla, "pytype_aval_mappings")
    assert module.restore_names_tfp_reads() == []  # idempotent: nothing left to restore
    assert set(restored) <= {"jax.interpreters.xla.pytype_aval_mappings"}


def test_arithmetic_floor_refuses_bad_counts_and_times_both_programs(capsys):
    floor = _load_script("arithmetic_floor")
    assert floor.main(["--updates", "0"]) == 2
    assert capsys.readouterr().err.strip() == "--updates: expected an integer >= 1, got 0"
    assert floor.main(["--seeds", "2", "--updates", "1", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("recipe CartPole-v1 4x128, 4 epochs x 4 minibatches")
    rates = {line.split()[0]: float(line.split()[1].replace(",", "")) for line in lines[1:3]}
    assert set(rates) == {"floor", "purejaxppo"} and min(rates.values()) > 0
    assert lines[3].startswith("purejaxppo runs at ") and lines[3].endswith("% of the floor's rate")


def test_floor_update_keeps_the_parameter_tree_and_moves_every_leaf():
    floor = _load_script("arithmetic_floor")
    import purejaxppo as ppo

    cfg = ppo.PPOConfig(num_envs=2, num_steps=8, num_minibatches=2, update_epochs=1)
    trainer = ppo.make_trainer(cfg)
    state = trainer.init(jax.random.key(0), ppo.HParams())
    obs = state.obs.reshape((cfg.num_envs, -1))
    new = jax.jit(lambda p: floor.floor_update(trainer.network, cfg, p, obs))(state.params)
    assert jax.tree.structure(new) == jax.tree.structure(state.params)
    moved = jax.tree.map(lambda a, b: bool(np.any(a != b)), new, state.params)
    assert all(jax.tree.leaves(moved))
