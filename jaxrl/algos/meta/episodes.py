"""Episodes on one task (unbatched: a meta-learner vmaps them over tasks and trials) and the data they become:
MAML's masked :class:`~jaxrl.losses.meta.Trajectories` and PEARL's replay :class:`~jaxrl.data.types.Transition`
rows.

Every episode is ``horizon`` steps from a reset; ``alive`` is 1 up to and including the step that ends the first
episode. Steps after that belong to a fresh auto-reset episode: valid replay data, but not part of the return.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrl.data.types import Transition
from jaxrl.losses.meta import Trajectories


class EpisodeStep(NamedTuple):
    """One step of :func:`run_episode` (``[horizon]`` leading axis); ``aux`` is what the policy returned beside
    the action."""

    obs: Any
    action: Any
    aux: Any
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    info: Any
    alive: jax.Array


def run_episode(env: Any, task: Any, act: Callable, key: jax.Array, horizon: int) -> EpisodeStep:
    """``horizon`` steps of ``act(obs, key) -> (action, aux)`` on one task, from a reset."""
    reset_key, key = jax.random.split(key)
    obs, env_state = env.reset(reset_key, task)

    def body(carry, k):
        env_state, obs, alive = carry
        act_key, step_key = jax.random.split(k)
        action, aux = act(obs, act_key)
        next_obs, env_state, reward, terminated, truncated, info = env.step(step_key, env_state, action, task)
        done = jnp.logical_or(terminated, truncated).astype(jnp.float32)
        step = EpisodeStep(obs, action, aux, reward, terminated, truncated, info, alive)
        return (env_state, next_obs, alive * (1.0 - done)), step

    _, steps = jax.lax.scan(body, (env_state, obs, jnp.ones(())), jax.random.split(key, horizon))
    return steps


def stochastic_rollout(env: Any, task: Any, dist_fn: Callable, key: jax.Array, n: int, horizon: int) -> Trajectories:
    """``n`` episodes with actions sampled from ``dist_fn(obs)``; rewards after the first episode's end are zeroed
    (``mask``)."""

    def act(obs, k):
        dist = dist_fn(obs)
        action = dist.sample(seed=k)
        return action, dist.log_prob(action)

    def episode(k):
        st = run_episode(env, task, act, k, horizon)
        return Trajectories(st.obs, st.action, st.reward * st.alive, st.alive, st.aux)

    return jax.vmap(episode)(jax.random.split(key, n))


def mean_return(tr: Trajectories) -> jax.Array:
    """The mean over episodes of the (masked) episode return."""
    return jnp.mean(jnp.sum(tr.reward, axis=-1))


def transitions(env: Any, task: Any, act: Callable, key: jax.Array, horizon: int, obs_dim: int):
    """One episode of ``act(obs [obs_dim], key) -> action`` as replay transitions ``[horizon]`` (``next_obs`` is
    the step's final observation, before any auto-reset), and ``alive [horizon]``."""
    as_obs = lambda x, *shape: jnp.asarray(x, jnp.float32).reshape(*shape, obs_dim)
    st = run_episode(env, task, lambda obs, k: (act(as_obs(obs), k), ()), key, horizon)
    final_obs = as_obs(st.info["final_observation"], horizon)
    reward = jnp.asarray(st.reward, jnp.float32)
    return Transition(as_obs(st.obs, horizon), st.action, reward, final_obs, st.terminated, st.truncated), st.alive
