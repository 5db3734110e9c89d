"""A fast random permutation for minibatch shuffling.

``jax.random.permutation`` sorts (random key, index) *pairs*; XLA:CPU runs a two-operand sort through a generic
comparator, which made shuffling about a quarter of PPO's time with 64 runs in one program (measured with the
profiler). Here the index rides in the low bits of the random key, so each round is a single-operand ``uint32``
sort, which XLA:CPU runs on its fast path (about 35x faster for 64 x 4096 on a 2-core CPU).

With ``b = ceil(log2 n)`` index bits, each round has ``32 - b`` random bits per element; elements whose random
bits tie keep their current relative order. Like ``jax.random.permutation``, several rounds make that bias
negligible: the rule is jax's (enough rounds that ties are as unlikely as with ``3 log n`` bits of key).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

_MAX_INDEX_BITS = 24  # beyond this, too few random bits remain per round: fall back to jax's permutation


def num_rounds(n: int) -> int:
    """Sort rounds for ``n`` elements: the ``3 ln n / ln 2^r`` rule with ``r`` random bits per round."""
    index_bits = max(1, math.ceil(math.log2(max(n, 2))))
    random_bits = 32 - index_bits
    return max(1, math.ceil(3 * math.log(max(n, 2)) / (random_bits * math.log(2))))


def permutation(key: jax.Array, n: int) -> jax.Array:
    """A uniformly random permutation of ``arange(n)`` (int32, ``n`` static); jittable and vmappable."""
    index_bits = max(1, math.ceil(math.log2(max(n, 2))))
    if index_bits > _MAX_INDEX_BITS:
        return jax.random.permutation(key, n)
    low = jnp.uint32((1 << index_bits) - 1)
    order = jnp.arange(n, dtype=jnp.int32)
    position = jnp.arange(n, dtype=jnp.uint32)
    for k in jax.random.split(key, num_rounds(n)):
        bits = jax.random.bits(k, (n,), jnp.uint32)
        packed = jax.lax.sort((bits & ~low) | position)
        order = order[(packed & low).astype(jnp.int32)]
    return order
