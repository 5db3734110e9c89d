"""VariBAD's ELBO terms (Zintgraf et al. 2020, "VariBAD: A Very Good Method for Bayes-Adaptive Deep RL via
Meta-Learning", eq. 8-10), as small pure functions.

An encoder maps the trajectory prefix ``tau_{:t}`` (t = 0..T transitions of one BAMDP rollout) to a diagonal
Gaussian posterior ``q(m | tau_{:t}) = N(mu_t, diag exp(logvar_t))`` over the task embedding ``m``; a decoder
``p(r_j | s'_j, m)`` predicts the rewards of the *whole* rollout (past and future steps ``j = 0..T-1``). For every
prefix the ELBO is

    ELBO_t = E_{m ~ q(m | tau_{:t})} [ sum_j log p(r_j | s'_j, m) ] - KL( q(m | tau_{:t}) || q(m | tau_{:t-1}) )

with ``q(m | tau_{:-1}) = p(m) = N(0, I)`` (the paper regularises each posterior towards the previous one, so the
belief moves only as far as the new data warrants), and the VAE maximises ``sum_t ELBO_t`` (here: its mean over
prefixes, to keep the scale independent of ``T``). The expectation is one reparameterised sample per prefix.
Axes: ``T`` steps, ``L`` latent dimensions.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def gaussian_kl(mean_q: jax.Array, logvar_q: jax.Array, mean_p: jax.Array, logvar_p: jax.Array) -> jax.Array:
    """``KL(N(mu_q, diag s_q^2) || N(mu_p, diag s_p^2))`` summed over the last (latent) axis:

    1/2 sum_l [ log s_p^2 - log s_q^2 + (s_q^2 + (mu_q - mu_p)^2) / s_p^2 - 1 ]."""
    var_q, var_p = jnp.exp(logvar_q), jnp.exp(logvar_p)
    terms = logvar_p - logvar_q + (var_q + jnp.square(mean_q - mean_p)) / var_p - 1.0
    return 0.5 * jnp.sum(terms, axis=-1)


def kl_to_previous(mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """``KL(q_t || q_{t-1})`` for every prefix of posteriors ``mean, logvar [T+1, ..., L]`` -> ``[T+1, ...]``,
    with the prior ``N(0, I)`` in place of ``q_{-1}`` (the paper's KL to the previous posterior)."""
    prev_mean = jnp.concatenate([jnp.zeros_like(mean[:1]), mean[:-1]], axis=0)
    prev_logvar = jnp.concatenate([jnp.zeros_like(logvar[:1]), logvar[:-1]], axis=0)
    return gaussian_kl(mean, logvar, prev_mean, prev_logvar)


def gaussian_log_likelihood(target: ArrayLike, prediction: ArrayLike, var: ArrayLike = 1.0) -> jax.Array:
    """``log N(r; r_hat, var) = -1/2 ((r - r_hat)^2 / var + log(2 pi var))`` elementwise (with ``var = 1`` the
    reward MSE up to a constant: VariBAD's deterministic reward decoder)."""
    target, prediction, var = jnp.asarray(target), jnp.asarray(prediction), jnp.asarray(var)
    return -0.5 * (jnp.square(target - prediction) / var + jnp.log(2.0 * jnp.pi * var))


def bernoulli_log_likelihood(label: ArrayLike, logits: ArrayLike) -> jax.Array:
    """``log Bernoulli(y; sigmoid(l)) = y log sigmoid(l) + (1 - y) log(1 - sigmoid(l))`` elementwise, in the stable
    form ``-y softplus(-l) - (1 - y) softplus(l)`` (VariBAD's gridworld decoder: p(r = 1) per cell)."""
    label, logits = jnp.asarray(label), jnp.asarray(logits)
    return -label * jax.nn.softplus(-logits) - (1.0 - label) * jax.nn.softplus(logits)


def reparameterize(key: jax.Array, mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """``m = mu + exp(logvar / 2) * eps``, ``eps ~ N(0, I)``: a sample with gradients to ``mu`` and ``logvar``."""
    return mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape, mean.dtype)


def elbo_over_prefixes(
    log_lik: jax.Array, kl: jax.Array, mask: jax.Array, kl_weight: float | jax.Array = 1.0
) -> tuple[jax.Array, dict]:
    """The negative ELBO averaged over prefixes: ``-(1 / (T+1)) sum_t [ sum_j mask_j log_lik[t, j] - beta KL_t ]``.

    ``log_lik [P, T]``: ``log p(r_j | s'_j, m_t)`` with ``m_t ~ q(m | tau_{:t})`` (row: the prefix t, all ``P = T+1``
    of them or a random subset, as the paper's subsampled ELBOs; column j: the decoded step, past and future);
    ``kl [T+1]``: :func:`kl_to_previous`; ``mask [T]``: 1 for steps inside the rollout. The reconstruction is
    averaged over the rows given, the KL over all prefixes. Returns ``(loss, metrics)``."""
    reconstruction = -jnp.sum(log_lik * mask[None, :], axis=-1)  # [P]
    loss = jnp.mean(reconstruction) + kl_weight * jnp.mean(kl)
    return loss, {"reconstruction": jnp.mean(reconstruction), "kl": jnp.mean(kl)}


def trial_negative_elbo(
    decode: Callable[[jax.Array, jax.Array], jax.Array],
    mean: jax.Array,
    logvar: jax.Array,
    next_obs: jax.Array,
    reward: jax.Array,
    mask: jax.Array,
    key: jax.Array,
    *,
    kl_weight: float | jax.Array = 1.0,
    num_prefixes: int = 0,
    likelihood: str = "gaussian",
) -> tuple[jax.Array, dict]:
    """:func:`elbo_over_prefixes` of one trial: posteriors ``mean, logvar [T+1, L]`` (row 0: the prior), one
    reparameterised ``m_t`` per prefix (``num_prefixes > 0``: a random subset of that many prefixes), and
    ``decode(m [L], s' [D]) -> [1]`` (a reward, or the logit of ``p(r > 0)`` for ``likelihood="bernoulli"``) at every
    step's ``next_obs [T, D]`` against ``reward [T]``."""
    m_key, t_key = jax.random.split(key)
    m = reparameterize(m_key, mean, logvar)
    if 0 < num_prefixes < m.shape[0]:
        m = m[jax.random.choice(t_key, m.shape[0], (num_prefixes,), replace=False)]
    pred = jax.vmap(lambda m_t: jax.vmap(lambda s: decode(m_t, s))(next_obs))(m)[..., 0]  # [P, T]
    if likelihood == "bernoulli":
        log_lik = bernoulli_log_likelihood((reward[None, :] > 0).astype(pred.dtype), pred)
    else:
        log_lik = gaussian_log_likelihood(reward[None, :], pred)
    return elbo_over_prefixes(log_lik, kl_to_previous(mean, logvar), mask, kl_weight)
