"""Pieces the meta-RL algorithms share: task-family checks and the meta step skeleton (gather tasks, adapt, outer
step). Episodes on one task are in :mod:`.episodes`, PEARL's per-task data in :mod:`.task_context`, MAML's memory
budget in :mod:`.budget`.

Meta-RL algorithms take a *task family* where other algorithms take an env: an object with ``env`` (the
single-task env, gymnax protocol) and ``sample(key, n)`` (env params with a leading task axis ``[n]``). The
``env_params`` handed to ``make`` are the **held-out meta-test tasks** (leading axis ``[K_test]``): training
always samples fresh tasks from the family, evaluation adapts to each held-out task from scratch.

Every meta-learner's ``step`` has one shape (:func:`meta_step`): a first phase gathers tasks (MAML: fresh tasks
from the family; PEARL: the next training tasks, with their prior-policy context and posterior episodes), a second
learns from them (MAML: per-task inner adaptation, then the ProMP, TRPO or Reptile outer step; PEARL: the
off-policy updates of critic, encoder, actor and temperature).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.algos import on_policy, train_state
from jaxrl.algos.train_state import TrainState
from jaxrl.config import ConfigError
from jaxrl.envs.wrappers import Wrapper, action_dim, is_discrete, obs_dim


def check_family(algo: str, env: Any, env_params: Any) -> None:
    """Raise a clear ``ValueError`` unless ``env`` is a task family and ``env_params`` a batch of tasks."""
    if not (hasattr(env, "sample") and hasattr(env, "env")):
        raise ValueError(
            f"{algo} is a meta-RL algorithm: env must be a task family with `.env` and "
            f"`.sample(key, n)` (e.g. jaxrl.envs.make('bandit')), got {type(env).__name__}"
        )
    leaves = jax.tree.leaves(env_params)
    if not leaves or np.ndim(leaves[0]) == 0:
        raise ValueError(
            f"{algo}: env_params must be held-out tasks with a leading task axis [K], as returned by "
            f"family.sample(key, K)"
        )
    if np.shape(leaves[0])[0] < 1:
        raise ConfigError(f"{algo}: the held-out task batch is empty (0 tasks); sample at least one task")


class FamilySpec(NamedTuple):
    """A checked task family: ``family`` (``.sample``), its single-task ``env``, one held-out task and the sizes."""

    family: Any
    env: Any
    one_task: Any
    obs_dim: int
    action_dim: int


def continuous_family(algo: str, env: Any, env_params: Any, horizon: int, why: str) -> FamilySpec:
    """:func:`check_family`, then a ``ConfigError`` unless the actions are continuous (``why``: what needs them) and
    the tasks' episode length is ``horizon`` (the config's)."""
    check_family(algo, env, env_params)
    one_task = jax.tree.map(lambda x: x[0], env_params)
    if is_discrete(env.env, one_task):
        raise ConfigError(f"{algo} needs a continuous (Box) action space: {why}")
    tasks_horizon = episode_horizon(env_params, default=horizon)
    if tasks_horizon != horizon:
        raise ConfigError(
            f"{algo}.Config.horizon={horizon} does not match the tasks' episode length "
            f"{tasks_horizon}: set {algo}.Config(horizon={tasks_horizon})"
        )
    return FamilySpec(env, env.env, one_task, obs_dim(env.env, one_task), action_dim(env.env, one_task))


class TaskBoxActions(Wrapper):
    """The agent acts in ``[-1, 1]^d``; actions are clipped and mapped affinely onto the action box of the task
    whose params ``step`` receives (a task family's box may depend on the task)."""

    def step(self, key, state, action, params=None):
        space = self._env.action_space(params)
        low, high = jnp.asarray(space.low, jnp.float32), jnp.asarray(space.high, jnp.float32)
        action = low + (jnp.clip(action, -1.0, 1.0) + 1.0) * 0.5 * (high - low)
        return self._env.step(key, state, action, params)


def per_task(fn: Callable, tasks: Any, key: jax.Array) -> Any:
    """``fn(task, key)`` on every task of ``tasks`` (leading axis ``[K]``), one key each (``split(key, K)``)."""
    return jax.vmap(fn)(tasks, jax.random.split(key, num_tasks(tasks)))


def meta_step(state: Any, gather: Callable, learn: Callable) -> tuple[Any, dict]:
    """One meta-training iteration: ``key, gather_key, learn_key = split(state.key, 3)``; ``gather(state,
    gather_key) -> (tasks, metrics)`` picks the tasks (and, for PEARL, collects their data); ``learn(state, tasks,
    learn_key) -> (state, metrics)`` adapts to them and takes the outer step. The key and ``iteration`` advance
    here."""
    key, gather_key, learn_key = jax.random.split(state.key, 3)
    tasks, gather_metrics = gather(state, gather_key)
    new, metrics = learn(state, tasks, learn_key)
    return new.replace(key=key, iteration=state.iteration + 1), {**metrics, **gather_metrics}


def num_tasks(env_params: Any) -> int:
    return int(np.shape(jax.tree.leaves(env_params)[0])[0])


def episode_horizon(env_params: Any, default: int = 100) -> int:
    """The (static) episode length of a batch of tasks, read from ``max_steps_in_episode`` (concrete)."""
    value = getattr(env_params, "max_steps_in_episode", None)
    if value is None:
        return default
    return int(np.max(np.asarray(value)))


def inner_loop(params: Any, key: jax.Array, steps: int, rollout: Callable, to_batch: Callable, inner_step: Callable):
    """Gradient-based adaptation on fresh data (MAML's inner loop), all without gradient to ``params``: from
    ``theta^0 = params``, for k < ``steps``: ``D^k = rollout(theta^k, key_k)``, ``(theta^{k+1}, aux_k) =
    inner_step(theta^k, to_batch(D^k))``; then the adapted policy's ``D^steps``. Returns ``([D^0..D^steps],
    [batch^0..], theta^steps, [aux^0..])``."""
    keys = jax.random.split(key, steps + 1)
    trajectories, batches, auxs, p = [], [], [], jax.lax.stop_gradient(params)
    for k in range(steps):
        trajectories.append(rollout(p, keys[k]))
        batches.append(to_batch(trajectories[-1]))
        p, aux = inner_step(p, batches[-1])
        auxs.append(aux)
    trajectories.append(rollout(p, keys[steps]))
    return trajectories, batches, p, auxs


def adaptation_curve(params: Any, key: jax.Array, steps: int, episode_return: Callable, adapt_step: Callable):
    """Meta-test on one task: the return ``episode_return(theta^k, key)`` after k = 0..``steps`` adaptation steps
    ``theta^{k+1} = adapt_step(theta^k, key)`` (each on fresh data), ``[steps + 1]``."""
    keys = jax.random.split(key, 2 * (steps + 1))
    returns = []
    for i in range(steps + 1):
        returns.append(episode_return(params, keys[2 * i]))
        if i < steps:
            params = adapt_step(params, keys[2 * i + 1])
    return jnp.stack(returns)


def outer_epochs(tx: Any, state: TrainState, first_grads: Any, loss: Callable, num_epochs: int) -> TrainState:
    """``num_epochs`` optimiser steps on ``loss(params)``: the first along the mean of the per-task gradients
    ``first_grads`` (leading task axis, computed with the data), the others along ``grad loss``."""

    def epoch(state, _):
        value, grads = jax.value_and_grad(loss)(state.params)
        return train_state.apply_gradient(tx, state, grads), value

    state = train_state.apply_gradient(tx, state, jax.tree.map(lambda g: jnp.mean(g, axis=0), first_grads))
    if num_epochs > 1:
        state, _ = jax.lax.scan(epoch, state, None, length=num_epochs - 1)
    return state


def make_trial_evaluate(run_trial: Callable, agent: Any, config: Any, env_params: Any) -> Callable:
    """``evaluate(state, key, num_episodes)`` of a trial-based learner (RL², VariBAD): ``num_episodes`` fresh
    trials on every held-out task, each played by ``run_trial(agent, config, params, task, key, deterministic)``
    from the learner's prior (a trial has ``reward [T]`` and ``episode [T]``, each step's episode index)."""

    def evaluate(state: Any, key: jax.Array, num_episodes: int):
        play = lambda task, k: run_trial(agent, config, state.params, task, k, config.eval_deterministic)
        return evaluate_trials(play, env_params, key, num_episodes, config.episodes_per_trial)

    return evaluate


def evaluate_trials(play: Callable, env_params: Any, key: jax.Array, num_episodes: int, episodes_per_trial: int):
    """The meta-test of :func:`make_trial_evaluate` for any ``play(task, key) -> trial``. Returns the mean trial
    return (``eval_return``) and the mean return of each episode of a trial (``adaptation [E]``)."""
    k_test = jax.tree.leaves(env_params)[0].shape[0]
    keys = jax.random.split(key, (k_test, num_episodes))
    trials = jax.vmap(lambda task, ks: jax.vmap(play, in_axes=(None, 0))(task, ks))(env_params, keys)
    # per-episode returns: [K, N, T] rewards binned by episode index -> [E]
    bins = jax.nn.one_hot(trials.episode, episodes_per_trial, dtype=jnp.float32)  # [K, N, T, E]
    per_episode = jnp.einsum("knt,knte->e", trials.reward, bins) / (k_test * num_episodes)
    return {"eval_return": jnp.mean(jnp.sum(trials.reward, axis=-1)), "adaptation": per_episode}


def trial_advantages(reward: jax.Array, value: jax.Array, discount: Any, gae_lambda: Any):
    """GAE over whole trials ``[T, B]`` (RL², VariBAD): the trial is the episode of the BAMDP, so it is discounted
    throughout and ends, without bootstrapping, after its last step. Returns ``(advantages, value targets)``."""
    last = jnp.zeros((reward.shape[0], 1), jnp.float32).at[-1].set(1.0) * jnp.ones_like(reward)
    v_tp1 = jnp.concatenate([value[1:], jnp.zeros_like(value[:1])])
    return on_policy.advantages(reward, value, v_tp1, last, jnp.zeros_like(last), discount, gae_lambda)
