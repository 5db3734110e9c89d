"""Distral (Teh et al., 2017): per-task policies ``pi_i`` distilled into a shared policy ``pi_0``.

Objective (see :mod:`jaxrl.losses.distral`):
``sum_i E_{pi_i}[sum_t discount^t (R_i - c_KL log(pi_i / pi_0) - c_Ent log pi_i)]``.

* ``pi_i`` (one tanh-Gaussian network per task, a vmapped parameter axis ``[K]``) and a twin soft Q per task are
  trained soft actor-critic style on the regularised reward: the KL term pulls each task policy towards
  ``pi_0``, the entropy term keeps it exploring.
* ``pi_0`` (one network on ``(s, omega)``) is trained by distillation: maximum likelihood of every task
  policy's actions at that task's replayed states, summed over tasks. ``pi_0`` is the one network the tasks
  share, so ``aggregator`` (:data:`jaxrl.algos.multitask.common.AGGREGATORS`) combines the per-task distillation
  gradients; with a per-task aggregator or ``monitor_conflicts`` the metrics report their conflicts
  (``shared_num_conflicts``, ``shared_mean_cosine``). ``"sum"`` without monitoring takes the plain gradient of
  the summed loss.

Data collection, replay (a buffer per task), batches ``[K, batch_size]`` and monitoring are as in
:mod:`jaxrl.algos.multitask.mt_sac` (the skeleton of :mod:`jaxrl.algos.off_policy`). Teh et al.'s ``pi_0`` sees
the state only; here both see ``(s, omega)`` (``shared_sees_task=True``, the multi-task setting: a goal-reaching
``pi_0`` must know the goal). With ``shared_sees_task=False`` the shared policy gets the state only, the paper's.

``evaluate`` returns ``eval_return`` / ``eval_success`` ``[K]`` of the task policies and
``eval_return_shared`` / ``eval_success_shared`` ``[K]`` of the distilled ``pi_0`` (deterministic), and the
``shared_grad_*`` statistics of :mod:`jaxrl.algos.multitask.monitor` (``pi_0``'s per-task distillation gradients
on a fresh replay batch, once per chunk).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrl import nets
from jaxrl.algos import off_policy
from jaxrl.algos import train_state as ts
from jaxrl.algos.base_config import OffPolicyConfig
from jaxrl.algos.common import Algorithm
from jaxrl.algos.multitask import common as mt
from jaxrl.algos.multitask import off_policy as mt_off_policy
from jaxrl.algos.train_state import TrainState
from jaxrl.config import config, hyper, static
from jaxrl.data import replay
from jaxrl.envs.multitask import evaluate_tasks, infer_task_id
from jaxrl.losses.distral import distral_actor_loss, distral_critic_loss, distral_distill_loss

State = off_policy.State


@config
class Config(OffPolicyConfig):
    learning_rate: float = hyper(1e-3, low=0, low_open=True, help="Adam step size (pi_i, Q_i, pi_0)")
    c_kl: float = hyper(0.05, low=0, help="c_KL: weight of log(pi_i / pi_0) in the regularised reward")
    c_ent: float = hyper(0.05, low=0, help="c_Ent: weight of -log pi_i (entropy) in the regularised reward")
    num_envs: int = static(4, low=1, help="parallel environments in all; a multiple of the number of tasks")
    batch_size: int = static(128, low=1, help="minibatch size PER TASK")
    buffer_size: int = static(100_000, low=1, help="replay capacity per task (transitions)")
    learning_starts: int = static(500, low=0, help="random-action transitions per task before updates start")
    hidden: tuple[int, ...] = static((256, 256), help="hidden widths (task policies, critics, shared policy)")
    shared_sees_task: bool = static(True, choices=(True, False), help="pi_0 sees omega (False: state only)")
    aggregator: str = static("sum", choices=mt.AGGREGATORS, help="aggregation of pi_0's per-task gradients")
    monitor_conflicts: bool = static(
        False, choices=(True, False), help="per-task pi_0 gradients every update for cosine/conflict metrics"
    )
    total_env_steps: int = static(40_000, low=1, help="training length in environment steps (all tasks)")


class DistralNets(NamedTuple):
    policies: TrainState  # pi_i, leaves [K, ...]
    critics: TrainState  # Q_i, leaves [K, E, ...], with their target copies
    shared: TrainState  # pi_0


def task_policy_action(policy_net, policies, obs, task_id, key, deterministic):
    """``a ~ pi_{task_id[b]}(.|obs[b])`` for a batch with mixed tasks (a per-sample parameter gather)."""

    def one(o, t, kk):
        dist = policy_net.apply(jax.tree.map(lambda x: x[t], policies), o)
        return nets.mode(dist) if deterministic else dist.sample(seed=kk)

    if obs.ndim == 1:
        return one(obs, task_id, key)
    keys = jax.random.split(key, obs.shape[0])
    return jax.vmap(one)(obs, jnp.broadcast_to(task_id, obs.shape[:1]), keys)


def _make_update(config: Config, k: int, policy_net, critic_net, shared_apply):
    tx = optax.adam(config.learning_rate)
    per_task = config.aggregator != "sum" or config.monitor_conflicts
    shared_tx = mt.task_optimizer(config.aggregator, k, tx, per_task)
    prior = dict(shared_apply=shared_apply, c_kl=config.c_kl, c_ent=config.c_ent)

    def critic_k(critic, target, policy, batch_k, key, shared):
        return jax.grad(distral_critic_loss, has_aux=True)(
            critic,
            batch_k,
            key,
            critic_apply=critic_net.apply,
            target_critic_params=target,
            policy_params=policy,
            policy_apply=policy_net.apply,
            discount=config.discount,
            shared_params=shared,
            **prior,
        )

    def actor_k(policy, critic, batch_k, key, shared):
        return jax.grad(distral_actor_loss, has_aux=True)(
            policy,
            batch_k,
            key,
            policy_apply=policy_net.apply,
            critic_apply=critic_net.apply,
            critic_params=critic,
            shared_params=shared,
            **prior,
        )

    def distill_k(shared, batch_k, key, policy):
        return distral_distill_loss(
            shared, batch_k, key, shared_apply=shared_apply, policy_params=policy, policy_apply=policy_net.apply
        )

    def update(buffer, dn: DistralNets, key):
        batch_key, c_key, a_key, s_key = jax.random.split(key, 4)
        agg_key = jax.random.fold_in(key, 1)  # a key of its own: the four above are those of the summed path
        batch = jax.vmap(replay.sample, in_axes=(0, 0, None))(buffer, jax.random.split(batch_key, k), config.batch_size)
        shared = dn.shared.params
        c_keys = jax.random.split(c_key, k)
        c_grads, c_metrics = jax.vmap(critic_k, in_axes=(0, 0, 0, 0, 0, None))(
            dn.critics.params, dn.critics.target, dn.policies.params, batch, c_keys, shared
        )
        critics = ts.apply_gradient(tx, dn.critics, c_grads)
        a_keys = jax.random.split(a_key, k)
        a_grads, a_metrics = jax.vmap(actor_k, in_axes=(0, 0, 0, 0, None))(
            dn.policies.params, critics.params, batch, a_keys, shared
        )
        policies = ts.apply_gradient(tx, dn.policies, a_grads)
        s_keys = jax.random.split(s_key, k)
        s_grads, s_metrics = mt.task_grads(distill_k, shared, (batch, s_keys, policies.params), (), per_task)
        shared_state, s_diag = mt.apply_task_gradient(shared_tx, dn.shared, s_grads, agg_key, per_task, "shared_")
        metrics = {
            "critic_loss": jnp.sum(c_metrics["critic_loss"]),
            "q_mean": jnp.mean(c_metrics["q_mean"]),
            "actor_loss": jnp.sum(a_metrics["actor_loss"]),
            "entropy": jnp.mean(a_metrics["entropy"]),
            "kl_to_shared": jnp.mean(a_metrics["kl_to_shared"]),
            "kl_to_shared_per_task": a_metrics["kl_to_shared"],
            "distill_loss": jnp.sum(s_metrics["distill_loss"]),
            "distill_kl": jnp.mean(s_metrics["distill_kl"]),
        }
        return DistralNets(policies, ts.soft_update(critics, config.tau), shared_state), {**metrics, **s_diag}

    def task_gradients(dn: DistralNets, batch, key):
        """``pi_0``'s per-task distillation gradients (the one network the tasks share), for the monitor."""
        grads, _ = mt.task_grads(
            distill_k, dn.shared.params, (batch, jax.random.split(key, k), dn.policies.params), (), True
        )
        return {"shared_": grads}

    return tx, shared_tx, update, task_gradients


def make(config: Config, env, env_params) -> Algorithm:
    setup = mt_off_policy.task_setup(config, env, env_params, "distral")
    k, n_obs, n_act = setup.num_tasks, setup.obs_dim, setup.action_dim
    policy_net = nets.make_tanh_gaussian_policy(n_act, config.hidden, config.activation)
    critic_net = nets.make_q_ensemble(config.hidden, config.activation, num_members=2)
    shared_net = nets.make_tanh_gaussian_policy(n_act, config.hidden, config.activation)
    state_dim = n_obs - setup.train_env.context_dim
    shared_in = (lambda obs: obs) if config.shared_sees_task else (lambda obs: obs[..., :state_dim])
    shared_apply = lambda p, obs: shared_net.apply(p, shared_in(obs))
    tx, shared_tx, update, task_gradients = _make_update(config, k, policy_net, critic_net, shared_apply)

    def init_nets(policy_key, critic_key, shared_key):
        o, a = jnp.zeros((n_obs,), jnp.float32), jnp.zeros((n_act,), jnp.float32)
        policies = jax.vmap(lambda kk: policy_net.init(kk, o))(jax.random.split(policy_key, k))
        critics = jax.vmap(lambda kk: critic_net.init(kk, o, a))(jax.random.split(critic_key, k))
        shared = shared_net.init(shared_key, shared_in(o))
        return DistralNets(ts.create(tx, policies), ts.create(tx, critics, target=True), ts.create(shared_tx, shared))

    def act(state: State, obs, key, deterministic: bool = False, task_id=None, shared: bool = False):
        """The task policies (``shared=False``) or the distilled ``pi_0``; the task is read off omega unless given."""
        if shared:
            dist = shared_apply(state.params.shared.params, obs)
            return nets.mode(dist) if deterministic else dist.sample(seed=key)
        task_id = infer_task_id(obs, setup.train_env.contexts) if task_id is None else task_id
        return task_policy_action(policy_net, state.params.policies.params, obs, task_id, key, deterministic)

    def evaluate(state: State, key, num_episodes: int):
        k1, k2 = jax.random.split(key)
        own = evaluate_tasks(env, env_params, lambda o, kk: act(state, o, kk, deterministic=True), k1, num_episodes)
        shared = evaluate_tasks(
            env, env_params, lambda o, kk: act(state, o, kk, deterministic=True, shared=True), k2, num_episodes
        )
        return {**own, "eval_return_shared": shared["eval_return"], "eval_success_shared": shared["eval_success"]}

    return mt_off_policy.make_multitask(
        config, setup, env, env_params, init_nets=init_nets, num_net_keys=3, act=act, update=update,
        task_gradients=task_gradients, evaluate=evaluate,
    )  # fmt: skip
