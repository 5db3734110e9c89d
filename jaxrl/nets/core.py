"""Networks as ``(init, apply)`` pairs over flax linen modules.

Losses and algorithms only ever see ``init(key, *inputs) -> params`` and ``apply(params, *inputs) -> output``, so
nothing outside this package depends on the module system. Policy heads return distrax distributions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

ACTIVATIONS: dict[str, Callable] = {"tanh": nn.tanh, "relu": nn.relu, "gelu": nn.gelu, "silu": nn.silu, "elu": nn.elu}


class Network(NamedTuple):
    init: Callable[..., Any]
    apply: Callable[..., Any]


def orthogonal_dense(features: int, scale: float = float(np.sqrt(2.0))) -> nn.Dense:
    """A dense layer with an orthogonal kernel of gain ``scale`` and zero bias (the init every network here uses)."""
    return nn.Dense(features, kernel_init=nn.initializers.orthogonal(scale), bias_init=nn.initializers.zeros)


class MLP(nn.Module):
    """Dense layers with an activation between them; the last layer is linear when ``output_dim`` is set."""

    hidden: Sequence[int]
    activation: str = "tanh"
    output_dim: int | None = None
    output_scale: float = 1.0

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        for width in self.hidden:
            x = act(orthogonal_dense(width, np.sqrt(2.0))(x))
        if self.output_dim is not None:
            x = orthogonal_dense(self.output_dim, self.output_scale)(x)
        return x


def _network(module: nn.Module, head: Callable = lambda y: y) -> Network:
    def init(key, *inputs):
        return module.init(key, *inputs)["params"]

    def apply(params, *inputs):
        return head(module.apply({"params": params}, *inputs))

    return Network(init, apply)


class _Concat(nn.Module):
    """Concatenates its inputs on the last axis before an MLP (Q(s, a), policies on (s, omega), ...)."""

    mlp: MLP

    def __call__(self, *inputs):
        return self.mlp(jnp.concatenate(inputs, axis=-1))


def make_mlp(
    output_dim: int | None, hidden: Sequence[int] = (64, 64), activation: str = "tanh", output_scale: float = 1.0
) -> Network:
    return _network(_Concat(MLP(tuple(hidden), activation, output_dim, output_scale)))


def make_value_network(hidden: Sequence[int] = (64, 64), activation: str = "tanh") -> Network:
    """``apply(params, obs) -> V(s)`` with the trailing unit axis squeezed."""
    return _network(_Concat(MLP(tuple(hidden), activation, 1, 1.0)), head=lambda v: v[..., 0])


def make_categorical_policy(num_actions: int, hidden: Sequence[int] = (64, 64), activation: str = "tanh") -> Network:
    """``apply(params, obs) -> distrax.Categorical`` (small-scale output init, as in PPO practice)."""
    return _network(
        _Concat(MLP(tuple(hidden), activation, num_actions, 0.01)),
        head=lambda logits: distrax.Categorical(logits=logits),
    )


class _GaussianHead(nn.Module):
    mlp: MLP
    action_dim: int
    state_dependent_std: bool
    log_std_init: float
    log_std_min: float
    log_std_max: float

    @nn.compact
    def __call__(self, *inputs):
        h = self.mlp(jnp.concatenate(inputs, axis=-1))
        mean = orthogonal_dense(self.action_dim, 0.01)(h)
        if self.state_dependent_std:
            log_std = orthogonal_dense(self.action_dim, 0.01)(h) + self.log_std_init
        else:
            log_std = self.param("log_std", nn.initializers.constant(self.log_std_init), (self.action_dim,))
            log_std = jnp.broadcast_to(log_std, mean.shape)
        return mean, jnp.clip(log_std, self.log_std_min, self.log_std_max)


def make_gaussian_policy(
    action_dim: int,
    hidden: Sequence[int] = (64, 64),
    activation: str = "tanh",
    *,
    state_dependent_std: bool = False,
    log_std_init: float = 0.0,
) -> Network:
    """Diagonal Gaussian (unbounded; the env wrapper clips): ``apply -> distrax.MultivariateNormalDiag``."""
    module = _GaussianHead(MLP(tuple(hidden), activation), action_dim, state_dependent_std, log_std_init, -20.0, 2.0)
    return _network(module, head=lambda ms: distrax.MultivariateNormalDiag(ms[0], jnp.exp(ms[1])))


def make_tanh_gaussian_policy(
    action_dim: int,
    hidden: Sequence[int] = (256, 256),
    activation: str = "relu",
    *,
    log_std_min: float = -5.0,
    log_std_max: float = 2.0,
) -> Network:
    """Tanh-squashed diagonal Gaussian on ``(-1, 1)^d`` (SAC): ``apply -> distrax.Transformed``.

    Use ``dist.sample_and_log_prob(seed=key)``: it never inverts tanh, so log-probs stay finite at the bounds.
    """
    module = _GaussianHead(MLP(tuple(hidden), activation), action_dim, True, 0.0, log_std_min, log_std_max)
    return _network(
        module,
        head=lambda ms: distrax.Transformed(
            distrax.MultivariateNormalDiag(ms[0], jnp.exp(ms[1])), distrax.Block(distrax.Tanh(), ndims=1)
        ),
    )


def mode(dist) -> jax.Array:
    """The deterministic action of a policy distribution (argmax, mean, or tanh of the mean)."""
    if isinstance(dist, distrax.Transformed):
        return dist.bijector.forward(dist.distribution.mode())
    return dist.mode()


def make_ensemble(network: Network, num_members: int) -> Network:
    """An ensemble as a vmapped parameter axis: params gain a leading ``[E]`` axis, outputs a leading ``[E]``."""

    def init(key, *inputs):
        return jax.vmap(lambda k: network.init(k, *inputs))(jax.random.split(key, num_members))

    def apply(params, *inputs):
        return jax.vmap(lambda p: network.apply(p, *inputs))(params)

    return Network(init, apply)


def make_q_ensemble(hidden: Sequence[int] = (256, 256), activation: str = "relu", num_members: int = 2) -> Network:
    """``apply(params, obs, action) -> [E, ...]`` Q-values; ``num_members=2`` is the twin-Q head."""
    return make_ensemble(make_value_network(hidden, activation), num_members)
