"""The aggregator contract, shared Gram-space helpers, baselines and ``chain``.

Every aggregator here maps per-task gradients ``g_1..g_K`` (a pytree whose leaves have a leading task axis
``[K, ...]``) to one gradient ``d = sum_k a_k g_k`` with task weights ``a`` in R^K. The weights depend on the
gradients only through the Gram matrix ``M = G G^T`` (``M_ij = g_i . g_j``, a ``[K, K]`` matrix), so each
method is a small function ``M -> a`` and the cost over a plain sum is one Gram matrix (``K^2 P`` flops) plus
``O(K^3)`` work, independent of the parameter count ``P``. The Gram matrix is accumulated leaf by leaf, so
pytrees are never concatenated into a ``[K, P]`` copy.

Scaling convention: ``d`` is a descent direction for the summed loss and is scaled like the SUM of the task
gradients: weights are normalised so that ``K`` identical task gradients ``g`` aggregate to ``K g``, and
``sum()`` is exactly the gradient of ``sum_k L_k``. (Methods defined on the simplex, e.g. MGDA's min-norm
point ``sum_k w_k g_k`` with ``sum_k w_k = 1``, are therefore multiplied by ``K``.)
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any, NamedTuple, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "Aggregator",
    "AggregatorState",
    "chain",
    "sum",
    "mean",
    "pairwise_cosine",
    "make_aggregator",
]

PyTree = Any
# (M [K, K], extra state, key or None) -> (task weights a [K], new extra state)
WeightsFn = Callable[[jax.Array, Any, jax.Array | None], tuple[jax.Array, Any]]


# A multi-task gradient transform is an optax transform that takes extra arguments:
# ``init(params) -> state``; ``update(per_task_grads, state, params=None, *, key=None) -> (aggregated_grad, state)``
# where every leaf of ``per_task_grads`` is ``[K, *param_shape]`` and ``aggregated_grad`` has the structure of
# ``params``. ``optax.chain(aggregator, optimizer)`` aggregates, then steps; the ``key`` (for methods that draw
# random numbers, e.g. PCGrad's task order) reaches the aggregator through the chain's extra arguments.
Aggregator: TypeAlias = optax.GradientTransformationExtraArgs


class AggregatorState(NamedTuple):
    """Diagnostics of the last update, plus method-specific state.

    num_conflicts: int32 [], number of task pairs i < j with g_i . g_j < 0.
    mean_cosine: float32 [], mean of cos(g_i, g_j) over pairs i < j (1 when K = 1).
    extra: method-specific state (e.g. GradVac's EMA cosine targets); ``()`` when stateless.
    """

    num_conflicts: jax.Array
    mean_cosine: jax.Array
    extra: Any = ()


# ----------------------------------------------------------------------------------------------- validation


def check_per_task_grads(per_task_grads: PyTree, *, name: str, min_tasks: int = 1, params: PyTree = None) -> int:
    """Checks that every leaf has the same leading task axis and returns K. Runs at trace time (shapes only)."""
    leaves = jax.tree_util.tree_leaves_with_path(per_task_grads)
    if not leaves:
        raise ValueError(f"{name}: per_task_grads has no array leaves")
    sizes: dict[int, list[str]] = {}
    for path, leaf in leaves:
        shape = np.shape(leaf)
        if len(shape) == 0:
            raise ValueError(
                f"{name}: leaf {jax.tree_util.keystr(path) or '<root>'} is 0-d, so it has no leading task axis K; "
                "pass per-task gradients, e.g. jax.vmap(jax.grad(loss), ...) over tasks"
            )
        sizes.setdefault(shape[0], []).append(jax.tree_util.keystr(path) or "<root>")
    if len(sizes) > 1:
        detail = "; ".join(f"K={k}: {', '.join(p[:3])}{' ...' if len(p) > 3 else ''}" for k, p in sizes.items())
        raise ValueError(
            f"{name}: leaves disagree on the leading task axis ({detail}); every leaf of per_task_grads needs the "
            "same leading size K (was an ordinary gradient without a task axis passed?)"
        )
    (num_tasks,) = sizes
    if num_tasks < min_tasks:
        raise ValueError(f"{name} needs at least {min_tasks} tasks on the leading axis, got K={num_tasks}")
    if params is not None:
        p_leaves, p_def = jax.tree_util.tree_flatten(params)
        g_def = jax.tree_util.tree_structure(per_task_grads)
        if p_def != g_def:  # type: ignore[operator]  # PyTreeDef: untyped C extension
            raise ValueError(f"{name}: per_task_grads structure {g_def} differs from params structure {p_def}")
        for (path, g), p in zip(leaves, p_leaves):
            if tuple(np.shape(g)[1:]) != tuple(np.shape(p)):
                raise ValueError(
                    f"{name}: leaf {jax.tree_util.keystr(path)} has shape {np.shape(g)}, expected "
                    f"[K, *{tuple(np.shape(p))}] (a leading task axis before the parameter's shape)"
                )
    return num_tasks


# ------------------------------------------------------------------------------------------ Gram-space maths


def gram(per_task_grads: PyTree) -> jax.Array:
    """M_ij = g_i . g_j as float32 [K, K], summed leaf by leaf (no [K, P] concatenation)."""

    def leaf_gram(g):
        g = g.reshape(g.shape[0], -1)
        return jnp.matmul(g, g.T, precision=jax.lax.Precision.HIGHEST, preferred_element_type=jnp.float32)

    return builtins.sum(leaf_gram(g) for g in jax.tree.leaves(per_task_grads))


def combine(weights: jax.Array, per_task_grads: PyTree) -> PyTree:
    """d = sum_k a_k g_k, leaf by leaf; keeps each leaf's dtype."""
    return jax.tree.map(
        lambda g: jnp.tensordot(weights.astype(g.dtype), g, axes=1, precision=jax.lax.Precision.HIGHEST),
        per_task_grads,
    )


def cosine_from_gram(M: jax.Array) -> jax.Array:
    """cos(g_i, g_j) from the Gram matrix; 0 where a gradient is zero."""
    norms = jnp.sqrt(jnp.maximum(jnp.diag(M), 0.0))
    denom = norms[:, None] * norms[None, :]
    return jnp.where(denom > 0, M / jnp.where(denom > 0, denom, 1.0), 0.0)


def conflict_stats(M: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(number of pairs i < j with g_i . g_j < 0, mean cosine over pairs i < j)."""
    num_tasks = M.shape[0]
    upper = np.triu(np.ones((num_tasks, num_tasks), bool), k=1)
    num_conflicts = jnp.sum((M < 0) & upper).astype(jnp.int32)
    num_pairs = num_tasks * (num_tasks - 1) // 2
    if num_pairs == 0:
        return num_conflicts, jnp.ones((), jnp.float32)
    mean_cosine = jnp.sum(jnp.where(upper, cosine_from_gram(M), 0.0)) / num_pairs
    return num_conflicts, mean_cosine.astype(jnp.float32)


def pairwise_cosine(per_task_grads: PyTree) -> jax.Array:
    """Pairwise cosine similarity of task gradients, float32 [K, K].

    cos_ij = g_i . g_j / (|g_i| |g_j|), with the dot products taken over all leaves of the pytree (as if each
    task's gradient were flattened into one vector); 0 for a zero gradient.
    """
    check_per_task_grads(per_task_grads, name="pairwise_cosine")
    return cosine_from_gram(gram(per_task_grads))


# ---------------------------------------------------------------------------------------------- the builder


def make_aggregator(
    weights_fn: WeightsFn,
    *,
    name: str,
    min_tasks: int = 1,
    init_extra: Callable[[PyTree], Any] = lambda params: (),
) -> Aggregator:
    """Builds an ``Aggregator`` from a Gram-space rule ``weights_fn(M, extra, key) -> (a, extra)``.

    The update validates shapes (trace time), computes ``M = G G^T``, the weights ``a`` and ``d = a^T G``, and
    records the conflict diagnostics of the task gradients it was given.
    """

    def init(params):
        return AggregatorState(jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32), init_extra(params))

    def update(per_task_grads, state, params=None, *, key=None, **extra_args):
        check_per_task_grads(per_task_grads, name=name, min_tasks=min_tasks, params=params)
        M = gram(per_task_grads)
        weights, extra = weights_fn(M, state.extra, key)
        num_conflicts, mean_cosine = conflict_stats(M)
        return combine(weights, per_task_grads), AggregatorState(num_conflicts, mean_cosine, extra)

    return optax.GradientTransformationExtraArgs(init, update)


# ----------------------------------------------------------------------------------------------- baselines


def sum() -> Aggregator:  # noqa: A001 - mirrors the method's name, as optax does
    """Plain sum: d = sum_k g_k, the gradient of the summed loss sum_k L_k (the multi-task baseline)."""
    return make_aggregator(lambda M, extra, key: (jnp.ones(M.shape[0], jnp.float32), extra), name="sum")


def mean() -> Aggregator:
    """Plain mean: d = (1/K) sum_k g_k, the gradient of the mean loss (1/K) sum_k L_k.

    The one aggregator NOT scaled like the sum; use it to match code that averages task losses.
    """
    return make_aggregator(
        lambda M, extra, key: (jnp.full(M.shape[0], 1.0 / M.shape[0], jnp.float32), extra), name="mean"
    )


# ------------------------------------------------------------------------------------------------- chaining


def chain(aggregator: Aggregator, tx) -> optax.GradientTransformationExtraArgs:
    """Deprecated: ``optax.chain(aggregator, tx)`` does the same (aggregate, then step) and is what jaxrl uses."""
    import warnings

    warnings.warn(
        "jaxrl.grads.chain(aggregator, tx) is deprecated: use optax.chain(aggregator, tx)", DeprecationWarning, 2
    )
    return optax.chain(aggregator, tx)
