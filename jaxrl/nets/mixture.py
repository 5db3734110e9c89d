"""A mixture of tanh-squashed Gaussians as a policy head: a behaviour model for multi-modal data (BRAC and BEAR fit
one by maximum likelihood; a single Gaussian would average the modes of a two-mode behaviour policy)."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.nets.core import MLP, Network

__all__ = ["TanhGaussianMixture", "make_tanh_gaussian_mixture"]


class TanhGaussianMixture:
    """``pi_beta(a|s) = sum_k w_k TanhGaussian(a; mu_k, sigma_k)`` with batch shape ``[...]``, event ``[A]``.

    ``logits: [..., K]``, ``loc``/``log_scale: [..., K, A]`` (pre-tanh). ``log_prob(a)`` broadcasts ``a: [..., A]``
    against the batch shape and clips ``a`` to ``[-1 + eps, 1 - eps]`` before inverting tanh, so actions on the
    bounds (a saturated actor's samples) keep a finite log-density:
    ``log pi_beta(a) = logsumexp_k [log w_k + sum_i (log N(atanh a_i; mu_ki, sigma_ki) - log(1 - a_i^2))]``.
    ``sample`` draws a component, then ``tanh(mu + sigma eps)`` (not reparameterised through the component).
    """

    def __init__(self, logits: jax.Array, loc: jax.Array, log_scale: jax.Array, eps: float = 1e-4):
        self.logits, self.loc, self.log_scale, self.eps = logits, loc, log_scale, eps

    def log_prob(self, a: jax.Array) -> jax.Array:
        a = jnp.clip(a, -1.0 + self.eps, 1.0 - self.eps)[..., None, :]  # [..., 1, A]
        u = jnp.arctanh(a)
        z = (u - self.loc) * jnp.exp(-self.log_scale)
        log_n = -0.5 * jnp.square(z) - self.log_scale - 0.5 * np.log(2.0 * np.pi) - jnp.log1p(-jnp.square(a))
        per_component = jnp.sum(log_n, axis=-1)  # [..., K]
        return jax.nn.logsumexp(jax.nn.log_softmax(self.logits, axis=-1) + per_component, axis=-1)

    def sample(self, *, seed: jax.Array, sample_shape: Sequence[int] = ()) -> jax.Array:
        k_comp, k_noise = jax.random.split(seed)
        shape = tuple(sample_shape) + self.logits.shape[:-1]
        comp = jax.random.categorical(k_comp, self.logits, shape=shape)  # [S..., B...]
        pick = jax.nn.one_hot(comp, self.logits.shape[-1], dtype=self.loc.dtype)[..., None]  # [S..., B..., K, 1]
        loc = jnp.sum(pick * self.loc, axis=-2)
        scale = jnp.exp(jnp.sum(pick * self.log_scale, axis=-2))
        return jnp.tanh(loc + scale * jax.random.normal(k_noise, loc.shape, loc.dtype))

    def mode(self) -> jax.Array:
        """tanh of the mean of the heaviest component."""
        best = jax.nn.one_hot(jnp.argmax(self.logits, axis=-1), self.logits.shape[-1], dtype=self.loc.dtype)
        return jnp.tanh(jnp.sum(best[..., None] * self.loc, axis=-2))


class _MixtureHead(nn.Module):
    hidden: Sequence[int]
    activation: str
    action_dim: int
    num_components: int

    @nn.compact
    def __call__(self, obs):
        k, a = self.num_components, self.action_dim
        h = MLP(tuple(self.hidden), self.activation)(obs)
        small = nn.initializers.orthogonal(0.01)
        spread = lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -1.0, 1.0)
        logits = nn.Dense(k, kernel_init=small, bias_init=nn.initializers.zeros)(h)
        loc = nn.Dense(k * a, kernel_init=small, bias_init=spread if k > 1 else nn.initializers.zeros)(h)
        log_scale = nn.Dense(k * a, kernel_init=small, bias_init=nn.initializers.zeros)(h)
        shape = h.shape[:-1] + (k, a)
        return logits, loc.reshape(shape), jnp.clip(log_scale.reshape(shape), -5.0, 2.0)


def make_tanh_gaussian_mixture(n_act: int, hidden: Sequence[int], activation: str, num_components: int) -> Network:
    """``apply(params, obs [B, O]) -> TanhGaussianMixture`` (batch ``[B]``, event ``[A]``); component means are
    initialised spread over ``[-1, 1]`` (pre-tanh) so the components start apart."""
    module = _MixtureHead(tuple(hidden), activation, n_act, num_components)

    def init(key, obs):
        return module.init(key, obs)["params"]

    def apply(params, obs):
        return TanhGaussianMixture(*module.apply({"params": params}, obs))

    return Network(init, apply)
