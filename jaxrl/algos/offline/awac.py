"""Advantage-weighted actor-critic (Nair et al., "AWAC: Accelerating Online RL with Offline Datasets", 2020).

Critic: ``sum_e mean (Q_e(s, a) - y)^2``, ``y = r + gamma (1 - d) min_e Qhat_e(s', a')``, ``a' ~ pi(.|s')`` (SAC's
critic loss with zero temperature). Actor: ``-mean min(exp(A / lambda), w_max) log pi(a_data | s)`` with
``A = Q(s, a_data) - mean_m Q(s, a_m)``, ``a_m ~ pi`` (:func:`jaxrl.losses.offline.advantage_weighted_actor_loss`).
Policy: tanh-Gaussian. One ``step`` = ``updates_per_iteration`` gradient updates; ``total_env_steps`` counts them.
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
from jaxrl.config import config, hyper, static
from jaxrl.losses.offline import advantage_weighted_actor_loss
from jaxrl.losses.sac import sac_critic_loss

OFFLINE = True


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


def make_advantage_weighted(config, env, env_params, name: str, mode: str) -> Algorithm:
    """AWAC's critic and advantage-weighted actor; ``mode`` picks the weights (``"exp"``: AWAC and CRR-exp,
    ``"binary"``: CRR-binary; see :func:`jaxrl.losses.offline.crr_weights`). ``config`` has AWAC's fields."""
    env, n_act, n_obs = oc.prepare(env, env_params, config, name)
    actor_net = nets.make_tanh_gaussian_policy(n_act, config.hidden, config.activation)
    q_single = nets.make_value_network(config.hidden, config.activation)
    critic_net = nets.make_ensemble(q_single, 2)
    tx = optax.adam(config.learning_rate)

    def init(key):
        key, ak, ck = jax.random.split(key, 3)
        o, a = jnp.zeros((n_obs,), jnp.float32), jnp.zeros((n_act,), jnp.float32)
        critic = critic_net.init(ck, o, a)
        params = Params(actor_net.init(ak, o), critic, critic)
        sampler = oc.init_sampler(env, oc.dataset_index(config), config.gamma)
        return State(params, OptState(tx.init(params.actor), tx.init(critic)), sampler, key, jnp.zeros((), jnp.int32))

    def step(state: State):
        def update(carry, key):
            params, opt_state = carry
            batch_key, critic_key, actor_key = jax.random.split(key, 3)
            batch = oc.sample_batch(env, state.sampler, batch_key, config.batch_size)
            c_grads, c_metrics = jax.grad(sac_critic_loss, has_aux=True)(
                params.critic, batch, critic_apply=critic_net.apply, target_critic_params=params.target_critic,
                actor_params=params.actor, actor_apply=actor_net.apply, alpha=0.0, gamma=config.gamma,
                key=critic_key)
            c_updates, c_opt = tx.update(c_grads, opt_state.critic, params.critic)
            critic = optax.apply_updates(params.critic, c_updates)
            a_grads, a_metrics = jax.grad(advantage_weighted_actor_loss, has_aux=True)(
                params.actor, batch, actor_key, policy_apply=actor_net.apply, q_apply=q_single.apply,
                q_params=critic, temperature=config.temperature, max_weight=config.max_weight, mode=mode,
                num_samples=config.num_samples)
            a_updates, a_opt = tx.update(a_grads, opt_state.actor, params.actor)
            actor = optax.apply_updates(params.actor, a_updates)
            target = optax.incremental_update(critic, params.target_critic, config.tau)
            metrics = {"critic_loss": c_metrics["critic_loss"], "q_data": c_metrics["q_mean"], **a_metrics}
            return (Params(actor, critic, target), OptState(a_opt, c_opt)), metrics

        key, k = jax.random.split(state.key)
        (params, opt_state), metrics = oc.scan_updates(update, (state.params, state.opt_state), k,
                                                       config.updates_per_iteration)
        return state.replace(params=params, opt_state=opt_state, key=key, iteration=state.iteration + 1), metrics

    def act(state, obs, key, deterministic: bool = False):
        dist = actor_net.apply(state.params.actor, obs)
        return nets.mode(dist) if deterministic else dist.sample(seed=key)

    return Algorithm(init=init, step=step, act=act, evaluate=oc.make_offline_evaluate(env, env_params, act),
                     config=config, env_steps_per_iteration=config.env_steps_per_iteration)


def make(config: Config, env, env_params) -> Algorithm:
    return make_advantage_weighted(config, env, env_params, "awac", mode="exp")
