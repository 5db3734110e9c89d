"""Trust-region policy optimisation pieces (Schulman et al., 2015), as pure functions over pytrees.

The TRPO update solves ``max_theta g^T (theta - theta_old)`` subject to ``0.5 (theta - theta_old)^T F (theta -
theta_old) <= delta``, where ``g = grad L(theta_old)`` is the gradient of the surrogate objective
``L(theta) = E[pi_theta(a|s) / pi_old(a|s) A(s, a)]`` and ``F`` the Fisher information matrix, i.e. the Hessian
of the mean KL divergence ``KL_bar(theta) = E_s[KL(pi_old(.|s) || pi_theta(.|s))]`` at ``theta_old``:

1. ``s = F^{-1} g`` by conjugate gradient (:func:`conjugate_gradient`), using only Fisher-vector products
   ``F v = d/de grad KL_bar(theta_old + e v)`` (forward-over-reverse, ``jax.jvp`` of ``jax.grad``:
   :func:`fisher_vector_product`), never ``F`` itself;
2. the largest step on the quadratic KL model: ``beta = sqrt(2 delta / (s^T F s))``, full step ``beta s``;
3. backtracking line search: ``theta = theta_old + f^j beta s`` for ``j = 0, 1, ...`` with the first ``j`` at
   which the exact mean KL is ``<= delta`` and the surrogate improved (by at least ``accept_ratio`` times the
   linear prediction ``f^j beta g^T s``); if no ``j <= max_backtracks - 1`` qualifies, the old params stay.

:func:`natural_gradient_step` does all three. It is differentiable-function-agnostic: ``surrogate_fn(params)`` and
``kl_fn(params)`` are any scalar functions of the params pytree (MAML-TRPO passes its adapted-policy objectives).
Everything is jittable and vmappable (fixed CG iterations, a ``lax.while_loop`` line search).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

__all__ = [
    "conjugate_gradient",
    "fisher_vector_product",
    "natural_gradient_step",
    "surrogate_objective",
    "categorical_kl",
]


def surrogate_objective(log_prob: jax.Array, old_log_prob: jax.Array, advantage: jax.Array) -> jax.Array:
    """Importance-sampled surrogate ``L = E[exp(log pi(a|s) - log pi_old(a|s)) A]`` (to MAXIMISE)."""
    return jnp.mean(jnp.exp(log_prob - old_log_prob) * advantage)


def categorical_kl(old_logits: jax.Array, logits: jax.Array) -> jax.Array:
    """Mean ``KL(Cat(old_logits) || Cat(logits))`` over the batch axes: ``sum_a p_old (log p_old - log p)``."""
    old_logp = jax.nn.log_softmax(old_logits)
    logp = jax.nn.log_softmax(logits)
    return jnp.mean(jnp.sum(jnp.exp(old_logp) * (old_logp - logp), axis=-1))


def conjugate_gradient(
    matvec: Callable[[jax.Array], jax.Array], b: jax.Array, num_iters: int = 10, residual_tol: float = 1e-10
) -> jax.Array:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A`` given only ``v -> A v``.

    Standard CG from ``x_0 = 0``: ``r_0 = p_0 = b``; ``alpha_i = r_i^T r_i / p_i^T A p_i``;
    ``x_{i+1} = x_i + alpha_i p_i``; ``r_{i+1} = r_i - alpha_i A p_i``; ``p_{i+1} = r_{i+1} + (r_{i+1}^T r_{i+1} /
    r_i^T r_i) p_i``. Exactly ``num_iters`` iterations are traced (jittable); once ``r^T r < residual_tol`` the
    iterate is frozen. In exact arithmetic it solves an ``n``-dimensional system in ``n`` iterations.
    ``b`` (and ``x``) are flat vectors ``[n]``.
    """
    b = jnp.asarray(b)

    def body(_, carry):
        x, r, p, rr = carry
        active = rr >= residual_tol
        ap = matvec(p)
        pap = jnp.vdot(p, ap)
        alpha = jnp.where(active, rr / jnp.where(pap == 0, 1.0, pap), 0.0)
        x = x + alpha * p
        r_new = r - alpha * ap
        rr_new = jnp.vdot(r_new, r_new)
        beta = jnp.where(active, rr_new / jnp.where(rr == 0, 1.0, rr), 0.0)
        p = jnp.where(active, r_new + beta * p, p)
        return x, jnp.where(active, r_new, r), p, jnp.where(active, rr_new, rr)

    init = (jnp.zeros_like(b), b, b, jnp.vdot(b, b))
    x, _, _, _ = jax.lax.fori_loop(0, num_iters, body, init)
    return x


def fisher_vector_product(
    kl_fn: Callable[[Any], jax.Array], params: Any, damping: float | jax.Array = 0.0
) -> Callable[[Any], Any]:
    """``v -> (F + damping I) v`` with ``F = Hessian of kl_fn at params`` (pytree ``v`` shaped like ``params``).

    Computed as ``jax.jvp(jax.grad(kl_fn), (params,), (v,))`` (forward-over-reverse Hessian-vector product). For
    ``kl_fn(theta) = E_s KL(pi_{theta_old} || pi_theta)`` evaluated at ``theta_old`` this Hessian is the Fisher
    information matrix ``E[grad log pi grad log pi^T]``.
    """
    grad_kl = jax.grad(kl_fn)

    def fvp(v):
        hv = jax.jvp(grad_kl, (params,), (v,))[1]
        return jax.tree.map(lambda h, x: h + damping * x, hv, v)

    return fvp


def natural_gradient_step(
    params: Any,
    surrogate_fn: Callable[[Any], jax.Array],
    kl_fn: Callable[[Any], jax.Array],
    max_kl: float | jax.Array,
    *,
    cg_iters: int = 10,
    damping: float | jax.Array = 0.1,
    backtrack_ratio: float | jax.Array = 0.8,
    max_backtracks: int = 15,
    accept_ratio: float | jax.Array = 0.0,
    cg_residual_tol: float = 1e-10,
    gradient: Any = None,
) -> tuple[Any, dict]:
    """One TRPO step: natural-gradient direction by CG, KL-scaled full step, backtracking line search.

    Args:
      params: policy params pytree (``theta_old``).
      surrogate_fn: ``params -> scalar`` surrogate objective to MAXIMISE (e.g. :func:`surrogate_objective`).
      kl_fn: ``params -> scalar`` mean KL from the old policy (``0`` with zero gradient at ``params``).
      max_kl: trust-region size ``delta`` (may be traced).
      cg_iters, damping: conjugate-gradient iterations and Tikhonov damping of the Fisher-vector product.
      backtrack_ratio, max_backtracks: step fractions ``backtrack_ratio^j``, ``j < max_backtracks``.
      accept_ratio: a step must improve the surrogate by ``> accept_ratio * expected`` (``0``: any improvement).
      gradient: the ascent direction ``g`` to precondition, shaped like ``params``, in place of the surrogate's own
        gradient (``None``), e.g. per-task surrogate gradients combined by a multi-task aggregator; the line
        search still checks the surrogate itself.

    Returns ``(new_params, metrics)``; metrics: ``surrogate_before``, ``surrogate_after``, ``kl`` (exact mean KL
    of the accepted step; 0 when rejected), ``expected_improvement`` (linear prediction of the full step),
    ``step_fraction`` (``backtrack_ratio^j``, 0 when rejected), ``accepted`` (0/1), ``backtracks`` (``j``),
    ``grad_norm``, ``natural_grad_norm``.
    """
    flat, unravel = ravel_pytree(params)
    surr_flat = lambda x: surrogate_fn(unravel(x))
    kl_flat = lambda x: kl_fn(unravel(x))

    if gradient is None:
        surrogate_before, g = jax.value_and_grad(surr_flat)(flat)
    else:
        surrogate_before, g = surr_flat(flat), ravel_pytree(gradient)[0]
    fvp_tree = fisher_vector_product(kl_fn, params, damping)
    fvp = lambda v: ravel_pytree(fvp_tree(unravel(v)))[0]
    direction = conjugate_gradient(fvp, g, cg_iters, cg_residual_tol)
    shs = jnp.vdot(direction, fvp(direction))
    # beta = sqrt(2 delta / s^T F s); a non-positive curvature (or a zero gradient) gives no step
    beta = jnp.where(shs > 0, jnp.sqrt(2.0 * max_kl / jnp.where(shs > 0, shs, 1.0)), 0.0)
    full_step = beta * direction
    expected = jnp.vdot(g, full_step)

    def candidate(j):
        frac = backtrack_ratio ** j.astype(flat.dtype)
        x = flat + frac * full_step
        surr, kl = surr_flat(x), kl_flat(x)
        improve = surr - surrogate_before
        ok = (kl <= max_kl) & (improve > accept_ratio * frac * expected) & jnp.isfinite(surr) & jnp.isfinite(kl)
        return ok, surr, kl, frac

    def cond(c):
        j, ok = c[0], c[1]
        return jnp.logical_and(~ok, j < max_backtracks)

    def body(c):
        j = c[0]
        ok, surr, kl, frac = candidate(j)
        return j + 1, ok, surr, kl, frac

    zero = jnp.zeros((), flat.dtype)
    j, ok, surr, kl, frac = jax.lax.while_loop(
        cond, body, (jnp.zeros((), jnp.int32), jnp.zeros((), bool), surrogate_before, zero, zero)
    )
    ok = ok & (beta > 0)
    new_flat = jnp.where(ok, flat + frac * full_step, flat)
    metrics = {
        "surrogate_before": surrogate_before,
        "surrogate_after": jnp.where(ok, surr, surrogate_before),
        "kl": jnp.where(ok, kl, 0.0),
        "expected_improvement": expected,
        "step_fraction": jnp.where(ok, frac, 0.0),
        "accepted": ok.astype(flat.dtype),
        "backtracks": (j - 1).astype(flat.dtype),
        "grad_norm": jnp.linalg.norm(g),
        "natural_grad_norm": jnp.linalg.norm(direction),
    }
    return unravel(new_flat), metrics
