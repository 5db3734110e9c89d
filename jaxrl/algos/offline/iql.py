"""Implicit Q-learning (Kostrikov, Nair & Levine, ICLR 2022).

Never queries Q at actions outside the data: ``V`` is an upper expectile of ``Q(s, a_data)``
(:func:`~jaxrl.losses.offline.iql_value_loss`), ``Q`` regresses onto ``r + gamma V(s')``
(:func:`~jaxrl.losses.offline.iql_critic_loss`), and the policy is advantage-weighted regression with weights
``min(exp(beta (Q - V)), 100)`` (:func:`~jaxrl.losses.offline.iql_actor_loss`). Policy: a diagonal Gaussian,
actions clipped to ``[-1, 1]``. One ``step`` = ``updates_per_iteration`` gradient updates; ``total_env_steps``
counts them. :func:`make_finetune` continues a trained state online (offline data mixed into a replay buffer).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import nets
from jaxrl.algos.common import Algorithm
from jaxrl.algos.offline import common as oc
from jaxrl.algos.offline import finetune
from jaxrl.config import config, hyper, static
from jaxrl.envs.wrappers import action_dim
from jaxrl.losses.offline import iql_actor_loss, iql_critic_loss, iql_value_loss


@config
class Config(oc.CountsUpdates):
    learning_rate: float = hyper(3e-4, low=0, low_open=True, help="Adam step size (actor, critic, value)")
    gamma: float = hyper(0.99, low=0, high=1, help="discount")
    tau: float = hyper(0.005, low=0, high=1, low_open=True, help="target-network Polyak rate")
    expectile: float = hyper(0.7, low=0, high=1, low_open=True, high_open=True, help="value expectile tau")
    inverse_temperature: float = hyper(3.0, low=0, help="beta of the advantage weights exp(beta A)")
    max_weight: float = hyper(100.0, low=0, low_open=True, help="cap on the advantage weights")
    dataset_index: float = hyper(0, low=0, help="which of the stacked datasets this run trains on")
    batch_size: int = static(256, low=1, help="minibatch size")
    updates_per_iteration: int = static(100, low=1, help="gradient updates per iteration (per step call)")
    hidden: tuple[int, ...] = static((256, 256), help="hidden layer widths (actor, critic, value)")
    activation: str = static("relu", choices=tuple(nets.core.ACTIVATIONS), help="hidden activation")
    total_env_steps: int = static(20_000, low=1, help="training length in gradient updates (offline: no env steps)")


class Params(NamedTuple):
    actor: Any
    critic: Any  # leading [2] ensemble axis
    target_critic: Any
    value: Any


class OptState(NamedTuple):
    actor: Any
    critic: Any
    value: Any


@struct.dataclass
class State:
    params: Params
    opt_state: OptState
    sampler: oc.Sampler
    key: jax.Array
    iteration: jax.Array


class Networks(NamedTuple):
    actor: nets.Network
    q_single: nets.Network
    critic: nets.Network
    value: nets.Network


def make_networks(config, n_act: int) -> Networks:
    q_single = nets.make_value_network(config.hidden, config.activation)
    return Networks(
        nets.make_gaussian_policy(n_act, config.hidden, config.activation),
        q_single,
        nets.make_ensemble(q_single, 2),
        nets.make_value_network(config.hidden, config.activation),
    )


def make_update(config, networks: Networks, tx):
    """``update(params, opt_state, batch) -> (params, opt_state, metrics)``: one IQL update (value, actor,
    critic, target), shared by offline training and fine-tuning."""
    n = networks

    def update(params: Params, opt_state: OptState, batch):
        v_grads, v_metrics = jax.grad(iql_value_loss, has_aux=True)(
            params.value,
            batch,
            value_apply=n.value.apply,
            q_apply=n.q_single.apply,
            target_q_params=params.target_critic,
            expectile=config.expectile,
        )
        v_updates, v_opt = tx.update(v_grads, opt_state.value, params.value)
        value = optax.apply_updates(params.value, v_updates)

        a_grads, a_metrics = jax.grad(iql_actor_loss, has_aux=True)(
            params.actor,
            batch,
            policy_apply=n.actor.apply,
            q_apply=n.q_single.apply,
            target_q_params=params.target_critic,
            value_apply=n.value.apply,
            value_params=value,
            inverse_temperature=config.inverse_temperature,
            max_weight=config.max_weight,
        )
        a_updates, a_opt = tx.update(a_grads, opt_state.actor, params.actor)
        actor = optax.apply_updates(params.actor, a_updates)

        c_grads, c_metrics = jax.grad(iql_critic_loss, has_aux=True)(
            params.critic,
            batch,
            q_apply=n.q_single.apply,
            value_apply=n.value.apply,
            value_params=value,
            discount=config.gamma,
        )
        c_updates, c_opt = tx.update(c_grads, opt_state.critic, params.critic)
        critic = optax.apply_updates(params.critic, c_updates)
        target = optax.incremental_update(critic, params.target_critic, config.tau)
        metrics = {**v_metrics, **a_metrics, **c_metrics}
        return Params(actor, critic, target, value), OptState(a_opt, c_opt, v_opt), metrics

    return update


def make_act(networks: Networks):
    def act(state, obs, key, deterministic: bool = False):
        dist = networks.actor.apply(state.params.actor, obs)
        a = dist.mode() if deterministic else dist.sample(seed=key)
        return jnp.clip(a, -1.0, 1.0)

    return act


def make(config: Config, env, env_params) -> Algorithm:
    env, n_act, n_obs = oc.prepare(env, env_params, config, "iql")
    networks = make_networks(config, n_act)
    tx = optax.adam(config.learning_rate)
    update_fn = make_update(config, networks, tx)

    def init(key):
        key, ak, ck, vk = jax.random.split(key, 4)
        o, a = jnp.zeros((n_obs,), jnp.float32), jnp.zeros((n_act,), jnp.float32)
        critic = networks.critic.init(ck, o, a)
        params = Params(networks.actor.init(ak, o), critic, critic, networks.value.init(vk, o))
        opt_state = OptState(tx.init(params.actor), tx.init(params.critic), tx.init(params.value))
        sampler = oc.init_sampler(env, oc.dataset_index(config), config.gamma)
        return State(params, opt_state, sampler, key, jnp.zeros((), jnp.int32))

    def step(state: State):
        def update(carry, key):
            batch = oc.sample_batch(env, state.sampler, key, config.batch_size)
            params, opt_state, metrics = update_fn(*carry, batch)
            return (params, opt_state), metrics

        key, k = jax.random.split(state.key)
        (params, opt_state), metrics = oc.scan_updates(
            update, (state.params, state.opt_state), k, config.updates_per_iteration
        )
        return state.replace(params=params, opt_state=opt_state, key=key, iteration=state.iteration + 1), metrics

    act = make_act(networks)
    return Algorithm(
        init=init,
        step=step,
        act=act,
        evaluate=oc.make_offline_evaluate(env, env_params, act),
        config=config,
        env_steps_per_iteration=config.env_steps_per_iteration,
    )


# ------------------------------------------------------------------------------------- offline-to-online

FinetuneState = finetune.FinetuneState  # re-exported


def make_finetune(
    config: Config, env, env_params, *, online_steps: int, num_envs: int = 1, updates_per_step: int = 1
) -> Algorithm:
    """Offline-to-online IQL: continue a trained IQL state with env interaction (offline data mixed into the
    replay buffer; see :func:`jaxrl.algos.offline.finetune.make_finetune`). ``init(key, offline_state)``."""
    networks = make_networks(config, action_dim(env, env_params))
    update_fn = make_update(config, networks, optax.adam(config.learning_rate))
    return finetune.make_finetune(
        config,
        env,
        env_params,
        name="iql",
        act=make_act(networks),
        update=lambda params, opt_state, batch, key: update_fn(params, opt_state, batch),
        online_steps=online_steps,
        num_envs=num_envs,
        updates_per_step=updates_per_step,
    )
