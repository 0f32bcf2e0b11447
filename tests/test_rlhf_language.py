"""The synthetic language of `purejaxppo.rlhf`: masks, the corpus and the hidden gold score."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejaxppo.rlhf import language as L

LANG = L.LanguageConfig(vocab_size=10, prompt_len=3, max_completion_len=6)
END, PAD = LANG.end_id, LANG.pad_id


def test_completion_mask_runs_through_the_first_end_token():
    completions = jnp.array(
        [
            [5, 6, END, PAD, PAD, PAD],
            [END, PAD, PAD, PAD, PAD, PAD],
            [5, 5, 5, 5, 5, 5],  # cut by the length limit: all counted
            [4, END, 7, END, 8, 9],  # only the first end counts
        ]
    )
    mask = L.completion_mask(completions, END)
    expected = [[1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0], [1] * 6, [1, 1, 0, 0, 0, 0]]
    np.testing.assert_array_equal(mask, np.array(expected, np.float32))
    assert mask.dtype == jnp.float32
    np.testing.assert_array_equal(L.completion_lengths(LANG, completions), [3, 1, 6, 2])
    content = L.content_mask(completions, END)
    np.testing.assert_array_equal(content.sum(-1), [2, 0, 6, 1])  # the end token excluded


def test_sequence_mask_and_join_split_round_trip():
    prompts = jnp.array([[3, 4, 5]])
    completions = jnp.array([[6, END, PAD, PAD, PAD, PAD]])
    seq = L.join(LANG, prompts, completions)
    assert seq.shape == (1, LANG.seq_len) == (1, 10)
    np.testing.assert_array_equal(seq[0, 3], LANG.sep_id)
    p, c = L.split(LANG, seq)
    np.testing.assert_array_equal(p, prompts)
    np.testing.assert_array_equal(c, completions)
    np.testing.assert_array_equal(L.sequence_mask(LANG, seq)[0], [1, 1, 1, 1, 1, 1, 0, 0, 0, 0])
    assert int(L.last_token_index(L.sequence_mask(LANG, seq))[0]) == 5


def test_gold_scores_on_hand_made_sequences():
    prompts = jnp.array([[4, 3, 9], [7, 7, 7], [3, 3, 3]])
    completions = jnp.array(
        [
            [4, 4, 5, 4, END, 4],  # 3 matches of the topic 4 before end (the one after: no)
            [7, END, PAD, PAD, PAD, PAD],  # 1 match
            [4, 5, 6, 3, 8, 9],  # no end: 1 match of 3; rising 4<5, 5<6, 3<8, 8<9
        ]
    )
    match = L.gold_score(LANG, prompts, completions)
    np.testing.assert_array_equal(match, [3.0, 1.0, 1.0])
    count = L.gold_score(
        L.LanguageConfig(**{**_fields(LANG), "gold": "count"}), prompts, completions
    )
    np.testing.assert_array_equal(count, [0.0, 0.0, 1.0])  # target 3
    ascending = L.gold_score(
        L.LanguageConfig(**{**_fields(LANG), "gold": "ascending"}), prompts, completions
    )
    np.testing.assert_array_equal(ascending, [1.0, 0.0, 4.0])  # 4<5 (then 5>4, 4 -> end)
    seq = L.join(LANG, prompts, completions)
    np.testing.assert_array_equal(L.gold_score_sequences(LANG, seq), match)


def test_ascending_fraction_is_rising_pairs_per_pair_and_not_monotone_in_length():
    frac = L.LanguageConfig(**{**_fields(LANG), "gold": "ascending_fraction"})
    prompts = jnp.full((6, 3), 3)
    completions = jnp.array(
        [
            [3, 5, 9, END, PAD, PAD],  # 2 rising of 2 pairs: 1
            [3, 5, 9, 4, END, PAD],  # the same answer longer, one falling pair: 2/3
            [3, 5, 9, 4, 6, 8],  # no end (cut): 4 rising of 5 pairs
            [7, END, PAD, PAD, PAD, PAD],  # one content token: no pair, 0
            [END, PAD, PAD, PAD, PAD, PAD],  # empty: 0
            [9, 8, 8, 7, END, 9],  # none rising (ties do not rise); after end ignored
        ]
    )
    got = np.asarray(L.gold_score(frac, prompts, completions))
    np.testing.assert_allclose(got, [1.0, 2 / 3, 4 / 5, 0.0, 0.0, 0.0], rtol=1e-6)
    assert got[1] < got[0]  # a longer answer scores lower
    count = L.LanguageConfig(**{**_fields(LANG), "gold": "ascending"})
    np.testing.assert_array_equal(L.gold_score(count, prompts, completions), [2, 2, 4, 0, 0, 0])
    with pytest.raises(ValueError, match="gold must be one of"):
        L.LanguageConfig(gold="fraction")


def test_net_ascending_is_rising_minus_falling_pairs():
    net = L.LanguageConfig(**{**_fields(LANG), "gold": "net_ascending"})
    prompts = jnp.full((5, 3), 3)
    completions = jnp.array(
        [
            [3, 5, 9, END, PAD, PAD],  # 2 rising: 2
            [3, 5, 9, 4, END, PAD],  # the same answer longer with a fall: 1
            [9, 8, 8, 7, END, 9],  # 2 falling, a tie (0); after end ignored: -2
            [3, 5, 9, 4, 6, 8],  # no end (cut): 4 rising, 1 falling: 3
            [END, PAD, PAD, PAD, PAD, PAD],  # empty: 0
        ]
    )
    got = np.asarray(L.gold_score(net, prompts, completions))
    np.testing.assert_array_equal(got, [2.0, 1.0, -2.0, 3.0, 0.0])
    # an unordered answer scores 0 on average at every length
    key = jax.random.key(0)
    for length in (4, 16):
        tokens = jax.random.randint(key, (4000, length), LANG.first_content_id, LANG.vocab_size)
        padded = jnp.concatenate([tokens, jnp.full((4000, 1), END)], axis=1)
        mean = float(L.gold_score(net, jnp.full((4000, 3), 3), padded).mean())
        assert abs(mean) < 0.1, (length, mean)


def _fields(cfg: L.LanguageConfig) -> dict:
    return {f: getattr(cfg, f) for f in cfg.__dataclass_fields__}


def test_corpus_is_well_formed_and_copies_the_prompt():
    seq = L.sample_corpus(jax.random.key(0), LANG, 2000)
    assert seq.shape == (2000, LANG.seq_len) and seq.dtype == jnp.int32
    prompts, completions = L.split(LANG, seq)
    assert int(prompts.min()) >= LANG.first_content_id and int(prompts.max()) < LANG.vocab_size
    assert bool(jnp.all(seq[:, LANG.prompt_len] == LANG.sep_id))
    mask = L.completion_mask(completions, END)
    lengths = mask.sum(-1)
    assert float(lengths.min()) >= 2 and float(lengths.max()) <= LANG.max_completion_len
    assert bool(jnp.all(jnp.any(completions == END, axis=-1)))  # corpus always ends
    assert bool(jnp.all(jnp.where(mask == 0, completions == PAD, True)))
    content = L.content_mask(completions, END) > 0
    copied = completions == prompts[:, jnp.arange(LANG.max_completion_len) % LANG.prompt_len]
    rate = float(jnp.sum(copied & content) / jnp.sum(content))
    chance = 1.0 / LANG.num_content
    assert rate == pytest.approx(LANG.copy_prob + (1 - LANG.copy_prob) * chance, abs=0.03)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pad_id": 3},
        {"vocab_size": 4},
        {"max_completion_len": 1},
        {"min_completion_len": 8},
        {"copy_prob": 1.5},
        {"gold": "length"},
        {"gold_target": 1},
    ],
)
def test_language_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        L.LanguageConfig(**kwargs)
