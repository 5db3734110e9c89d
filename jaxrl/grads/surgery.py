"""Pairwise gradient surgery: PCGrad and GradVac.

Both edit each task gradient g_i in turn against every other task's ORIGINAL gradient g_j (random order per
task), adding a multiple of g_j. So every edited gradient stays a combination g_i' = sum_k C_ik g_k of the
originals; we track the [K, K] coefficients C using only the Gram matrix, and return d = sum_i g_i' =
(1^T C) G. PCGrad is GradVac with its cosine targets fixed at 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxrl.grads.base import Aggregator, make_aggregator

__all__ = ["pcgrad", "gradvac"]


def _task_order(key: jax.Array | None, num_tasks: int) -> jax.Array:
    """[K, K]: row i is the order in which task i visits the others (itself included, then skipped)."""
    if key is None:
        return jnp.tile(jnp.arange(num_tasks), (num_tasks, 1))
    keys = jax.random.split(key, num_tasks)
    return jax.vmap(lambda k: jax.random.permutation(k, num_tasks))(keys)


def _surgery(M: jax.Array, order: jax.Array, targets: jax.Array, beta) -> tuple[jax.Array, jax.Array]:
    """Runs the sequential edits for all tasks at once (task i's edits only read g_i' and the originals).

    When cos(g_i', g_j) < t_ij:  g_i' <- g_i' + |g_i'| (t_ij sqrt(1 - c^2) - c sqrt(1 - t_ij^2))
                                              / (|g_j| sqrt(1 - t_ij^2)) g_j,   c = cos(g_i', g_j),
    which makes cos(g_i', g_j) = t_ij exactly; with t_ij = 0 this is PCGrad's g_i' - (g_i'.g_j / |g_j|^2) g_j.
    Then t_ij <- (1 - beta) t_ij + beta c.   Returns (task weights 1^T C [K], new targets).
    """
    num_tasks = M.shape[0]
    rows = jnp.arange(num_tasks)
    sq_norms = jnp.diag(M)

    def body(step, carry):
        C, targets = carry
        j = order[:, step]
        CM = C @ M  # CM[i, k] = g_i' . g_k
        dot = CM[rows, j]
        norm_i = jnp.sqrt(jnp.maximum(jnp.sum(CM * C, axis=1), 0.0))
        norm_j = jnp.sqrt(jnp.maximum(sq_norms[j], 0.0))
        valid = (j != rows) & (norm_i > 0) & (norm_j > 0)
        cos = jnp.clip(dot / jnp.where(valid, norm_i * norm_j, 1.0), -1.0, 1.0)
        target = targets[rows, j]
        sin_target = jnp.sqrt(jnp.maximum(1.0 - target**2, 1e-12))  # targets stay < 1 (EMA of cosines)
        coef = (
            norm_i * (target * jnp.sqrt(1.0 - cos**2) - cos * sin_target) / (jnp.where(valid, norm_j, 1.0) * sin_target)
        )
        C = C.at[rows, j].add(jnp.where(valid & (cos < target), coef, 0.0))
        targets = targets.at[rows, j].set(jnp.where(valid, (1.0 - beta) * target + beta * cos, target))
        return C, targets

    C, targets = jax.lax.fori_loop(0, num_tasks, body, (jnp.eye(num_tasks, dtype=jnp.float32), targets))
    return C.sum(axis=0), targets


def pcgrad() -> Aggregator:
    """PCGrad, "projecting conflicting gradients" (Yu et al. 2020, Gradient Surgery for Multi-Task Learning).

    For each task i, starting from g_i' = g_i and visiting the other tasks j in random order:
        if g_i' . g_j < 0:   g_i' <- g_i' - (g_i' . g_j / |g_j|^2) g_j        (g_j the ORIGINAL gradient)
    then d = sum_i g_i'. Pass ``key`` to ``update`` for the random order (fixed order 0..K-1 without a key).
    Non-conflicting gradients are summed unchanged, so d equals the plain sum when no pair conflicts.
    """

    def weights(M, extra, key):
        zero_targets = jnp.zeros_like(M)
        return _surgery(M, _task_order(key, M.shape[0]), zero_targets, 0.0)[0], extra

    return make_aggregator(weights, name="pcgrad", min_tasks=2)


def gradvac(num_tasks: int, beta=0.01) -> Aggregator:
    """GradVac, "Gradient Vaccine" (Wang et al. 2021, ICLR), with EMA cosine targets kept in the state.

    For each task i and each other task j in random order, with c = cos(g_i', g_j) and target t_ij:
        if c < t_ij:  g_i' <- g_i' + |g_i'| (t_ij sqrt(1 - c^2) - c sqrt(1 - t_ij^2)) / (|g_j| sqrt(1 - t_ij^2)) g_j
        t_ij <- (1 - beta) t_ij + beta c
    then d = sum_i g_i'. Targets start at 0 (so the first update equals PCGrad's). Whole-model granularity
    (one cosine per task pair over all leaves). ``num_tasks`` sizes the [K, K] target state.
    """
    if num_tasks < 2:
        raise ValueError(f"gradvac needs num_tasks >= 2, got {num_tasks}")

    def weights(M, targets, key):
        if M.shape[0] != num_tasks:
            raise ValueError(f"gradvac was built for num_tasks={num_tasks} but got K={M.shape[0]} task gradients")
        return _surgery(M, _task_order(key, num_tasks), targets, beta)

    return make_aggregator(
        weights,
        name="gradvac",
        min_tasks=2,
        init_extra=lambda params: jnp.zeros((num_tasks, num_tasks), jnp.float32),
    )
