"""Multi-task SAC (MT-SAC) and multi-head MT-SAC (Yu et al. 2019, Meta-World baselines).

Multi-task RL as single-task RL in the MDP with states ``(s, omega)``: one actor and one twin critic on the
observation plus the task's context, shared by all ``K`` tasks, and ONE LEARNED TEMPERATURE PER TASK
(``log_alpha [K]``, each tuned to the target entropy on its own task's data). ``multi_head=True`` shares the
trunk and gives actor and critic one output head per task.

Data: ``num_envs`` envs, ``num_envs / K`` per task (blocked assignment, see
:class:`jaxrl.envs.multitask.MultiTaskEnv`), one replay buffer per task (a vmapped buffer state ``[K]``), and
every update draws ``batch_size`` transitions from EACH task's buffer: the batch is ``[K, batch_size]`` and
holds ``(s, a, r, s', task)``. The actor and critic losses are per-task terms ``L_k`` (the SAC losses of
:mod:`jaxrl.losses.sac` on task ``k``'s batch with temperature ``alpha_k``); their total is ``sum_k L_k``.
With ``aggregator="sum"`` the update follows the gradient of that sum; any other aggregator
(``pcgrad``, ``mgda``, ``cagrad``, ``imtl_g``, ``gradvac``, ``upgrad``, ``mean``) takes the per-task gradients
``jax.vmap(jax.grad(L_k))`` ``[K, *params]`` and combines them with :mod:`jaxrl.grads` before Adam.

Monitoring (every step, in the metrics): per-task training return and success ``[K]`` (the last finished
episode of each task), their means and the best-minus-worst spread, and for actor and critic the mean pairwise
cosine of the task gradients and the number of conflicting pairs (``g_i . g_j < 0``); with
``monitor_conflicts=False`` and ``aggregator="sum"`` the per-task gradients are skipped (a plain summed
gradient, cheapest). ``evaluate`` returns ``{"eval_return": [K], "eval_success": [K]}`` (deterministic policy,
``num_episodes`` episodes per task).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import nets
from jaxrl.algos.common import Algorithm, phase_cond
from jaxrl.algos.multitask import common as mt
from jaxrl.config import ConfigError, config, hyper, static
from jaxrl.data import replay
from jaxrl.data.types import Transition
from jaxrl.envs.multitask import evaluate_tasks, infer_task_id, make_multitask_env
from jaxrl.envs.wrappers import action_dim, is_discrete
from jaxrl.losses.sac import sac_actor_loss, sac_critic_loss, sac_temperature_loss


@config
class Config:
    learning_rate: float = hyper(1e-3, low=0, low_open=True, help="Adam step size (actor, critic, temperatures)")
    gamma: float = hyper(0.99, low=0, high=1, help="discount")
    tau: float = hyper(0.005, low=0, high=1, low_open=True, help="target-network Polyak rate")
    init_alpha: float = hyper(1.0, low=0, low_open=True, help="initial temperature (every task)")
    target_entropy_scale: float = hyper(1.0, help="target entropy = -scale * action_dim (every task)")
    num_envs: int = static(4, low=1, help="parallel environments in all; a multiple of the number of tasks")
    batch_size: int = static(128, low=1, help="minibatch size PER TASK (an update sees K * batch_size)")
    buffer_size: int = static(100_000, low=1, help="replay capacity per task (transitions)")
    learning_starts: int = static(500, low=0, help="random-action transitions per task before updates start")
    updates_per_step: int = static(1, low=1, help="gradient updates per environment step")
    hidden: tuple[int, ...] = static((256, 256), help="hidden layer widths (actor and critic)")
    activation: str = static("relu", choices=tuple(nets.core.ACTIVATIONS), help="hidden activation")
    multi_head: bool = static(False, choices=(True, False), help="shared trunk + one output head per task")
    aggregator: str = static("sum", choices=mt.AGGREGATORS, help="task-gradient aggregation (jaxrl.grads)")
    monitor_conflicts: bool = static(
        True, choices=(True, False), help="per-task gradients every update for cosine/conflict metrics"
    )
    total_env_steps: int = static(40_000, low=1, help="training length in environment steps (all tasks)")

    def __post_init__(self):
        if self.total_env_steps < self.num_envs:
            raise ConfigError(
                f"{type(self).__qualname__}.total_env_steps={self.total_env_steps} is out of range: "
                f"must be >= num_envs = {self.num_envs}"
            )

    @property
    def env_steps_per_iteration(self) -> int:
        return self.num_envs

    @property
    def num_iterations(self) -> int:
        return self.total_env_steps // self.num_envs


class MTSACParams(NamedTuple):
    actor: Any
    critic: Any
    target_critic: Any
    log_alpha: jax.Array  # [K]


class MTSACOptState(NamedTuple):
    actor: Any
    critic: Any
    alpha: Any


@struct.dataclass
class State:
    params: MTSACParams
    opt_state: MTSACOptState
    buffer: replay.ReplayState  # one per task: leaves [K, capacity, ...]
    env_state: Any
    obs: jax.Array  # [N, O + D]
    last_return: jax.Array  # [K] return of each task's last finished training episode
    last_success: jax.Array  # [K]
    key: jax.Array
    iteration: jax.Array


def check_suite(config, env, env_params, name: str) -> tuple[int, int]:
    """(K, envs per task) after the checks every multi-task SAC-style algorithm needs."""
    k = mt.check_num_tasks(env, name)
    if config.num_envs % k:
        raise ConfigError(
            f"{name}.Config.num_envs={config.num_envs} must be a multiple of the suite's {k} tasks "
            f"(e.g. --num-envs {k})"
        )
    one = jax.tree.map(lambda x: x[0], env_params)
    if is_discrete(env.env, one):
        raise ConfigError(f"{name} needs a continuous (Box) action space (e.g. point-goal-4)")
    return k, config.num_envs // k


class Learner(NamedTuple):
    """MT-SAC's networks and jitted-update pieces, apart from how data is collected.

    ``init(actor_key, critic_key) -> (params, opt_state, buffer)`` (one replay buffer per task, leaves
    ``[K, buffer_size, ...]``); ``update((params, opt_state, buffer), key) -> (carry, metrics)`` is one gradient
    update on a ``[K, batch_size]`` batch; ``policy(actor_params, obs, task_id)`` is the tanh-Gaussian.
    :func:`make` collects inside the jitted step; :mod:`jaxrl.run.host_train` collects on the host (Meta-World).
    """

    init: Callable
    update: Callable
    policy: Callable
    num_tasks: int
    obs_dim: int
    action_dim: int


def make_learner(config: Config, num_tasks: int, obs_dim: int, action_dim: int) -> Learner:
    """The learner of ``config`` for ``num_tasks`` tasks, observations ``[obs_dim]`` (with the context) and
    actions in ``[-1, 1]^action_dim``."""
    k, n_obs, n_act = num_tasks, obs_dim, action_dim
    heads = k if config.multi_head else 1
    actor_net = mt.make_task_tanh_gaussian_policy(n_act, config.hidden, config.activation, heads)
    critic_net = mt.make_task_q_ensemble(config.hidden, config.activation, heads)
    tx = optax.adam(config.learning_rate)
    per_task = config.aggregator != "sum" or config.monitor_conflicts
    agg = mt.make_aggregator(config.aggregator, k)
    actor_tx, critic_tx = (optax.chain(agg, tx), optax.chain(agg, tx)) if per_task else (tx, tx)
    target_entropy = -config.target_entropy_scale * n_act
    tasks = mt.task_index(k)

    def init(ak: jax.Array, ck: jax.Array):
        o, a = jnp.zeros((n_obs,), jnp.float32), jnp.zeros((n_act,), jnp.float32)
        t = jnp.zeros((), jnp.int32)
        critic = critic_net.init(ck, o, a, t)
        log_alpha = jnp.full((k,), jnp.log(jnp.asarray(config.init_alpha, jnp.float32)))
        params = MTSACParams(actor_net.init(ak, o, t), critic, critic, log_alpha)
        opt_state = MTSACOptState(actor_tx.init(params.actor), critic_tx.init(params.critic), tx.init(log_alpha))
        example = Transition(o, a, jnp.zeros(()), o, jnp.zeros((), bool), jnp.zeros((), bool), t)
        buffer = jax.vmap(lambda _: replay.init(example, config.buffer_size))(tasks)
        return params, opt_state, buffer

    def policy(actor_params, obs, task_id):
        return actor_net.apply(actor_params, obs, task_id)

    def critic_loss_k(critic_params, batch, task_id, key, alpha, actor_params, target_params):
        return sac_critic_loss(
            critic_params,
            batch,
            critic_apply=lambda p, o, a: critic_net.apply(p, o, a, task_id),
            target_critic_params=target_params,
            actor_params=actor_params,
            actor_apply=lambda p, o: actor_net.apply(p, o, task_id),
            alpha=alpha,
            gamma=config.gamma,
            key=key,
        )

    def actor_loss_k(actor_params, batch, task_id, key, alpha, critic_params):
        return sac_actor_loss(
            actor_params,
            batch,
            actor_apply=lambda p, o: actor_net.apply(p, o, task_id),
            critic_apply=lambda p, o, a: critic_net.apply(p, o, a, task_id),
            critic_params=critic_params,
            alpha=alpha,
            key=key,
        )

    def task_grads(loss_k, params, batch, keys, alpha, *extra):
        """Per-task gradients ``[K, ...]`` and metrics ``[K]`` (or the summed gradient when not needed).

        ``loss_k(params, batch_k, k, key_k, alpha_k, *extra) -> (L_k, metrics)``; ``batch`` is ``[K, B, ...]``.
        """
        in_axes = (None, 0, 0, 0, 0) + (None,) * len(extra)
        if per_task:
            return jax.vmap(jax.grad(loss_k, has_aux=True), in_axes=in_axes)(params, batch, tasks, keys, alpha, *extra)

        def total(p):
            losses, metrics = jax.vmap(loss_k, in_axes=in_axes)(p, batch, tasks, keys, alpha, *extra)
            return jnp.sum(losses), metrics

        return jax.grad(total, has_aux=True)(params)

    def apply_update(tx_, grads_, opt, params_, key):
        if per_task:
            updates, opt = tx_.update(grads_, opt, params_, key=key)
            return (
                optax.apply_updates(params_, updates),
                opt,
                {
                    "num_conflicts": opt[0].num_conflicts.astype(jnp.float32),
                    "mean_cosine": opt[0].mean_cosine,
                },
            )
        updates, opt = tx_.update(grads_, opt, params_)
        return optax.apply_updates(params_, updates), opt, {}

    def update(carry, key):
        params, opt_state, buffer = carry
        batch_key, critic_key, actor_key, agg_key_c, agg_key_a = jax.random.split(key, 5)
        batch = jax.vmap(replay.sample, in_axes=(0, 0, None))(
            buffer, jax.random.split(batch_key, k), config.batch_size
        )  # [K, B, ...]
        alpha = jnp.exp(params.log_alpha)  # [K]

        c_grads, c_metrics = task_grads(
            critic_loss_k,
            params.critic,
            batch,
            jax.random.split(critic_key, k),
            alpha,
            params.actor,
            params.target_critic,
        )
        critic, c_opt, c_diag = apply_update(critic_tx, c_grads, opt_state.critic, params.critic, agg_key_c)

        a_grads, a_metrics = task_grads(
            actor_loss_k, params.actor, batch, jax.random.split(actor_key, k), alpha, critic
        )
        actor, a_opt, a_diag = apply_update(actor_tx, a_grads, opt_state.actor, params.actor, agg_key_a)

        # one temperature per task: sum_k of the SAC temperature loss on task k's entropy
        t_grad, t_metrics = jax.grad(
            lambda la: (lambda out: (jnp.sum(out[0]), out[1]))(
                jax.vmap(sac_temperature_loss, in_axes=(0, 0, None))(la, -a_metrics["entropy"], target_entropy)
            ),
            has_aux=True,
        )(params.log_alpha)
        t_updates, t_opt = tx.update(t_grad, opt_state.alpha, params.log_alpha)
        log_alpha = optax.apply_updates(params.log_alpha, t_updates)

        target = optax.incremental_update(critic, params.target_critic, config.tau)
        metrics = {
            "critic_loss": jnp.sum(c_metrics["critic_loss"]),
            "q_mean": jnp.mean(c_metrics["q_mean"]),
            "actor_loss": jnp.sum(a_metrics["actor_loss"]),
            "entropy": jnp.mean(a_metrics["entropy"]),
            "entropy_per_task": a_metrics["entropy"],
            "alpha_per_task": t_metrics["alpha"],
            "alpha": jnp.mean(t_metrics["alpha"]),
        }
        metrics.update({f"critic_{n}": v for n, v in c_diag.items()})
        metrics.update({f"actor_{n}": v for n, v in a_diag.items()})
        return (MTSACParams(actor, critic, target, log_alpha), MTSACOptState(a_opt, c_opt, t_opt), buffer), metrics

    return Learner(init, update, policy, k, n_obs, n_act)


def make(config: Config, env, env_params) -> Algorithm:
    name = "mh_sac" if config.multi_head else "mt_sac"
    k, m = check_suite(config, env, env_params, name)
    train_env = make_multitask_env(env, m)
    n_act = action_dim(train_env, env_params)
    n_obs = int(train_env.observation_space(env_params).shape[0])
    learner = make_learner(config, k, n_obs, n_act)
    update, policy = learner.update, learner.policy

    def init(key: jax.Array) -> State:
        key, ak, ck, ek = jax.random.split(key, 4)
        params, opt_state, buffer = learner.init(ak, ck)
        obs, env_state = train_env.reset(ek, env_params)
        zeros = jnp.zeros((k,), jnp.float32)
        return State(params, opt_state, buffer, env_state, obs, zeros, zeros, key, jnp.zeros((), jnp.int32))

    def act(state: State, obs, key, deterministic: bool = False, task_id=None):
        """``obs`` carries the context; the task index (multi-head) is read off it unless given."""
        if task_id is None:
            task_id = infer_task_id(obs, train_env.contexts)
        dist = policy(state.params.actor, obs, task_id)
        return nets.mode(dist) if deterministic else dist.sample(seed=key)

    def step(state: State):
        key, act_key, env_key, update_key = jax.random.split(state.key, 4)
        warmup = state.buffer.size[0] < config.learning_starts
        policy_action = act(state, state.obs, act_key, task_id=train_env.task_ids)
        random_action = jax.random.uniform(act_key, policy_action.shape, minval=-1.0, maxval=1.0)
        action = jnp.where(warmup, random_action, policy_action)
        obs, env_state, reward, terminated, truncated, info = train_env.step(
            env_key, state.env_state, action, env_params
        )
        tr = Transition(state.obs, action, reward, info["final_observation"], terminated, truncated, info["task_id"])
        buffer = jax.vmap(replay.add)(state.buffer, mt.split_tasks(tr, k))

        metric_shapes = jax.eval_shape(update, (state.params, state.opt_state, buffer), update_key)[1]

        def do_updates(carry):
            return jax.lax.scan(update, carry, jax.random.split(update_key, config.updates_per_step))

        def skip_updates(carry):
            zeros = jax.tree.map(lambda s: jnp.zeros((config.updates_per_step, *s.shape), s.dtype), metric_shapes)
            return carry, zeros

        ready = buffer.size[0] >= max(config.learning_starts, 1)
        (params, opt_state, buffer), metrics = phase_cond(
            ready, do_updates, skip_updates, (state.params, state.opt_state, buffer)
        )
        metrics = jax.tree.map(lambda x: jnp.mean(x, axis=0), metrics)
        done = mt.split_tasks(info["episode_done"], k)
        last_return = mt.update_last_episode(state.last_return, mt.split_tasks(info["episode_return"], k), done)
        last_success = mt.update_last_episode(
            state.last_success, mt.split_tasks(info["episode_success"].astype(jnp.float32), k), done
        )
        metrics.update(mt.task_metrics(last_return, last_success))
        return State(
            params, opt_state, buffer, env_state, obs, last_return, last_success, key, state.iteration + 1
        ), metrics

    def evaluate(state: State, key, num_episodes: int):
        return evaluate_tasks(
            env, env_params, lambda obs, kk: act(state, obs, kk, deterministic=True, task_id=None), key, num_episodes
        )

    return Algorithm(
        init=init,
        step=step,
        act=act,
        evaluate=evaluate,
        config=config,
        env_steps_per_iteration=config.env_steps_per_iteration,
    )
