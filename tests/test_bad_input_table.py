"""Every subcommand under one rule (issue 23): bad input of every kind is exit 2, one line
on stderr, no traceback, and the file tree unchanged. Extend `CASES` when a subcommand
gains an option: a row is `(name, argv with {placeholders}, fragment of the one line)`."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from _cli_support import REPO, TINY, tree_digest, write_config

RLHF = str(REPO / "configs" / "rlhf" / "ppo.yaml")

FILES = {
    "empty.yaml": "",
    "list.yaml": "- 1\n- 2\n",
    "train_unknown.yaml": "ppo: {env_name: CartPole-v1, num_env: 4}\n",
    "train_type.yaml": "ppo: {env_name: CartPole-v1, num_envs: four}\n",
    "train_range.yaml": "ppo: {env_name: CartPole-v1}\nhparams: {gamma: 1.5}\n",
    "sweep_unknown.yaml": "base: tiny.yaml\nseeds: 2\ngird: {hparams.gamma: [0.9]}\n",
    "sweep_type.yaml": "base: tiny.yaml\nseeds: two\n",
    "sweep_range.yaml": "base: tiny.yaml\ngrid: {hparams.gamma: [0.9, 1.5]}\n",
    "sweep_ok.yaml": "base: tiny.yaml\nseeds: 2\n",
    "rlhf_unknown.yaml": "rl: {iteratons: 3}\n",
    "rlhf_type.yaml": "rl: {iterations: 1.5}\n",
    "rlhf_range.yaml": "hparams: {kl_target: -1}\n",
    "blocker": "a file where a folder is expected\n",
    "damaged/config.yaml": "ppo: [1,\n",
    "garbage/metrics.csv": "update,seed\nx,y,z\n\x00\x01\n",
    "emptyrun/metrics.csv": "",
}

CASES = [
    # train
    ("train missing", ["train", "missing.yaml"], "missing.yaml: no such config file"),
    ("train empty", ["train", "empty.yaml"], "empty.yaml"),
    ("train not a mapping", ["train", "list.yaml"], "list.yaml"),
    ("train unknown key", ["train", "train_unknown.yaml"], "did you mean ppo.num_envs"),
    ("train wrong type", ["train", "train_type.yaml"], "ppo.num_envs: expected an integer"),
    ("train out of range", ["train", "train_range.yaml"], "hparams.gamma"),
    ("train bad --set", ["train", "tiny.yaml", "--set", "ppo.num_envs=-1"], "ppo.num_envs"),
    ("train unwritable --out", ["train", "tiny.yaml", "--out", "blocker/run"], "cannot write"),
    ("train damaged --resume", ["train", "--resume", "damaged"], "--resume damaged"),
    ("train --resume not a run", ["train", "--resume", "garbage"], "not a purejaxppo run"),
    ("train --seeds 0", ["train", "tiny.yaml", "--seeds", "0"], "--seeds"),
    # eval
    ("eval missing", ["eval", "nowhere"], "no such run folder"),
    ("eval damaged", ["eval", "damaged"], "damaged"),
    ("eval not a run", ["eval", "garbage"], "not a purejaxppo run folder"),
    ("eval --episodes 0", ["eval", "damaged", "--episodes", "0"], "--episodes"),
    ("eval unwritable --gif", ["eval", "damaged", "--gif", "blocker/x.gif"], "--gif"),
    # sweep
    ("sweep missing", ["sweep", "missing.yaml"], "missing.yaml: no such sweep file"),
    ("sweep empty", ["sweep", "empty.yaml"], "empty.yaml"),
    ("sweep not a mapping", ["sweep", "list.yaml"], "list.yaml"),
    ("sweep unknown key", ["sweep", "sweep_unknown.yaml"], "gird"),
    ("sweep wrong type", ["sweep", "sweep_type.yaml"], "seeds"),
    ("sweep out of range", ["sweep", "sweep_range.yaml"], "hparams.gamma"),
    ("sweep bad --set", ["sweep", "sweep_type.yaml", "--set", "ppo.num_env=2"], "num_env"),
    ("sweep unwritable --out", ["sweep", "sweep_ok.yaml", "--out", "blocker/s"], "cannot write"),
    ("sweep other folder", ["sweep", "sweep_ok.yaml", "--out", "damaged"], "holds a training"),
    # rlhf
    ("rlhf missing", ["rlhf", "missing.yaml"], "missing.yaml: no such config file"),
    ("rlhf empty", ["rlhf", "empty.yaml"], "the file is empty"),
    ("rlhf not a mapping", ["rlhf", "list.yaml"], "expected a mapping"),
    ("rlhf unknown key", ["rlhf", "rlhf_unknown.yaml"], "did you mean rl.iterations"),
    ("rlhf wrong type", ["rlhf", "rlhf_type.yaml"], "rl.iterations: expected an integer"),
    ("rlhf out of range", ["rlhf", "rlhf_range.yaml"], "hparams.kl_target"),
    ("rlhf unwritable --out", ["rlhf", RLHF, "--out", "blocker/r"], "cannot write"),
    ("rlhf other folder", ["rlhf", RLHF, "--out", "damaged"], "holds a training run"),
    # plot
    ("plot missing", ["plot", "nowhere", "--out", "c.png"], "nowhere"),
    ("plot bad suffix", ["plot", "damaged", "--out", "c.txt"], "--out"),
    ("plot garbage metrics", ["plot", "garbage", "--out", "c.png"], "garbage"),
    ("plot empty metrics", ["plot", "emptyrun", "--out", "c.png"], "emptyrun"),
    ("plot unwritable --out", ["plot", "garbage", "--out", "blocker/c.png"], "blocker"),
    # bench
    ("bench unknown env", ["bench", "--envs", "NoSuchEnv-v9", "--out", "b"], "NoSuchEnv-v9"),
    ("bench --seeds 0", ["bench", "--seeds", "0", "--out", "b"], "--seeds"),
    ("bench unwritable --out", ["bench", "--quick", "--out", "blocker/b"], "blocker"),
    ("bench other folder", ["bench", "--quick", "--out", "damaged"], "holds a training run"),
    # envs
    ("envs extra argument", ["envs", "--what"], "unrecognized arguments"),
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad-input")
    write_config(root / "tiny.yaml", TINY)
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize(("name", "argv", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(workdir, monkeypatch, name, argv,
                                                          fragment):  # fmt: skip
    from purejaxppo.cli import main

    monkeypatch.chdir(workdir)
    before = tree_digest(workdir)
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exit_:  # argparse's own errors
            code = exit_.code
    lines = err.getvalue().strip().splitlines()
    assert code == 2, (name, code, out.getvalue()[-500:], err.getvalue()[-2000:])
    assert len(lines) == 1, (name, err.getvalue())
    assert "Traceback" not in err.getvalue()
    assert fragment in lines[0], (name, lines[0])
    assert tree_digest(workdir) == before, name
