"""Sizes the trainer cannot represent are refused when `PPOConfig` is validated."""

import pytest

from purejaxppo.config import MAX_BATCH, MAX_UPDATES, PPOConfig
from purejaxppo.prng import permutation_rounds


def test_max_batch_is_the_shuffles_limit():
    permutation_rounds(MAX_BATCH)  # the largest batch the uint32 sort key indexes
    with pytest.raises(ValueError, match="too large"):
        permutation_rounds(MAX_BATCH + 1)


def test_batch_at_the_limit_is_accepted():
    cfg = PPOConfig(num_envs=MAX_BATCH // 2, num_steps=2, total_timesteps=MAX_BATCH)
    assert cfg.batch_size == MAX_BATCH


@pytest.mark.parametrize(
    "num_envs,num_steps", [(MAX_BATCH + 1, 1), (320_000_000, 1), (2**35, 128), (2**20, 2**9)]
)
def test_batch_over_the_limit_names_the_field_and_the_limit(num_envs, num_steps):
    with pytest.raises(ValueError) as err:
        PPOConfig(num_envs=num_envs, num_steps=num_steps, total_timesteps=500_000)
    text = str(err.value)
    assert text.startswith("num_envs: num_envs * num_steps = ")
    assert f"{MAX_BATCH:,}" in text and "\n" not in text


def test_updates_over_the_int32_counter_are_refused():
    one = {"num_envs": 1, "num_steps": 1, "num_minibatches": 1}
    with pytest.raises(ValueError, match=r"^total_timesteps: .* more than the limit 2,147,483,647"):
        PPOConfig(**one, total_timesteps=MAX_UPDATES + 1)
    assert PPOConfig(**one, total_timesteps=MAX_UPDATES).num_updates == MAX_UPDATES
