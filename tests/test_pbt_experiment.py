"""scripts/pbt_experiment.py: every sweep file it writes is a valid sweep of the strategy it
names, all methods of an env share the run length and the budget is equal (the numbers
themselves are in docs/pbt.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from purejaxppo.sweep.spec import sweep_from_dict

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "pbt_experiment.py"
spec = importlib.util.spec_from_file_location("pbt_experiment", SCRIPT)
experiment = importlib.util.module_from_spec(spec)
spec.loader.exec_module(experiment)


@pytest.mark.parametrize("env", list(experiment.ENVS))
def test_every_method_is_a_valid_sweep_with_the_same_budget(env):
    budgets = {}
    for method in experiment.METHODS:
        sweep = sweep_from_dict(experiment.sweep_doc(env, method, repeat=1), method)
        assert sweep.strategy == ("grid" if method in ("grid", "random") else method)
        population = sweep.population()
        (group,) = population.groups()
        assert group.config.num_updates == experiment._updates(env)
        assert sweep.base.seed == 100
        slots = population.size * (2 if method == "halving" else 1)  # halving: rounds 2
        budgets[method] = slots * group.config.num_updates * group.config.batch_size
    assert len(set(budgets.values())) == 1, budgets


def test_steps_to_threshold_uses_the_moving_average():
    curve = np.array([0.0] * 50 + [10.0] * 50)
    assert experiment.steps_to(curve, 5.0, batch=8) == 51 * 8  # window 2: mean reaches 5
    assert np.isnan(experiment.steps_to(curve, 11.0, batch=8))
