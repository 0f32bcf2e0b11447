"""Random numbers the trainer draws, made cheap on XLA:CPU (pure JAX).

Two costs dominate the randomness of a PPO update on a CPU, both measured with
`scripts/profile_train.py` (op counts per update from the compiled program):

- jax lowers its threefry2x32 hash on CPU as a rolled 5-iteration `while` loop
  (to keep compile times low), where GPUs get straight-line code. PPO draws
  random numbers at every env step (action sampling, env keys, auto-resets), so
  the rolled loop costs five loop iterations of ~15 tiny ops each, hundreds of
  times per update. `use_unrolled_threefry` gives the CPU the straight-line
  lowering that other platforms use: the same hash, the same bits, one fused
  kernel per draw.
- `jax.random.permutation` sorts (random key, index) pairs, a two-operand sort
  with a generic comparator. `permutation` packs the index into the low bits of
  the random key and sorts one `uint32` operand, about 5x faster on XLA:CPU.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

_UNROLLED = False


def use_unrolled_threefry() -> None:
    """Lower `threefry2x32` on CPU with jax's unrolled (straight-line) rule. Idempotent.

    Affects every jax program lowered for the CPU afterwards in this process (the
    lowering registry is global); results are bit-identical, only the compiled
    form changes. `make_trainer` calls it. Set `PUREJAXPPO_ROLLED_THREEFRY=1`
    to keep jax's rolled CPU lowering.
    """
    global _UNROLLED
    if _UNROLLED:
        return
    import os

    if os.environ.get("PUREJAXPPO_ROLLED_THREEFRY", "") not in ("", "0"):
        return
    from jax._src.interpreters import mlir
    from jax._src.random import threefry2x32

    mlir.register_lowering(
        threefry2x32.threefry2x32_p, threefry2x32._threefry2x32_lowering_rule, platform="cpu"
    )
    _UNROLLED = True


def permutation_rounds(n: int) -> int:
    """Sort rounds `permutation` uses for `n` items: as many as `jax.random.permutation`
    would need for keys of the bits left after packing the index (`32 - ceil(log2 n)`),
    so ties between random keys are as unlikely as there (jax: exponent 3)."""
    index_bits = max(1, math.ceil(math.log2(max(n, 2))))
    key_bits = 32 - index_bits
    if key_bits < 4:
        raise ValueError(f"permutation: n={n} is too large for one uint32 sort key")
    return max(1, math.ceil(3 * index_bits / key_bits))


def permutation(key: jax.Array, n: int) -> jax.Array:
    """A uniformly random permutation of `range(n)`, int32 `[n]` (`n` static).

    Each round sorts `uint32` keys whose high bits are random and whose low
    `ceil(log2 n)` bits hold the position, then reads the positions back: a
    single-operand sort. Rounds compose, as in `jax.random.permutation`.
    """
    index_bits = max(1, math.ceil(math.log2(max(n, 2))))
    low = jnp.uint32((1 << index_bits) - 1)
    positions = jnp.arange(n, dtype=jnp.uint32)
    perm = jnp.arange(n, dtype=jnp.int32)
    for round_key in jax.random.split(key, permutation_rounds(n)):
        bits = jax.random.bits(round_key, (n,), jnp.uint32)
        order = (jnp.sort((bits & ~low) | positions) & low).astype(jnp.int32)
        perm = perm[order]
    return perm
