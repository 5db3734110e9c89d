"""Multi-task PPO (MT-PPO): one PPO agent on the state ``(s, omega)`` of every task of a suite.

Multi-task RL is single-task RL in the MDP with the known task context appended to the state. MT-PPO is PPO
(:mod:`jaxrl.algos.single.ppo`, unchanged maths: the loss is :func:`jaxrl.losses.ppo.ppo_loss`) run on a
:class:`jaxrl.envs.multitask.MultiTaskEnv`: ``num_envs = K * envs_per_task`` copies, copy ``i`` on task
``i // envs_per_task``, observations ``concat(s, omega_k)``. One shared actor and critic collect data from all
tasks; a rollout's minibatches mix tasks, so the loss is the (scaled) sum over tasks of their PPO losses.

Monitoring: every step's metrics add the per-task training return ``[K]`` (the last finished episode of each
task), its mean and the best-minus-worst spread (:func:`jaxrl.algos.multitask.common.task_metrics`).
``evaluate`` returns ``{"eval_return": [K], "eval_success": [K], "eval_return_min", "eval_return_spread"}``
(deterministic policy, ``num_episodes`` episodes per task).

    suite, params = jaxrl.envs.make("cartpole-params-4")
    algo = mt_ppo.make(mt_ppo.Config(num_envs=16), suite, params)

Gradients: with ``aggregator="sum"`` (default) and ``monitor_conflicts=False`` one PPO step follows the gradient
of the mixed minibatch's loss. Otherwise every minibatch holds an equal share of each task's samples, and the
per-task gradients of ``L_k / K`` (``jax.vmap(jax.grad)`` over the task axis; ``L_k`` the PPO loss on task ``k``'s
share, so "sum" keeps the mixed batch's scale) pass through ``optax.chain(aggregator, optimizer)``; the metrics
then add ``num_conflicts`` and ``mean_cosine`` of the task gradients (:mod:`jaxrl.grads`). These pieces
(:class:`TaskGradientConfig`, :func:`ppo_learner`) serve TE-PPO and MT-TRPO too.
Every iteration, whatever the aggregator, the metrics add :mod:`jaxrl.algos.multitask.monitor`'s ``grad_*``
statistics (cosines, conflict fraction, spread of the task gradient norms) of the per-task loss gradients on one
minibatch's share of each task's rollout, at the pre-update parameters.
``network`` (:mod:`jaxrl.nets.multitask`): PPO's MLPs (default), Soft Modularization, CARE, MOORE or PaCo (without
the reset: MT-SAC has it), the task read off the observation's context.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl.algos import on_policy, train_state
from jaxrl.algos.base_config import OnlineConfig
from jaxrl.algos.common import Algorithm
from jaxrl.algos.multitask import common as mt
from jaxrl.algos.multitask import monitor
from jaxrl.algos.multitask.architecture import ArchitectureConfig
from jaxrl.algos.single import ppo
from jaxrl.config import ConfigError, config, config_name, static
from jaxrl.envs.multitask import MultiTaskEnv, evaluate_tasks, make_multitask_env
from jaxrl.envs.wrappers import Wrapper

__all__ = [
    "Config",
    "make",
    "TaskGradientConfig",
    "TaskEpisodeTracker",
    "TrackerState",
    "check_suite",
    "make_task_evaluate",
    "ppo_learner",
]


@config
class TaskGradientConfig(OnlineConfig):
    """Per-task gradients combined by a :mod:`jaxrl.grads` aggregator (multi-task algorithms)."""

    aggregator: str = static("sum", choices=mt.AGGREGATORS, help="task-gradient aggregation (jaxrl.grads)")
    monitor_conflicts: bool = static(
        False, choices=(True, False), help="per-task gradients also with aggregator=sum, for the conflict metrics"
    )

    @property
    def per_task_gradients(self) -> bool:
        return self.aggregator != "sum" or self.monitor_conflicts


@config
class Config(ArchitectureConfig, ppo.Config, TaskGradientConfig):
    num_envs: int = static(16, low=1, help="parallel environments in all; a multiple of the number of tasks")
    total_env_steps: int = static(2_000_000, low=1, help="training length in environment steps (all tasks)")


@struct.dataclass
class TrackerState:
    inner: Any
    last_return: jax.Array  # [K] return of each task's last finished training episode
    last_success: jax.Array  # [K]


class TaskEpisodeTracker(Wrapper):
    """Keeps each task's last finished episode return and success ``[K]`` in the env state (blocked tasks)."""

    def __init__(self, env: MultiTaskEnv):
        super().__init__(env)
        self.num_tasks = env.num_tasks

    def reset(self, key, params=None):
        obs, inner = self._env.reset(key, params)
        zeros = jnp.zeros((self.num_tasks,), jnp.float32)
        return obs, TrackerState(inner, zeros, zeros)

    def step(self, key, state, action, params=None):
        obs, inner, reward, terminated, truncated, info = self._env.step(key, state.inner, action, params)
        k = self.num_tasks
        done = mt.split_tasks(info["episode_done"], k)
        last_return = mt.update_last_episode(state.last_return, mt.split_tasks(info["episode_return"], k), done)
        last_success = mt.update_last_episode(
            state.last_success, mt.split_tasks(info["episode_success"].astype(jnp.float32), k), done
        )
        return obs, TrackerState(inner, last_return, last_success), reward, terminated, truncated, info


def check_suite(config, env, name: str) -> tuple[int, int]:
    """``(K, envs per task)`` after the checks an on-policy multi-task algorithm needs."""
    k = mt.check_num_tasks(env, name)
    if config.num_envs % k:
        raise ConfigError(
            f"{name}.Config.num_envs={config.num_envs} must be a multiple of the suite's {k} tasks "
            f"(e.g. --num-envs {4 * k})"
        )
    if getattr(config, "normalize_observations", False):
        raise ConfigError(f"{name}.Config.normalize_observations=True is not supported for multi-task suites")
    return k, config.num_envs // k


def make_train_env(env, num_envs_per_task: int) -> TaskEpisodeTracker:
    """The suite's multi-task env (rescaled actions, episode statistics, blocked tasks) with per-task tracking."""
    return TaskEpisodeTracker(make_multitask_env(env, num_envs_per_task))


def make_task_evaluate(env, env_params, act):
    """``evaluate(state, key, num_episodes)`` per task: ``act(state, obs, key, deterministic=True)``."""

    def evaluate(state, key, num_episodes: int):
        out = evaluate_tasks(
            env, env_params, lambda obs, kk: act(state, obs, kk, deterministic=True), key, num_episodes
        )
        ret = out["eval_return"]
        return {**out, "eval_return_min": jnp.min(ret), "eval_return_spread": jnp.max(ret) - jnp.min(ret)}

    return evaluate


def tracker_metrics(env_state: TrackerState) -> dict:
    return mt.task_metrics(env_state.last_return, env_state.last_success)


def conflict_metrics(aggregator_state) -> dict:
    return {
        "num_conflicts": aggregator_state.num_conflicts.astype(jnp.float32),
        "mean_cosine": aggregator_state.mean_cosine,
    }


def task_gradients(loss, num_tasks: int):
    """``(params, batch [K, ...]) -> (grads [K, ...], metrics [K])`` of ``loss(params, batch_k) / K``."""

    def loss_k(params, batch):
        total, metrics = loss(params, batch)
        return total / num_tasks, metrics

    return jax.vmap(jax.grad(loss_k, has_aux=True), in_axes=(None, 0))


def by_task(tree, num_tasks: int):
    """``[T, N, ...] -> [K, T * N / K, ...]`` for blocked task assignment (env ``i`` on task ``i // (N / K)``)."""

    def regroup(x):
        x = x.reshape(x.shape[0], num_tasks, -1, *x.shape[2:])
        return jnp.swapaxes(x, 0, 1).reshape(num_tasks, -1, *x.shape[3:])

    return jax.tree.map(regroup, tree)


def task_gradient_learn(loss, tx, config, num_tasks: int):
    """PPO's ``learn`` with per-task gradients: every minibatch ``[K, b, ...]`` holds ``b`` samples of each task;
    ``tx = chain(aggregator, optimizer)`` gets a fresh key per update."""
    grad_fn = task_gradients(loss, num_tasks)

    def update(carry, batch):
        train, key = carry
        key, agg_key = jax.random.split(key)
        grads, metrics = grad_fn(train.params, batch)
        train = train_state.apply_gradient(tx, train, grads, key=agg_key)
        return (train, key), {**jax.tree.map(jnp.mean, metrics), **conflict_metrics(train.opt_state[0])}

    def learn(train, data, key):
        perm_key, agg_key = jax.random.split(key)
        data = by_task(data, num_tasks)
        (train, _), metrics = on_policy.minibatch_epochs(
            update, (train, agg_key), data, perm_key, config.num_epochs, config.num_minibatches, axis=1
        )
        return train, metrics

    return learn


def ppo_learner(config, num_tasks: int):
    """``learner(loss) -> (tx, learn)`` for :func:`jaxrl.algos.single.ppo.make`: PPO's own, or with per-task
    gradients through ``optax.chain(aggregator, PPO's optimiser)`` when ``config.per_task_gradients``."""

    per_task = config.env_steps_per_iteration // num_tasks
    if config.per_task_gradients and per_task % config.num_minibatches:
        raise ConfigError(
            f"{config_name(config)}: with per-task gradients each task's num_steps * num_envs / K = {per_task} "
            f"samples must be divisible by num_minibatches = {config.num_minibatches}"
        )

    def learner(loss):
        if not config.per_task_gradients:
            tx, learn = ppo.ppo_learner(config)(loss)
        else:
            tx = optax.chain(mt.make_aggregator(config.aggregator, num_tasks), ppo.make_optimizer(config))
            learn = task_gradient_learn(loss, tx, config, num_tasks)
        samples = max(per_task // config.num_minibatches, 1)  # one minibatch's share of each task
        regroup = lambda data: by_task(data, num_tasks)
        return tx, monitor.monitored_learn(learn, task_gradients(loss, num_tasks), regroup, samples)

    return learner


def make(config: Config, env, env_params) -> Algorithm:
    k, m = check_suite(config, env, "mt_ppo")
    spec = mt.arch_spec(config, k, env)
    train_env = make_train_env(env, m)
    return ppo.make(
        config,
        env,
        env_params,
        train_env=train_env,
        make_evaluate_fn=lambda act: make_task_evaluate(env, env_params, act),
        learner=ppo_learner(config, k),
        metrics_fn=tracker_metrics,
        # a multi-task architecture's policy and value networks (jaxrl.nets.multitask); None: the config's MLPs
        networks=None if spec is None else mt.make_task_actor_critic(spec, train_env, env_params, env.contexts),
    )
