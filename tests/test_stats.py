"""Robust statistics (`purejaxppo.run.stats`): IQM, stratified bootstrap CIs, P(improvement).

Hand-checkable values, rliable's definitions; numpy and scipy only (no training).
"""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from purejaxppo.run import stats as st


def test_iqm_is_the_25_percent_trimmed_mean_of_all_scores():
    assert st.iqm(np.arange(1, 9)) == 4.5  # mean of 3..6
    assert st.iqm(np.arange(1, 11)) == 5.5  # 10 scores: cut 2 each end, mean of 3..8
    assert st.iqm(np.arange(1, 8)) == 4.0  # 7 scores: cut floor(7/4) = 1 each end
    assert st.iqm([1.0, 2.0, 1000.0, -1000.0]) == 1.5  # outliers cut
    assert st.iqm([7.0]) == 7.0
    # [runs, tasks]: all run x task scores pooled (rliable's aggregate_iqm)
    scores = np.random.default_rng(0).normal(size=(9, 3))
    assert st.iqm(scores) == pytest.approx(scipy_stats.trim_mean(scores.ravel(), 0.25))
    assert st.iqm(np.arange(1, 9).reshape(4, 2)) == 4.5


def test_ci_contains_the_point_shrinks_with_runs_and_is_deterministic():
    rng = np.random.default_rng(1)
    few, many = rng.normal(10.0, 2.0, size=5), rng.normal(10.0, 2.0, size=80)
    a, b = st.iqm_ci(few), st.iqm_ci(many)
    for e in (a, b):
        assert e.low <= e.point <= e.high and e.point == st.iqm(few if e is a else many)
    assert b.high - b.low < a.high - a.low
    assert st.iqm_ci(few, seed=3) == st.iqm_ci(few, seed=3)
    assert st.iqm_ci(many, seed=3) != st.iqm_ci(many, seed=4)  # (5 runs: few distinct IQMs)
    # a wider confidence level gives a wider interval
    wide = st.iqm_ci(many, confidence=0.99)
    assert wide.low <= b.low and wide.high >= b.high
    # all runs equal: nothing varies
    assert st.iqm_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)


def test_one_run_has_no_interval():
    e = st.iqm_ci([3.5])
    assert e.point == 3.5 and math.isnan(e.low) and math.isnan(e.high)
    p = st.probability_of_improvement([2.0], [1.0, 3.0])
    assert p.point == 0.5 and math.isnan(p.low) and math.isnan(p.high)


def test_stratified_resampling_never_mixes_tasks():
    """Task 0 scores in [0, 1], task 1 in [100, 101]: an unstratified resample could draw
    all six runs from one task (IQM within [0, 1] or [100, 101]); a stratified one draws
    three of each, the IQM keeps two of each, (2 x [0, 1] + 2 x [100, 101]) / 4: [50, 51]."""
    scores = np.array([[0.0, 100.0], [0.5, 100.5], [1.0, 101.0]])
    e = st.iqm_ci(scores, reps=500)
    # 6 pooled scores, cut 1 each end: 4 left, 2 from each task
    assert e.point == pytest.approx((0.5 + 1.0 + 100.0 + 100.5) / 4)
    assert 50.0 <= e.low < e.point < e.high <= 51.0


def test_probability_of_improvement():
    x, y = np.array([5.0, 6.0, 7.0]), np.array([1.0, 2.0])
    assert st.probability_of_improvement(x, y) == (1.0, 1.0, 1.0)  # separated
    assert st.probability_of_improvement(y, x) == (0.0, 0.0, 0.0)
    same = st.probability_of_improvement(x, x)
    assert same.point == 0.5 and same.low <= 0.5 <= same.high
    assert st.probability_of_improvement([1.0, 1.0], [1.0, 1.0]).point == 0.5  # all ties
    # ties count 1/2: pairs (2>1), (2=2), (3>1), (3>2) of 4 -> (1 + 0.5 + 1 + 1) / 4
    assert st.probability_of_improvement([2.0, 3.0], [1.0, 2.0]).point == 0.875
    # the Mann-Whitney U statistic over n * m
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 5, size=7).astype(float), rng.integers(0, 5, size=6).astype(float)
    u = scipy_stats.mannwhitneyu(a, b, alternative="greater").statistic
    assert st.probability_of_improvement(a, b).point == pytest.approx(u / 42)
    # [runs, tasks]: averaged over tasks (task 0: 1, task 1: 0)
    xs, ys = np.array([[5.0, 0.0], [6.0, 1.0]]), np.array([[1.0, 5.0], [2.0, 6.0], [3.0, 7.0]])
    p = st.probability_of_improvement(xs, ys, reps=200)
    assert p == (0.5, 0.5, 0.5)  # stratified: every resample keeps the tasks apart
    assert st.probability_of_improvement(a, b, seed=1) == st.probability_of_improvement(
        a, b, seed=1
    )


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: st.iqm([]), "no scores"),
        (lambda: st.iqm_ci(np.zeros((0, 3))), "no scores"),
        (lambda: st.iqm([1.0, np.nan]), "1 of 2 scores are NaN or infinite"),
        (lambda: st.iqm_ci([1.0, np.inf, 2.0]), "1 of 3 scores are NaN"),
        (lambda: st.iqm(np.zeros((2, 2, 2))), r"expected \[runs\] or \[runs, tasks\]"),
        (lambda: st.probability_of_improvement([1.0], [np.nan]), "y: 1 of 1 scores"),
        (lambda: st.probability_of_improvement(np.ones((2, 2)), np.ones((2, 3))), "2 tasks"),
        (lambda: st.iqm_ci([1.0, 2.0], confidence=1.0), "confidence"),
        (lambda: st.iqm_ci([1.0, 2.0], reps=0), "reps"),
    ],
)
def test_bad_input_is_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()
