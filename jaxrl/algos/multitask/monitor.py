"""Per-task monitoring every multi-task algorithm shares: gradient conflict and the spread of task gradient norms.

Per-task training return and success ``[K]`` come from the episode trackers (``train_return_per_task``,
``train_success_per_task``, :func:`jaxrl.algos.multitask.common.task_metrics`) and the evaluation
(``eval_return`` / ``eval_success [K]``). This module adds what the per-task gradients ``g_1..g_K`` of a shared
network say, from their Gram matrix ``M_ij = g_i . g_j`` (:func:`jaxrl.grads.base.gram`, one ``K^2 P`` product):

* ``grad_cos_mean``: mean over pairs ``i < j`` of ``cos(g_i, g_j) = M_ij / (|g_i| |g_j|)``;
* ``grad_cos_min``: the most conflicting pair's cosine (PCGrad's conflict, Yu et al. 2020: ``cos < 0``);
* ``grad_conflict_frac``: the fraction of pairs with ``g_i . g_j < 0``;
* ``grad_norm_ratio``: ``max_k |g_k| / min_k |g_k|`` and ``grad_norm_cv``: ``std_k |g_k| / mean_k |g_k|``, the spread
  of the task gradients' magnitudes: the "winner-take-all" symptom (one task's gradient dominates the summed
  update; Yu et al. 2020's "large difference in gradient magnitudes");
* ``grad_norm_per_task``: ``|g_k|`` ``[K]``.

Each name carries the network's prefix: ``critic_`` / ``actor_`` (MT-SAC, MH-SAC), ``shared_`` (Distral's
``pi_0``), none for the on-policy methods (MT-PPO, TE-PPO: the PPO loss; MT-TRPO: the surrogate).

When: off-policy methods measure once per chunk, in ``evaluate``, on a fresh ``[K, batch_size]`` replay batch
(:func:`with_gradient_monitor`: one extra gradient evaluation per chunk, whatever ``monitor_conflicts`` says);
on-policy methods once per iteration, on one minibatch's worth of each task's rollout at the pre-update
parameters (:func:`monitored_learn`: ``1 / (num_epochs * num_minibatches)`` of an iteration's gradient work), or
on the whole rollout for MT-TRPO, whose per-task surrogate gradients cost one batch gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.algos.multitask.common import task_grads, task_index
from jaxrl.data import replay
from jaxrl.grads.base import cosine_from_gram, gram

STATS = ("grad_cos_mean", "grad_cos_min", "grad_conflict_frac", "grad_norm_ratio", "grad_norm_cv")
PER_TASK = "grad_norm_per_task"
NAMES = (*STATS, PER_TASK)
PREFIXES = ("", "critic_", "actor_", "shared_")
_MONITOR_STREAM = 0x6D6F6E  # fold-in tag: the monitor's batch never shares randomness with the evaluation


def is_monitor_metric(name: str) -> bool:
    """Whether ``name`` is one of this module's metrics (any prefix)."""
    return any(name == prefix + stat for prefix in PREFIXES for stat in NAMES)


def gradient_stats(per_task_grads: Any, prefix: str = "") -> dict[str, jax.Array]:
    """The statistics of the module docstring for per-task gradients (leaves ``[K, *param_shape]``), float32,
    always finite (zero gradients give cosine 0; ``K = 1`` gives cosine 1, no conflict, ratio 1)."""
    M = gram(per_task_grads)
    k = M.shape[0]
    norms = jnp.sqrt(jnp.maximum(jnp.diag(M), 0.0))
    upper = np.triu(np.ones((k, k), bool), k=1)
    pairs = max(k * (k - 1) // 2, 1)
    cos = cosine_from_gram(M)
    if k > 1:
        cos_mean = jnp.sum(jnp.where(upper, cos, 0.0)) / pairs
        cos_min = jnp.min(jnp.where(upper, cos, jnp.inf))
        conflict = jnp.sum((M < 0) & upper) / pairs
    else:
        cos_mean, cos_min, conflict = jnp.ones(()), jnp.ones(()), jnp.zeros(())
    top, bottom, mean = jnp.max(norms), jnp.min(norms), jnp.mean(norms)
    ratio = jnp.where(top > 0, top / jnp.maximum(bottom, 1e-12 * top), 1.0)
    cv = jnp.where(mean > 0, jnp.std(norms) / jnp.where(mean > 0, mean, 1.0), 0.0)
    values = (cos_mean, cos_min, conflict, ratio, cv, norms)
    return {f"{prefix}{name}": jnp.asarray(v, jnp.float32) for name, v in zip(NAMES, values)}


def sample_task_batch(buffer: replay.ReplayState, key: jax.Array, num_tasks: int, batch_size: int):
    """``batch_size`` transitions from each of the ``K`` per-task buffers (leaves ``[K, batch_size, ...]``)."""
    return jax.vmap(replay.sample, in_axes=(0, 0, None))(buffer, jax.random.split(key, num_tasks), batch_size)


def with_gradient_monitor(evaluate: Callable, diagnose: Callable) -> Callable:
    """``evaluate(state, key, num_episodes)`` plus ``diagnose(state, key) -> {prefix: per-task grads}``'s
    :func:`gradient_stats`, on a key of its own (the evaluation's outputs are unchanged)."""

    def monitored(state, key, num_episodes: int):
        out = evaluate(state, key, num_episodes)
        out = out if isinstance(out, dict) else {"eval_return": out}
        grads = diagnose(state, jax.random.fold_in(key, _MONITOR_STREAM))
        for prefix, g in grads.items():
            out = {**out, **gradient_stats(g, prefix)}
        return out

    return monitored


def sac_task_gradients(num_tasks: int, losses: tuple[Callable, Callable]) -> Callable:
    """MT-SAC's (and MH-SAC's) ``diagnose`` gradients: ``(nets, batch [K, B], key) -> {"critic_", "actor_"}`` per-task
    gradients of its losses ``(critic_loss_k, actor_loss_k)`` (:mod:`jaxrl.algos.multitask.mt_sac`'s signatures)."""
    critic_loss_k, actor_loss_k = losses

    def task_gradients(n, batch, key):
        alpha, (c_keys, a_keys) = jnp.exp(n.temperature.params), jax.random.split(key, (2, num_tasks))
        critic_args, actor_args = (
            (batch, task_index(num_tasks), c_keys, alpha),
            (batch, task_index(num_tasks), a_keys, alpha),
        )
        critic, _ = task_grads(critic_loss_k, n.critic.params, critic_args, (n.actor.params, n.critic.target), True)
        actor, _ = task_grads(actor_loss_k, n.actor.params, actor_args, (n.critic.params,), True)
        return {"critic_": critic, "actor_": actor}

    return task_gradients


def monitored_learn(learn: Callable, task_grads: Callable, regroup: Callable, samples: int) -> Callable:
    """An on-policy ``learn(train, data, key)`` whose metrics add :func:`gradient_stats` of
    ``task_grads(params, batch [K, samples, ...]) -> (grads [K, ...], metrics)`` at the pre-update parameters,
    ``batch`` the first ``samples`` of each task's share of ``regroup(data) [K, n, ...]``."""

    def learn_(train, data, key):
        batch = jax.tree.map(lambda x: x[:, :samples], regroup(data))
        grads, _ = task_grads(train.params, batch)
        stats = gradient_stats(grads)
        train, metrics = learn(train, data, key)
        return train, {**metrics, **stats}

    return learn_
