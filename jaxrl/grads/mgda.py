"""Aggregators defined by a small optimisation over task weights: MGDA, CAGrad, UPGrad."""

from __future__ import annotations

import jax.numpy as jnp

from jaxrl.grads.base import Aggregator, make_aggregator
from jaxrl.grads.solvers import (
    accelerated_projected_gradient,
    largest_eigenvalue,
    min_norm_weights,
    project_simplex,
)

__all__ = ["mgda", "cagrad", "upgrad"]


def mgda(num_steps: int = 200) -> Aggregator:
    """MGDA (Desideri 2012; Sener & Koltun 2018, Multi-Task Learning as Multi-Objective Optimization).

    The min-norm point of the convex hull of the task gradients,
        w* = argmin_{w >= 0, sum w = 1} |sum_k w_k g_k|^2,      d = K sum_k w*_k g_k,
    is a common descent direction for all tasks (d . g_k >= |d|^2 / K > 0) unless the point is Pareto-stationary
    (d = 0). The factor K is this package's sum scaling. Solved in Gram space with ``num_steps`` of accelerated
    projected gradient. For K = 2 the closed form is w_1 = clip((g_2 - g_1) . g_2 / |g_1 - g_2|^2, 0, 1).
    """

    def weights(M, extra, key):
        return M.shape[0] * min_norm_weights(M, num_steps), extra

    return make_aggregator(weights, name="mgda", min_tasks=2)


def cagrad(c=0.5, num_steps: int = 200) -> Aggregator:
    """CAGrad, conflict-averse gradient descent (Liu et al. 2021, NeurIPS).

    With g_0 = (1/K) sum_k g_k and g_w = sum_k w_k g_k, solve the dual problem over the simplex
        w* = argmin_w  g_w . g_0 + c |g_0| |g_w|,
    and step along  d_raw = g_0 + (c |g_0| / |g_w*|) g_w*,  which maximises min_k g_k . d within the ball
    |d - g_0| <= c |g_0|. Returned as d = K d_raw / (1 + c), so that K identical task gradients give their sum
    (the authors' code offers rescalings 1, 1/(1+c^2) and 1/(1+c); c = 0 gives the plain sum).
    The solver's step uses the Lipschitz bound c |g_0| lambda_max(M) / min_w |g_w| (the MGDA norm, floored at
    1e-2 sqrt(lambda_max)), so it is least accurate when the tasks are nearly Pareto-stationary.
    """

    def weights(M, extra, key):
        num_tasks = M.shape[0]
        uniform = jnp.full(num_tasks, 1.0 / num_tasks, jnp.float32)
        radius = c * jnp.sqrt(jnp.maximum(uniform @ M @ uniform, 0.0))  # c |g_0|
        lam_max = largest_eigenvalue(M)
        w_min = min_norm_weights(M, num_steps)
        min_norm = jnp.maximum(jnp.sqrt(jnp.maximum(w_min @ M @ w_min, 0.0)), 1e-2 * jnp.sqrt(lam_max))
        lipschitz = jnp.maximum(radius * lam_max / min_norm, jnp.finfo(jnp.float32).tiny)

        def grad_fn(w):
            Mw = M @ w
            return M @ uniform + radius * Mw / jnp.sqrt(jnp.maximum(w @ Mw, jnp.finfo(jnp.float32).tiny))

        w = accelerated_projected_gradient(grad_fn, project_simplex, w_min, lipschitz, num_steps)
        norm_w = jnp.sqrt(jnp.maximum(w @ M @ w, 0.0))
        scale = jnp.where(norm_w > 0, radius / jnp.where(norm_w > 0, norm_w, 1.0), 0.0)
        return num_tasks * (uniform + scale * w) / (1.0 + c), extra

    return make_aggregator(weights, name="cagrad", min_tasks=2)


def upgrad(num_steps: int = 200) -> Aggregator:
    """UPGrad, unconflicting projection of gradients (Quinton & Rey 2024, Jacobian Descent for Multi-Objective
    Optimization, arXiv:2406.16232).

    Each g_i is projected onto the dual cone {x : g_k . x >= 0 for all k}, and the projections are summed:
        pi(g_i) = G^T v_i,   v_i = argmin_{v >= e_i} v^T M v,        d = sum_i pi(g_i)
    (the paper averages; we sum, so gradients without conflicts are summed unchanged). d never conflicts with
    any task (g_k . d >= 0). The K box-constrained QPs are solved together with accelerated projected gradient.
    """

    def weights(M, extra, key):
        eye = jnp.eye(M.shape[0], dtype=jnp.float32)
        V = accelerated_projected_gradient(
            lambda V: 2.0 * (V @ M), lambda V: jnp.maximum(V, eye), eye, 2.0 * largest_eigenvalue(M), num_steps
        )
        return V.sum(axis=0), extra

    return make_aggregator(weights, name="upgrad", min_tasks=2)
