"""Proximal policy optimisation losses (Schulman et al., 2017)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class PPOBatch(NamedTuple):
    """A flat minibatch ``[B, ...]`` of on-policy data."""

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array  # log pi_old(a|s)
    value: jax.Array  # V_old(s)
    advantage: jax.Array
    target: jax.Array  # value target (advantage + V_old)


def clipped_surrogate_loss(ratio: jax.Array, advantage: jax.Array, clip_eps: float | jax.Array) -> jax.Array:
    """``-E[min(rho A, clip(rho, 1 - eps, 1 + eps) A)]`` with ``rho = pi(a|s) / pi_old(a|s)``."""
    unclipped = ratio * advantage
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantage
    return -jnp.mean(jnp.minimum(unclipped, clipped))


def value_loss(
    value: jax.Array, old_value: jax.Array, target: jax.Array, clip_eps: float | jax.Array | None = None
) -> jax.Array:
    """``0.5 E[(V - G)^2]``; with ``clip_eps`` the pessimistic clipped form
    ``0.5 E[max((V - G)^2, (V_old + clip(V - V_old, -eps, eps) - G)^2)]``."""
    err = jnp.square(value - target)
    if clip_eps is not None:
        clipped = old_value + jnp.clip(value - old_value, -clip_eps, clip_eps)
        err = jnp.maximum(err, jnp.square(clipped - target))
    return 0.5 * jnp.mean(err)


def ppo_objective(
    dist: Any,
    value: jax.Array,
    batch: PPOBatch,
    *,
    clip_eps: float | jax.Array,
    vf_coef: float | jax.Array,
    ent_coef: float | jax.Array,
    clip_value: bool = True,
    normalize_advantages: bool = True,
) -> tuple[jax.Array, dict, jax.Array]:
    """PPO's total loss ``L_clip + vf_coef L_V - ent_coef H[pi]`` from the current policy's distribution ``dist``
    and value ``value`` at ``batch.obs`` (however the network produced them: an MLP per sample, a recurrent
    unroll over a trial). Advantages are standardised over the batch when asked.

    Returns ``(total, metrics, ratio)`` with ``ratio = pi(a|s) / pi_old(a|s)``."""
    log_prob = dist.log_prob(batch.action)
    ratio = jnp.exp(log_prob - batch.log_prob)
    adv = batch.advantage
    if normalize_advantages:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg = clipped_surrogate_loss(ratio, adv, clip_eps)
    v = value_loss(value, batch.value, batch.target, clip_eps if clip_value else None)
    entropy = jnp.mean(dist.entropy())
    total = pg + vf_coef * v - ent_coef * entropy
    metrics = {
        "policy_loss": pg,
        "value_loss": v,
        "entropy": entropy,
        "approx_kl": jnp.mean((ratio - 1.0) - jnp.log(ratio)),
    }
    return total, metrics, ratio


def ppo_loss(
    params: Any,
    batch: PPOBatch,
    *,
    policy_apply: Callable,
    value_apply: Callable,
    clip_eps: float | jax.Array,
    vf_coef: float | jax.Array,
    ent_coef: float | jax.Array,
    clip_value: bool = True,
    normalize_advantages: bool = True,
) -> tuple[jax.Array, dict]:
    """Total PPO loss ``L_clip + vf_coef L_V - ent_coef H[pi]`` (:func:`ppo_objective`), plus the fraction of
    clipped ratios in the metrics.

    ``policy_apply(params, obs) -> distribution`` and ``value_apply(params, obs) -> V`` take the whole ``params``
    pytree (actor and critic may share it or not). Advantages are standardised per minibatch when asked.
    """
    total, metrics, ratio = ppo_objective(
        policy_apply(params, batch.obs),
        value_apply(params, batch.obs),
        batch,
        clip_eps=clip_eps,
        vf_coef=vf_coef,
        ent_coef=ent_coef,
        clip_value=clip_value,
        normalize_advantages=normalize_advantages,
    )
    metrics["clip_fraction"] = jnp.mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32))
    return total, metrics
