"""IMTL-G: impartial multi-task learning, gradient part (closed form)."""

from __future__ import annotations

import jax.numpy as jnp

from jaxrl.grads.base import Aggregator, make_aggregator

__all__ = ["imtl_g"]


def imtl_g() -> Aggregator:
    """IMTL-G (Liu et al. 2021, Towards Impartial Multi-task Learning, ICLR).

    Finds weights alpha (sum alpha = 1) whose combination d = sum_k alpha_k g_k has EQUAL projections on all unit
    task gradients u_k = g_k / |g_k|:  d . (u_1 - u_k) = 0 for k = 2..K. Closed form, with
    D = [g_1 - g_k]_k and U = [u_1 - u_k]_k (rows k = 2..K):
        alpha_{2:K} = g_1 U^T (D U^T)^{-1},   alpha_1 = 1 - sum_{k>=2} alpha_k,     d = K sum_k alpha_k g_k.
    We solve the equivalent K x K system [U G^T; 1^T] alpha = [0; 1] for the alpha closest to uniform (via the
    pseudo-inverse), which is the paper's solution when it is unique and the plain sum when the constraints are
    degenerate (e.g. all gradients parallel, where any alpha satisfies them).
    """

    def weights(M, extra, key):
        num_tasks = M.shape[0]
        # Dimensionless: divide by the RMS gradient norm so the pseudo-inverse's cut-off is scale-free.
        sq = jnp.maximum(jnp.diag(M), 0.0)
        scale = jnp.sqrt(jnp.maximum(jnp.mean(sq), jnp.finfo(jnp.float32).tiny))
        norms = jnp.sqrt(sq)
        gu = M / jnp.where(norms > 0, norms, 1.0)[None, :] / scale  # gu[k, j] = g_k . u_j / scale
        constraints = (gu[:, :1] - gu[:, 1:]).T  # [K-1, K]: alpha . G (u_1 - u_j) for j >= 2
        A = jnp.concatenate([constraints, jnp.ones((1, num_tasks), jnp.float32)])
        rhs = jnp.zeros(num_tasks, jnp.float32).at[-1].set(1.0)
        uniform = jnp.full(num_tasks, 1.0 / num_tasks, jnp.float32)
        alpha = uniform + jnp.linalg.pinv(A, rtol=1e-5) @ (rhs - A @ uniform)
        return num_tasks * alpha, extra

    return make_aggregator(weights, name="imtl_g", min_tasks=2)
