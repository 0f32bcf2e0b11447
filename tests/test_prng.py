"""purejaxppo.prng: the unrolled threefry gives jax's bits; the permutation is one."""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from purejaxppo.prng import permutation, permutation_rounds

UNROLLED_SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np
    from purejaxppo.prng import use_unrolled_threefry

    def draws(fn):
        key = jax.random.key(7)
        return [np.asarray(x) for x in jax.jit(fn)(key)]

    def fn(key):
        a, b = jax.random.split(key)
        return (
            jax.random.bits(a, (1000,)),
            jax.random.normal(b, (3, 5)),
            jax.random.key_data(jax.random.split(b, 4)),
        )

    before = draws(fn)
    rolled = jax.jit(fn).lower(jax.random.key(0)).as_text().count("stablehlo.while")
    use_unrolled_threefry()
    after = draws(lambda key: fn(key))  # a new function: lowered again
    unrolled = jax.jit(lambda key: fn(key)).lower(jax.random.key(0)).as_text()
    for x, y in zip(before, after):
        np.testing.assert_array_equal(x, y)
    print(rolled, unrolled.count("stablehlo.while"))
    """
)


def test_unrolled_threefry_gives_the_rolled_bits_without_loops():
    out = subprocess.run(
        [sys.executable, "-c", UNROLLED_SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rolled, unrolled = map(int, out.stdout.split())
    assert rolled > 0 and unrolled == 0


@pytest.mark.parametrize("n", [1, 2, 5, 512, 1000, 70_000])
def test_permutation_is_a_permutation(n):
    perm = np.asarray(jax.jit(permutation, static_argnums=1)(jax.random.key(3), n))
    assert perm.dtype == np.int32 and perm.shape == (n,)
    np.testing.assert_array_equal(np.sort(perm), np.arange(n))


def test_permutation_rounds_follow_the_key_bits_left():
    assert permutation_rounds(2) == 1  # 31 random bits
    assert permutation_rounds(512) == 2  # 23 random bits: ceil(27 / 23)
    assert permutation_rounds(1 << 16) == 3  # 16 random bits: ceil(48 / 16)
    with pytest.raises(ValueError, match="too large"):
        permutation_rounds(1 << 30)


def test_permutation_is_uniform_enough():
    """Each item lands in each position about equally often (chi-square, 4 items)."""
    keys = jax.random.split(jax.random.key(0), 24_000)
    perms = np.asarray(jax.jit(jax.vmap(lambda k: permutation(k, 4)))(keys))
    counts = np.stack([np.bincount(perms[:, pos], minlength=4) for pos in range(4)])
    expected = len(keys) / 4
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 40.0, counts  # 9 dof: p < 1e-5 above 40
    # and the 24 orderings all occur about equally often
    codes = perms @ np.array([64, 16, 4, 1])
    _, per_order = np.unique(codes, return_counts=True)
    assert len(per_order) == 24 and per_order.min() > 800 and per_order.max() < 1200
