"""Transition containers shared by rollouts, replay buffers and losses."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax


class Transition(NamedTuple):
    """One environment step. ``next_obs`` is the true successor (the pre-reset final observation at an episode
    end), so a truncated step can bootstrap from it while a terminated one does not."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    extras: Any = ()  # per-algorithm data recorded at collection time (log-probs, values, ...)
