"""Pure losses of offline methods built on a generative model or a Fenchel dual: BCQ and AlgaeDICE.

* **BCQ** (Fujimoto, Meger & Precup, "Off-Policy Deep RL without Exploration", ICML 2019): a conditional VAE
  ``G(s) = D(s, z)`` models the behaviour policy; a perturbation actor ``xi_phi(s, a) in [-Phi, Phi]`` nudges its
  samples; twin critics back up a soft-clipped double-Q value, maximised over ``n`` generated candidates.
* **AlgaeDICE** (Nachum, Dai, Kostrikov, Chow, Li & Schuurmans, "AlgaeDICE: Policy Gradient from Arbitrary
  Experience", 2019): the policy value as the min over a ``nu`` function of an off-policy Fenchel-dual objective,
  and the policy maximising it.

Conventions are :mod:`jaxrl.losses.offline`'s: ``q_apply(q_params, obs [B, O], actions [B, A]) -> [E, B]`` is
a Q ENSEMBLE's apply (``nu_apply`` likewise); ``policy_apply(params, obs) -> distrax`` distribution
(reparameterised ``sample_and_log_prob``); ``batch`` is a :class:`jaxrl.data.types.Transition` (``obs, action,
reward, next_obs, terminated``). Actions live in ``[-1, 1]^A``. Losses are ``loss(params, batch, [key,] *, ...)
-> (scalar, metrics)``; hyperparameters may be traced.

BCQ's VAE is given as two functions over one params pytree: ``encode_apply(vae_params, obs, actions) ->
(mean, log_std)`` (each ``[..., Z]``) and ``decode_apply(vae_params, obs, z) -> actions [..., A]`` in
``[-1, 1]``; the perturbation actor as ``perturb_apply(params, obs, actions) -> [..., A]`` (unbounded; the
bound ``Phi tanh(.)`` is applied here so ``Phi`` can be a traced hyperparameter).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxrl.losses.offline import ensemble_mse, ensemble_q, ensemble_q_samples, first_member_q, td_target

Array = jax.Array
Metrics = dict[str, Array]
sg = jax.lax.stop_gradient

__all__ = [
    # BCQ
    "gaussian_kl_to_standard",
    "vae_loss",
    "clipped_latent",
    "decode_clipped",
    "perturb_actions",
    "bcq_candidates",
    "bcq_actor_loss",
    "bcq_soft_clipped_value",
    "bcq_critic_loss",
    # AlgaeDICE
    "algae_f",
    "algae_f_grad",
    "algae_dual_objective",
    "algae_policy_objective",
    "algae_backup",
    "algaedice_nu_loss",
    "algaedice_actor_loss",
]


# ================================================================================================= BCQ


def gaussian_kl_to_standard(mean: Array, log_std: Array) -> Array:
    """Elementwise ``KL(N(mu, sigma^2) || N(0, 1)) = -1/2 (1 + log sigma^2 - mu^2 - sigma^2)``."""
    return -0.5 * (1.0 + 2.0 * log_std - jnp.square(mean) - jnp.exp(2.0 * log_std))


def vae_loss(
    vae_params: Any,
    batch: Any,
    key: Array,
    *,
    encode_apply: Callable,
    decode_apply: Callable,
    kl_weight: Array | float = 0.5,
    log_std_min: float = -4.0,
    log_std_max: float = 15.0,
) -> tuple[Array, Metrics]:
    """BCQ's conditional VAE of the behaviour policy (Fujimoto et al. 2019, section 4 and appendix D):

    ``L = mean_{b,i} (D(s, z)_i - a_i)^2 + w mean_{b,j} KL(N(mu_j, sigma_j^2) || N(0, 1))``, with
    ``(mu, log sigma) = E(s, a)``, ``log sigma`` clipped to ``[-4, 15]``, ``z = mu + sigma eps``,
    ``eps ~ N(0, I)`` (reparameterised) and ``w = 0.5`` (BCQ's weight; a beta-VAE with ``beta = 1/2``).
    """
    obs, actions = batch.obs, batch.action
    mean, log_std = encode_apply(vae_params, obs, actions)
    log_std = jnp.clip(log_std, log_std_min, log_std_max)
    z = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    recon = decode_apply(vae_params, obs, z)
    recon_loss = jnp.mean(jnp.square(recon - actions))
    kl = jnp.mean(gaussian_kl_to_standard(mean, log_std))
    loss = recon_loss + kl_weight * kl
    return loss, dict(vae_loss=loss, recon_loss=recon_loss, kl=kl)


def clipped_latent(key: Array, shape: tuple[int, ...], clip: Array | float = 0.5) -> Array:
    """BCQ's decoding latent: ``z ~ N(0, I)`` clipped to ``[-c, c]`` (``c = 0.5``), so generated actions stay
    near the modes of the data."""
    return jnp.clip(jax.random.normal(key, shape), -clip, clip)


def decode_clipped(
    vae_params: Any, obs: Array, key: Array, *, decode_apply: Callable, latent_dim: int, clip: Array | float = 0.5
) -> Array:
    """``G(s) = D(s, z)``, ``z`` from :func:`clipped_latent`: one behaviour-like action per row of ``obs``
    ``[..., O] -> [..., A]``."""
    z = clipped_latent(key, obs.shape[:-1] + (latent_dim,), clip)
    return decode_apply(vae_params, obs, z)


def perturb_actions(actions: Array, xi_raw: Array, max_perturbation: Array | float) -> Array:
    """``clip(a + Phi tanh(xi_raw), -1, 1)``: a perturbation bounded by ``Phi`` per action dimension."""
    return jnp.clip(actions + max_perturbation * jnp.tanh(xi_raw), -1.0, 1.0)


def bcq_candidates(
    obs: Array,
    key: Array,
    *,
    vae_params: Any,
    decode_apply: Callable,
    latent_dim: int,
    perturb_apply: Callable,
    perturb_params: Any,
    max_perturbation: Array | float,
    num_samples: int,
    latent_clip: Array | float = 0.5,
) -> Array:
    """``[N, ..., A]`` candidates ``a_n = a~_n + xi(s, a~_n)``, ``a~_n = G(s)`` (generated with no gradient to
    the VAE), for ``obs [..., O]``."""
    obs_n = jnp.broadcast_to(obs, (num_samples,) + obs.shape)
    a_gen = sg(
        decode_clipped(vae_params, obs_n, key, decode_apply=decode_apply, latent_dim=latent_dim, clip=latent_clip)
    )
    return perturb_actions(a_gen, perturb_apply(perturb_params, obs_n, a_gen), max_perturbation)


def bcq_actor_loss(
    perturb_params: Any,
    batch: Any,
    key: Array,
    *,
    perturb_apply: Callable,
    q_apply: Callable,
    q_params: Any,
    vae_params: Any,
    decode_apply: Callable,
    latent_dim: int,
    max_perturbation: Array | float,
    latent_clip: Array | float = 0.5,
) -> tuple[Array, Metrics]:
    """BCQ perturbation actor: ``L_xi = -mean_b Q_1(s, clip(a~ + Phi tanh(xi(s, a~)), -1, 1))``, ``a~ = G(s)``
    (one generated action per state; gradients reach only ``xi``; ``Q_1`` is member 0 of the ensemble)."""
    obs = batch.obs
    a_gen = sg(decode_clipped(vae_params, obs, key, decode_apply=decode_apply, latent_dim=latent_dim, clip=latent_clip))
    a = perturb_actions(a_gen, perturb_apply(perturb_params, obs, a_gen), max_perturbation)
    q1 = first_member_q(q_apply, q_params, obs, a)
    loss = -jnp.mean(q1)
    return loss, dict(actor_loss=loss, q_policy=jnp.mean(q1), perturbation=jnp.mean(jnp.abs(a - a_gen)))


def bcq_soft_clipped_value(q_samples: Array, lam: Array | float) -> Array:
    """BCQ's value of a state from ``q_samples [E, N, B]`` (``E`` critics at ``N`` candidate actions):
    ``V(s) = max_n [lambda min_e Q_e(s, a_n) + (1 - lambda) max_e Q_e(s, a_n)]`` -> ``[B]`` (``lambda = 0.75``;
    ``lambda = 1`` is clipped double Q)."""
    mixed = lam * jnp.min(q_samples, axis=0) + (1.0 - lam) * jnp.max(q_samples, axis=0)
    return jnp.max(mixed, axis=0)


def bcq_critic_loss(
    q_params: Any,
    batch: Any,
    key: Array,
    *,
    q_apply: Callable,
    target_q_params: Any,
    perturb_apply: Callable,
    target_perturb_params: Any,
    vae_params: Any,
    decode_apply: Callable,
    latent_dim: int,
    discount: Array | float,
    lam: Array | float,
    max_perturbation: Array | float,
    num_samples: int = 10,
    latent_clip: Array | float = 0.5,
) -> tuple[Array, Metrics]:
    """BCQ critic: ``L = sum_e mean_b (Q_e(s, a) - y)^2`` with
    ``y = r + discount (1 - d) sg[max_n (lambda min_e Qhat_e(s', a_n) + (1 - lambda) max_e Qhat_e(s', a_n))]``,
    ``a_n = a~_n + xihat(s', a~_n)``, ``a~_n = G(s')``, ``n = 1..N`` (target critics and target perturbation
    actor; :func:`bcq_soft_clipped_value`)."""
    obs_tp1 = batch.next_obs
    cand = bcq_candidates(
        obs_tp1,
        key,
        vae_params=vae_params,
        decode_apply=decode_apply,
        latent_dim=latent_dim,
        perturb_apply=perturb_apply,
        perturb_params=target_perturb_params,
        max_perturbation=max_perturbation,
        num_samples=num_samples,
        latent_clip=latent_clip,
    )
    q_tp1 = ensemble_q_samples(q_apply, target_q_params, obs_tp1, cand)  # [E, N, B]
    v_tp1 = bcq_soft_clipped_value(q_tp1, lam)
    y_t = sg(td_target(batch.reward, discount, batch.terminated, v_tp1))
    q_t = ensemble_q(q_apply, q_params, batch.obs, batch.action)
    loss = ensemble_mse(q_t, y_t)
    return loss, dict(critic_loss=loss, q_data=jnp.mean(q_t), target=jnp.mean(y_t))


# =========================================================================================== AlgaeDICE


def algae_f(x: Array, p: Array | float) -> Array:
    """AlgaeDICE's convex penalty ``f_p(x) = |x|^p / p`` (``p > 1``). ``p = 2`` is the paper's
    ``f(x) = x^2 / 2``, its own convex conjugate; the reference code's default is ``p = 1.5``."""
    return jnp.power(jnp.abs(x), p) / p


def algae_f_grad(x: Array, p: Array | float) -> Array:
    """The policy-gradient weight ``f'_+(x) = max(x, 0)^(p - 1)``: the derivative of :func:`algae_f` for
    ``x >= 0``, clipped to 0 for negative residuals (as the AlgaeDICE reference implementation does)."""
    return jnp.power(jnp.maximum(x, 0.0), p - 1.0)


def algae_dual_objective(
    nu_t: Array, y_t: Array, nu_0: Array, *, discount: Array | float, alpha: Array | float, p: Array | float
) -> Array:
    """The off-policy Fenchel-dual objective ``nu`` minimises (Nachum et al. 2019, eq. 12, times ``alpha``):

    ``J(nu, pi) = alpha (1 - gamma) mean_b nu(s0_b, a0_b) + mean_b f_p(y_b - nu(s_b, a_b))``,

    ``y = B^pi nu (s, a) = r + gamma (1 - d) nu(s', a')``, ``a0 ~ pi(s0)``, ``a' ~ pi(s')``, ``(s, a, r, s') ~ D``.
    For ``p = 2`` this is ``alpha`` times ``(1 - gamma) E[nu(s0, a0)] + alpha E_D[f*((B^pi nu - nu) / alpha)]``
    with ``f* (x) = x^2 / 2``; its minimum over ``nu`` is a lower bound of ``alpha`` times the policy's
    normalised value that is tight as ``alpha -> 0`` (``nu`` -> ``Q^pi``).
    """
    return alpha * (1.0 - discount) * jnp.mean(nu_0) + jnp.mean(algae_f(y_t - nu_t, p))


def algae_policy_objective(
    nu_t: Array, y_t: Array, nu_0: Array, *, discount: Array | float, alpha: Array | float, p: Array | float
) -> Array:
    """The policy's loss, minus the dual objective with ``f``'s derivative frozen (an envelope-theorem
    gradient of ``max_pi min_nu J``):

    ``L_pi = -mean_b [sg(f'_+(y_b - nu_b)) (y_b - nu_b) + alpha (1 - gamma) nu(s0_b, a0_b)]``

    (:func:`algae_f_grad`); gradients reach ``pi`` through ``a0 ~ pi(s0)`` and through ``a' ~ pi(s')`` in ``y``.
    """
    resid = y_t - nu_t
    return -jnp.mean(sg(algae_f_grad(resid, p)) * resid + alpha * (1.0 - discount) * nu_0)


def algae_backup(
    r_t: Array,
    terminal_t: Array,
    nu_tp1: Array,
    target_nu_tp1: Array,
    log_prob_tp1: Array,
    *,
    discount: Array | float,
    entropy_coef: Array | float,
    online_mix: Array | float = 0.05,
) -> Array:
    """Entropy-regularised backup with AlgaeDICE's mixed next value:

    ``y = r + gamma (1 - d) [m nu(s', a') + (1 - m) nuhat(s', a') - c log pi(a'|s')]``

    (``m = 0.05``: a little of the online ``nu``, through which ``nu``'s gradient also flows; ``nuhat`` the
    minimum of the target ``nu`` ensemble; ``c`` the entropy temperature).
    """
    v_tp1 = online_mix * nu_tp1 + (1.0 - online_mix) * target_nu_tp1 - entropy_coef * log_prob_tp1
    return td_target(r_t, discount, terminal_t, v_tp1)


def _algae_terms(objective, nu_params, target_nu_params, batch, init_obs, samples, *, nu_apply, discount, **kw):
    """``(objective per nu member [E], nu_t, y_t, nu_0)`` for the policy samples ``(a', log pi(a'|s'), a0)``."""
    a_tp1, logp_tp1, a_0 = samples
    nu_t = ensemble_q(nu_apply, nu_params, batch.obs, batch.action)  # [E, B]
    nu_tp1 = ensemble_q(nu_apply, nu_params, batch.next_obs, a_tp1)  # [E, B]
    target_tp1 = jnp.min(ensemble_q(nu_apply, target_nu_params, batch.next_obs, a_tp1), axis=0)
    y_t = algae_backup(
        batch.reward[None],
        batch.terminated[None],
        nu_tp1,
        target_tp1[None],
        logp_tp1[None],
        discount=discount,
        entropy_coef=kw["entropy_coef"],
        online_mix=kw["online_mix"],
    )
    nu_0 = ensemble_q(nu_apply, nu_params, init_obs, a_0)  # [E, B0]
    per_member = jax.vmap(lambda n, y, n0: objective(n, y, n0, discount=discount, alpha=kw["alpha"], p=kw["p"]))(
        nu_t, y_t, nu_0
    )
    return per_member, nu_t, y_t, nu_0


def algaedice_nu_loss(
    nu_params: Any,
    batch: Any,
    key: Array,
    *,
    nu_apply: Callable,
    target_nu_params: Any,
    policy_apply: Callable,
    policy_params: Any,
    init_obs: Array,
    discount: Array | float,
    alpha: Array | float,
    p: Array | float,
    entropy_coef: Array | float = 0.0,
    online_mix: Array | float = 0.05,
) -> tuple[Array, Metrics]:
    """AlgaeDICE ``nu`` loss: ``L_nu = sum_e J(nu_e, pi)`` (:func:`algae_dual_objective` per ensemble member,
    with the backup :func:`algae_backup`; ``a' ~ pi(s')``, ``a0 ~ pi(s0)`` held fixed). Unlike a TD loss the
    gradient also flows through ``nu(s', a')`` (weight ``m``) and ``nu(s0, a0)``."""
    k_tp1, k_0 = jax.random.split(key)
    a_tp1, logp_tp1 = jax.tree.map(sg, policy_apply(policy_params, batch.next_obs).sample_and_log_prob(seed=k_tp1))
    a_0 = sg(policy_apply(policy_params, init_obs).sample(seed=k_0))
    kw = dict(nu_apply=nu_apply, discount=discount, alpha=alpha, p=p, entropy_coef=entropy_coef, online_mix=online_mix)
    samples = (a_tp1, logp_tp1, a_0)
    per_member, nu_t, y_t, nu_0 = _algae_terms(
        algae_dual_objective, nu_params, target_nu_params, batch, init_obs, samples, **kw
    )
    loss = jnp.sum(per_member)
    return loss, dict(nu_loss=loss, nu_data=jnp.mean(nu_t), nu_init=jnp.mean(nu_0), residual=jnp.mean(y_t - nu_t))


def algaedice_actor_loss(
    policy_params: Any,
    batch: Any,
    key: Array,
    *,
    policy_apply: Callable,
    nu_apply: Callable,
    nu_params: Any,
    target_nu_params: Any,
    init_obs: Array,
    discount: Array | float,
    alpha: Array | float,
    p: Array | float,
    entropy_coef: Array | float = 0.0,
    online_mix: Array | float = 0.05,
) -> tuple[Array, Metrics]:
    """AlgaeDICE policy loss: the mean over ``nu`` ensemble members of :func:`algae_policy_objective`, with
    reparameterised ``a' ~ pi(s')`` (through both the online and the target ``nu`` at ``a'``, and its
    ``log pi(a'|s')`` in the entropy-regularised backup) and ``a0 ~ pi(s0)``; ``nu``'s params get no gradient.
    Metrics carry ``log_prob`` (of ``a'``) for the temperature loss.
    """
    k_tp1, k_0 = jax.random.split(key)
    a_tp1, logp_tp1 = policy_apply(policy_params, batch.next_obs).sample_and_log_prob(seed=k_tp1)
    a_0 = policy_apply(policy_params, init_obs).sample(seed=k_0)
    kw = dict(nu_apply=nu_apply, discount=discount, alpha=alpha, p=p, entropy_coef=entropy_coef, online_mix=online_mix)
    samples = (a_tp1, logp_tp1, a_0)
    per_member, *_ = _algae_terms(
        algae_policy_objective, sg(nu_params), sg(target_nu_params), batch, init_obs, samples, **kw
    )
    loss = jnp.mean(per_member)
    return loss, dict(actor_loss=loss, entropy=-jnp.mean(logp_tp1), log_prob=jnp.mean(logp_tp1))
