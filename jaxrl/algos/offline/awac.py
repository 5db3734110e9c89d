"""Advantage-weighted actor-critic (Nair et al., "AWAC: Accelerating Online RL with Offline Datasets", 2020).

Critic: ``sum_e mean (Q_e(s, a) - y)^2``, ``y = r + gamma (1 - d) min_e Qhat_e(s', a')``, ``a' ~ pi(.|s')`` (SAC's
critic loss with zero temperature). Actor: ``-mean min(exp(A / lambda), w_max) log pi(a_data | s)`` with
``A = Q(s, a_data) - mean_m Q(s, a_m)``, ``a_m ~ pi`` (:func:`jaxrl.losses.offline.advantage_weighted_actor_loss`).
Policy: tanh-Gaussian. One ``step`` = ``updates_per_iteration`` gradient updates; ``total_env_steps`` counts them.
:func:`make_finetune` continues a trained state online (offline data mixed into a replay buffer).
:mod:`jaxrl.algos.offline.crr` is the same machinery (:func:`make_advantage_weighted`) with binary weights.
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
from jaxrl.algos.offline.sac_offline import Networks, make_act, make_networks  # same actor and twin critic
from jaxrl.config import config, hyper, static
from jaxrl.envs.wrappers import action_dim
from jaxrl.losses.offline import advantage_weighted_actor_loss
from jaxrl.losses.sac import sac_critic_loss


@config
class Config(oc.CountsUpdates):
    learning_rate: float = hyper(3e-4, low=0, low_open=True, help="Adam step size (actor and critic)")
    gamma: float = hyper(0.99, low=0, high=1, help="discount")
    tau: float = hyper(0.005, low=0, high=1, low_open=True, help="target-network Polyak rate")
    temperature: float = hyper(1.0, low=0, low_open=True, help="lambda of the weights exp(A / lambda)")
    max_weight: float = hyper(20.0, low=0, low_open=True, help="cap on the advantage weights")
    dataset_index: float = hyper(0, low=0, help="which of the stacked datasets this run trains on")
    num_samples: int = static(4, low=1, help="policy actions per state for the value baseline")
    batch_size: int = static(256, low=1, help="minibatch size")
    updates_per_iteration: int = static(100, low=1, help="gradient updates per iteration (per step call)")
    hidden: tuple[int, ...] = static((256, 256), help="hidden layer widths (actor and critic)")
    activation: str = static("relu", choices=tuple(nets.core.ACTIVATIONS), help="hidden activation")
    total_env_steps: int = static(20_000, low=1, help="training length in gradient updates (offline: no env steps)")


class Params(NamedTuple):
    actor: Any
    critic: Any  # leading [2] ensemble axis
    target_critic: Any


class OptState(NamedTuple):
    actor: Any
    critic: Any


@struct.dataclass
class State:
    params: Params
    opt_state: OptState
    sampler: oc.Sampler
    key: jax.Array
    iteration: jax.Array


def make_update(config, networks: Networks, tx, mode: str):
    """``update(params, opt_state, batch, key) -> (params, opt_state, metrics)``: one critic, actor and target
    update, shared by offline training and fine-tuning."""
    n = networks

    def update(params: Params, opt_state: OptState, batch, key):
        critic_key, actor_key = jax.random.split(key)
        c_grads, c_metrics = jax.grad(sac_critic_loss, has_aux=True)(
            params.critic,
            batch,
            critic_apply=n.critic.apply,
            target_critic_params=params.target_critic,
            actor_params=params.actor,
            actor_apply=n.actor.apply,
            alpha=0.0,
            gamma=config.gamma,
            key=critic_key,
        )
        c_updates, c_opt = tx.update(c_grads, opt_state.critic, params.critic)
        critic = optax.apply_updates(params.critic, c_updates)
        a_grads, a_metrics = jax.grad(advantage_weighted_actor_loss, has_aux=True)(
            params.actor,
            batch,
            actor_key,
            policy_apply=n.actor.apply,
            q_apply=n.q_single.apply,
            q_params=critic,
            temperature=config.temperature,
            max_weight=config.max_weight,
            mode=mode,
            num_samples=config.num_samples,
        )
        a_updates, a_opt = tx.update(a_grads, opt_state.actor, params.actor)
        actor = optax.apply_updates(params.actor, a_updates)
        target = optax.incremental_update(critic, params.target_critic, config.tau)
        metrics = {"critic_loss": c_metrics["critic_loss"], "q_data": c_metrics["q_mean"], **a_metrics}
        return Params(actor, critic, target), OptState(a_opt, c_opt), metrics

    return update


def make_advantage_weighted(config, env, env_params, name: str, mode: str) -> Algorithm:
    """AWAC's critic and advantage-weighted actor; ``mode`` picks the weights (``"exp"``: AWAC and CRR-exp,
    ``"binary"``: CRR-binary; see :func:`jaxrl.losses.offline.crr_weights`). ``config`` has AWAC's fields."""
    env, n_act, n_obs = oc.prepare(env, env_params, config, name)
    networks = make_networks(config, n_act)
    tx = optax.adam(config.learning_rate)
    update_fn = make_update(config, networks, tx, mode)

    def init(key):
        key, ak, ck = jax.random.split(key, 3)
        o, a = jnp.zeros((n_obs,), jnp.float32), jnp.zeros((n_act,), jnp.float32)
        critic = networks.critic.init(ck, o, a)
        params = Params(networks.actor.init(ak, o), critic, critic)
        sampler = oc.init_sampler(env, oc.dataset_index(config), config.gamma)
        return State(params, OptState(tx.init(params.actor), tx.init(critic)), sampler, key, jnp.zeros((), jnp.int32))

    def step(state: State):
        def update(carry, key):
            batch_key, k = jax.random.split(key)
            params, opt_state, metrics = update_fn(
                *carry, oc.sample_batch(env, state.sampler, batch_key, config.batch_size), k
            )
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


def make(config: Config, env, env_params) -> Algorithm:
    return make_advantage_weighted(config, env, env_params, "awac", mode="exp")


def make_finetune(
    config: Config, env, env_params, *, online_steps: int, num_envs: int = 1, updates_per_step: int = 1
) -> Algorithm:
    """Offline-to-online AWAC (the setting AWAC was designed for): continue a trained AWAC state with env
    interaction, offline data mixed into the replay buffer (:func:`jaxrl.algos.offline.finetune.make_finetune`).
    ``init(key, offline_state)``."""
    networks = make_networks(config, action_dim(env, env_params))
    update = make_update(config, networks, optax.adam(config.learning_rate), "exp")
    return finetune.make_finetune(
        config,
        env,
        env_params,
        name="awac",
        act=make_act(networks),
        update=update,
        online_steps=online_steps,
        num_envs=num_envs,
        updates_per_step=updates_per_step,
    )
