"""One record per trained network: its parameters, its optimiser state and, where it has one, its target copy.

Every gradient step of every algorithm goes through :func:`apply_gradient`, and every Polyak target update through
:func:`soft_update`, so an optimiser fix or a new kind of update lands in one place. The record is a plain pytree
(a ``NamedTuple``): it vmaps over seeds and grid points, checkpoints and scans like any other state.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import optax


class TrainState(NamedTuple):
    """``params``, the optimiser state ``opt_state`` and ``target`` (``None``: the network has no target copy)."""

    params: Any
    opt_state: Any
    target: Any = None


def create(tx: optax.GradientTransformation, params: Any, *, target: bool = False) -> TrainState:
    """A fresh record: ``tx.init(params)``, and a target equal to ``params`` when ``target``."""
    return TrainState(params, tx.init(params), params if target else None)


def apply_gradient(tx: optax.GradientTransformation, state: TrainState, grads: Any, **extra_args) -> TrainState:
    """One optimiser step on ``state.params`` (the target is left as it is; see :func:`soft_update`).

    ``extra_args`` reach an ``optax.GradientTransformationExtraArgs`` (e.g. a multi-task aggregator's ``key``)."""
    updates, opt_state = tx.update(grads, state.opt_state, state.params, **extra_args)
    return state._replace(params=optax.apply_updates(state.params, updates), opt_state=opt_state)


def soft_update(state: TrainState, tau: Any) -> TrainState:
    """Polyak averaging of the target toward the parameters: ``target <- tau params + (1 - tau) target``."""
    return state._replace(target=polyak(state.params, state.target, tau))


def polyak(params: Any, target: Any, tau: Any) -> Any:
    """``tau params + (1 - tau) target``, leaf by leaf (``optax.incremental_update``)."""
    return optax.incremental_update(params, target, tau)
