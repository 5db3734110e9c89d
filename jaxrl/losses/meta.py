"""Policy-gradient surrogates for meta-RL: DiCE, ProMP's LVC, the naive surrogate, and a pure MAML inner step.

All functions are pure. Time is the last axis: ``log_probs``, ``rewards``, ``baseline`` and ``mask`` are ``[T]``
or ``[B, T]`` (any leading batch axes are averaged over). ``discount`` may be a traced scalar.

Notation (one trajectory): ``w_t = sum_{t' <= t} log pi(a_t'|s_t')`` the cumulative log-probability of the
stochastic nodes that reward ``r_t`` depends on (causality); ``box(x) = exp(x - stop_gradient(x))`` the DiCE
"magic box" (value 1, derivative ``box(x) * x'``).

- DiCE (Foerster et al. 2018, "DiCE: The Infinitely Differentiable Monte Carlo Estimator"), with the
  baseline term of Mao et al. 2019 ("A Baseline for Any Order Gradient Estimators in Stochastic Computation
  Graphs"):

      L_DiCE = sum_t gamma^t [ r_t box(w_t) + b_t (box(w_{t-1}) - box(w_t)) ],   box(w_{-1}) = 1.

  Its value is the discounted return sum_t gamma^t r_t (the baseline term has value 0); its n-th derivative
  is an unbiased estimator of the n-th derivative of the expected discounted return, for every n (the
  baseline term has expectation 0 in every order and, with b_t ~ V(s_t), reduces variance).
- LVC (Rothfuss et al. 2019, "ProMP: Proximal Meta-Policy Search", eq. for J^LVC):

      L_LVC = sum_t box(log pi(a_t|s_t)) (R_t - gamma^t b_t),   R_t = sum_{t' >= t} gamma^t' r_t'.

  Same first derivative as DiCE (unbiased policy gradient); its Hessian drops the cross terms between
  different time steps (biased but low-variance curvature). Its value is sum_t (R_t - gamma^t b_t), not the
  return. For one-step episodes (T = 1) LVC and DiCE coincide.
- naive: ``sum_t log pi(a_t|s_t) * stop_gradient(R_t - gamma^t b_t)``. Same first derivative; its second
  derivative lacks the score-function term ``E[R grad log pi grad log pi^T]``, so MAML built on it has a
  wrong (biased) meta-gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

SURROGATES = ("dice", "lvc", "naive")


def magic_box(x: jax.Array) -> jax.Array:
    """DiCE magic box ``exp(x - stop_gradient(x))``: evaluates to 1, ``d box(x) = box(x) dx``."""
    return jnp.exp(x - jax.lax.stop_gradient(x))


def _prep(log_probs, rewards, discount, baseline, mask):
    log_probs = jnp.asarray(log_probs)
    rewards = jnp.asarray(rewards, log_probs.dtype)
    if mask is not None:
        mask = jnp.asarray(mask, log_probs.dtype)
        log_probs = log_probs * mask
        rewards = rewards * mask
    num_steps = rewards.shape[-1]
    discounts = jnp.asarray(discount, rewards.dtype) ** jnp.arange(num_steps, dtype=rewards.dtype)  # [T]
    if baseline is None:
        baseline = jnp.zeros_like(rewards)
    else:
        baseline = jax.lax.stop_gradient(jnp.asarray(baseline, rewards.dtype))
        if mask is not None:
            baseline = baseline * mask
    return log_probs, rewards, discounts, baseline


def discounted_reward_to_go(rewards: jax.Array, discount) -> jax.Array:
    """``R_t = sum_{t' >= t} gamma^{t'} r_t'`` along the last axis (discounted from time 0, as in the DiCE/LVC
    surrogates; divide by ``gamma^t`` for the usual return-to-go)."""
    rewards = jnp.asarray(rewards)
    discounts = jnp.asarray(discount, rewards.dtype) ** jnp.arange(rewards.shape[-1], dtype=rewards.dtype)
    return jnp.flip(jnp.cumsum(jnp.flip(rewards * discounts, -1), -1), -1)


def dice_objective(
    log_probs: jax.Array,
    rewards: jax.Array,
    discount=1.0,
    baseline: jax.Array | None = None,
    mask: jax.Array | None = None,
) -> jax.Array:
    """DiCE surrogate ``sum_t gamma^t [r_t box(w_t) + b_t (box(w_{t-1}) - box(w_t))]``, mean over batch axes.

    Args:
      log_probs: ``[..., T]`` log pi(a_t|s_t), differentiable w.r.t. the policy parameters.
      rewards: ``[..., T]`` rewards (gradients are not taken through them).
      discount: gamma.
      baseline: optional ``[..., T]`` state values b_t ~ V(s_t) (stop-gradient applied); Mao et al. 2019.
      mask: optional ``[..., T]`` 1 for valid steps, 0 for padding after an episode ended.
    Returns:
      scalar whose value is the mean discounted return and whose derivatives of any order are unbiased
      estimators of the derivatives of the expected discounted return.
    """
    log_probs, rewards, discounts, baseline = _prep(log_probs, rewards, discount, baseline, mask)
    rewards = jax.lax.stop_gradient(rewards)
    w = jnp.cumsum(log_probs, axis=-1)  # w_t
    w_prev = w - log_probs  # w_{t-1}, 0 at t = 0
    box_w, box_prev = magic_box(w), magic_box(w_prev)
    per_step = discounts * (rewards * box_w + baseline * (box_prev - box_w))
    return jnp.mean(jnp.sum(per_step, axis=-1))


def lvc_objective(
    log_probs: jax.Array,
    rewards: jax.Array,
    discount=1.0,
    baseline: jax.Array | None = None,
    mask: jax.Array | None = None,
) -> jax.Array:
    """ProMP low-variance-curvature surrogate ``sum_t box(log pi_t) (R_t - gamma^t b_t)``, mean over batch."""
    log_probs, rewards, discounts, baseline = _prep(log_probs, rewards, discount, baseline, mask)
    advantages = jax.lax.stop_gradient(discounted_reward_to_go(rewards, discount) - discounts * baseline)
    return jnp.mean(jnp.sum(magic_box(log_probs) * advantages, axis=-1))


def naive_pg_objective(
    log_probs: jax.Array,
    rewards: jax.Array,
    discount=1.0,
    baseline: jax.Array | None = None,
    mask: jax.Array | None = None,
) -> jax.Array:
    """REINFORCE surrogate ``sum_t log pi_t * stop_gradient(R_t - gamma^t b_t)``, mean over batch axes."""
    log_probs, rewards, discounts, baseline = _prep(log_probs, rewards, discount, baseline, mask)
    advantages = jax.lax.stop_gradient(discounted_reward_to_go(rewards, discount) - discounts * baseline)
    return jnp.mean(jnp.sum(log_probs * advantages, axis=-1))


def surrogate_objective(
    log_probs: jax.Array,
    rewards: jax.Array,
    *,
    surrogate: str = "dice",
    discount=1.0,
    baseline: jax.Array | None = None,
    mask: jax.Array | None = None,
) -> jax.Array:
    """Dispatch on ``surrogate`` in ``('dice', 'lvc', 'naive')`` (a static Python string)."""
    fns = {"dice": dice_objective, "lvc": lvc_objective, "naive": naive_pg_objective}
    if surrogate not in fns:
        raise ValueError(f"surrogate must be one of {SURROGATES}, got {surrogate!r}")
    return fns[surrogate](log_probs, rewards, discount, baseline, mask)


class PGBatch(NamedTuple):
    """Trajectories for a policy-gradient step; every field ``[T]`` or ``[B, T]`` leading axes (+ feature dims).

    ``observations`` and ``actions`` are handed to ``log_prob_fn``; ``baseline`` and ``mask`` are optional.
    """

    observations: Any
    actions: Any
    rewards: jax.Array
    baseline: jax.Array | None = None
    mask: jax.Array | None = None


def vpg_inner_step(
    params: Any,
    trajectories: PGBatch,
    *,
    log_prob_fn: Callable[[Any, Any, Any], jax.Array],
    alpha,
    surrogate: str = "dice",
    first_order: bool = False,
    discount=1.0,
) -> Any:
    """One policy-gradient ascent step ``params' = params + alpha * grad_params L(params)`` (MAML inner loop).

    ``L`` is the chosen surrogate of ``log_prob_fn(params, trajectories.observations, trajectories.actions)``
    (``[T]`` or ``[B, T]`` log-probabilities). Differentiating ``params'`` w.r.t. ``params`` gives
    ``I + alpha * hess L``: with ``surrogate='dice'`` that Hessian is unbiased (Finn et al. 2017 MAML with the
    correct score-function term), ``'lvc'`` is ProMP's low-variance version, ``'naive'`` drops the
    score-function term. ``first_order=True`` stops gradients through the inner gradient (FO-MAML).
    ``alpha`` is a scalar or a pytree like ``params`` (per-parameter step sizes, as in Meta-SGD).
    """

    def objective(p):
        log_probs = log_prob_fn(p, trajectories.observations, trajectories.actions)
        return surrogate_objective(
            log_probs,
            trajectories.rewards,
            surrogate=surrogate,
            discount=discount,
            baseline=trajectories.baseline,
            mask=trajectories.mask,
        )

    grads = jax.grad(objective)(params)
    if first_order:
        grads = jax.lax.stop_gradient(grads)
    if jax.tree.structure(alpha) == jax.tree.structure(params):
        return jax.tree.map(lambda p, a, g: p + a * g, params, alpha, grads)
    return jax.tree.map(lambda p, g: p + alpha * g, params, grads)
