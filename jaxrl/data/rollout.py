"""Scan-based rollout collection and evaluation over the functional env protocol."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxrl.data.types import Transition


def rollout(
    env: Any, env_params: Any, policy: Callable, env_state: Any, obs: jax.Array, key: jax.Array, num_steps: int
) -> tuple[Any, jax.Array, Transition, dict]:
    """Run ``policy(obs, key) -> (action, extras)`` for ``num_steps`` steps of a (vectorised) env.

    Returns ``(env_state, obs, transitions [T, ...], infos [T, ...])``; ``transitions.next_obs`` holds the true
    successor observation (pre-reset at episode ends), so ``infos`` leaves out ``final_observation``.
    """

    def one_step(carry, step_key):
        env_state, obs = carry
        act_key, env_key = jax.random.split(step_key)
        action, extras = policy(obs, act_key)
        next_obs, env_state, reward, terminated, truncated, info = env.step(env_key, env_state, action, env_params)
        tr = Transition(obs, action, reward, info["final_observation"], terminated, truncated, extras)
        # The final observation already lives in the transition: not stacking it twice saves memory traffic.
        info = {k: v for k, v in info.items() if k != "final_observation"}
        return (env_state, next_obs), (tr, info)

    (env_state, obs), (transitions, infos) = jax.lax.scan(one_step, (env_state, obs), jax.random.split(key, num_steps))
    return env_state, obs, transitions, infos


def episode_metrics(infos: dict) -> dict:
    """Mean return and length of the episodes that ended in a batch of ``EpisodeStats`` infos (NaN-free: 0 when
    none ended), plus how many ended."""
    done = infos["episode_done"].astype(jnp.float32)
    n = done.sum()
    denom = jnp.maximum(n, 1.0)
    return {
        "episode_return": (infos["episode_return"] * done).sum() / denom,
        "episode_length": (infos["episode_length"] * done).sum() / denom,
        "episodes": n,
    }


def evaluate(
    env: Any, env_params: Any, act: Callable, key: jax.Array, num_episodes: int, max_steps: int, discount: float = 1.0
) -> jax.Array:
    """Return (undiscounted, or discounted by ``discount``) of ``act(obs, key) -> action`` in each of
    ``num_episodes`` parallel episodes, ``[num_episodes]``.

    ``env`` must be vectorised to ``num_episodes`` copies. Each copy counts only its first episode (rewards after
    its first done are masked), and the scan runs ``max_steps`` steps. Observation preprocessing learned in
    training (normalisation statistics) belongs inside ``act``.
    """
    reset_key, run_key = jax.random.split(key)
    obs, env_state = env.reset(reset_key, env_params)

    def one_step(carry, step_key):
        env_state, obs, ret, alive = carry
        act_key, env_key = jax.random.split(step_key)
        action = act(obs, act_key)
        obs, env_state, reward, terminated, truncated, _ = env.step(env_key, env_state, action, env_params)
        ret = ret + reward * alive
        alive = alive * (1.0 - jnp.logical_or(terminated, truncated).astype(jnp.float32)) * discount
        return (env_state, obs, ret, alive), None

    init = (env_state, obs, jnp.zeros(num_episodes), jnp.ones(num_episodes))
    (_, _, returns, _), _ = jax.lax.scan(one_step, init, jax.random.split(run_key, max_steps))
    return returns
