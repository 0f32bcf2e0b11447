"""Pytree observations and action masks through the trainer, on a tiny pure-JAX env
(`masked_grid_env.MaskedGrid`: dict or NamedTuple observations, action 4 always invalid and
moves off the grid invalid per state; an invalid action is counted and costs -100).

What is checked: the rollout stores each leaf `[T, N, ...]` and never takes a masked action,
nor does a trained policy in evaluation; the loss does not depend on the masked actions'
logits; the per-leaf observation normaliser; the custom-encoder hook (Python and import
string); the one-line errors.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from masked_grid_env import MaskedGrid

import purejaxppo as ppo
from purejaxppo.envs import space_info
from purejaxppo.envs.observations import MASKED_LOGIT, ObsStats, mask_logits, obs_spec
from purejaxppo.networks import ActorCritic, Categorical
from purejaxppo.run.evaluate import evaluate
from purejaxppo.train import make_trainer

CFG = ppo.PPOConfig(
    env_name="masked-grid",
    num_envs=4,
    num_steps=16,
    total_timesteps=3 * 64,
    update_epochs=2,
    num_minibatches=2,
    hidden_sizes=(16,),
    normalize_observations=True,
)


@functools.cache
def _trained():
    env = MaskedGrid()
    trainer = make_trainer(CFG, env, env.default_params)
    out = jax.jit(trainer.train)(jax.random.key(0), ppo.HParams(learning_rate=1e-2))
    return trainer, out


@functools.cache
def _jitted_rollout():
    return jax.jit(_trained()[0].rollout)


def _rollout(seed: int):
    """A rollout `[T, N, ...]` of the trained policy (one compile for the tests below)."""
    state = _trained()[1].state
    return _jitted_rollout()(state, ppo.HParams(), jax.random.key(seed))[1]


def _taken_valid(mask: jax.Array, action: jax.Array) -> np.ndarray:
    return np.asarray(jnp.take_along_axis(mask, action[..., None], axis=-1)[..., 0])


def test_training_never_takes_a_masked_action():
    trainer, out = _trained()
    assert np.all(np.isfinite(np.asarray(out.metrics["total_loss"])))
    # the env counts every invalid action it was given, across episodes, per env
    assert np.asarray(out.state.env_state.invalid).tolist() == [0, 0, 0, 0]
    # the entropy is over the valid actions only (at most log 3 < log 5)
    assert float(np.max(out.metrics["entropy"])) <= math.log(3) + 1e-5
    # evaluation, sampled and greedy: an invalid action would cost -100
    for deterministic in (False, True):
        result = jax.jit(evaluate, static_argnums=(0, 4, 5))(
            trainer, out.params, out.state.obs_stats, jax.random.key(1), 8, deterministic
        )
        assert float(np.min(result.returns)) >= 0.0, result.returns


def test_rollout_stores_each_leaf_time_major_and_only_valid_actions():
    trajectory = _rollout(2)
    obs = trajectory.obs
    assert set(obs) == {"grid", "steps", "action_mask"}
    assert obs["grid"].shape == (16, 4, 3, 3) and obs["grid"].dtype == jnp.float32
    assert obs["steps"].shape == (16, 4) and obs["steps"].dtype == jnp.int32  # not normalised
    assert obs["action_mask"].shape == (16, 4, 5) and obs["action_mask"].dtype == jnp.bool_
    assert trajectory.next_obs["grid"].shape == (16, 4, 3, 3)
    assert _taken_valid(obs["action_mask"], trajectory.action).all()
    # some steps have moves masked besides action 4 (the corners): the mask is per state
    assert (np.asarray(obs["action_mask"])[..., :4].sum(-1) < 4).any()


def test_loss_ignores_the_logits_of_masked_actions():
    """Action 4 is masked in every state: the loss's gradient on its logit (the policy
    head's bias) is exactly zero; without the mask it would not be."""
    trainer, out = _trained()
    trajectory = _rollout(3)
    batch = trainer.make_batch(out.params, trajectory, ppo.HParams())
    grads = jax.grad(lambda p: trainer.loss(p, ppo.HParams(), batch)[0])(out.params)
    head = max(k for k in grads["params"]["actor"] if k.startswith("Dense"))
    bias_grad = np.asarray(grads["params"]["actor"][head]["bias"])
    assert bias_grad[4] == 0.0 and np.any(bias_grad[:4] != 0.0)
    # the same states with action 4 unmasked: its logit now gets a gradient
    unmasked = batch._replace(
        obs={**batch.obs, "action_mask": jnp.ones_like(batch.obs["action_mask"])}
    )
    grads = jax.grad(lambda p: trainer.loss(p, ppo.HParams(), unmasked)[0])(out.params)
    assert np.asarray(grads["params"]["actor"][head]["bias"])[4] != 0.0


def test_masked_categorical_is_the_softmax_over_valid_actions():
    logits = jnp.array([[0.3, -1.0, 2.0, 0.5]])
    mask = jnp.array([[True, False, True, False]])
    dist = Categorical(mask_logits(logits, mask))
    valid = jax.nn.log_softmax(jnp.array([0.3, 2.0]))
    np.testing.assert_allclose(dist.log_prob(jnp.array([0, 2])), valid, rtol=1e-6)
    np.testing.assert_allclose(dist.entropy(), [-jnp.sum(jnp.exp(valid) * valid)], rtol=1e-6)
    assert float(jnp.exp(dist.log_prob(jnp.array([1]))[0])) == 0.0  # finite, not NaN
    draws = jax.vmap(lambda k: dist.sample(k))(jax.random.split(jax.random.key(0), 256))
    assert set(np.unique(np.asarray(draws)).tolist()) <= {0, 2}
    kl = dist.kl(Categorical(mask_logits(logits * 2, mask)))
    assert np.isfinite(np.asarray(kl)).all() and MASKED_LOGIT < -1e8


def test_normaliser_per_leaf():
    """Float leaves are normalised; integer and bool leaves and the action mask are not."""
    env = MaskedGrid(named=True)
    obs, _ = env.reset(jax.random.key(0), env.default_params)
    spec = obs_spec(obs, "env")
    assert [leaf.normalized for leaf in spec.leaves] == [True, False, False]
    assert spec.mask_index == 2 and spec.leaves[2].path == ".action_mask"
    batch = jax.tree.map(lambda x: jnp.stack([x, x + 1, x + 3]), obs._replace(action_mask=None))
    batch = batch._replace(action_mask=jnp.stack([obs.action_mask] * 3))
    stats = ObsStats.create(spec).update(batch)
    np.testing.assert_allclose(stats.leaves[0].mean, np.asarray(obs.grid) + 4 / 3, rtol=1e-3)
    assert stats.leaves[1].mean.shape == () and float(stats.leaves[1].count) < 1e-3  # untouched
    out = ppo.normalize_observation(stats, batch)
    assert type(out).__name__ == "GridObs"
    np.testing.assert_array_equal(out.steps, batch.steps)  # int leaf as it was
    np.testing.assert_array_equal(out.action_mask, batch.action_mask)
    assert out.action_mask.dtype == jnp.bool_ and out.grid.dtype == jnp.float32
    z = (np.asarray(batch.grid) - np.asarray(stats.leaves[0].mean)) / np.sqrt(
        np.asarray(stats.leaves[0].var) + 1e-8
    )
    np.testing.assert_allclose(out.grid, z, rtol=1e-5, atol=1e-5)


class GridEncoder(nn.Module):
    """A user encoder: a dense layer over the grid alone, `[B, ...] -> [B, 8]`."""

    @nn.compact
    def __call__(self, obs):
        grid = obs["grid"] if isinstance(obs, dict) else obs.grid
        return nn.relu(nn.Dense(8)(grid.reshape((grid.shape[0], -1))))


@pytest.mark.parametrize("how", ["python", "import string"])
def test_custom_encoder(how):
    env = MaskedGrid(named=True)
    if how == "python":
        cfg, kwargs = CFG, {"encoder": GridEncoder}
    else:
        cfg, kwargs = dataclasses.replace(CFG, encoder="test_structured_obs:GridEncoder"), {}
    net = ppo.make_network(cfg, env, env.default_params, **kwargs)
    obs, _ = jax.vmap(env.reset, (0, None))(
        jax.random.split(jax.random.key(0), 3), env.default_params
    )
    params = jax.jit(net.init)(jax.random.key(1), jax.tree.map(lambda x: x[0], obs))
    assert {"actor_encoder", "critic_encoder"} <= set(params["params"])
    assert params["params"]["actor_encoder"]["Dense_0"]["kernel"].shape == (9, 8)
    dist, value = jax.jit(net.apply)(params, jax.tree.map(lambda x: jnp.stack([x, x]), obs))
    assert value.shape == (2, 3) and dist.logits.shape == (2, 3, 5)
    assert np.all(np.asarray(dist.logits[..., 4]) == MASKED_LOGIT)


def test_bad_input_is_one_line():
    env = MaskedGrid()
    with pytest.raises(ValueError, match=r"^torso: cnn needs \[H, W, C\] .* observes a pytree"):
        make_trainer(dataclasses.replace(CFG, torso="cnn"), env, env.default_params)
    with pytest.raises(ValueError, match=r"^encoder: expected an import string"):
        dataclasses.replace(CFG, encoder="no_colon")
    bad = dataclasses.replace(CFG, encoder="no_such_module_xyz:Enc")
    with pytest.raises(ValueError, match=r"^encoder: cannot import no_such_module_xyz"):
        make_trainer(bad, env, env.default_params)

    class WideMask(MaskedGrid):
        def action_space(self, params):
            from gymnax.environments import spaces

            return spaces.Discrete(6)

    with pytest.raises(
        ValueError, match=r"action_mask \['action_mask'\] has shape \[5\], expected \[6\]"
    ):
        space_info(WideMask(), env.default_params, "env (WideMask)")


def test_array_observations_keep_their_network():
    """An array env builds the network it did before: no observation layout, no encoder."""
    net = ppo.make_network(ppo.PPOConfig())
    assert net.space.obs_spec is None and net.encoder is None
    assert isinstance(net, ActorCritic)
