"""A jittable fixed-capacity replay buffer with ring semantics.

The buffer is a pytree (:class:`ReplayState`); ``init``, ``add`` and ``sample`` are pure functions of it, so a
buffer per run or per task is one more ``vmap`` axis.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class ReplayState:
    data: Any  # pytree of arrays [capacity, ...]
    position: jax.Array  # next row to write
    size: jax.Array  # rows filled so far (<= capacity)

    @property
    def capacity(self) -> int:
        return jax.tree.leaves(self.data)[0].shape[0]


def init(example: Any, capacity: int) -> ReplayState:
    """An empty buffer for items shaped like ``example`` (one item, no batch axis)."""
    if capacity <= 0:
        raise ValueError(f"replay capacity must be > 0, got {capacity}")
    data = jax.tree.map(lambda x: jnp.zeros((capacity, *jnp.shape(x)), jnp.asarray(x).dtype), example)
    return ReplayState(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def add(state: ReplayState, items: Any) -> ReplayState:
    """Write a batch ``[n, ...]`` of items, overwriting the oldest rows once full (n <= capacity)."""
    n = jax.tree.leaves(items)[0].shape[0]
    idx = (state.position + jnp.arange(n)) % state.capacity
    data = jax.tree.map(lambda buf, x: buf.at[idx].set(x.astype(buf.dtype)), state.data, items)
    return ReplayState(data, (state.position + n) % state.capacity, jnp.minimum(state.size + n, state.capacity))


def sample(state: ReplayState, key: jax.Array, batch_size: int) -> Any:
    """Uniformly sample ``batch_size`` items (with replacement) from the filled rows."""
    idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(state.size, 1))
    return jax.tree.map(lambda buf: buf[idx], state.data)


def add_valid(buffer: ReplayState, items: Any, valid: jax.Array) -> ReplayState:
    """:func:`add` of only the rows with ``valid > 0`` (``items [n, ...]``; the count may be
    traced): valid rows are written contiguously from the buffer's position, the others are dropped."""
    keep = valid > 0
    rank = jnp.cumsum(keep.astype(jnp.int32)) - 1
    cap = buffer.capacity
    idx = jnp.where(keep, (buffer.position + rank) % cap, cap)  # out of range: dropped
    data = jax.tree.map(lambda buf, x: buf.at[idx].set(x.astype(buf.dtype), mode="drop"), buffer.data, items)
    n = jnp.sum(keep.astype(jnp.int32))
    return ReplayState(data, (buffer.position + n) % cap, jnp.minimum(buffer.size + n, cap))
