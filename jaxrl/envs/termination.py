"""Termination rules of locomotion envs as functions of the observation, for model rollouts.

A learned dynamics model predicts the next state and the reward but not whether the episode ends; model-based
offline RL (MBPO, MOPO) ends a model trajectory with the env's known rule applied to the predicted next
observation. Without it a hopper that falls in a model rollout keeps collecting its healthy bonus.

The rules are brax's ``is_healthy`` on the observation layout of its envs with
``exclude_current_positions_from_observation`` (the default; Gymnasium's MuJoCo v4/v5 envs and D4RL's share
the layout and ranges), ``done = not healthy``:

* hopper: ``obs[0]`` (torso height) ``> 0.7``, ``|obs[1]|`` (torso angle) ``< 0.2`` and every ``|obs[1:]| < 100``;
* walker2d: ``0.8 < obs[0] < 2``, ``-1 < obs[1] < 1``;
* ant: ``0.2 <= obs[0] <= 1`` (torso height);

and a non-finite observation ends the episode for all three. HalfCheetah, Pendulum and the other envs without
falls have no rule (:func:`termination_fn` returns None). One approximation: brax checks hopper's velocities before
clipping them to ``[-10, 10]`` for the observation, so a velocity beyond 100 is not seen here (the env ends such an
episode; it does not occur in normal motion).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import jax
import jax.numpy as jnp

__all__ = ["hopper_done", "walker2d_done", "ant_done", "TERMINATIONS", "termination_fn"]


def _finite(obs: jax.Array) -> jax.Array:
    return jnp.all(jnp.isfinite(obs), axis=-1)


def hopper_done(obs: jax.Array) -> jax.Array:
    """``[..., O] -> [...]`` float 1.0 where the hopper has fallen (brax / Gymnasium ``Hopper``)."""
    z, angle = obs[..., 0], obs[..., 1]
    healthy = _finite(obs) & jnp.all(jnp.abs(obs[..., 1:]) < 100.0, axis=-1) & (z > 0.7) & (jnp.abs(angle) < 0.2)
    return 1.0 - healthy.astype(jnp.float32)


def walker2d_done(obs: jax.Array) -> jax.Array:
    """``[..., O] -> [...]`` float 1.0 where the walker has fallen (brax / Gymnasium ``Walker2d``)."""
    z, angle = obs[..., 0], obs[..., 1]
    healthy = _finite(obs) & (z > 0.8) & (z < 2.0) & (angle > -1.0) & (angle < 1.0)
    return 1.0 - healthy.astype(jnp.float32)


def ant_done(obs: jax.Array) -> jax.Array:
    """``[..., O] -> [...]`` float 1.0 where the ant's torso left its height range (brax / Gymnasium ``Ant``)."""
    z = obs[..., 0]
    healthy = _finite(obs) & (z >= 0.2) & (z <= 1.0)
    return 1.0 - healthy.astype(jnp.float32)


TERMINATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "hopper": hopper_done,
    "walker2d": walker2d_done,
    "ant": ant_done,
}


def termination_fn(env_name: str | None) -> Callable[[jax.Array], jax.Array] | None:
    """The termination rule of the env ``env_name`` names (``brax:hopper:positional``, ``Hopper-v4``,
    ``mujoco/walker2d/medium-v0``, ``hopper-medium-replay-v2``, ...), or None for an env without one."""
    if not env_name:
        return None
    words = re.split(r"[^a-z0-9]+", env_name.lower())
    for word in words:
        if word in TERMINATIONS:
            return TERMINATIONS[word]
    return None
