"""The multi-task env: K tasks of a suite stepped together, each observation extended by its task's context.

Multi-task RL is single-task RL in a modified MDP: the known task context omega is appended to the state,
``s -> (s, omega)``. :class:`MultiTaskEnv` runs ``num_envs = K * envs_per_task`` copies of one single-task env;
copy ``i`` runs task ``task_ids[i]`` (blocked by default: ``i // envs_per_task``, so per-task arrays are a
reshape ``[N] -> [K, envs_per_task]``; any assignment that covers every task can be given). Each copy uses its
own task's params (gathered from the stacked suite params ``[K]``), its observation is
``concat(obs, contexts[task_ids[i]])`` and ``info["task_id"]`` carries the task index, so a replay batch holds
``(s, a, s', task)``.

It is a vectorised env over the gymnax >= 1.0 protocol: ``reset(key, params) -> (obs [N, O+D], state)`` and
``step(key, state, action [N, ...], params) -> (obs, state, reward [N], terminated [N], truncated [N], info)``
where ``params`` are the suite's stacked params (every leaf ``[K, ...]``). Besides the inner env's info it adds
``task_id [N]``, ``success [N]`` (the inner env's ``info["success"]`` or the suite's ``success_fn``; zeros where
neither exists) and ``episode_success [N]`` (success at any step of the episode so far, valid where the episode
ended), and ``final_observation`` gets the context too.

    suite, params = jaxrl.envs.make("point-goal-4")
    env = make_multitask_env(suite, envs_per_task=2)       # rescaled actions, episode statistics, 8 copies
    obs, state = env.reset(key, params)                     # obs [8, 2 + 4]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import spaces

from jaxrl.envs.wrappers import EpisodeStats, RescaleAction, Wrapper

__all__ = [
    "MultiTaskEnv",
    "MultiTaskState",
    "make_multitask_env",
    "blocked_task_ids",
    "round_robin_task_ids",
    "append_context",
    "check_task_ids",
    "evaluate_tasks",
    "infer_task_id",
    "horizon_of",
]


def blocked_task_ids(num_tasks: int, envs_per_task: int) -> np.ndarray:
    """``[0]*m + [1]*m + ...``: env ``i`` runs task ``i // envs_per_task`` (per-task arrays = reshape [K, m])."""
    if num_tasks < 1 or envs_per_task < 1:
        raise ValueError(f"num_tasks ({num_tasks}) and envs_per_task ({envs_per_task}) must be >= 1")
    return np.repeat(np.arange(num_tasks, dtype=np.int32), envs_per_task)


def round_robin_task_ids(num_tasks: int, num_envs: int) -> np.ndarray:
    """Env ``i`` runs task ``i % num_tasks``."""
    if num_tasks < 1 or num_envs < 1:
        raise ValueError(f"num_tasks ({num_tasks}) and num_envs ({num_envs}) must be >= 1")
    return (np.arange(num_envs) % num_tasks).astype(np.int32)


def check_task_ids(task_ids, num_tasks: int) -> np.ndarray:
    """Concrete task indices as int32 ``[N]``; an index outside ``0..K-1`` raises ``IndexError``."""
    ids = np.asarray(task_ids)
    if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"task_ids must be a non-empty 1-d integer array, got shape {ids.shape} dtype {ids.dtype}")
    bad = (ids < 0) | (ids >= num_tasks)
    if bad.any():
        raise IndexError(
            f"task index {int(ids[bad][0])} is out of range: the suite has {num_tasks} tasks (0..{num_tasks - 1})"
        )
    return ids.astype(np.int32)


def _check_contexts(contexts, num_tasks: int | None = None) -> jax.Array:
    contexts = jnp.asarray(contexts, jnp.float32)
    if contexts.ndim != 2 or (num_tasks is not None and contexts.shape[0] != num_tasks):
        want = f"[{num_tasks}, D]" if num_tasks is not None else "[K, D]"
        raise ValueError(f"contexts (omega) must have shape {want}, one row per task; got {contexts.shape}")
    return contexts


def append_context(obs: jax.Array, omega: jax.Array, context_dim: int | None = None) -> jax.Array:
    """``concat(obs, omega)`` on the last axis (``omega`` broadcast over ``obs``'s batch axes).

    ``context_dim`` (when given) is the size the agent was built for: an omega of another size raises
    ``ValueError`` (a shape error here, not a silent mis-sized network input later).
    """
    omega = jnp.asarray(omega, jnp.float32)
    if omega.ndim == 0:
        raise ValueError("omega must be a vector [D] (or [..., D]), got a scalar")
    if context_dim is not None and omega.shape[-1] != context_dim:
        raise ValueError(f"omega has size {omega.shape[-1]}, expected context_dim={context_dim}")
    omega = jnp.broadcast_to(omega, (*obs.shape[:-1], omega.shape[-1]))
    return jnp.concatenate([obs.astype(jnp.float32), omega], axis=-1)


def infer_task_id(obs_with_context: jax.Array, contexts: jax.Array) -> jax.Array:
    """The task whose context is nearest to the last ``D`` entries of an observation (exact for one-hot IDs)."""
    d = contexts.shape[-1]
    omega = obs_with_context[..., -d:]
    dist = jnp.sum(jnp.square(omega[..., None, :] - contexts), axis=-1)
    return jnp.argmin(dist, axis=-1).astype(jnp.int32)


def horizon_of(params: Any, default: int = 1000) -> int:
    """The longest episode over the (stacked) tasks' ``max_steps_in_episode`` (concrete), else ``default``."""
    value = getattr(params, "max_steps_in_episode", None)
    if value is None:
        return default
    return int(np.max(np.asarray(value)))


@struct.dataclass
class MultiTaskState:
    inner: Any  # the per-copy inner env states, leaves [N, ...]
    episode_success: jax.Array  # [N] bool: success at any step of the running episode


class MultiTaskEnv(Wrapper):
    """``N`` copies of a single-task env; copy ``i`` runs task ``task_ids[i]`` with observation ``(s, omega)``.

    ``env``: the single-task env (already wrapped as wanted, e.g. ``RescaleAction`` + ``EpisodeStats``);
    ``contexts``: ``[K, D]`` omega per task; ``task_ids``: ``[N]`` concrete task index per copy;
    ``success_fn(info) -> bool`` (per copy) where the inner env reports no ``info["success"]``.
    """

    def __init__(self, env, contexts, task_ids, success_fn: Callable | None = None):
        super().__init__(env)
        self.contexts = _check_contexts(contexts)
        self.num_tasks = int(self.contexts.shape[0])
        self.context_dim = int(self.contexts.shape[1])
        self.task_ids_np = check_task_ids(task_ids, self.num_tasks)
        self.task_ids = jnp.asarray(self.task_ids_np)
        self.num_envs = int(self.task_ids_np.size)
        self.success_fn = success_fn

    def _params(self, params):
        leaves = jax.tree.leaves(params)
        if not leaves or any(np.ndim(x) == 0 or np.shape(x)[0] != self.num_tasks for x in leaves):
            shapes = [np.shape(x) for x in leaves[:3]]
            raise ValueError(
                f"MultiTaskEnv needs the suite's stacked task params (every leaf [K={self.num_tasks}, "
                f"...]); got leaf shapes {shapes}"
            )
        return jax.tree.map(lambda x: x[self.task_ids], params)

    def _omega(self):
        return self.contexts[self.task_ids]  # [N, D]

    def reset(self, key, params=None):
        per_env = self._params(params)
        keys = jax.random.split(key, self.num_envs)
        obs, inner = jax.vmap(self._env.reset)(keys, per_env)
        return append_context(obs, self._omega()), MultiTaskState(inner, jnp.zeros((self.num_envs,), bool))

    def step(self, key, state, action, params=None):
        per_env = self._params(params)
        keys = jax.random.split(key, self.num_envs)
        obs, inner, reward, terminated, truncated, info = jax.vmap(self._env.step)(keys, state.inner, action, per_env)
        if "success" in info:
            success = info["success"].astype(bool)
        elif self.success_fn is not None:
            success = jax.vmap(self.success_fn)(info).astype(bool)
        else:
            success = jnp.zeros((self.num_envs,), bool)
        done = jnp.logical_or(terminated, truncated)
        ep_success = jnp.logical_or(state.episode_success, success)
        omega = self._omega()
        info = {
            **info,
            "task_id": self.task_ids,
            "success": success,
            "episode_success": ep_success,
            "final_observation": append_context(info["final_observation"], omega),
        }
        new_state = MultiTaskState(inner, jnp.where(done, False, ep_success))
        return append_context(obs, omega), new_state, reward, terminated, truncated, info

    def observation_space(self, params=None):
        one = None if params is None else jax.tree.map(lambda x: x[0], params)
        inner = self._env.observation_space(one)
        return spaces.Box(-jnp.inf, jnp.inf, (int(inner.shape[0]) + self.context_dim,), jnp.float32)

    def action_space(self, params=None):
        one = None if params is None else jax.tree.map(lambda x: x[0], params)
        return self._env.action_space(one)

    def per_task(self, x: jax.Array) -> jax.Array:
        """``[N, ...] -> [K, envs_per_task, ...]`` (blocked assignment only)."""
        m = self.num_envs // self.num_tasks
        if not np.array_equal(self.task_ids_np, blocked_task_ids(self.num_tasks, m)):
            raise ValueError("per_task needs the blocked task assignment (env i runs task i // envs_per_task)")
        return x.reshape(self.num_tasks, m, *x.shape[1:])


def _suite_parts(suite) -> tuple[Any, jax.Array, Callable | None]:
    env = getattr(suite, "env", None)
    contexts = getattr(suite, "contexts", None)
    if env is None or contexts is None:
        raise TypeError(f"expected a TaskSuite (with .env and .contexts), got {type(suite).__name__}")
    return env, contexts, getattr(suite, "success_fn", None)


def make_multitask_env(
    suite, envs_per_task: int = 1, *, task_ids=None, episode_stats: bool = True, rescale_actions: bool = True
) -> MultiTaskEnv:
    """The standard multi-task training stack of a :class:`~jaxrl.tasks.base.TaskSuite`:
    base env -> actions rescaled to ``[-1, 1]`` (Box actions) -> episode statistics -> ``K * envs_per_task``
    copies (blocked task assignment unless ``task_ids`` is given) with ``(s, omega)`` observations."""
    env, contexts, success_fn = _suite_parts(suite)
    k = int(np.shape(contexts)[0])
    one = jax.tree.map(lambda x: x[0], suite.params)
    space = env.action_space(one)
    if rescale_actions and isinstance(space, spaces.Box):
        env = RescaleAction(env, space.low, space.high)
    if episode_stats:
        env = EpisodeStats(env)
    ids = blocked_task_ids(k, envs_per_task) if task_ids is None else task_ids
    return MultiTaskEnv(env, contexts, ids, success_fn)


def evaluate_tasks(
    suite, params, act: Callable, key: jax.Array, episodes_per_task: int, horizon: int | None = None
) -> dict[str, jax.Array]:
    """Per-task evaluation of ``act(obs_with_context [N, O+D], key) -> action [N, ...]``.

    Runs ``episodes_per_task`` parallel episodes of every task for ``horizon`` steps; each copy counts only its
    first episode. Returns ``{"eval_return": [K], "eval_success": [K]}`` (mean undiscounted return; fraction of
    episodes with success at any step).
    """
    env = make_multitask_env(suite, episodes_per_task, episode_stats=False)
    horizon = horizon_of(params) if horizon is None else int(horizon)
    reset_key, run_key = jax.random.split(key)
    obs, env_state = env.reset(reset_key, params)
    n = env.num_envs

    def one_step(carry, step_key):
        env_state, obs, ret, success, alive = carry
        act_key, env_key = jax.random.split(step_key)
        action = act(obs, act_key)
        obs, env_state, reward, terminated, truncated, info = env.step(env_key, env_state, action, params)
        ret = ret + reward * alive
        success = jnp.logical_or(success, jnp.logical_and(info["success"], alive > 0))
        alive = alive * (1.0 - jnp.logical_or(terminated, truncated).astype(jnp.float32))
        return (env_state, obs, ret, success, alive), None

    init = (env_state, obs, jnp.zeros(n), jnp.zeros(n, bool), jnp.ones(n))
    (_, _, returns, success, _), _ = jax.lax.scan(one_step, init, jax.random.split(run_key, horizon))
    return {
        "eval_return": env.per_task(returns).mean(axis=1),
        "eval_success": env.per_task(success.astype(jnp.float32)).mean(axis=1),
    }
