"""GIFs of a policy: `train --gif` writes RUN/policy.gif, `eval RUN --gif OUT` draws
--episodes episodes; unsupported envs, recurrent policies, a missing pygame and bad paths
are one-line errors (exit 2) that leave the disk as it was."""

from __future__ import annotations

import sys
from pathlib import Path

import gymnax
import jax
import numpy as np
import pytest
from _cli_support import TINY, run_cli, tree_digest, write_config
from PIL import Image

from purejaxppo import cli
from purejaxppo.run import gif
from purejaxppo.run.tensorboard_log import TB_DIR

pytest.importorskip("pygame", reason="the gif extra draws CartPole with pygame")


def main_in_process(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    status = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(status: int, err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def gif_frames(path: Path) -> tuple[tuple[int, int], int]:
    with Image.open(path) as im:
        assert im.format == "GIF"
        return im.size, im.n_frames


def expected_frames(lengths: list[int]) -> int:
    """Frames drawn for episodes of these lengths (all steps up to MAX_FRAMES in all)."""
    states = [list(range(n)) for n in lengths]
    plan = gif._frame_plan(gif.Episodes(states, [np.ones(n) for n in lengths]), gif.MAX_FRAMES)
    return len(plan[0])


@pytest.fixture(scope="module")
def gif_run(tmp_path_factory):
    """A tiny CartPole run trained with `--gif` (and `--no-tensorboard`)."""
    root = tmp_path_factory.mktemp("gif")
    run = root / "run"
    args = ("train", write_config(root / "tiny.yaml"), "--out", run, "--gif", "--no-tensorboard")
    proc = run_cli(*args, cwd=root)
    assert proc.returncode == 0, proc.stderr
    return {"root": root, "run": run, "proc": proc}


def test_train_gif_writes_policy_gif(gif_run):
    run, proc = gif_run["run"], gif_run["proc"]
    assert proc.stderr == ""  # no SDL / ALSA noise
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith(f"wrote {run / 'policy.gif'}: seed 0, 1 episode (return ")
    size, frames = gif_frames(run / "policy.gif")
    length = int(float(line.split("(return ")[1].split(")")[0]))  # CartPole pays 1 per step
    assert size == (360, 300) and frames == expected_frames([length])
    assert not (run / TB_DIR).exists()  # --no-tensorboard


def test_eval_gif_draws_the_episodes(gif_run, capsys, monkeypatch):
    monkeypatch.setenv("PUREJAXPPO_CACHE_DIR", "off")
    out = gif_run["root"] / "two.gif"
    out.write_bytes(b"old")  # replaced whole
    status, stdout, _ = main_in_process(
        capsys, "eval", gif_run["run"], "--gif", out, "--episodes", "2", "--deterministic"
    )
    assert status == 0
    returns = stdout.split("(return ")[1].split(")")[0].split(", ")
    assert len(returns) == 2
    lengths = [int(float(r)) for r in returns]  # CartPole pays 1 per step
    _, frames = gif_frames(out)
    assert frames == expected_frames(lengths)
    assert not list(out.parent.glob(".two.*"))  # no temporary file left


def test_frame_plan_subsamples_long_episodes():
    states = [list(range(500)), list(range(40))]
    rewards = [np.ones(500), np.ones(40)]
    kept, titles, every = gif._frame_plan(gif.Episodes(states, rewards), max_frames=300)
    assert every == 2 and len(kept) == 251 + 21  # 0, 2, ..., 498, 499; 0, 2, ..., 38, 39
    assert titles[0] == "episode 1, step 1, return 1.0"
    assert titles[249] == "episode 1, step 499, return 499.0"
    assert titles[250] == "episode 1, step 500, return 500.0"
    assert titles[-1] == "episode 2, step 40, return 40.0"


def test_failed_render_keeps_the_old_file(gif_run, monkeypatch):
    out = gif_run["root"] / "keep.gif"
    out.write_bytes(b"precious")

    def broken(*args, **kwargs):
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(gif, "_paletted", broken)
    env, params = gymnax.make("CartPole-v1")
    state = env.reset(jax.random.key(0), params)[1]
    episodes = gif.Episodes([[state]], [np.zeros(1)])
    with pytest.raises(RuntimeError):
        gif.write_gif(out, env, params, episodes)
    assert out.read_bytes() == b"precious"
    assert sorted(p.name for p in out.parent.glob("*keep*")) == ["keep.gif"]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--gif", "{root}/out.png"], ["--gif", "out.png: expected a file name ending in .gif"]),
        (["--gif", "{root}/no/such/out.gif"], ["--gif", "no such folder"]),
        (["--gif", "{root}"], ["--gif", "is a folder"]),
    ],
)
def test_eval_gif_bad_path(gif_run, capsys, monkeypatch, args, fragments):
    monkeypatch.setenv("PUREJAXPPO_CACHE_DIR", "off")
    root = gif_run["root"]
    before = tree_digest(root)
    argv = [a.format(root=root) for a in args]
    status, _, err = main_in_process(capsys, "eval", gif_run["run"], *argv)
    assert_one_line_error(status, err, *fragments)
    assert tree_digest(root) == before


def test_eval_gif_of_a_missing_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PUREJAXPPO_CACHE_DIR", "off")
    status, _, err = main_in_process(capsys, "eval", tmp_path / "nope", "--gif", tmp_path / "a.gif")
    assert_one_line_error(status, err, "nope: no such run folder")
    assert not (tmp_path / "a.gif").exists()


@pytest.mark.parametrize(
    ("ppo", "fragments"),
    [
        (
            {"env_name": "DeepSea-bsuite"},
            ["--gif: DeepSea-bsuite has no gymnax visualiser", "CartPole-v1"],
        ),
        ({"gru_size": 8}, ["--gif", "recurrent"]),
    ],
)
def test_train_gif_refused_before_training(tmp_path, capsys, monkeypatch, ppo, fragments):
    monkeypatch.setenv("PUREJAXPPO_CACHE_DIR", "off")
    config = write_config(tmp_path / "c.yaml", TINY, **ppo)
    status, _, err = main_in_process(capsys, "train", config, "--out", tmp_path / "run", "--gif")
    assert_one_line_error(status, err, *fragments)
    assert not (tmp_path / "run").exists()


def test_missing_pygame_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PUREJAXPPO_CACHE_DIR", "off")
    monkeypatch.setitem(sys.modules, "pygame", None)  # import pygame -> ImportError
    config = write_config(tmp_path / "c.yaml")
    status, _, err = main_in_process(capsys, "train", config, "--out", tmp_path / "run", "--gif")
    assert_one_line_error(status, err, "needs pygame", "pip install -e '.[gif]'")
    assert not (tmp_path / "run").exists()
