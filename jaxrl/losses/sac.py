"""Soft actor-critic losses (Haarnoja et al., 2018, "SAC: algorithms and applications")."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def accepts_gamma(loss: Callable) -> Callable:
    """Keeps the old keyword ``gamma=`` of ``loss`` working for one release (as ``discount=``, with a
    ``DeprecationWarning``): every loss now names the discount factor ``discount``."""

    @functools.wraps(loss)
    def wrapper(*args, **kwargs):
        if "gamma" in kwargs:
            warnings.warn(
                f"{loss.__name__}(gamma=...) is now {loss.__name__}(discount=...); the old name stops working in "
                "the next release",
                DeprecationWarning,
                stacklevel=2,
            )
            kwargs["discount"] = kwargs.pop("gamma")
        return loss(*args, **kwargs)

    return wrapper


def soft_td_target(
    reward: jax.Array,
    terminated: jax.Array,
    next_q: jax.Array,
    next_log_prob: jax.Array,
    alpha: float | jax.Array,
    discount: float | jax.Array,
) -> jax.Array:
    """``y = r + discount (1 - terminated) (min_i Q_target_i(s', a') - alpha log pi(a'|s'))``, ``a' ~ pi(.|s')``.

    ``next_q`` has the ensemble axis first ``[E, B]``; the minimum over members counters over-estimation.
    """
    soft_v = jnp.min(next_q, axis=0) - alpha * next_log_prob
    return reward + discount * (1.0 - terminated.astype(reward.dtype)) * soft_v


@accepts_gamma
def sac_critic_loss(
    critic_params: Any,
    batch: Any,
    key: jax.Array,
    *,
    critic_apply: Callable,
    target_critic_params: Any,
    actor_params: Any,
    actor_apply: Callable,
    alpha: float | jax.Array,
    discount: float | jax.Array,
) -> tuple[jax.Array, dict]:
    """``sum_i E[(Q_i(s, a) - y)^2]`` over the ensemble members, with ``y`` from :func:`soft_td_target`
    (no gradient through the target). ``batch`` has ``obs, action, reward, next_obs, terminated``."""
    next_action, next_log_prob = actor_apply(actor_params, batch.next_obs).sample_and_log_prob(seed=key)
    next_q = critic_apply(target_critic_params, batch.next_obs, next_action)
    target = jax.lax.stop_gradient(
        soft_td_target(batch.reward, batch.terminated, next_q, next_log_prob, alpha, discount)
    )
    q = critic_apply(critic_params, batch.obs, batch.action)  # [E, B]
    loss = jnp.sum(jnp.mean(jnp.square(q - target), axis=-1))
    return loss, {"critic_loss": loss, "q_mean": jnp.mean(q), "target_q_mean": jnp.mean(target)}


def sac_actor_loss(
    actor_params: Any,
    batch: Any,
    key: jax.Array,
    *,
    actor_apply: Callable,
    critic_apply: Callable,
    critic_params: Any,
    alpha: float | jax.Array,
) -> tuple[jax.Array, dict]:
    """``E_s E_{a~pi}[alpha log pi(a|s) - min_i Q_i(s, a)]`` (reparameterised through the tanh-Gaussian)."""
    action, log_prob = actor_apply(actor_params, batch.obs).sample_and_log_prob(seed=key)
    q = jnp.min(critic_apply(critic_params, batch.obs, action), axis=0)
    loss = jnp.mean(alpha * log_prob - q)
    return loss, {"actor_loss": loss, "entropy": -jnp.mean(log_prob)}


def sac_temperature_loss(
    log_alpha: jax.Array, log_prob: jax.Array, target_entropy: float | jax.Array
) -> tuple[jax.Array, dict]:
    """``E[-alpha (log pi(a|s) + H_target)]`` with ``alpha = exp(log_alpha)``: alpha rises while the policy's
    entropy is below the target and falls above it."""
    alpha = jnp.exp(log_alpha)
    loss = -jnp.mean(alpha * jax.lax.stop_gradient(log_prob + target_entropy))
    return loss, {"temperature_loss": loss, "alpha": alpha}
