"""The README's custom-environment example runs and learns."""

import contextlib
import io
import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parent.parent / "README.md"


def test_custom_env_example_in_readme_runs_and_learns():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(b for b in blocks if "class Corridor" in b)
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(example, "README.md", "exec"), namespace)
    lengths = np.asarray(namespace["out"].metrics["episode_length"][-3:])
    assert np.all(lengths < 6.0), lengths


def test_embedding_example_in_readme_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(b for b in blocks if "stack_hparams" in b and "net.apply" in b)
    assert "total_timesteps=500_000" in example
    short = example.replace("total_timesteps=500_000", "total_timesteps=1024")
    namespace: dict = {}
    exec(compile(short, "README.md", "exec"), namespace)
    assert namespace["out"].metrics["episode_return"].shape == (2, 8, 2)
    assert namespace["action"].shape == ()
