"""Recurrent networks as ``(init, apply)`` pairs with an explicit hidden state.

``init(key, hidden, x) -> params`` and ``apply(params, hidden, x) -> (hidden', output)`` for one time step; the
hidden state is a plain array ``[..., H]`` that the caller threads (and resets) itself, so a trial of ``T`` steps is
``jax.lax.scan`` over ``apply`` and backpropagation through time is ``jax.grad`` of that scan.

GRU (Cho et al. 2014), as in flax's ``GRUCell``:

    r = sigmoid(W_ir x + W_hr h + b_r)
    z = sigmoid(W_iz x + W_hz h + b_z)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.nets.core import ACTIVATIONS, MLP, orthogonal_dense


class RecurrentNetwork(NamedTuple):
    """``init(key, hidden, x) -> params``; ``apply(params, hidden, x) -> (hidden', out)``;
    ``initial_hidden(batch_shape) -> zeros [*batch_shape, H]``; ``unroll(params, hidden, xs, resets)`` scans
    ``apply`` over a time-major ``xs [T, ...]``, zeroing the hidden state where ``resets[t]`` is set (before
    step ``t``)."""

    init: Callable[..., Any]
    apply: Callable[..., Any]
    initial_hidden: Callable[..., jax.Array]
    unroll: Callable[..., Any]
    hidden_size: int


class _GRUNet(nn.Module):
    """Embedding MLP -> GRU cell -> head(s)."""

    hidden_size: int
    embed: Sequence[int]
    activation: str
    head: nn.Module

    @nn.compact
    def __call__(self, h, x):
        x = MLP(tuple(self.embed), self.activation)(x) if self.embed else x
        h, y = nn.GRUCell(self.hidden_size, name="gru")(h, x)
        return h, self.head(y)


def _make(module: nn.Module, hidden_size: int, head_fn: Callable = lambda y: y) -> RecurrentNetwork:
    def init(key, hidden, x):
        return module.init(key, hidden, x)["params"]

    def raw_apply(params, hidden, x):
        return module.apply({"params": params}, hidden, x)

    def apply(params, hidden, x):
        h, y = raw_apply(params, hidden, x)
        return h, head_fn(y)

    def initial_hidden(batch_shape=()):
        return jnp.zeros((*tuple(batch_shape), hidden_size), jnp.float32)

    def unroll(params, hidden, xs, resets=None):
        """``xs [T, ...]`` -> ``(hidden_T, raw outputs [T, ...])`` (heads' raw outputs, stacked)."""
        if resets is None:
            resets = jnp.zeros(xs.shape[:-1], jnp.bool_)

        def body(h, inp):
            x, reset = inp
            h = jnp.where(reset[..., None], jnp.zeros_like(h), h)
            h, y = raw_apply(params, h, x)
            return h, y

        return jax.lax.scan(body, hidden, (xs, resets))

    return RecurrentNetwork(init, apply, initial_hidden, unroll, hidden_size)


class _Linear(nn.Module):
    features: int
    scale: float

    @nn.compact
    def __call__(self, y):
        return orthogonal_dense(self.features, self.scale)(y)


class _Identity(nn.Module):
    def __call__(self, y):
        return y


class _ActorCriticHead(nn.Module):
    """Policy parameters and a value from the GRU output (separate linear layers)."""

    num_outputs: int
    continuous: bool
    log_std_init: float = 0.0

    @nn.compact
    def __call__(self, y):
        out = orthogonal_dense(self.num_outputs, 0.01)(y)
        value = orthogonal_dense(1, 1.0)(y)[..., 0]
        if self.continuous:
            log_std = self.param("log_std", nn.initializers.constant(self.log_std_init), (self.num_outputs,))
            return out, jnp.broadcast_to(log_std, out.shape), value
        return out, value


def make_gru(
    output_dim: int | None,
    hidden_size: int = 64,
    embed: Sequence[int] = (),
    activation: str = "tanh",
    output_scale: float = 1.0,
) -> RecurrentNetwork:
    """A GRU core (optionally after an embedding MLP and before a linear ``output_dim`` head)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation={activation!r}: choose one of {list(ACTIVATIONS)}")
    head = _Linear(output_dim, output_scale) if output_dim is not None else _Identity()
    return _make(_GRUNet(int(hidden_size), tuple(embed), activation, head), int(hidden_size))


def actor_critic_outputs(raw, continuous: bool):
    """``(distribution, value)`` from the raw outputs of :func:`make_gru_actor_critic`."""
    if continuous:
        mean, log_std, value = raw
        return distrax.MultivariateNormalDiag(mean, jnp.exp(jnp.clip(log_std, -20.0, 2.0))), value
    logits, value = raw
    return distrax.Categorical(logits=logits), value


def make_gru_actor_critic(
    num_actions: int,
    continuous: bool = False,
    hidden_size: int = 64,
    embed: Sequence[int] = (),
    activation: str = "tanh",
    log_std_init: float = 0.0,
) -> RecurrentNetwork:
    """A GRU with a policy head (categorical logits, or diagonal Gaussian) and a value head.

    ``apply(params, h, x) -> (h', (distribution, value))``; ``unroll`` returns the raw head outputs, turned into
    ``(distribution, value)`` by :func:`actor_critic_outputs`.
    """
    module = _GRUNet(
        int(hidden_size),
        tuple(embed),
        activation,
        _ActorCriticHead(int(num_actions), bool(continuous), float(log_std_init)),
    )
    return _make(module, int(hidden_size), head_fn=lambda raw: actor_critic_outputs(raw, continuous))


def param_count(params: Any) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))
