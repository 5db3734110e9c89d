"""Multi-task gradient aggregation ("gradient surgery") as optax-style transforms.

Input: per-task gradients, a pytree whose leaves are ``[K, *param_shape]`` (e.g. from
``jax.vmap(jax.grad(loss), in_axes=(None, 0))(params, task_batches)``). Output: one gradient with the structure
of ``params``, a descent direction for the summed loss, scaled like the sum of task gradients (``sum()`` is the
gradient of ``sum_k L_k``). Each aggregator is an ``optax.GradientTransformationExtraArgs``: chain it before any
optimiser with ``optax.chain``.

    agg = optax.chain(grads.pcgrad(), optax.adam(1e-3))
    state = agg.init(params)
    updates, state = agg.update(per_task_grads, state, params, key=key)
    params = optax.apply_updates(params, updates)
"""

from jaxrl.grads.base import (
    Aggregator,
    AggregatorState,
    chain,
    make_aggregator,
    mean,
    pairwise_cosine,
    sum,
)
from jaxrl.grads.imtl import imtl_g
from jaxrl.grads.mgda import cagrad, mgda, upgrad
from jaxrl.grads.surgery import gradvac, pcgrad

__all__ = [
    "Aggregator",
    "AggregatorState",
    "chain",
    "make_aggregator",
    "pairwise_cosine",
    "sum",
    "mean",
    "pcgrad",
    "gradvac",
    "mgda",
    "cagrad",
    "upgrad",
    "imtl_g",
]
