"""The RL stage of RLHF: group advantages, masking, the loss's gradient, the compiled
loop for PPO and GRPO at tiny size, determinism, population = single runs, no retrace."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purejaxppo as ppo
from purejaxppo.rlhf import config as C
from purejaxppo.rlhf import language as L
from purejaxppo.rlhf import models as M
from purejaxppo.rlhf import pipeline as P
from purejaxppo.rlhf import trainer as T

LANG = L.LanguageConfig(vocab_size=8, prompt_len=2, max_completion_len=4, gold="ascending")
TINY = C.RLHFConfig(
    language=LANG,
    model=M.ModelConfig(d_model=16, num_layers=1, num_heads=2, mlp_ratio=2),
    sft=C.SFTConfig(steps=30, batch_size=32),
    reward=C.RewardConfig(train_pairs=64, held_out_pairs=64, steps=20, batch_size=32),
    rl=C.RLConfig(
        iterations=4, completions_per_iteration=16, epochs=2, minibatches=2, eval_prompts=32
    ),
    hparams=C.RLHFHParams(kl_horizon=50.0, kl_target=0.5),
)


def _grpo(cfg: C.RLHFConfig, group: int = 4, normalize: bool = True) -> C.RLHFConfig:
    rl = dataclasses.replace(cfg.rl, algorithm="grpo", group_size=group, group_normalize=normalize)
    return dataclasses.replace(cfg, rl=rl)


@pytest.fixture(scope="module")
def prepared():
    pipe = P.make_pipeline(TINY)
    return jax.jit(pipe.prepare)(P.prepare_key(TINY))


def test_group_advantages_by_hand():
    score = jnp.array([1.0, 3.0, 0.0, 0.0, 2.0, 4.0, 6.0, 8.0])
    out = T.group_advantages(score, 2, normalize=False)
    np.testing.assert_allclose(out, [-1, 1, 0, 0, -1, 1, -1, 1])
    out = T.group_advantages(score, 4, normalize=True, eps=T.GROUP_EPS)
    first = np.array([1.0, 3.0, 0.0, 0.0])
    second = np.array([2.0, 4.0, 6.0, 8.0])
    expected = np.concatenate(
        [
            (first - first.mean()) / (first.std() + 1e-6),
            (second - second.mean()) / (second.std() + 1e-6),
        ]
    )
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    # a group of equal scores gets zero advantage (no division blow-up)
    np.testing.assert_array_equal(T.group_advantages(jnp.ones(4), 4, True), np.zeros(4))


def test_whiten_is_masked():
    x = jnp.array([[1.0, 2.0, 100.0], [3.0, -50.0, -50.0]])
    mask = jnp.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    out = np.asarray(T.whiten(x, mask))
    real = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(out[mask > 0], (real - real.mean()) / real.std(), rtol=1e-4)
    assert np.all(out[np.asarray(mask) == 0] == 0.0)


def test_policy_log_probs_gradient_is_finite_with_banned_tokens(prepared):
    """pad/sep hold -inf logits; the entropy's gradient must not become NaN (it did)."""
    lm, _, _ = M.make_models(LANG, TINY.model)
    seqs = L.sample_corpus(jax.random.key(0), LANG, 4)

    def loss(params):
        log_prob, entropy = T.policy_log_probs(lm.apply, params, LANG, seqs)
        return jnp.sum(log_prob) + jnp.sum(entropy)

    grads = jax.grad(loss)(prepared.frozen.reference)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("cfg", [TINY, _grpo(TINY)], ids=["ppo", "grpo"])
def test_experience_masks_after_the_end_and_groups_share_prompts(cfg, prepared):
    lm, rm, vm = M.make_models(LANG, cfg.model)
    models = T.Models(lm.apply, rm.apply, vm.apply)
    hp = jax.tree.map(jnp.float32, C.check_hparams(cfg.hparams))
    state = T.init_rl_state(hp, prepared.frozen, cfg.rl)
    batch, score, _gold, kl = T._experience(
        jax.random.key(3), state, hp, prepared.frozen, models, cfg
    )
    n, c = cfg.rl.completions_per_iteration, LANG.max_completion_len
    assert batch.advantages.shape == batch.mask.shape == (n, c) and score.shape == (n,)
    dead = np.asarray(batch.mask) == 0
    assert dead.any()  # some completion ended early: the check below can fail
    for field in (batch.advantages, batch.returns, batch.old_log_probs, batch.ref_log_probs):
        assert np.all(np.asarray(field)[dead] == 0.0)
    # the policy starts as the reference: the KL is zero
    np.testing.assert_allclose(kl, 0.0, atol=1e-5)
    prompts = np.asarray(batch.sequences[:, : LANG.prompt_len]).reshape(-1, cfg.rl.group_size, 2)
    assert np.all(prompts == prompts[:, :1])
    if cfg.rl.algorithm == "grpo":
        # every real token of a completion carries its sequence's group-relative advantage
        seq_adv = T.group_advantages(score, cfg.rl.group_size, True, eps=T.GROUP_EPS)
        np.testing.assert_allclose(batch.advantages, seq_adv[:, None] * batch.mask, rtol=1e-6)
        assert np.all(np.asarray(batch.returns) == 0.0)


def _placed(cfg: C.RLHFConfig, placement: str) -> C.RLHFConfig:
    return dataclasses.replace(cfg, rl=dataclasses.replace(cfg.rl, kl_placement=placement))


def _moved_state(cfg: C.RLHFConfig, prepared, beta: float):
    """A state whose policy is the reference plus noise (so its KL is not 0), at `beta`."""
    hp = jax.tree.map(jnp.float32, C.check_hparams(cfg.hparams))
    state = T.init_rl_state(hp, prepared.frozen, cfg.rl)
    leaves, tree = jax.tree.flatten(state.learner.policy)
    keys = jax.random.split(jax.random.key(5), len(leaves))
    noisy = [x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys, strict=True)]
    learner = state.learner._replace(policy=jax.tree.unflatten(tree, noisy))
    return hp, state._replace(learner=learner, kl=T.KLController(jnp.float32(beta)))


def test_kl_placement_swaps_where_the_kl_sits(prepared):
    """GRPO with the KL in the reward scores `score - beta * KL_seq` in its groups and has
    no k3 term; PPO with the KL in the loss sees the rewards of beta 0 and adds `beta * k3`
    to its loss."""
    lm, rm, vm = M.make_models(LANG, TINY.model)
    models = T.Models(lm.apply, rm.apply, vm.apply)
    key, beta = jax.random.key(3), 0.7
    grpo = _grpo(TINY)
    hp, state = _moved_state(grpo, prepared, beta)
    batch, score, _, kl = T._experience(
        key, state, hp, prepared.frozen, models, _placed(grpo, "reward")
    )
    assert float(jnp.max(jnp.abs(kl))) > 0.1  # the check below can fail
    want = T.group_advantages(score - beta * kl, 4, True, eps=T.GROUP_EPS)
    np.testing.assert_allclose(batch.advantages, want[:, None] * batch.mask, rtol=1e-4, atol=1e-5)
    loss = {p: T._loss(state.learner, batch, jnp.float32(beta), hp, models, _placed(grpo, p))[0]
            for p in ("reward", "own")}  # fmt: skip
    zero = T._loss(state.learner, batch, jnp.float32(0.0), hp, models, grpo)[0]
    np.testing.assert_allclose(loss["reward"], zero, rtol=1e-6)
    assert abs(float(loss["own"] - zero)) > 1e-4

    hp, state = _moved_state(TINY, prepared, beta)
    moved = T._experience(key, state, hp, prepared.frozen, models, _placed(TINY, "loss"))[0]
    unpenalised = state._replace(kl=T.KLController(jnp.float32(0.0)))
    plain = T._experience(key, unpenalised, hp, prepared.frozen, models, TINY)[0]
    np.testing.assert_array_equal(moved.advantages, plain.advantages)
    total = T._loss(state.learner, moved, jnp.float32(beta), hp, models, _placed(TINY, "loss"))[0]
    base = T._loss(state.learner, moved, jnp.float32(beta), hp, models, TINY)[0]
    policy = T.policy_log_probs(lm.apply, state.learner.policy, LANG, moved.sequences)[0]
    log_prob = jnp.where(moved.mask > 0, policy, 0.0)
    k3 = T.masked_mean(T.k3_kl(log_prob, moved.ref_log_probs), moved.mask)
    np.testing.assert_allclose(total - base, beta * k3, rtol=1e-4)


def test_kl_placement_is_checked():
    with pytest.raises(ValueError, match=r"^kl_placement: expected one of own, reward, loss"):
        C.RLConfig(kl_placement="logits")
    with pytest.raises(ValueError, match=r"^kl_placement: reward has no effect with algorithm dpo"):
        C.RLConfig(algorithm="dpo", kl_placement="reward")


@pytest.mark.parametrize("cfg", [TINY, _grpo(TINY, 2, False)], ids=["ppo", "drgrpo"])
def test_rl_train_runs_and_is_deterministic(cfg, prepared):
    pipe = P.make_pipeline(cfg)
    run = jax.jit(pipe.rl_train)
    hp = C.check_hparams(cfg.hparams)
    out = run(jax.random.key(1), hp, prepared.frozen)
    metrics = out.metrics
    assert metrics.gold_reward.shape == (cfg.rl.iterations,)
    for name, value in metrics._asdict().items():
        assert bool(jnp.all(jnp.isfinite(value))), name
    assert float(metrics.kl[0]) == pytest.approx(0.0, abs=1e-4)  # starts at the reference
    assert float(metrics.kl[-1]) > 0.0  # and moves away
    # adaptive beta: the KL is below the target at first, so beta shrinks
    assert float(metrics.kl_coef[1]) < float(metrics.kl_coef[0])
    again = run(jax.random.key(1), hp, prepared.frozen)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)
    # new hparams values reuse the compiled program
    size = run._cache_size()
    run(jax.random.key(1), hp.replace(learning_rate=3e-4, kl_target=2.0), prepared.frozen)
    assert run._cache_size() == size


def test_population_member_equals_its_single_run(prepared):
    cfg = dataclasses.replace(
        TINY, population=C.PopulationConfig(seeds=2, grid=(("kl_target", (0.5, 4.0)),))
    )
    members = C.population_members(cfg)
    assert [m.label for m in members] == [
        "kl_target=0.5 seed=0",
        "kl_target=0.5 seed=1",
        "kl_target=4 seed=0",
        "kl_target=4 seed=1",
    ]
    pipe = P.make_pipeline(cfg)
    keys = P.member_keys(cfg, [m.seed for m in members])
    hp = C.stack_rlhf_hparams([m.hparams for m in members])
    out, ev = jax.jit(pipe.population)(keys, hp, prepared.frozen)
    assert ev.win_rate_vs_reference.shape == (4,)
    # the per-prompt arrays behind the length-controlled reading agree with the means
    e = TINY.rl.eval_prompts
    assert ev.gold_per_prompt.shape == ev.content_length_reference.shape == (4, e)
    np.testing.assert_allclose(ev.gold_per_prompt.mean(-1), ev.gold_reward, rtol=1e-6)
    np.testing.assert_allclose(ev.gold_per_prompt_reference.mean(-1), ev.gold_reward_reference)
    assert int(ev.content_length.max()) <= TINY.language.max_completion_len
    assert np.all(ev.gold_per_prompt <= np.maximum(ev.content_length - 1, 0))  # ascending pairs
    single = jax.jit(pipe.rl_train)(keys[3], members[3].hparams, prepared.frozen)
    np.testing.assert_allclose(out.metrics.gold_reward[3], single.metrics.gold_reward, atol=1e-5)
    np.testing.assert_allclose(out.metrics.kl[3], single.metrics.kl, rtol=1e-3, atol=1e-4)
    # a member's key depends only on its seed, not on the rest of the population
    np.testing.assert_array_equal(
        jax.random.key_data(keys[1]), jax.random.key_data(P.member_keys(cfg, [1])[0])
    )


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"^group_size: GRPO needs groups of >= 2"):
        C.RLConfig(algorithm="grpo", group_size=1)
    with pytest.raises(ValueError, match=r"^group_size: must divide"):
        C.RLConfig(algorithm="grpo", group_size=5)
    with pytest.raises(ValueError, match=r"^group_size: PPO samples one"):
        C.RLConfig(group_size=4)
    with pytest.raises(ValueError, match=r"^algorithm: expected one of ppo, grpo, dpo"):
        C.RLConfig(algorithm="sac")
    with pytest.raises(ValueError, match=r"^kl_target: expected a finite number > 0"):
        C.check_hparams(C.RLHFHParams(kl_target=0.0))
    with pytest.raises(ValueError, match=r"^gamma: .*<= 1"):
        C.check_hparams(C.RLHFHParams(gamma=1.5))
    with pytest.raises(ValueError, match=r"^grid: 'lr' is not an hparams field"):
        C.PopulationConfig(grid=(("lr", (1.0,)),))


def test_rlhf_hparams_are_checked_when_built_and_behave_like_hparams():
    # issue 24: the checks ran only on the YAML path, and RLHFHParams was a NamedTuple
    with pytest.raises(ValueError, match=r"^learning_rate: expected a finite number > 0, got -1"):
        C.RLHFHParams(learning_rate=-1.0)
    with pytest.raises(ValueError, match=r"^kl_target: expected a finite number > 0, got nan"):
        C.RLHFHParams(kl_target=float("nan"))
    with pytest.raises(ValueError, match=r"^gamma: .*<= 1, got 1.5"):
        C.RLHFHParams().replace(gamma=1.5)
    with pytest.raises(ValueError, match=r"^clip_eps: .*got -0.1"):
        C.RLHFHParams(clip_eps=np.array([0.2, -0.1]))
    for hp in (C.RLHFHParams(), ppo.HParams()):
        assert dataclasses.is_dataclass(hp) and not hasattr(hp, "_replace")
        assert float(hp.replace(clip_eps=0.3).clip_eps) == pytest.approx(0.3)
    traced = jax.jit(lambda lr: C.RLHFHParams(learning_rate=lr).learning_rate * 2)(-1.0)
    assert float(traced) == -2.0  # traced values are not checked
    stacked = C.stack_rlhf_hparams([C.RLHFHParams(), C.RLHFHParams(kl_target=4.0)])
    assert stacked.kl_target.shape == (2,) and float(stacked.kl_target[1]) == 4.0
    assert jax.tree.map(lambda x: x[1], stacked).kl_target == 4.0


@pytest.mark.slow
def test_whole_pipeline_beats_the_reference():
    """The default language and models at reduced sizes: the trained policy wins more than
    half of its gold-judged comparisons with the reference on fresh prompts."""
    cfg = C.RLHFConfig(
        language=L.LanguageConfig(gold="ascending"),
        sft=C.SFTConfig(steps=200),
        reward=C.RewardConfig(train_pairs=600, steps=150),
        rl=C.RLConfig(iterations=60, eval_prompts=256),
        hparams=C.RLHFHParams(kl_coef=0.1, kl_target=4.0, kl_horizon=500.0),
    )
    pipe = P.make_pipeline(cfg)
    prepared = jax.jit(pipe.prepare)(P.prepare_key(cfg))
    assert float(prepared.reward_model_accuracy) > 0.7
    keys = P.member_keys(cfg, [0])
    hp = C.stack_rlhf_hparams([C.check_hparams(cfg.hparams)])
    _, ev = jax.jit(pipe.population)(keys, hp, prepared.frozen)
    assert float(ev.win_rate_vs_reference[0]) > 0.6, ev
    assert float(ev.gold_reward[0]) > float(ev.gold_reward_reference[0]) + 0.3


class ToyLM(nn.Module):
    """A two-layer LM of the test's own: per-token embedding (a submodule named `torso`,
    not a Transformer) and a hidden layer: `tokens [B, T] -> logits [B, T, V]` (causal)."""

    vocab_size: int

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        hidden = nn.Embed(self.vocab_size, 16, name="torso")(tokens)
        hidden = nn.relu(nn.Dense(16, name="hidden")(hidden))
        return nn.Dense(self.vocab_size, name="head")(hidden)


def test_a_custom_lm_plugs_in_through_sft_the_reward_model_and_ppo():
    # issue 24: with_torso_from always copied the LM's torso (KeyError without one,
    # ScopeParamNotFoundError with a non-Transformer one)
    pipe = P.make_pipeline(TINY, lm=ToyLM(LANG.vocab_size))
    prepared = jax.jit(pipe.prepare)(P.prepare_key(TINY))
    sft = np.asarray(prepared.sft_losses)
    assert np.isfinite(sft).all() and sft[-5:].mean() < sft[:5].mean()  # SFT learns
    assert np.isfinite(np.asarray(prepared.reward_losses)).all()
    assert set(prepared.frozen.reference["params"]) == {"torso", "hidden", "head"}
    default_torso = prepared.frozen.reward["params"]["torso"]  # its own Transformer torso
    assert "embed" in default_torso and "block_0" in default_torso
    out = jax.jit(pipe.rl_train)(jax.random.key(1), TINY.hparams, prepared.frozen)
    assert np.isfinite(np.asarray(out.metrics.gold_reward)).all()
    assert out.metrics.gold_reward.shape == (TINY.rl.iterations,)


def test_the_model_contracts_are_checked_up_front_in_one_line():
    with pytest.raises(ValueError) as info:
        P.make_pipeline(TINY, lm=ToyLM(2 * LANG.vocab_size))
    assert str(info.value) == (
        "lm: ToyLM maps tokens (2, 7) to shape (2, 7, 16), expected (2, 7, 8), logits "
        "[B, T, V] with V = the language's vocab_size: its vocabulary has 16 tokens, the "
        "language's vocab_size is 8"
    )
    with pytest.raises(ValueError, match=r"^vm: ToyLM maps tokens \(2, 7\) to shape"):
        P.make_pipeline(TINY, vm=ToyLM(LANG.vocab_size))


def test_with_torso_from_copies_only_a_torso_of_the_same_shapes():
    lm_params = M.init_params(ToyLM(LANG.vocab_size), jax.random.key(0), LANG)
    _, rm, _ = M.make_models(LANG, TINY.model)
    rm_params = M.init_params(rm, jax.random.key(1), LANG)
    assert M.with_torso_from(rm_params, lm_params) is rm_params
    assert M.with_torso_from(rm_params, {"params": {"head": {}}}) is rm_params
