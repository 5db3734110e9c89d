"""Pieces every algorithm shares: the algorithm record, env stacks, evaluation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from gymnax.environments import spaces
from jax.custom_batching import custom_vmap

from jaxrl.algos import train_state
from jaxrl.algos.train_state import TrainState
from jaxrl.data import rollout as rollout_lib
from jaxrl.envs.wrappers import EpisodeStats, NormalizeObservation, NormalizeState, RescaleAction, VmapEnv
from jaxrl.losses.sac import sac_actor_loss, sac_temperature_loss


class Algorithm(NamedTuple):
    """What ``make(config, env, env_params)`` returns: pure functions and what they close over.

    * ``init(key) -> state``
    * ``step(state) -> (state, metrics)``: one training iteration, jittable and scannable
    * ``act(state, obs, key, deterministic=False) -> action``: the deployed policy (with the state's learned
      observation preprocessing)
    * ``evaluate(state, key, num_episodes)``: the mean return of the deterministic policy, or a dict of
      evaluation outputs that includes ``"eval_return"`` (per-task arrays such as ``eval_success [K]`` are
      fine). The run loop logs every key each chunk, and ``summary.json`` gets each key's last value and
      ``<key>_best`` (the best over chunks).
    """

    init: Callable
    step: Callable
    act: Callable
    evaluate: Callable
    config: Any
    env_steps_per_iteration: int


def _base_stack(env, env_params):
    space = env.action_space(env_params)
    if isinstance(space, spaces.Box):
        env = RescaleAction(env, space.low, space.high)
    return env


def make_train_env(env, env_params, num_envs: int, normalize_observations: bool = False):
    """base -> action rescaling to [-1, 1] -> episode statistics -> ``num_envs`` copies -> obs normalisation."""
    env = VmapEnv(EpisodeStats(_base_stack(env, env_params)), num_envs)
    return NormalizeObservation(env) if normalize_observations else env


def obs_normalizer(env_state) -> Callable[[jax.Array], jax.Array]:
    """The frozen observation preprocessing a train env state implies (identity without normalisation)."""
    if isinstance(env_state, NormalizeState):
        return env_state.stats.normalize
    return lambda obs: obs


def max_episode_steps(env_params, default: int = 1000) -> int:
    return int(getattr(env_params, "max_steps_in_episode", default))


def make_evaluate(env, env_params, act: Callable) -> Callable:
    """``evaluate(state, key, num_episodes)``: mean return of ``act(state, obs, key, deterministic=True)``."""
    eval_env_base = _base_stack(env, env_params)
    horizon = max_episode_steps(env_params)

    def evaluate(state, key, num_episodes: int) -> jax.Array:
        policy = lambda obs, k: act(state, obs, k, deterministic=True)
        returns = rollout_lib.evaluate(
            VmapEnv(eval_env_base, num_episodes), env_params, policy, key, num_episodes, horizon
        )
        return jnp.mean(returns)

    return evaluate


@custom_vmap
def _any_true_false(pred):
    return pred, jnp.logical_not(pred)


@_any_true_false.def_vmap
def _any_true_false_rule(axis_size, in_batched, pred):
    if not in_batched[0]:
        return _any_true_false(pred), (False, False)
    # Reduce over the vmapped axis and recurse, so an enclosing vmap reduces its own axis too.
    return (_any_true_false(jnp.any(pred))[0], _any_true_false(jnp.any(jnp.logical_not(pred)))[0]), (False, False)


def phase_cond(pred: jax.Array, true_fn: Callable, false_fn: Callable, *operands):
    """``lax.cond(pred, true_fn, false_fn, *operands)`` that stays a real branch under ``vmap`` when every vmapped
    run agrees on ``pred`` (plain ``lax.cond`` with a batched predicate computes both branches and selects).

    Under ``vmap`` the predicate is reduced over the run axis by a ``custom_vmap`` rule into "some run takes the
    true branch" and "some run takes the false branch"; each branch runs only if some run needs it, and the
    results are selected per run, so the answer is exact in every case and costs one branch when the runs agree
    (as they do in :func:`jaxrl.run.train`, where every run is at the same iteration)."""
    any_true, any_false = _any_true_false(pred)
    shapes = jax.eval_shape(true_fn, *operands)
    skip = lambda *ops: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    t = jax.lax.cond(any_true, true_fn, skip, *operands)
    f = jax.lax.cond(any_false, false_fn, skip, *operands)
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), t, f)


def gradient_step(tx, grads, opt_state, params):
    """One optimiser step on bare parameters: ``(params', opt_state')`` (:func:`~jaxrl.algos.train_state.apply_gradient`
    for callers that keep parameters and optimiser state apart)."""
    new = train_state.apply_gradient(tx, TrainState(params, opt_state), grads)
    return new.params, new.opt_state


def sac_actor_temperature_update(
    tx,
    actor: TrainState,
    temperature: TrainState,
    batch,
    key,
    *,
    actor_apply: Callable,
    critic_apply: Callable,
    critic_params: Any,
    target_entropy: float,
    actor_grads: Callable | None = None,
) -> tuple[TrainState, TrainState, dict]:
    """SAC's steps after the critic's, shared by every SAC-based algorithm (single-task SAC, PEARL, the offline SAC
    family): the actor against the freshly updated critic (:func:`jaxrl.losses.sac.sac_actor_loss`, or
    ``actor_grads(actor_params, alpha) -> (grads, metrics)`` in its place, e.g. CQL's imitation warm start), then the
    temperature (``temperature.params`` is ``log alpha``) toward ``target_entropy`` from the actor step's entropy.
    Returns ``(actor, temperature, metrics)``."""
    alpha = jnp.exp(temperature.params)
    if actor_grads is None:
        a_grads, a_metrics = jax.grad(sac_actor_loss, has_aux=True)(
            actor.params,
            batch,
            key,
            actor_apply=actor_apply,
            critic_apply=critic_apply,
            critic_params=critic_params,
            alpha=alpha,
        )
    else:
        a_grads, a_metrics = actor_grads(actor.params, alpha)
    actor = train_state.apply_gradient(tx, actor, a_grads)
    t_grad, t_metrics = jax.grad(sac_temperature_loss, has_aux=True)(
        temperature.params, -a_metrics["entropy"], target_entropy
    )
    return actor, train_state.apply_gradient(tx, temperature, t_grad), {**a_metrics, **t_metrics}


def sac_actor_temperature_step(tx, actor, actor_opt, log_alpha, alpha_opt, batch, key, **kwargs):
    """:func:`sac_actor_temperature_update` on bare parameters and optimiser states: ``(actor, actor_opt, log_alpha,
    alpha_opt, metrics)``."""
    actor_state, temperature, metrics = sac_actor_temperature_update(
        tx, TrainState(actor, actor_opt), TrainState(log_alpha, alpha_opt), batch, key, **kwargs
    )
    return actor_state.params, actor_state.opt_state, temperature.params, temperature.opt_state, metrics
