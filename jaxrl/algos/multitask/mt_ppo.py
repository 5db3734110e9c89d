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
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxrl.algos.common import Algorithm
from jaxrl.algos.multitask import common as mt
from jaxrl.algos.single import ppo
from jaxrl.config import ConfigError, config, static
from jaxrl.envs.multitask import MultiTaskEnv, evaluate_tasks, make_multitask_env
from jaxrl.envs.wrappers import Wrapper

__all__ = ["Config", "make", "TaskEpisodeTracker", "TrackerState", "check_suite", "make_task_evaluate"]


@config
class Config(ppo.Config):
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


def make(config: Config, env, env_params) -> Algorithm:
    _, m = check_suite(config, env, "mt_ppo")
    train_env = make_train_env(env, m)
    base = ppo.make(
        config,
        env,
        env_params,
        train_env=train_env,
        make_evaluate_fn=lambda act: make_task_evaluate(env, env_params, act),
    )

    def step(state):
        state, metrics = base.step(state)
        return state, {**metrics, **tracker_metrics(state.env_state)}

    return base._replace(step=step)
