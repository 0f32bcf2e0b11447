"""`group_reset: longest` (issue 25): group rollouts synced to the group's longest episode.

On a tiny deterministic env whose episode length is chosen by the actions (action 1 ends
the episode, a time limit of 3 truncates it), a synced rollout must keep the rounds of a
group aligned, give waiting steps and unfinished rounds weight 0, and score every round
as a plain NumPy loop over the rounds does; the default `update` mode is unchanged
(its bits are pinned by tests/test_group_options.py)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import environment, spaces

import purejaxppo as ppo
from purejaxppo.probe_envs import ProbeParams, ProbeState
from purejaxppo.rollout import group_reset, make_sync_group_batch, sync_rollout
from purejaxppo.train import _as_float

LIMIT = 3


class StopAction(environment.Environment[ProbeState, ProbeParams]):
    """Observation 1; reward 1 + action; action 1 terminates, else truncated at the limit."""

    @property
    def default_params(self) -> ProbeParams:
        return ProbeParams(max_steps_in_episode=LIMIT)

    def step_env(self, key, state, action, params):
        del key
        state = ProbeState(value=state.value, time=state.time + 1)
        reward = 1.0 + action.astype(jnp.float32)
        return self.get_obs(state), state, reward, action == 1, {}

    def reset_env(self, key, params):
        del key
        state = ProbeState(value=jnp.float32(1.0), time=0)
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None) -> jax.Array:
        return jnp.full((1,), state.value, dtype=jnp.float32)

    def is_terminated(self, state, params) -> jax.Array:
        return jnp.array(False)

    @property
    def name(self) -> str:
        return "StopAction-test"

    @property
    def num_actions(self) -> int:
        return 2

    def action_space(self, params=None) -> spaces.Discrete:
        return spaces.Discrete(2)

    def observation_space(self, params=None) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (1,), jnp.float32)


SYNC = {
    "num_envs": 6,
    "num_steps": 11,
    "total_timesteps": 66,
    "update_epochs": 1,
    "num_minibatches": 1,
    "hidden_sizes": (4,),
    "advantage": "group",
    "group_size": 3,
    "group_reset": "longest",
}
GAMMA = 0.9


@functools.cache
def _rollout(score: str, normalize: bool = True, aggregation: str = "token_mean"):
    cfg = ppo.PPOConfig(
        **SYNC, group_score=score, group_normalize=normalize, group_aggregation=aggregation
    )
    env = StopAction()
    trainer = ppo.make_trainer(cfg, env, env.default_params)
    hparams = _as_float(ppo.HParams(gamma=GAMMA))
    state = trainer.init(jax.random.key(0), hparams)
    state = group_reset(trainer, state, jax.random.key(1))

    @jax.jit
    def run(state):
        _, steps = sync_rollout(trainer, state, hparams, jax.random.key(2))
        return steps, *make_sync_group_batch(trainer, steps, hparams)

    steps, batch, episodes = run(state)
    shape = (cfg.num_steps, cfg.num_envs)
    flags = {
        name: np.asarray(x)
        for name, x in (
            ("active", steps.active),
            ("done", steps.transition.done),
            ("round_end", steps.round_end),
            ("reward", steps.transition.reward),
        )
    }
    return (
        flags,
        np.asarray(batch.advantages).reshape(shape),
        np.asarray(batch.mask).reshape(shape),
        episodes,
    )


def _reference(flags, score: str, normalize: bool, eps: float = 1e-8):
    """Advantages, 0/1 mask and per-episode lengths `[T, N]`, one group and round at a
    time; returns also the counted episodes' returns."""
    done, round_end, reward = (flags[k] for k in ("done", "round_end", "reward"))
    steps, envs = reward.shape
    size = SYNC["group_size"]
    adv, mask, length = (np.zeros((steps, envs)) for _ in range(3))
    counted = []
    for g in range(envs // size):
        members = range(g * size, (g + 1) * size)
        ends = np.nonzero(round_end[:, g * size])[0]
        start = 0
        for end in ends:
            togo = np.zeros((end + 1 - start, size))
            totals = np.zeros(size)
            for j, n in enumerate(members):
                last = start + int(np.nonzero(done[start : end + 1, n])[0][0])
                for t in range(last, start - 1, -1):
                    after = togo[t + 1 - start, j] if t < last else 0.0
                    togo[t - start, j] = reward[t, n] + GAMMA * after
                totals[j] = reward[start : last + 1, n].sum()
                mask[start : last + 1, n] = 1.0
                length[start : last + 1, n] = last + 1 - start
            counted += list(totals)
            if score == "reward_to_go":
                others = (togo.sum(axis=1, keepdims=True) - togo) / (size - 1)
                scores = togo - others
                if normalize and np.std(togo[0]) > 0:
                    scores = scores / (np.std(togo[0]) + eps)
                adv[start : end + 1, g * size : (g + 1) * size] = scores
            else:
                scores = totals - totals.mean()
                if normalize:
                    spread = np.std(totals)
                    scores = scores / (spread + eps) if spread > 0 else 0.0 * scores
                adv[start : end + 1, g * size : (g + 1) * size] = scores[None, :]
            start = end + 1
    return mask * adv, mask, length, counted


def test_rounds_are_aligned_and_waiting_and_unfinished_steps_weigh_zero():
    flags, _, mask, _ = _rollout("reward_to_go", True)
    active, done, round_end = flags["active"], flags["done"], flags["round_end"]
    size = SYNC["group_size"]
    grouped_end = round_end.reshape((SYNC["num_steps"], -1, size))
    assert (grouped_end == grouped_end[:, :, :1]).all()  # a group ends its round together
    assert round_end.any(axis=0).all() and not round_end.all()  # rounds end, not every step
    for n in range(SYNC["num_envs"]):
        start = 0
        for end in np.nonzero(round_end[:, n])[0]:
            # one episode per round, then waiting (inactive) until the round ends
            assert done[start : end + 1, n].sum() == 1
            last = start + int(np.nonzero(done[start : end + 1, n])[0][0])
            assert active[start : last + 1, n].all() and not active[last + 1 : end + 1, n].any()
            assert (mask[start : last + 1, n] == 1).all() and (
                mask[last + 1 : end + 1, n] == 0
            ).all()
            start = end + 1
        assert (mask[start:, n] == 0).all()  # the unfinished round at the buffer's end
        # every env is active at the first step of each round
        assert active[start : start + 1, n].all()
    assert (mask == 0).any() and (mask == 1).any()
    assert not active.all()  # some env waited: the env's lengths differ within a group


@pytest.mark.parametrize(
    ("score", "normalize"), [("reward_to_go", True), ("reward_to_go", False), ("outcome", True)]
)
def test_round_advantages_match_a_numpy_loop(score, normalize):
    flags, advantages, mask, episodes = _rollout(score, normalize)
    want, want_mask, _, returns = _reference(flags, score, normalize)
    np.testing.assert_array_equal(mask, want_mask)
    np.testing.assert_allclose(advantages, want, rtol=1e-5, atol=1e-5)
    assert np.abs(advantages).max() > 0
    np.testing.assert_allclose(float(episodes.returns), np.mean(returns), rtol=1e-6)


def test_sequence_mean_weights_per_episode():
    flags, _, weights, _ = _rollout("outcome", aggregation="sequence_mean")
    _, mask, length, counted = _reference(flags, "outcome", True)
    mean_length = mask.sum() / (mask / np.maximum(length, 1)).sum()
    np.testing.assert_allclose(weights, mask * mean_length / np.maximum(length, 1), rtol=1e-6)
    np.testing.assert_allclose(weights.sum(), mask.sum(), rtol=1e-6)
    assert len(counted) > SYNC["num_envs"]  # several rounds per buffer


def test_update_is_the_default_and_longest_trains():
    base = {k: v for k, v in SYNC.items() if k != "group_reset"}
    assert ppo.PPOConfig(**base) == ppo.PPOConfig(**base, group_reset="update")
    env = StopAction()
    cfg = ppo.PPOConfig(**{**SYNC, "total_timesteps": 2 * 66})
    out = jax.jit(ppo.make_trainer(cfg, env, env.default_params).train)(
        jax.random.key(0), ppo.HParams()
    )
    assert np.isfinite(np.asarray(out.metrics["episode_return"])).all()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"group_reset": "round"}, r"^group_reset: expected one of update, longest, got 'round'$"),
        ({"normalize_observations": True}, r"^normalize_observations: not with group_reset"),
    ],
)
def test_bad_group_reset_is_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        ppo.PPOConfig(**{**SYNC, "env_name": "CartPole-v1", **changes})


def test_group_reset_is_refused_with_gae():
    with pytest.raises(ValueError, match=r"^group_reset: 'longest' has no effect with advantage"):
        ppo.PPOConfig(env_name="CartPole-v1", group_reset="longest")
