"""Multi-task SAC (MT-SAC) and multi-head MT-SAC (Yu et al. 2019, Meta-World baselines).

Multi-task RL as single-task RL in the MDP with states ``(s, omega)``: one actor and one twin critic on the
observation plus the task's context, shared by all ``K`` tasks, and ONE LEARNED TEMPERATURE PER TASK
(``log_alpha [K]``, each tuned to the target entropy on its own task's data). ``multi_head=True`` shares the
trunk and gives actor and critic one output head per task.

Data: ``num_envs`` envs, ``num_envs / K`` per task, one replay buffer per task, and every update draws
``batch_size`` transitions from EACH task's buffer (a ``[K, batch_size]`` batch of ``(s, a, r, s', task)``): the
multi-task off-policy skeleton of :mod:`jaxrl.algos.off_policy`. The actor and critic losses are per-task terms
``L_k`` (the SAC losses of :mod:`jaxrl.losses.sac` on task ``k``'s batch with temperature ``alpha_k``); their
total is ``sum_k L_k``. With ``aggregator="sum"`` the update follows the gradient of that sum; any other
aggregator (:data:`jaxrl.algos.multitask.common.AGGREGATORS`) takes the per-task gradients
``jax.vmap(jax.grad(L_k))`` ``[K, *params]`` and combines them with :mod:`jaxrl.grads` before Adam.

Monitoring (every step, in the metrics): per-task training return and success ``[K]``, their means and the
best-minus-worst spread, and for actor and critic the mean pairwise cosine of the task gradients and the number
of conflicting pairs (``g_i . g_j < 0``); with ``monitor_conflicts=False`` and ``aggregator="sum"`` the per-task
gradients are skipped. ``evaluate`` returns ``{"eval_return": [K], "eval_success": [K]}`` (deterministic policy,
``num_episodes`` episodes per task) and :mod:`jaxrl.algos.multitask.monitor`'s ``critic_grad_*``, ``actor_grad_*``.
``network``: MLP, Soft Modularization, CARE, MOORE or PaCo (:mod:`jaxrl.nets.multitask`); with PaCo a task whose
critic loss exceeds ``paco_reset_threshold`` is masked out and reset (:func:`~jaxrl.nets.multitask.paco_reset`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrl import nets
from jaxrl.algos import off_policy
from jaxrl.algos import train_state as ts
from jaxrl.algos.base_config import OffPolicyConfig
from jaxrl.algos.common import Algorithm
from jaxrl.algos.multitask import common as mt
from jaxrl.algos.multitask import monitor
from jaxrl.algos.multitask import off_policy as mt_off_policy
from jaxrl.algos.multitask.architecture import ArchitectureConfig
from jaxrl.algos.train_state import TrainState
from jaxrl.config import config, hyper, static
from jaxrl.data import replay
from jaxrl.envs.multitask import infer_task_id
from jaxrl.losses.sac import sac_actor_loss, sac_critic_loss
from jaxrl.nets.multitask import paco_maskout, paco_reset

State = off_policy.State


@config
class Config(ArchitectureConfig, OffPolicyConfig):
    init_alpha: float = hyper(1.0, low=0, low_open=True, help="initial temperature (every task)")
    target_entropy_scale: float = hyper(1.0, help="target entropy = -scale * action_dim (every task)")
    num_envs: int = static(4, low=1, help="parallel environments in all; a multiple of the number of tasks")
    batch_size: int = static(128, low=1, help="minibatch size PER TASK (an update sees K * batch_size)")
    buffer_size: int = static(100_000, low=1, help="replay capacity per task (transitions)")
    learning_starts: int = static(500, low=0, help="random-action transitions per task before updates start")
    multi_head: bool = static(False, choices=(True, False), help="shared trunk + one output head per task")
    aggregator: str = static("sum", choices=mt.AGGREGATORS, help="task-gradient aggregation (jaxrl.grads)")
    monitor_conflicts: bool = static(True, choices=(True, False), help="per-task gradients every update (conflicts)")
    total_env_steps: int = static(40_000, low=1, help="training length in environment steps (all tasks)")
    paco_reset_threshold: float = hyper(3000.0, low=0, low_open=True, help="PaCo: critic loss that resets a task")


class MTSACNets(NamedTuple):
    actor: TrainState
    critic: TrainState  # with its target copy
    temperature: TrainState  # params: log alpha [K]


class MTSACParams(NamedTuple):
    """The host loop's view of the networks' parameters (:func:`make_learner`)."""

    actor: Any
    critic: Any
    target_critic: Any
    log_alpha: jax.Array  # [K]


class MTSACOptState(NamedTuple):
    actor: Any
    critic: Any
    alpha: Any


class Learner(NamedTuple):
    """MT-SAC's networks and update apart from how data is collected, for :mod:`jaxrl.run.host_train`.

    ``init(actor_key, critic_key) -> (params, opt_state, buffer)`` (one replay buffer per task, leaves
    ``[K, buffer_size, ...]``); ``update((params, opt_state, buffer), key) -> (carry, metrics)`` is one gradient
    update on a ``[K, batch_size]`` batch; ``policy(actor_params, obs, task_id)`` is the tanh-Gaussian.
    """

    init: Callable
    update: Callable
    policy: Callable
    num_tasks: int
    obs_dim: int
    action_dim: int


class _Parts(NamedTuple):
    init_nets: Callable  # (actor_key, critic_key) -> MTSACNets
    update: Callable  # (buffer, nets, key) -> (nets, metrics)
    actor_net: Any
    task_gradients: Callable  # (nets, batch [K, B], key) -> per-task critic and actor grads (the monitor's)


def _parts(config: Config, num_tasks: int, obs_dim: int, action_dim: int, env=None) -> _Parts:
    k = num_tasks
    heads = k if config.multi_head else 1
    spec = mt.arch_spec(config, k, env)
    actor_net = mt.make_task_tanh_gaussian_policy(action_dim, config.hidden, config.activation, heads, spec)
    critic_net = mt.make_task_q_ensemble(config.hidden, config.activation, heads, spec=spec)
    tx = optax.adam(config.learning_rate)
    per_task = config.aggregator != "sum" or config.monitor_conflicts
    task_tx = mt.task_optimizer(config.aggregator, k, tx, per_task)

    def init_nets(actor_key, critic_key):
        o, a, t = jnp.zeros((obs_dim,), jnp.float32), jnp.zeros((action_dim,), jnp.float32), jnp.zeros((), jnp.int32)
        log_alpha = jnp.full((k,), jnp.log(jnp.asarray(config.init_alpha, jnp.float32)))
        return MTSACNets(
            ts.create(task_tx, actor_net.init(actor_key, o, t)),
            ts.create(task_tx, critic_net.init(critic_key, o, a, t), target=True),
            ts.create(tx, log_alpha),
        )

    losses = _task_losses(config, actor_net, critic_net)
    update = _make_update(config, k, tx, task_tx, per_task, losses, -config.target_entropy_scale * action_dim)
    return _Parts(init_nets, update, actor_net, monitor.sac_task_gradients(k, losses))


def _task_losses(config: Config, actor_net, critic_net):
    """Task ``k``'s critic and actor losses ``(params, batch_k, task_id, key_k, alpha_k, *fixed)``."""
    actor_apply = lambda task_id: lambda p, o: actor_net.apply(p, o, task_id)
    critic_apply = lambda task_id: lambda p, o, a: critic_net.apply(p, o, a, task_id)

    def critic_loss_k(critic_params, batch, task_id, key, alpha, actor_params, target_params):
        return sac_critic_loss(
            critic_params,
            batch,
            key,
            critic_apply=critic_apply(task_id),
            target_critic_params=target_params,
            actor_params=actor_params,
            actor_apply=actor_apply(task_id),
            alpha=alpha,
            discount=config.discount,
        )

    def actor_loss_k(actor_params, batch, task_id, key, alpha, critic_params):
        return sac_actor_loss(
            actor_params,
            batch,
            key,
            actor_apply=actor_apply(task_id),
            critic_apply=critic_apply(task_id),
            critic_params=critic_params,
            alpha=alpha,
        )

    return critic_loss_k, actor_loss_k


def _make_update(config: Config, k: int, tx, task_tx, per_task: bool, losses, target_entropy) -> Callable:
    paco = config.network == "paco"
    critic_loss_k, actor_loss_k = paco_maskout(losses[0], losses[1], config.paco_reset_threshold) if paco else losses
    tasks = mt.task_index(k)

    def update(buffer, mt_nets: MTSACNets, key):
        batch_key, critic_key, actor_key, agg_key_c, agg_key_a = jax.random.split(key, 5)
        batch = jax.vmap(replay.sample, in_axes=(0, 0, None))(buffer, jax.random.split(batch_key, k), config.batch_size)
        alpha = jnp.exp(mt_nets.temperature.params)  # [K]
        actor, critic = mt_nets.actor, mt_nets.critic

        c_keys = jax.random.split(critic_key, k)
        c_grads, c_metrics = mt.task_grads(
            critic_loss_k, critic.params, (batch, tasks, c_keys, alpha), (actor.params, critic.target), per_task
        )
        critic, c_diag = mt.apply_task_gradient(task_tx, critic, c_grads, agg_key_c, per_task, "critic_")
        a_keys = jax.random.split(actor_key, k)
        keep: tuple = (c_metrics["critic_loss"] <= config.paco_reset_threshold,) if paco else ()  # PaCo: [K]
        a_grads, a_metrics = mt.task_grads(
            actor_loss_k, actor.params, (*keep, batch, tasks, a_keys, alpha), (critic.params,), per_task
        )
        actor, a_diag = mt.apply_task_gradient(task_tx, actor, a_grads, agg_key_a, per_task, "actor_")
        t_grad, t_metrics = mt.task_temperature_grad(mt_nets.temperature.params, a_metrics["entropy"], target_entropy)
        temperature = ts.apply_gradient(tx, mt_nets.temperature, t_grad)
        metrics = {
            "critic_loss": jnp.sum(c_metrics["critic_loss"]),
            "q_mean": jnp.mean(c_metrics["q_mean"]),
            "actor_loss": jnp.sum(a_metrics["actor_loss"]),
            "entropy": jnp.mean(a_metrics["entropy"]),
            "entropy_per_task": a_metrics["entropy"],
            "alpha_per_task": t_metrics["alpha"],
            "alpha": jnp.mean(t_metrics["alpha"]),
        }
        critic = ts.soft_update(critic, config.tau)
        if paco:  # reset the diverged tasks' compositional vectors (actor, critic, target critic)
            reset = paco_reset((actor.params, critic.params, critic.target), ~keep[0], jax.random.fold_in(key, 1))
            actor, critic = actor._replace(params=reset[0]), critic._replace(params=reset[1], target=reset[2])
            metrics["paco_resets"] = jnp.sum(1.0 - keep[0])
        return MTSACNets(actor, critic, temperature), {**metrics, **c_diag, **a_diag}

    return update


def make_learner(config: Config, num_tasks: int, obs_dim: int, action_dim: int) -> Learner:
    """The :class:`Learner` of ``config`` for ``num_tasks`` tasks, observations ``[obs_dim]`` (with the context)
    and actions in ``[-1, 1]^action_dim``."""
    parts = _parts(config, num_tasks, obs_dim, action_dim)
    example = off_policy.example_transition(obs_dim, action_dim, jnp.zeros((), jnp.int32))

    def split(n: MTSACNets):
        params = MTSACParams(n.actor.params, n.critic.params, n.critic.target, n.temperature.params)
        return params, MTSACOptState(n.actor.opt_state, n.critic.opt_state, n.temperature.opt_state)

    def init(actor_key, critic_key):
        buffer = jax.vmap(lambda _: replay.init(example, config.buffer_size))(mt.task_index(num_tasks))
        return (*split(parts.init_nets(actor_key, critic_key)), buffer)

    def update(carry, key):
        p, o, buffer = carry
        joined = MTSACNets(
            TrainState(p.actor, o.actor),
            TrainState(p.critic, o.critic, p.target_critic),
            TrainState(p.log_alpha, o.alpha),
        )
        new, metrics = parts.update(buffer, joined, key)
        return (*split(new), buffer), metrics

    return Learner(init, update, parts.actor_net.apply, num_tasks, obs_dim, action_dim)


def make(config: Config, env, env_params) -> Algorithm:
    setup = mt_off_policy.task_setup(config, env, env_params, "mh_sac" if config.multi_head else "mt_sac")
    parts = _parts(config, setup.num_tasks, setup.obs_dim, setup.action_dim, env)

    def act(state: State, obs, key, deterministic: bool = False, task_id=None):
        """``obs`` carries the context; the task index (multi-head) is read off it unless given."""
        if task_id is None:
            task_id = infer_task_id(obs, setup.train_env.contexts)
        dist = parts.actor_net.apply(state.params.actor.params, obs, task_id)
        return nets.mode(dist) if deterministic else dist.sample(seed=key)

    fns = dict(init_nets=parts.init_nets, update=parts.update, task_gradients=parts.task_gradients)
    return mt_off_policy.make_multitask(config, setup, env, env_params, num_net_keys=2, act=act, **fns)
