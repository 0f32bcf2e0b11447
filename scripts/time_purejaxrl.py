"""Time PureJaxRL's own PPO on its CartPole recipe, for a side-by-side ratio.

    python scripts/time_purejaxrl.py --purejaxrl PATH [--seeds 1] [--repeats 2]

PureJaxRL is not a package: clone https://github.com/luchris429/purejaxrl
elsewhere and pass the checkout (the folder holding `purejaxrl/ppo.py`). Run it
in an environment with the same jax as purejaxppo plus `distrax` (its PPO needs
it): in purejaxppo's own venv, `pip install distrax` (0.1.9 brings
tensorflow-probability 0.25, dm-tree, decorator, gast and cloudpickle), or
`pip install --target DIR distrax decorator gast cloudpickle` and
`PYTHONPATH=DIR` to keep them out of the venv. Nothing of PureJaxRL is shipped
or imported by purejaxppo itself.

TFP 0.25 reads `jax.interpreters.xla.pytype_aval_mappings` at import time, a
name jax 0.10 dropped (it was an alias of jax's core table of the same name);
the script restores that alias before importing PureJaxRL, and changes nothing
else of jax.

Both layouts of its imports work: `ppo.py` importing `purejaxrl.wrappers` (the
checkout on `sys.path`) or a top-level `wrappers` (the checkout's `purejaxrl/`
folder on `sys.path`); the script puts both there. `wrappers.py` imports `brax`
and `navix` at import time for its Brax and Navix wrappers, which the CartPole
recipe never uses: when either is not installed, the script registers an empty
placeholder module under its name (any use of it raises), so neither is needed.

The recipe is the `__main__` config of `purejaxrl/ppo.py` (CartPole-v1, 4 envs
x 128 steps, 5e5 steps, 4 epochs x 4 minibatches, 64x64 tanh), with `DEBUG`
off. Seeds are vmapped on one device, as PureJaxRL does. Compile time is
`lower + compile` of the whole `train`; steps/s is the best of `--repeats`
full runs. Compare with `scripts/time_cartpole.py` (one seed) and
`purejaxppo bench` (seeds split over all cores), run right before or after on
the same machine.

gymnax 1.x returns `(obs, state, reward, terminated, truncated, info)` from
`step`; PureJaxRL's wrappers expect gymnax 0.0.x's `(obs, state, reward, done,
info)`. This script adapts `gymnax.make`'s environment (done = terminated or
truncated) instead of editing PureJaxRL's files; that is the only change.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")

RECIPE: dict[str, Any] = {
    "LR": 2.5e-4,
    "NUM_ENVS": 4,
    "NUM_STEPS": 128,
    "TOTAL_TIMESTEPS": 5e5,
    "UPDATE_EPOCHS": 4,
    "NUM_MINIBATCHES": 4,
    "GAMMA": 0.99,
    "GAE_LAMBDA": 0.95,
    "CLIP_EPS": 0.2,
    "ENT_COEF": 0.01,
    "VF_COEF": 0.5,
    "MAX_GRAD_NORM": 0.5,
    "ACTIVATION": "tanh",
    "ENV_NAME": "CartPole-v1",
    "ANNEAL_LR": True,
    "DEBUG": False,
}


OPTIONAL_MODULES = {  # module -> names imported from it by PureJaxRL's wrappers.py
    "navix": (),
    "brax": (),
    "brax.envs": (),
    "brax.envs.wrappers": (),
    "brax.envs.wrappers.training": ("EpisodeWrapper", "AutoResetWrapper"),
}


class _Unavailable:
    """Stands in for a name of a module that is not installed; using it raises."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise ImportError(f"{self._name} is not installed (placeholder from time_purejaxrl.py)")

    def __getattr__(self, attr: str) -> Any:
        return _Unavailable(f"{self._name}.{attr}")


def stub_missing_optional_modules() -> list[str]:
    """Register placeholders for the modules of `OPTIONAL_MODULES` that are not installed;
    return their names."""
    import importlib.util
    import types

    stubbed = []
    for name, attrs in OPTIONAL_MODULES.items():
        root = name.split(".")[0]
        if name in sys.modules:
            continue
        if root not in stubbed and importlib.util.find_spec(root) is not None:
            continue
        module = types.ModuleType(name)
        module.__getattr__ = lambda attr, _n=name: _Unavailable(f"{_n}.{attr}")  # type: ignore[method-assign]
        for attr in attrs:
            setattr(module, attr, _Unavailable(f"{name}.{attr}"))
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, module)
        stubbed.append(name)
    return stubbed


def restore_names_tfp_reads() -> list[str]:
    """Put back the jax names that TensorFlow Probability 0.25 (the newest on PyPI, which
    distrax 0.1.9 imports) still reads at import time and jax 0.10 removed; return those set.

    Only `jax.interpreters.xla.pytype_aval_mappings` is missing: it was an alias of jax's
    own `core.pytype_aval_mappings` table, so the alias is restored as it was. Nothing
    else of jax is touched, and nothing when the name exists.
    """
    import jax.interpreters.xla as xla
    from jax._src import core

    restored = []
    if not hasattr(xla, "pytype_aval_mappings"):
        xla.pytype_aval_mappings = core.pytype_aval_mappings
        restored.append("jax.interpreters.xla.pytype_aval_mappings")
    return restored


def import_make_train(root: Path) -> Any:
    """PureJaxRL's `make_train` from a checkout at `root`, whichever import layout its
    `ppo.py` uses, with the optional modules stubbed when missing."""
    for path in (root / "purejaxrl", root):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    stub_missing_optional_modules()
    restore_names_tfp_reads()
    from purejaxrl.ppo import make_train

    return make_train


class FiveTupleStep:
    """A gymnax 1.x environment whose `step` returns gymnax 0.0.x's five values."""

    def __init__(self, env: Any) -> None:
        self._env = env

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    def step(self, key: Any, state: Any, action: Any, params: Any = None) -> tuple:
        import jax.numpy as jnp

        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        return obs, state, reward, jnp.logical_or(terminated, truncated), info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--purejaxrl", required=True, help="a PureJaxRL checkout")
    parser.add_argument("--seeds", type=int, default=1, help="seeds vmapped on one device")
    parser.add_argument("--repeats", type=int, default=2, help="timed full runs")
    args = parser.parse_args()
    root = Path(args.purejaxrl)
    if not (root / "purejaxrl" / "ppo.py").is_file():
        print(
            f"--purejaxrl: expected a checkout holding purejaxrl/ppo.py, got {root}",
            file=sys.stderr,
        )
        return 2
    if args.seeds < 1 or args.repeats < 1:
        print("--seeds and --repeats: expected integers >= 1", file=sys.stderr)
        return 2
    import gymnax
    import jax

    original_make = gymnax.make

    def make_five_tuple(name: str, **kwargs: Any) -> tuple[FiveTupleStep, Any]:
        env, env_params = original_make(name, **kwargs)
        return FiveTupleStep(env), env_params

    gymnax.make = make_five_tuple
    make_train = import_make_train(root)

    train = make_train(dict(RECIPE))
    keys = jax.random.split(jax.random.PRNGKey(30), args.seeds)
    fn = jax.jit(jax.vmap(train)) if args.seeds > 1 else jax.jit(train)
    arg = keys if args.seeds > 1 else keys[0]
    start = time.perf_counter()
    compiled = fn.lower(arg).compile()
    compile_s = time.perf_counter() - start
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(compiled(arg))
        best = min(best, time.perf_counter() - start)
    batch = RECIPE["NUM_ENVS"] * RECIPE["NUM_STEPS"]
    steps = args.seeds * (int(RECIPE["TOTAL_TIMESTEPS"]) // batch) * batch
    returns = out["metrics"]["returned_episode_returns"][..., -1, :, :]
    text = compiled.as_text()
    print(f"program {text.count(' fusion(')} fusions, {text.count(' while(')} loops")
    print(
        f"PureJaxRL CartPole-v1, {args.seeds} seed(s) on 1 device: compile {compile_s:.1f} s, "
        f"{steps / best:,.0f} steps/s (best of {args.repeats}), "
        f"last-update return {float(returns.mean()):.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
