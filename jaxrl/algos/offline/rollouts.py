"""Model rollouts of a dynamics ensemble (:mod:`jaxrl.algos.offline.models`) under ``lax.scan``: at each step a
member is drawn per row among the elites and the next state and reward are sampled from its Gaussian
(:func:`sample_step`). A model trajectory ends where the ``step`` passed to :func:`rollout` says it halts: a
penalty's halting rule (MOReL's unknown-state HALT) or the env's termination rule on the predicted observation
(:mod:`jaxrl.envs.termination`, added by :mod:`jaxrl.algos.offline.model_based`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp

if TYPE_CHECKING:
    from jaxrl.algos.offline.models import DynamicsEnsemble, ModelState

__all__ = ["Prediction", "sample_step", "Rollout", "rollout"]


class Prediction(NamedTuple):
    """One model step for a batch: the sampled successor and reward, and every member's Gaussian (``[E, B, D]``,
    ``D = O + 1``, the data's units)."""

    next_obs: jax.Array  # [B, O]
    reward: jax.Array  # [B]
    mean: jax.Array  # [E, B, O + 1]
    variance: jax.Array  # [E, B, O + 1]
    member: jax.Array  # [B] the member each row was sampled from


def sample_step(
    ensemble: DynamicsEnsemble,
    model: ModelState,
    key: jax.Array,
    obs: jax.Array,
    actions: jax.Array,
    deterministic: bool = False,
) -> Prediction:
    """Each row draws a member uniformly among the elites, then ``[s' - s, r] ~ N(mu, sigma^2)`` of that member
    (its mean if ``deterministic``)."""
    mean, log_var = ensemble.predict(model.params, model.norm, obs, actions)  # [E, B, D]
    member_key, noise_key = jax.random.split(key)
    b = obs.shape[0]
    member = model.elites[jax.random.randint(member_key, (b,), 0, model.elites.shape[0])]
    mu = mean[member, jnp.arange(b)]
    std = jnp.exp(0.5 * log_var[member, jnp.arange(b)])
    x = mu if deterministic else mu + std * jax.random.normal(noise_key, mu.shape)
    return Prediction(obs + x[:, :-1], x[:, -1], mean, jnp.exp(log_var), member)


class Rollout(NamedTuple):
    """``[T, B, ...]`` model transitions; ``valid`` is 0 after a trajectory halted (those rows are padding)."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    valid: jax.Array
    info: Any


def rollout(key: jax.Array, policy: Callable, start_obs: jax.Array, horizon: int, *, step: Callable) -> Rollout:
    """``horizon`` model steps from ``start_obs [B, O]`` under ``lax.scan``.

    ``policy(obs [B, O], key) -> actions [B, A]``; ``step(key, obs, actions) -> (next_obs, reward, halt, info)``
    (a model step with its reward penalty / halting rule, e.g. :func:`sample_step` + MOPO's penalty). A row whose
    step halts keeps its halting transition (``terminated = 1``, valid); its later rows have ``valid = 0``.
    """

    def body(carry, key):
        obs, alive = carry
        act_key, model_key = jax.random.split(key)
        action = policy(obs, act_key)
        next_obs, reward, halt, info = step(model_key, obs, action)
        halt = halt.astype(jnp.float32)
        out = Rollout(obs, action, reward, next_obs, halt, alive, info)
        return (next_obs, alive * (1.0 - halt)), out

    alive = jnp.ones(start_obs.shape[:1], jnp.float32)
    _, out = jax.lax.scan(body, (start_obs, alive), jax.random.split(key, horizon))
    return out
