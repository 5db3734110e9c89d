"""PEARL losses (Rakelly et al., 2019, "Efficient Off-Policy Meta-Reinforcement Learning via Probabilistic Context
Variables").

The context encoder maps each transition ``c_n = (s_n, a_n, r_n, s'_n)`` of a task to a Gaussian factor
``Psi(z | c_n) = N(mu_n, diag sigma_n^2)``; the posterior over the task variable is their normalised product
``q(z | c_{1:N}) ∝ prod_n Psi(z | c_n)`` (:func:`product_of_gaussians`), regularised towards the unit prior by a KL
term (:func:`kl_to_standard_normal`, the information bottleneck). The encoder learns through the critic: the
Bellman error of ``Q(s, a, z)``, ``z ~ q(z | c)`` reparameterised, is backpropagated into it
(:func:`pearl_critic_encoder_loss`). Axes: ``M`` tasks of a meta-batch, ``B`` RL transitions per task, ``C`` context
transitions per task, ``L`` latent dimensions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxrl.losses.sac import accepts_gamma, sac_critic_loss

MIN_VARIANCE = 1e-7


def product_of_gaussians(
    mu: jax.Array, var: jax.Array, mask: jax.Array | None = None, axis: int = -2
) -> tuple[jax.Array, jax.Array]:
    """The product of ``N`` diagonal Gaussian factors ``N(mu_n, sigma_n^2)`` along ``axis``, normalised:

        sigma^2 = 1 / sum_n (1 / sigma_n^2),      mu = sigma^2 * sum_n (mu_n / sigma_n^2).

    ``mu, var [..., N, L]`` (``axis`` is never the last, latent, axis); ``mask`` (optional, ``mu``'s shape without
    ``L``; 1 keeps a factor, 0 drops it: zero precision). Returns ``(mu, var)`` with ``axis`` removed. With every
    factor masked out the precision is 0 and the result is not finite: the caller uses the prior there (see
    :func:`posterior_or_prior`).
    """
    precision = 1.0 / jnp.maximum(var, MIN_VARIANCE)
    if mask is not None:  # mask has mu's shape without the last (latent) axis
        precision = precision * jnp.asarray(mask, precision.dtype)[..., None]
    post_var = 1.0 / jnp.sum(precision, axis=axis)
    post_mu = post_var * jnp.sum(mu * precision, axis=axis)
    return post_mu, post_var


def posterior_or_prior(mu: jax.Array, var: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """:func:`product_of_gaussians` over the context axis ``-2``, or the prior ``N(0, I)`` where ``mask [..., N]``
    keeps no transition (the empty context of a first meta-test episode)."""
    any_ = jnp.any(mask > 0, axis=-1, keepdims=True)
    safe_mask = jnp.where(any_, mask, jnp.ones_like(mask))
    post_mu, post_var = product_of_gaussians(mu, var, safe_mask)
    return jnp.where(any_, post_mu, 0.0), jnp.where(any_, post_var, 1.0)


def kl_to_standard_normal(mu: jax.Array, var: jax.Array) -> jax.Array:
    """``KL(N(mu, diag sigma^2) || N(0, I)) = 1/2 sum_l (sigma_l^2 + mu_l^2 - 1 - log sigma_l^2)`` over the last
    axis (``[..., L] -> [...]``)."""
    var = jnp.maximum(var, MIN_VARIANCE)
    return 0.5 * jnp.sum(var + jnp.square(mu) - 1.0 - jnp.log(var), axis=-1)


def sample_latent(key: jax.Array, mu: jax.Array, var: jax.Array) -> jax.Array:
    """``z = mu + sigma * eps``, ``eps ~ N(0, I)`` (reparameterised, so gradients reach ``mu`` and ``sigma``)."""
    return mu + jnp.sqrt(var) * jax.random.normal(key, mu.shape, mu.dtype)


def gaussian_factors(raw: jax.Array) -> tuple[jax.Array, jax.Array]:
    """An encoder's output ``[..., 2 L]`` as Gaussian factors: ``mu_n`` (the first ``L``) and
    ``sigma_n^2 = softplus(.) + MIN_VARIANCE`` (the last ``L``)."""
    latent = raw.shape[-1] // 2
    return raw[..., :latent], jax.nn.softplus(raw[..., latent:]) + MIN_VARIANCE


def infer_posterior(
    encoder_params: Any, context: jax.Array, *, encoder_apply: Callable, mask: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """``q(z | c)``: ``encoder_apply(params, context [..., N, D]) -> (mu_n, sigma_n^2)`` per transition, then
    :func:`product_of_gaussians` (or the prior where ``mask`` keeps nothing)."""
    mu_n, var_n = encoder_apply(encoder_params, context)
    if mask is None:
        return product_of_gaussians(mu_n, var_n)
    return posterior_or_prior(mu_n, var_n, mask)


def with_latent(obs: jax.Array, z: jax.Array) -> jax.Array:
    """``[M, B, obs_dim]`` and ``[M, L]`` -> ``[M, B, obs_dim + L]`` (``z`` broadcast over the batch)."""
    return jnp.concatenate([obs, jnp.broadcast_to(z[:, None, :], (*obs.shape[:-1], z.shape[-1]))], axis=-1)


@accepts_gamma
def pearl_critic_encoder_loss(
    params: tuple[Any, Any],
    batch: Any,
    key: jax.Array,
    *,
    context: jax.Array,
    encoder_apply: Callable,
    critic_apply: Callable,
    target_critic_params: Any,
    actor_params: Any,
    actor_apply: Callable,
    alpha: float | jax.Array,
    discount: float | jax.Array,
    kl_weight: float | jax.Array,
    reward_scale: float | jax.Array = 1.0,
) -> tuple[jax.Array, dict]:
    """The joint critic / encoder objective of PEARL; ``params = (critic_params, encoder_params)`` (differentiate
    w.r.t. both):

        z_m ~ q(z | c_m) = prod_n N(mu_phi(c_mn), sigma_phi^2(c_mn))       (reparameterised)
        L = sum_i E_{m, (s,a,r,s')}[(Q_i(s, a, z_m) - y)^2] + beta * mean_m KL(q(z | c_m) || N(0, I)),
        y = reward_scale * r + discount (1 - d) (min_i Qbar_i(s', a', zbar_m) - alpha log pi(a' | s', zbar_m)),
            a' ~ pi(. | s', zbar_m),  zbar = stop_gradient(z),  no gradient through y.

    The Bellman term (:func:`jaxrl.losses.sac.sac_critic_loss` on observations augmented with ``z``) reaches the
    encoder through ``Q(s, a, z)`` only; ``beta`` is ``kl_weight``. ``batch`` has ``obs, action, reward,
    next_obs, terminated`` with leading ``[M, B]``; ``context [M, C, D]``. ``key`` is split into a key for ``z``
    (``jax.random.split(key)[0]``) and one for the target action. Returns ``(loss, metrics)``; ``metrics``
    include ``z`` (stop-gradient, ``[M, L]``) for the actor update.
    """
    critic_params, encoder_params = params
    z_key, target_key = jax.random.split(key)
    mu, var = infer_posterior(encoder_params, context, encoder_apply=encoder_apply)  # [M, L]
    z = sample_latent(z_key, mu, var)
    z_bar = jax.lax.stop_gradient(z)
    flat = lambda x: x.reshape(-1, *x.shape[2:])
    aug = batch._replace(
        obs=flat(with_latent(batch.obs, z)),
        next_obs=flat(with_latent(batch.next_obs, z_bar)),
        action=flat(batch.action),
        reward=reward_scale * flat(batch.reward),
        terminated=flat(batch.terminated),
        truncated=flat(batch.truncated),
    )
    bellman, metrics = sac_critic_loss(
        critic_params,
        aug,
        target_key,
        critic_apply=critic_apply,
        target_critic_params=target_critic_params,
        actor_params=actor_params,
        actor_apply=actor_apply,
        alpha=alpha,
        discount=discount,
    )
    kl = jnp.mean(kl_to_standard_normal(mu, var))
    loss = bellman + kl_weight * kl
    metrics = {**metrics, "kl": kl, "z_var": jnp.mean(var), "z_mean_abs": jnp.mean(jnp.abs(mu)), "z": z_bar}
    return loss, metrics
