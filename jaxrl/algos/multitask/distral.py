"""Distral (Teh et al., 2017): per-task policies ``pi_i`` distilled into a shared policy ``pi_0``.

Objective (see :mod:`jaxrl.losses.distral`):
``sum_i E_{pi_i}[sum_t gamma^t (R_i - c_KL log(pi_i / pi_0) - c_Ent log pi_i)]``.

* ``pi_i`` (one tanh-Gaussian network per task, a vmapped parameter axis ``[K]``) and a twin soft Q per task are
  trained soft actor-critic style on the regularised reward: the KL term pulls each task policy towards
  ``pi_0``, the entropy term keeps it exploring.
* ``pi_0`` (one network on ``(s, omega)``) is trained by distillation: maximum likelihood of every task
  policy's actions at that task's replayed states, summed over tasks.

Data collection, replay (a buffer per task), batches ``[K, batch_size]`` and monitoring are as in
:mod:`jaxrl.algos.multitask.mt_sac`. Teh et al.'s ``pi_0`` sees the state only; here both see ``(s, omega)``
(``shared_sees_task=True``, the multi-task setting: a goal-reaching ``pi_0`` must know the goal). With
``shared_sees_task=False`` the shared policy gets the state only, the paper's form.

``evaluate`` returns ``eval_return`` / ``eval_success`` ``[K]`` of the task policies and
``eval_return_shared`` / ``eval_success_shared`` ``[K]`` of the distilled ``pi_0`` (deterministic).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import nets
from jaxrl.algos.common import Algorithm, phase_cond
from jaxrl.algos.multitask import common as mt
from jaxrl.algos.multitask.mt_sac import check_suite
from jaxrl.config import ConfigError, config, hyper, static
from jaxrl.data import replay
from jaxrl.data.types import Transition
from jaxrl.envs.multitask import evaluate_tasks, infer_task_id, make_multitask_env
from jaxrl.envs.wrappers import action_dim
from jaxrl.losses.distral import distral_actor_loss, distral_critic_loss, distral_distill_loss


@config
class Config:
    learning_rate: float = hyper(1e-3, low=0, low_open=True, help="Adam step size (pi_i, Q_i, pi_0)")
    gamma: float = hyper(0.99, low=0, high=1, help="discount")
    tau: float = hyper(0.005, low=0, high=1, low_open=True, help="target-network Polyak rate")
    c_kl: float = hyper(0.05, low=0, help="c_KL: weight of log(pi_i / pi_0) in the regularised reward")
    c_ent: float = hyper(0.05, low=0, help="c_Ent: weight of -log pi_i (entropy) in the regularised reward")
    num_envs: int = static(4, low=1, help="parallel environments in all; a multiple of the number of tasks")
    batch_size: int = static(128, low=1, help="minibatch size PER TASK")
    buffer_size: int = static(100_000, low=1, help="replay capacity per task (transitions)")
    learning_starts: int = static(500, low=0, help="random-action transitions per task before updates start")
    updates_per_step: int = static(1, low=1, help="gradient updates per environment step")
    hidden: tuple[int, ...] = static((256, 256), help="hidden widths (task policies, critics, shared policy)")
    activation: str = static("relu", choices=tuple(nets.core.ACTIVATIONS), help="hidden activation")
    shared_sees_task: bool = static(True, choices=(True, False), help="pi_0 sees omega (False: state only)")
    total_env_steps: int = static(40_000, low=1, help="training length in environment steps (all tasks)")

    def __post_init__(self):
        if self.total_env_steps < self.num_envs:
            raise ConfigError(
                f"distral.Config.total_env_steps={self.total_env_steps} is out of range: must be >= "
                f"num_envs = {self.num_envs}"
            )

    @property
    def env_steps_per_iteration(self) -> int:
        return self.num_envs

    @property
    def num_iterations(self) -> int:
        return self.total_env_steps // self.num_envs


class DistralParams(NamedTuple):
    policies: Any  # pi_i, leaves [K, ...]
    critics: Any  # Q_i, leaves [K, E, ...]
    target_critics: Any
    shared: Any  # pi_0


class DistralOptState(NamedTuple):
    policies: Any
    critics: Any
    shared: Any


@struct.dataclass
class State:
    params: DistralParams
    opt_state: DistralOptState
    buffer: replay.ReplayState  # leaves [K, capacity, ...]
    env_state: Any
    obs: jax.Array
    last_return: jax.Array  # [K]
    last_success: jax.Array  # [K]
    key: jax.Array
    iteration: jax.Array


def make(config: Config, env, env_params) -> Algorithm:
    k, m = check_suite(config, env, env_params, "distral")
    train_env = make_multitask_env(env, m)
    n_act = action_dim(train_env, env_params)
    n_obs = int(train_env.observation_space(env_params).shape[0])
    d = train_env.context_dim
    policy_net = nets.make_tanh_gaussian_policy(n_act, config.hidden, config.activation)
    critic_net = nets.make_q_ensemble(config.hidden, config.activation, num_members=2)
    shared_net = nets.make_tanh_gaussian_policy(n_act, config.hidden, config.activation)
    shared_in = (lambda obs: obs) if config.shared_sees_task else (lambda obs: obs[..., : n_obs - d])
    shared_apply = lambda p, obs: shared_net.apply(p, shared_in(obs))
    tx = optax.adam(config.learning_rate)
    tasks = mt.task_index(k)

    def init(key: jax.Array) -> State:
        key, pk, ck, sk, ek = jax.random.split(key, 5)
        o, a = jnp.zeros((n_obs,), jnp.float32), jnp.zeros((n_act,), jnp.float32)
        policies = jax.vmap(lambda kk: policy_net.init(kk, o))(jax.random.split(pk, k))
        critics = jax.vmap(lambda kk: critic_net.init(kk, o, a))(jax.random.split(ck, k))
        shared = shared_net.init(sk, shared_in(o))
        params = DistralParams(policies, critics, critics, shared)
        opt_state = DistralOptState(tx.init(policies), tx.init(critics), tx.init(shared))
        example = Transition(o, a, jnp.zeros(()), o, jnp.zeros((), bool), jnp.zeros((), bool), jnp.zeros((), jnp.int32))
        buffer = jax.vmap(lambda _: replay.init(example, config.buffer_size))(tasks)
        obs, env_state = train_env.reset(ek, env_params)
        zeros = jnp.zeros((k,), jnp.float32)
        return State(params, opt_state, buffer, env_state, obs, zeros, zeros, key, jnp.zeros((), jnp.int32))

    def task_policy_action(policies, obs, task_id, key, deterministic):
        """``a ~ pi_{task_id[b]}(.|obs[b])`` for a batch with mixed tasks (a per-sample parameter gather)."""

        def one(o, t, kk):
            dist = policy_net.apply(jax.tree.map(lambda x: x[t], policies), o)
            return nets.mode(dist) if deterministic else dist.sample(seed=kk)

        if obs.ndim == 1:
            return one(obs, task_id, key)
        keys = jax.random.split(key, obs.shape[0])
        return jax.vmap(one)(obs, jnp.broadcast_to(task_id, obs.shape[:1]), keys)

    def act(state: State, obs, key, deterministic: bool = False, task_id=None, shared: bool = False):
        """The task policies (``shared=False``) or the distilled ``pi_0``; the task is read off omega unless given."""
        if shared:
            dist = shared_apply(state.params.shared, obs)
            return nets.mode(dist) if deterministic else dist.sample(seed=key)
        task_id = infer_task_id(obs, train_env.contexts) if task_id is None else task_id
        return task_policy_action(state.params.policies, obs, task_id, key, deterministic)

    def update(carry, key):
        params, opt_state, buffer = carry
        batch_key, c_key, a_key, s_key = jax.random.split(key, 4)
        batch = jax.vmap(replay.sample, in_axes=(0, 0, None))(
            buffer, jax.random.split(batch_key, k), config.batch_size
        )  # [K, B, ...]
        common = dict(shared_params=params.shared, shared_apply=shared_apply, c_kl=config.c_kl, c_ent=config.c_ent)

        def critic_k(critic, target, policy, batch_k, kk):
            return jax.grad(distral_critic_loss, has_aux=True)(
                critic,
                batch_k,
                critic_apply=critic_net.apply,
                target_critic_params=target,
                policy_params=policy,
                policy_apply=policy_net.apply,
                gamma=config.gamma,
                key=kk,
                **common,
            )

        c_grads, c_metrics = jax.vmap(critic_k)(
            params.critics, params.target_critics, params.policies, batch, jax.random.split(c_key, k)
        )
        c_updates, c_opt = tx.update(c_grads, opt_state.critics, params.critics)
        critics = optax.apply_updates(params.critics, c_updates)

        def actor_k(policy, critic, batch_k, kk):
            return jax.grad(distral_actor_loss, has_aux=True)(
                policy,
                batch_k,
                policy_apply=policy_net.apply,
                critic_apply=critic_net.apply,
                critic_params=critic,
                key=kk,
                **common,
            )

        a_grads, a_metrics = jax.vmap(actor_k)(params.policies, critics, batch, jax.random.split(a_key, k))
        a_updates, a_opt = tx.update(a_grads, opt_state.policies, params.policies)
        policies = optax.apply_updates(params.policies, a_updates)

        def distill_total(shared):
            losses, metrics = jax.vmap(
                lambda p, b, kk: distral_distill_loss(
                    shared, b, shared_apply=shared_apply, policy_params=p, policy_apply=policy_net.apply, key=kk
                )
            )(policies, batch, jax.random.split(s_key, k))
            return jnp.sum(losses), metrics

        s_grads, s_metrics = jax.grad(distill_total, has_aux=True)(params.shared)
        s_updates, s_opt = tx.update(s_grads, opt_state.shared, params.shared)
        shared = optax.apply_updates(params.shared, s_updates)

        targets = optax.incremental_update(critics, params.target_critics, config.tau)
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
        new = DistralParams(policies, critics, targets, shared)
        return (new, DistralOptState(a_opt, c_opt, s_opt), buffer), metrics

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
            return carry, jax.tree.map(lambda s: jnp.zeros((config.updates_per_step, *s.shape), s.dtype), metric_shapes)

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
        k1, k2 = jax.random.split(key)
        own = evaluate_tasks(env, env_params, lambda o, kk: act(state, o, kk, deterministic=True), k1, num_episodes)
        shared = evaluate_tasks(
            env, env_params, lambda o, kk: act(state, o, kk, deterministic=True, shared=True), k2, num_episodes
        )
        return {**own, "eval_return_shared": shared["eval_return"], "eval_success_shared": shared["eval_success"]}

    return Algorithm(
        init=init,
        step=step,
        act=act,
        evaluate=evaluate,
        config=config,
        env_steps_per_iteration=config.env_steps_per_iteration,
    )
