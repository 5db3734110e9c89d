"""Distral losses (Teh et al., 2017, "Distral: robust multitask reinforcement learning").

Distral trains a policy ``pi_i`` per task and a shared, distilled policy ``pi_0``, maximising

    J = sum_i E_{pi_i}[ sum_t discount^t ( R_i(s_t, a_t) - c_KL log(pi_i(a_t|s_t) / pi_0(a_t|s_t))
                                                      - c_Ent log pi_i(a_t|s_t) ) ]

i.e. each task's return regularised towards ``pi_0`` (KL) and towards high entropy. Writing
``alpha = c_KL / (c_KL + c_Ent)`` and ``beta = 1 / (c_KL + c_Ent)``, the per-step bonus is
``(alpha / beta) log pi_0 - (1 / beta) log pi_i``: soft RL with temperature ``c_KL + c_Ent`` and a prior
``pi_0`` weighted ``c_KL``. For fixed ``pi_i`` the ``pi_0`` part of ``J`` is ``c_KL sum_i E_{pi_i}[log pi_0]``:
``pi_0`` is the maximum-likelihood fit to all tasks' policies on their own state distributions (distillation).

Here the ``pi_i`` are trained soft actor-critic style (a per-task twin Q with the regularised soft target) and
``pi_0`` by distillation. For tanh-squashed Gaussians the log-densities of an action under ``pi_i`` and
``pi_0`` share the tanh Jacobian, so both are evaluated on the pre-tanh sample ``u`` (finite even where
``tanh(u)`` rounds to +-1): :func:`sample_with_prior`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import distrax
import jax
import jax.numpy as jnp

from jaxrl.losses.sac import accepts_gamma, soft_td_target


def distral_regularised_reward(
    reward: jax.Array, log_pi_i: jax.Array, log_pi_0: jax.Array, c_kl: float | jax.Array, c_ent: float | jax.Array
) -> jax.Array:
    """``R_i - c_KL (log pi_i - log pi_0) - c_Ent log pi_i``: the per-step Distral reward of task ``i``."""
    return reward - c_kl * (log_pi_i - log_pi_0) - c_ent * log_pi_i


def sample_with_prior(dist_i, dist_0, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``a ~ pi_i`` (reparameterised) with ``log pi_i(a)`` and ``log pi_0(a)``.

    For plain ``distrax.Transformed`` policies with the same parameter-free bijector (tanh-Gaussians) both
    log-densities are taken at
    the pre-squash sample ``u`` minus the shared ``log |det d tanh(u)/du|``; otherwise ``dist_0.log_prob(a)``.
    """
    # exact type: distrax's MultivariateNormalDiag is itself a Transformed (of a standard normal by an affine map
    # of its own parameters), whose bijectors differ between pi_i and pi_0
    if type(dist_i) is distrax.Transformed and type(dist_0) is distrax.Transformed:
        u, log_p_u = dist_i.distribution.sample_and_log_prob(seed=key)
        log_det = dist_i.bijector.forward_log_det_jacobian(u)
        action = dist_i.bijector.forward(u)
        return action, log_p_u - log_det, dist_0.distribution.log_prob(u) - log_det
    action, log_pi_i = dist_i.sample_and_log_prob(seed=key)
    return action, log_pi_i, dist_0.log_prob(action)


@accepts_gamma
def distral_critic_loss(
    critic_params: Any,
    batch: Any,
    key: jax.Array,
    *,
    critic_apply: Callable,
    target_critic_params: Any,
    policy_params: Any,
    policy_apply: Callable,
    shared_params: Any,
    shared_apply: Callable,
    c_kl: float | jax.Array,
    c_ent: float | jax.Array,
    discount: float | jax.Array,
) -> tuple[jax.Array, dict]:
    """Soft Q-learning for task ``i`` under the Distral reward: ``sum_j E[(Q_j(s, a) - y)^2]`` with

        y = r + discount (1 - terminated) (min_j Q'_j(s', a') + c_KL log pi_0(a'|s') - (c_KL + c_Ent) log pi_i(a'|s')),
        a' ~ pi_i(.|s')

    (no gradient through ``y``; ``Q'`` the target critic). ``batch`` has ``obs, action, reward, next_obs,
    terminated``; ``critic_apply(params, obs, action) -> [E, B]``.
    """
    dist_i = policy_apply(policy_params, batch.next_obs)
    dist_0 = shared_apply(shared_params, batch.next_obs)
    next_action, log_pi_i, log_pi_0 = sample_with_prior(dist_i, dist_0, key)
    next_q = critic_apply(target_critic_params, batch.next_obs, next_action)
    # soft_td_target subtracts alpha * log_prob: pass the Distral bonus as an effective log-prob with alpha = 1
    effective = (c_kl + c_ent) * log_pi_i - c_kl * log_pi_0
    target = jax.lax.stop_gradient(soft_td_target(batch.reward, batch.terminated, next_q, effective, 1.0, discount))
    q = critic_apply(critic_params, batch.obs, batch.action)
    loss = jnp.sum(jnp.mean(jnp.square(q - target), axis=-1))
    return loss, {"critic_loss": loss, "q_mean": jnp.mean(q), "target_q_mean": jnp.mean(target)}


def distral_actor_loss(
    policy_params: Any,
    batch: Any,
    key: jax.Array,
    *,
    policy_apply: Callable,
    critic_apply: Callable,
    critic_params: Any,
    shared_params: Any,
    shared_apply: Callable,
    c_kl: float | jax.Array,
    c_ent: float | jax.Array,
) -> tuple[jax.Array, dict]:
    """``E_s E_{a~pi_i}[(c_KL + c_Ent) log pi_i(a|s) - c_KL log pi_0(a|s) - min_j Q_j(s, a)]``
    (reparameterised; ``pi_0`` fixed: no gradient reaches ``shared_params``)."""
    dist_i = policy_apply(policy_params, batch.obs)
    dist_0 = shared_apply(jax.lax.stop_gradient(shared_params), batch.obs)
    action, log_pi_i, log_pi_0 = sample_with_prior(dist_i, dist_0, key)
    q = jnp.min(critic_apply(critic_params, batch.obs, action), axis=0)
    loss = jnp.mean((c_kl + c_ent) * log_pi_i - c_kl * log_pi_0 - q)
    return loss, {"actor_loss": loss, "entropy": -jnp.mean(log_pi_i), "kl_to_shared": jnp.mean(log_pi_i - log_pi_0)}


def distral_distill_loss(
    shared_params: Any,
    batch: Any,
    key: jax.Array,
    *,
    shared_apply: Callable,
    policy_params: Any,
    policy_apply: Callable,
) -> tuple[jax.Array, dict]:
    """Distillation of ``pi_0`` on task ``i``: ``-E_{s~D_i} E_{a~pi_i(.|s)}[log pi_0(a|s)]`` (maximum
    likelihood of the task policy's actions at the task's states; ``pi_i`` fixed). Up to the constant entropy of
    ``pi_i`` this is ``E_s KL(pi_i(.|s) || pi_0(.|s))``."""
    dist_i = policy_apply(jax.lax.stop_gradient(policy_params), batch.obs)
    dist_0 = shared_apply(shared_params, batch.obs)
    _, log_pi_i, log_pi_0 = sample_with_prior(dist_i, dist_0, key)
    loss = -jnp.mean(log_pi_0)
    return loss, {"distill_loss": loss, "distill_kl": jnp.mean(jax.lax.stop_gradient(log_pi_i) - log_pi_0)}
