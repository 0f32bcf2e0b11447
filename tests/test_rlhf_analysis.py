"""`purejaxppo.rlhf.analysis`: gold at equal completion lengths and Gao et al.'s RL fit, on
hand-made numbers; and the length-controlled block of an RLHF summary."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from purejaxppo.rlhf import analysis, report
from purejaxppo.rlhf.pipeline import Evaluation


def test_length_table_counts_and_means():
    t = analysis.length_table(np.array([1, 3, 3, 0]), np.array([0.0, 2.0, 1.0, 5.0]), 4)
    np.testing.assert_array_equal(t.counts, [1, 1, 0, 2, 0])
    np.testing.assert_allclose(t.means, [5.0, 0.0, np.nan, 1.5, np.nan])
    with pytest.raises(ValueError, match="lengths must lie"):
        analysis.length_table(np.array([5]), np.array([1.0]), 4)


def test_standardised_gold_removes_a_pure_length_effect():
    # gold = length - 1 for both policies: B is longer, so its raw mean is higher, but at
    # every length both score the same, so re-weighted to one distribution they agree.
    la, lb = np.array([2, 2, 2, 4]), np.array([2, 4, 4, 4])
    ga, gb = la - 1.0, lb - 1.0
    assert gb.mean() - ga.mean() == pytest.approx(1.0)
    w = analysis.common_weights([la, lb], 4)
    np.testing.assert_allclose(w, [0, 0, 0.5, 0, 0.5])
    assert analysis.standardised_gold(la, ga, w) == pytest.approx(2.0)
    assert analysis.standardised_gold(lb, gb, w) == pytest.approx(2.0)
    # a length with weight but no completion gives NaN, not a silent renormalisation
    assert math.isnan(analysis.standardised_gold(la, ga, [0, 1, 0, 0, 0]))


def test_common_weights_drop_lengths_a_set_lacks():
    w = analysis.common_weights([np.array([1, 1, 2]), np.array([2, 3])], 3, min_count=1)
    np.testing.assert_allclose(w, [0, 0, 1.0, 0])
    assert not analysis.common_weights([np.array([1]), np.array([2])], 3).any()


def test_within_length_difference_is_the_regression_method_term():
    # length 1: A {1, 3} (mean 2), B {1} -> +1, w = 2*1/3; length 2: A {4}, B {2, 2} -> +2,
    # w = 1*2/3; length 3: only B (ignored). Weighted: (2/3 * 1 + 2/3 * 2) / (4/3) = 1.5
    la, ga = np.array([1, 1, 2]), np.array([1.0, 3.0, 4.0])
    lb, gb = np.array([1, 2, 2, 3]), np.array([1.0, 2.0, 2.0, 9.0])
    d = analysis.within_length_difference(la, ga, lb, gb, 3)
    assert d.value == pytest.approx(1.5)
    assert (d.share_a, d.share_b) == (pytest.approx(1.0), pytest.approx(0.75))
    # the same number from least squares: gold ~ length dummies + [is A]
    lengths = np.concatenate([la, lb[:3]])
    x = np.stack([lengths == 1, lengths == 2, np.r_[np.ones(3), np.zeros(3)]], 1).astype(float)
    coef, *_ = np.linalg.lstsq(x, np.concatenate([ga, gb[:3]]), rcond=None)
    assert coef[2] == pytest.approx(1.5)
    assert math.isnan(analysis.within_length_difference([1], [1.0], [2], [1.0], 3).value)


def test_same_length_win_rate_counts_only_equal_length_pairs():
    rate, n = analysis.same_length_win_rate(
        gold=np.array([3.0, 1.0, 2.0, 5.0]),
        gold_ref=np.array([1.0, 1.0, 4.0, 0.0]),
        lengths=np.array([4, 2, 3, 7]),
        lengths_ref=np.array([4, 2, 3, 1]),
    )
    assert (rate, n) == (pytest.approx((1 + 0.5 + 0) / 3), 3)


def test_mean_difference_ci_brackets_the_point():
    point, low, high = analysis.mean_difference_ci(np.array([3.0, 3.2, 2.9, 3.1]), [1.0, 1.2])
    assert point == pytest.approx(3.05 - 1.1)
    assert low <= point <= high
    assert math.isnan(analysis.mean_difference_ci([1.0], [0.0])[1])


def test_gao_fit_recovers_known_coefficients():
    kl = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 25.0])
    d = np.sqrt(kl)
    fit = analysis.fit_gao_rl(np.r_[0.0, kl], np.r_[0.0, d * (1.2 - 0.4 * np.log(d))])
    assert (fit.alpha, fit.beta, fit.points) == (pytest.approx(1.2), pytest.approx(0.4), 7)
    assert fit.rmse < 1e-9
    assert fit.peak_kl == pytest.approx(math.exp(2 * (1.2 / 0.4 - 1)))  # d* = e^(a/b - 1)
    np.testing.assert_allclose(fit.predict([0.0, 4.0]), [0.0, 2 * (1.2 - 0.4 * math.log(2))])
    assert analysis.GaoFit(1.0, -0.1, 0.0, 3).peak_kl == math.inf
    with pytest.raises(ValueError, match="at least 2 points"):
        analysis.fit_gao_rl([0.0, 1.0], [0.0, 1.0])


def test_summary_length_block_on_hand_made_evaluation():
    # one member, 4 prompts: the policy answers longer (lengths 3, 3, 3, 1), the reference
    # (1, 1, 3, 1); at length 3 policy 2.0 vs reference 1.0, at length 1 both 0.
    ev = Evaluation(
        *[np.zeros(1)] * 7,
        gold_per_prompt=np.array([[2.0, 2.0, 2.0, 0.0]]),
        gold_per_prompt_reference=np.array([[0.0, 0.0, 1.0, 0.0]]),
        content_length=np.array([[3, 3, 3, 1]]),
        content_length_reference=np.array([[1, 1, 3, 1]]),
    )
    block = report.length_controlled(ev, 0, 4)
    assert block["content_length_final"] == pytest.approx(2.5)
    assert block["content_length_reference"] == pytest.approx(1.5)
    # weights n_a n_b / (n_a + n_b): length 1 -> 1*3/4 (diff 0), length 3 -> 3*1/4 (diff 1)
    assert block["gold_gain_within_length"] == pytest.approx(0.5)
    assert block["win_rate_same_length"] == pytest.approx((0.5 + 1.0) / 2)
    assert block["same_length_pairs"] == 2
    assert block["gold_by_length"]["3"] == {
        "count": 3,
        "gold": 2.0,
        "count_reference": 1,
        "gold_reference": 1.0,
    }
    # MIN_COUNT = 5: no length has 5 policy completions, so nothing is length-matched
    assert block["gold_length_matched"] is None
    assert block["length_matched_coverage"] == 0.0


def test_distinct_targets_merge_runs_the_controller_could_not_tell_apart():
    # targets 1, 2, 4, 8: the runs at 4 and 8 both stopped near 3 nats (seed by seed)
    kl = np.array([[0.9, 1.1], [1.9, 2.1], [3.0, 3.3], [3.05, 3.3]])
    assert analysis.distinct_targets(kl) == [0, 1, 2]
    # one seed apart is enough to keep a target
    assert analysis.distinct_targets(np.array([[3.0, 3.3], [3.0, 4.0]])) == [0, 1]


def test_bootstrap_gao_brackets_the_fit():
    kl = np.array([[1.0, 1.2], [4.0, 3.8], [9.0, 9.5], [16.0, 17.0]])
    d = np.sqrt(kl)
    gain = d * (1.0 - 0.3 * np.log(d)) + np.array([0.02, -0.02])
    fit = analysis.fit_gao_rl(kl, gain)
    ci = analysis.bootstrap_gao(kl, gain, reps=200)
    assert ci["alpha"][0] <= fit.alpha <= ci["alpha"][1]
    assert ci["beta"][0] <= fit.beta <= ci["beta"][1]


def _script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "rlhf_analysis.py"
    spec = importlib.util.spec_from_file_location("rlhf_analysis_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_critic_analysis_removes_a_pure_length_gap(tmp_path):
    # gold = content length - 1 for every policy; "PPO" answers longer than "GRPO G=2": the
    # raw gap is positive, the length-matched one 0.
    rng = np.random.default_rng(0)

    def member(mean_len):
        lengths = np.clip(rng.poisson(mean_len, 200), 1, 8)
        return {"length": lengths.tolist(), "gold": (lengths - 1.0).tolist()}

    def variant(mean_len):
        members = [member(mean_len) for _ in range(3)]
        return {"per_prompt": {k: [m[k] for m in members] for k in ("length", "gold")}}

    data = {
        "seeds": 3,
        "kl_target": 4.0,
        "variants": {"PPO + GAE (token-level critic)": variant(7), "GRPO G=2": variant(5)},
        "reference_per_prompt": member(4),
    }
    (tmp_path / "critic.json").write_text(json.dumps(data))
    _script().critic(tmp_path, tmp_path)
    out = json.loads((tmp_path / "critic_lengths.json").read_text())
    raw, matched = out["ppo_minus"]["GRPO G=2"]["raw"], out["ppo_minus"]["GRPO G=2"]["matched"]
    assert raw[0] > 1.0
    assert matched == [0.0, 0.0, 0.0]
    assert "| content length |" in (tmp_path / "critic_lengths.md").read_text()


def test_placement_analysis_separates_placement_and_critic_from_length(tmp_path):
    """gold = content length - 1 for every arm: the arms with the KL in the reward answer
    longer, so their raw lead is length and every contrast at equal length is 0."""
    rng = np.random.default_rng(1)

    def arm(algorithm, in_reward, mean_len):
        members = []
        for _ in range(3):
            lengths = np.clip(rng.poisson(mean_len, 200), 1, 8)
            members.append({"length": lengths.tolist(), "gold": (lengths - 1.0).tolist()})
        return {
            "algorithm": algorithm,
            "kl_in_reward": in_reward,
            "tokens": 1000.0,
            "per_seed": {"kl_to_reference": [4.0, 4.1, 3.9]},
            "per_prompt": {k: [m[k] for m in members] for k in ("length", "gold")},
        }

    data = {
        "seeds": 3,
        "iterations": 10,
        "kl_target": 4.0,
        "reward_model_accuracy": 0.8,
        "arms": {
            "PPO own": arm("ppo", True, 7),
            "PPO loss": arm("ppo", False, 5),
            "GRPO own": arm("grpo", False, 5),
            "GRPO reward": arm("grpo", True, 7),
        },
        "reference_per_prompt": {"length": [4, 5, 3, 6] * 50, "gold": [3, 4, 2, 5] * 50},
    }
    (tmp_path / "placement.json").write_text(json.dumps(data))
    _script().placement(tmp_path, tmp_path)
    out = json.loads((tmp_path / "placement_lengths.json").read_text())
    swap = out["contrasts"]["ppo: KL in the reward − KL in the loss"]
    assert swap["raw"][0] > 1.0 and swap["length"][0] > 1.0
    assert swap["matched"] == [0.0, 0.0, 0.0]
    assert set(out["contrasts"]) == {
        "ppo: KL in the reward − KL in the loss",
        "grpo: KL in the reward − KL in the loss",
        "PPO − GRPO, KL in the reward",
        "PPO − GRPO, KL in the loss",
    }
    assert "| PPO − GRPO, KL in the loss |" in (tmp_path / "placement.md").read_text()
