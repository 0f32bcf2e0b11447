"""Hyperparameter sweeps (host side): spec, population runner, results, reports, CLI.

The Python API::

    from purejaxppo.sweep import load_sweep, train_population, select
"""

from purejaxppo.sweep.core import *  # noqa: F403  (temporary: split follows)
from purejaxppo.sweep.core import _NAN_METRICS  # noqa: F401
