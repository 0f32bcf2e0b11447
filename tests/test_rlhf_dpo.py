"""The DPO arm (issue 25): the loss by hand, log 2 at init, a few steps raise the margin,
the masked sequence log-probs, and bad config values (one line, exit status 2). The
vmapped run through the CLI is `configs/rlhf/dpo.yaml` (docs/rlhf.md)."""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo.cli import main
from purejaxppo.rlhf import config as C
from purejaxppo.rlhf import dpo as D
from purejaxppo.rlhf import language as L
from purejaxppo.rlhf import models as M
from purejaxppo.rlhf import reward as R
from purejaxppo.rlhf import trainer as T
from purejaxppo.rlhf.yamlconfig import load_rlhf_config
from purejaxppo.run.errors import ConfigError

LANG = L.LanguageConfig(vocab_size=8, prompt_len=2, max_completion_len=4, gold="ascending")
MODEL = M.ModelConfig(d_model=16, num_layers=1, num_heads=2, mlp_ratio=2)
DPO_YAML = Path(__file__).resolve().parent.parent / "configs" / "rlhf" / "dpo.yaml"


def test_loss_equals_a_hand_computed_value():
    # pair 0: margin 0.5 * ((-1 + 1.5) - (-2 + 1.5)) = 0.5; pair 1: 0.5 * ((-3 + 2) - 0) = -0.5
    out = D.dpo_loss(
        jnp.array([-1.0, -3.0]),
        jnp.array([-2.0, -1.0]),
        jnp.array([-1.5, -2.0]),
        jnp.array([-1.5, -1.0]),
        0.5,
    )
    np.testing.assert_allclose(out.margin, [0.5, -0.5], rtol=1e-6)
    np.testing.assert_allclose(out.chosen_reward, [0.25, -0.5], rtol=1e-6)
    np.testing.assert_allclose(out.rejected_reward, [-0.25, 0.0], atol=1e-7)
    expected = (math.log1p(math.exp(-0.5)) + math.log1p(math.exp(0.5))) / 2
    np.testing.assert_allclose(out.loss, expected, rtol=1e-6)
    # a weight of 0 (a gold tie) drops the pair from the mean
    weighted = D.dpo_loss(
        jnp.array([-1.0, -3.0]),
        jnp.array([-2.0, -1.0]),
        jnp.array([-1.5, -2.0]),
        jnp.array([-1.5, -1.0]),
        0.5,
        jnp.array([1.0, 0.0]),
    )
    np.testing.assert_allclose(weighted.loss, math.log1p(math.exp(-0.5)), rtol=1e-6)


def _sequences(rng: np.random.Generator, n: int) -> np.ndarray:
    """`[n, T]` prompt | sep | 1..C-1 content tokens, end, pad (built here: no sampling)."""
    rows = []
    for _ in range(n):
        prompt = rng.integers(3, LANG.vocab_size, LANG.prompt_len).tolist()
        k = int(rng.integers(1, LANG.max_completion_len))
        content = rng.integers(3, LANG.vocab_size, k).tolist()
        tail = [LANG.pad_id] * (LANG.max_completion_len - k - 1)
        rows.append([*prompt, LANG.sep_id, *content, LANG.end_id, *tail])
    return np.asarray(rows, np.int32)


@pytest.fixture(scope="module")
def tiny():
    """A random tiny LM and 32 random preference pairs (2 of them ties, weight 0)."""
    lm = M.make_models(LANG, MODEL)[0]
    params = M.init_params(lm, jax.random.key(0), LANG)
    rng = np.random.default_rng(0)
    chosen, rejected = _sequences(rng, 32), _sequences(rng, 32)
    valid = np.ones(32, np.float32)
    valid[:2] = 0.0
    zeros = jnp.zeros(32)
    data = R.PreferenceData(
        jnp.asarray(chosen), jnp.asarray(rejected), jnp.asarray(valid), zeros, zeros
    )
    return lm, params, data


def test_sequence_log_prob_stops_at_end(tiny):
    lm, params, _ = tiny
    end, pad = LANG.end_id, LANG.pad_id
    prompt = [3, 4, LANG.sep_id]
    a = jnp.array([[*prompt, 3, end, pad, pad]], jnp.int32)
    b = jnp.array([[*prompt, 3, end, 5, 6]], jnp.int32)  # junk after the first end
    c = jnp.array([[*prompt, 3, 5, end, pad]], jnp.int32)
    lp = [float(D.sequence_log_probs(lm.apply, params, LANG, s)[0]) for s in (a, b, c)]
    assert lp[0] == lp[1]  # tokens after `end` do not count
    assert lp[0] != lp[2]
    token_lp = D.completion_log_probs(lm.apply, params, LANG, a)[0]
    np.testing.assert_allclose(lp[0], float(token_lp[0] + token_lp[1]), rtol=1e-6)
    assert float(token_lp[1]) != 0.0  # the `end` token is included


def test_at_init_the_loss_is_log_2_and_the_margins_are_0(tiny):
    lm, params, data = tiny
    pairs = D.reference_pairs(lm.apply, params, LANG, data)
    loss, out = D.pair_loss(params, pairs, jnp.float32(0.3), lm.apply, LANG)
    np.testing.assert_allclose(loss, math.log(2.0), rtol=1e-6)
    np.testing.assert_array_equal(out.margin, np.zeros(32))
    np.testing.assert_array_equal(out.chosen_reward, np.zeros(32))


def test_a_few_steps_raise_the_chosen_minus_rejected_margin(tiny):
    lm, params, data = tiny
    pairs = D.reference_pairs(lm.apply, params, LANG, data)
    hp = jax.tree.map(jnp.float32, C.RLHFHParams(learning_rate=1e-2, dpo_beta=0.5))
    tx = T.make_optimizer(hp.learning_rate, hp.max_grad_norm)
    state = T.RLState(T.Learner(params, None), tx.init(params), None, T.KLController(hp.dpo_beta))
    step = jax.jit(lambda s: D._minibatch_step(s, pairs, hp, lm.apply, LANG))
    margins = []
    for _ in range(4):
        state, stats = step(state)
        margins.append(float(stats[1]))  # the margin before this step's update
    _, out = D.pair_loss(state.learner.policy, pairs, hp.dpo_beta, lm.apply, LANG)
    valid = np.asarray(pairs.valid)
    final = float(np.sum(valid * np.asarray(out.margin)) / valid.sum())
    assert abs(margins[0]) < 1e-6  # policy == reference before the first step
    assert final > 0.05, margins


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["hparams.dpo_beta=0"], r"hparams.dpo_beta: expected a finite number > 0, got 0"),
        (["population.grid.dpo_beta=[0.1, -1]"], r"population.grid.dpo_beta: expected a finite"),
        (["rl.group_size=2"], r"rl.group_size: DPO has no groups; expected 1, got 2"),
        (["rl.minibatches=2000"], r"rl.minibatches: DPO splits the 1000 training pairs"),
        (["rl.algorithm=dop"], r"rl.algorithm: expected one of ppo, grpo, dpo, got 'dop'"),
    ],
)
def test_bad_dpo_config_is_one_line(sets, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_rlhf_config(DPO_YAML, sets)
    assert "\n" not in str(err.value)


def test_bad_dpo_config_exits_2_with_one_line(tmp_path, capsys):
    out = str(tmp_path / "o")
    code = main(["rlhf", str(DPO_YAML), "--out", out, "--set", "hparams.dpo_beta=-1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "hparams.dpo_beta: expected a finite number > 0, got -1" in err
