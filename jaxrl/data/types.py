"""Transition containers shared by rollouts, replay buffers and losses."""

from __future__ import annotations

from typing import Any, NamedTuple, TypeAlias

# A field holds a jax array, a numpy array (host collection), () for a field a consumer does not read, or, under
# jax transformations, whatever the transformation puts there (in_axes specs, shape structs): any pytree leaf.
Field: TypeAlias = Any


class Transition(NamedTuple):
    """One environment step. ``next_obs`` is the true successor (the pre-reset final observation at an episode
    end), so a truncated step can bootstrap from it while a terminated one does not. Fields are jax arrays on
    device, numpy arrays where a host loop collects (Meta-World), or ``()`` for a field a loss does not read."""

    obs: Field
    action: Field
    reward: Field
    next_obs: Field
    terminated: Field
    truncated: Field
    extras: Any = ()  # per-algorithm data recorded at collection time (log-probs, values, ...)
