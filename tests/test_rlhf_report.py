"""`overoptimisation.png`: each member's line starts at its first full 10-iteration window of
training batches, never at KL 0 from a single noisy batch; the reference is drawn at KL 0 from
the evaluation. Synthetic metrics, no training."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from purejaxppo.rlhf import report
from purejaxppo.rlhf.pipeline import Evaluation
from purejaxppo.rlhf.trainer import RLMetrics

ITERATIONS, MEMBERS = 30, 2


def _inputs() -> tuple[list, RLMetrics, Evaluation]:
    rng = np.random.default_rng(0)
    kl = np.concatenate([np.zeros((MEMBERS, 1)), rng.uniform(0, 5, (MEMBERS, 29))], axis=1)
    rising = np.tile(np.linspace(1.0, 3.0, ITERATIONS), (MEMBERS, 1))
    fields = {f: rng.normal(size=(MEMBERS, ITERATIONS)) for f in RLMetrics._fields}
    fields |= {
        "kl": kl,
        "gold_reward": rising + 0.5,
        "proxy_reward": rising - np.array([[0.6], [-0.4]]),
    }
    evaluation = Evaluation(
        gold_reward=np.array([2.9, 3.1]),
        gold_reward_reference=np.array([1.0, 1.0]),
        proxy_reward=np.array([3.0, 3.2]),
        proxy_reward_reference=np.array([1.1, 1.1]),
        kl_to_reference=np.array([4.0, 6.0]),
        win_rate_vs_reference=np.array([0.8, 0.9]),
        length=np.array([5.0, 5.0]),
        gold_per_prompt=np.zeros((MEMBERS, 4)),
        gold_per_prompt_reference=np.zeros((MEMBERS, 4)),
        content_length=np.full((MEMBERS, 4), 4),
        content_length_reference=np.full((MEMBERS, 4), 4),
    )
    members = [SimpleNamespace(label=f"seed={i}") for i in range(MEMBERS)]
    return members, RLMetrics(**fields), evaluation


def test_lines_start_at_a_full_window_and_the_reference_sits_at_kl_0():
    members, metrics, evaluation = _inputs()
    fig = report.overoptimisation_figure(members, metrics, evaluation)
    for ax, name in zip(fig.axes, ("gold_reward", "proxy_reward"), strict=True):
        lines = {line.get_label(): line for line in ax.get_lines()}
        values = np.asarray(getattr(metrics, name))
        for i, member in enumerate(members):
            x, y = lines[member.label].get_data()
            w = report.SMOOTH_ITERATIONS
            assert len(x) == ITERATIONS - w + 1
            np.testing.assert_allclose(x[0], np.sqrt(metrics.kl[i, :w].mean()))
            np.testing.assert_allclose(y[0], values[i, :w].mean())
            np.testing.assert_allclose(y[-1], values[i, -w:].mean())
        x, y = lines["reference policy (evaluation)"].get_data()
        reference = np.asarray(getattr(evaluation, name + "_reference"))[0]
        np.testing.assert_allclose([x[0], y[0]], [0.0, reference])
    assert "first full window" in fig.get_suptitle()


def test_fewer_iterations_than_the_window_give_one_point():
    np.testing.assert_allclose(report._full_windows(np.array([1.0, 2.0, 6.0]), 10), [3.0])
