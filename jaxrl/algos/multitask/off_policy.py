"""The off-policy skeleton (:mod:`jaxrl.algos.off_policy`) for a suite of ``K`` tasks: MT-SAC, MH-SAC, Distral.

:func:`task_setup` checks the suite and builds the env (``num_envs / K`` envs per task); :func:`make_multitask`
builds the algorithm from ``init_nets``, ``act`` and ``update``: one replay buffer per task (a vmapped buffer state
``[K]``, transitions carry the task index as ``extras``), warm-up counted per task, the per-task training
return and success (:class:`TaskReturns`) as metrics, and once per chunk (in ``evaluate``) the gradient monitor of
:mod:`jaxrl.algos.multitask.monitor` on a fresh ``[K, batch_size]`` batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrl.algos.common import Algorithm
from jaxrl.algos.multitask import common as mt
from jaxrl.algos.multitask import monitor
from jaxrl.algos.off_policy import Hooks, State, example_transition, make_init, make_step
from jaxrl.config import ConfigError
from jaxrl.data import replay
from jaxrl.envs.multitask import evaluate_tasks, make_multitask_env
from jaxrl.envs.wrappers import action_dim, is_discrete


class TaskSetup(NamedTuple):
    num_tasks: int
    train_env: Any  # jaxrl.envs.multitask.MultiTaskEnv: num_envs / K envs per task, observations (s, omega)
    obs_dim: int  # with the context
    action_dim: int


class TaskReturns(NamedTuple):
    """The tracker of :func:`make_multitask`: each task's last finished training episode."""

    last_return: jax.Array  # [K]
    last_success: jax.Array  # [K]


def task_setup(config, env, env_params, name: str) -> TaskSetup:
    """The checks every multi-task off-policy algorithm needs, and its training env."""
    k = mt.check_num_tasks(env, name)
    if config.num_envs % k:
        raise ConfigError(
            f"{name}.Config.num_envs={config.num_envs} must be a multiple of the suite's {k} tasks "
            f"(e.g. --num-envs {k})"
        )
    if is_discrete(env.env, jax.tree.map(lambda x: x[0], env_params)):
        raise ConfigError(f"{name} needs a continuous (Box) action space (e.g. point-goal-4)")
    train_env = make_multitask_env(env, config.num_envs // k)
    n_obs = int(train_env.observation_space(env_params).shape[0])
    return TaskSetup(k, train_env, n_obs, action_dim(train_env, env_params))


def _track_tasks(num_tasks: int):
    def track(tracker: TaskReturns, info):
        done = mt.split_tasks(info["episode_done"], num_tasks)
        last_return = mt.update_last_episode(
            tracker.last_return, mt.split_tasks(info["episode_return"], num_tasks), done
        )
        success = mt.split_tasks(info["episode_success"].astype(jnp.float32), num_tasks)
        last_success = mt.update_last_episode(tracker.last_success, success, done)
        return TaskReturns(last_return, last_success), mt.task_metrics(last_return, last_success)

    return track


def make_multitask(
    config,
    setup: TaskSetup,
    env,
    env_params,
    *,
    init_nets: Callable,
    num_net_keys: int,
    act: Callable,
    update: Callable,
    task_gradients: Callable,
    evaluate: Callable | None = None,
) -> Algorithm:
    """The algorithm of ``init_nets(*keys) -> nets``, ``act(state, obs, key, deterministic=False, task_id=None)``
    and ``update(buffer, nets, key)``; ``evaluate`` is per task (:func:`jaxrl.envs.multitask.evaluate_tasks`)
    unless given, and adds, once per chunk, the gradient statistics of :mod:`jaxrl.algos.multitask.monitor` of
    ``task_gradients(nets, batch [K, batch_size], key) -> {prefix: per-task grads [K, ...]}`` on a fresh batch
    from the per-task buffers."""
    k, train_env = setup.num_tasks, setup.train_env
    example = example_transition(setup.obs_dim, setup.action_dim, jnp.zeros((), jnp.int32))

    def init_all(*keys):
        buffer = jax.vmap(lambda _: replay.init(example, config.buffer_size))(mt.task_index(k))
        return init_nets(*keys), buffer

    hooks = Hooks(
        policy=lambda state, obs, key: act(state, obs, key, task_id=train_env.task_ids),
        update=update,
        add=lambda buffer, tr: jax.vmap(replay.add)(buffer, mt.split_tasks(tr, k)),
        fill=lambda buffer: buffer.size[0],
        extras=lambda info: info["task_id"],
        track=_track_tasks(k),
    )
    zeros = jnp.zeros((k,), jnp.float32)

    def evaluate_policy(state: State, key, num_episodes: int):
        return evaluate_tasks(
            env, env_params, lambda obs, kk: act(state, obs, kk, deterministic=True), key, num_episodes
        )

    def diagnose(state: State, key):
        batch_key, grad_key = jax.random.split(key)
        batch = monitor.sample_task_batch(state.buffer, batch_key, k, config.batch_size)
        return task_gradients(state.nets, batch, grad_key)

    return Algorithm(
        init=make_init(train_env, env_params, init_all, num_net_keys, TaskReturns(zeros, zeros)),
        step=make_step(
            train_env,
            env_params,
            hooks,
            learning_starts=config.learning_starts,
            updates_per_step=config.updates_per_step,
        ),
        act=act,
        evaluate=monitor.with_gradient_monitor(evaluate or evaluate_policy, diagnose),
        config=config,
        env_steps_per_iteration=config.env_steps_per_iteration,
    )
