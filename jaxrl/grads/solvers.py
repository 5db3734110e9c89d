"""Small constrained solvers over task weights, run for a fixed number of steps inside jit.

All problems here live in R^K (K tasks), so each step costs O(K^2) and a few hundred steps are cheap next to
one Gram matrix of a real network.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def largest_eigenvalue(M: jax.Array) -> jax.Array:
    """lambda_max of a symmetric PSD matrix, floored away from 0 so that 1 / lambda_max is a finite step."""
    return jnp.maximum(jnp.linalg.eigvalsh(M)[-1], jnp.finfo(jnp.float32).tiny)


def project_simplex(v: jax.Array) -> jax.Array:
    """Euclidean projection of v [K] onto {w >= 0, sum w = 1} (sort-based; Held et al. 1974, Duchi et al. 2008)."""
    u = jnp.sort(v)[::-1]
    cumsum = jnp.cumsum(u) - 1.0
    index = jnp.arange(1, v.shape[0] + 1, dtype=v.dtype)
    rho = jnp.sum(u - cumsum / index > 0)  # >= 1 always
    theta = cumsum[rho - 1] / rho.astype(v.dtype)
    return jnp.maximum(v - theta, 0.0)


def accelerated_projected_gradient(
    grad_fn: Callable[[jax.Array], jax.Array],
    project: Callable[[jax.Array], jax.Array],
    x0: jax.Array,
    lipschitz: jax.Array,
    num_steps: int,
) -> jax.Array:
    """FISTA (Beck & Teboulle 2009): x_{t+1} = P(y_t - grad f(y_t) / L), y_{t+1} = x_{t+1} + m_t (x_{t+1} - x_t).

    Converges as f(x_T) - f* <= 2 L |x_0 - x*|^2 / (T + 1)^2 for convex f with L-Lipschitz gradient.
    """
    step = 1.0 / lipschitz

    def body(_, carry):
        x, y, t = carry
        x_next = project(y - step * grad_fn(y))
        t_next = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * t * t))
        y_next = x_next + ((t - 1.0) / t_next) * (x_next - x)
        return x_next, y_next, t_next

    x, _, _ = jax.lax.fori_loop(0, num_steps, body, (x0, x0, jnp.ones((), x0.dtype)))
    return x


def min_norm_weights(M: jax.Array, num_steps: int) -> jax.Array:
    """argmin_{w in simplex} w^T M w: weights of the min-norm point of the convex hull of the task gradients."""
    num_tasks = M.shape[0]
    w0 = jnp.full(num_tasks, 1.0 / num_tasks, jnp.float32)
    return accelerated_projected_gradient(
        lambda w: 2.0 * (M @ w), project_simplex, w0, 2.0 * largest_eigenvalue(M), num_steps
    )
