"""Advantage-weighted actor-critic (Nair et al., "AWAC: Accelerating Online RL with Offline Datasets", 2020).

Critic: ``sum_e mean (Q_e(s, a) - y)^2``, ``y = r + discount (1 - d) min_e Qhat_e(s', a')``, ``a' ~ pi(.|s')`` (SAC's
critic loss with zero temperature). Actor: ``-mean min(exp(A / lambda), w_max) log pi(a_data | s)`` with
``A = Q(s, a_data) - mean_m Q(s, a_m)``, ``a_m ~ pi`` (:func:`jaxrl.losses.offline.advantage_weighted_actor_loss`).
Policy: tanh-Gaussian. One ``step`` = ``updates_per_iteration`` gradient updates; ``total_env_steps`` counts them.
:func:`make_finetune` continues a trained state online (offline data mixed into a replay buffer).
:mod:`jaxrl.algos.offline.crr` is the same machinery (:func:`make_advantage_weighted`) with binary weights.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrl.algos import train_state as ts
from jaxrl.algos.common import Algorithm
from jaxrl.algos.offline import common as oc
from jaxrl.algos.offline import finetune
from jaxrl.algos.offline.sac_offline import Networks, make_networks  # the same actor and twin critic
from jaxrl.config import config, hyper, static
from jaxrl.envs.wrappers import action_dim
from jaxrl.losses.offline import advantage_weighted_actor_loss
from jaxrl.losses.sac import sac_critic_loss

State = oc.State


@config
class Config(oc.TargetConfig):
    temperature: float = hyper(1.0, low=0, low_open=True, help="lambda of the weights exp(A / lambda)")
    max_weight: float = hyper(20.0, low=0, low_open=True, help="cap on the advantage weights")
    num_samples: int = static(4, low=1, help="policy actions per state for the value baseline")


class Nets(NamedTuple):
    actor: ts.TrainState
    critic: ts.TrainState  # leading [2] ensemble axis; with its target


def make_update(config, networks: Networks, tx, mode: str):
    """``update(nets, batch, key) -> (nets, metrics)``: one critic, actor and target update, shared by offline
    training and fine-tuning."""
    n = networks

    def update(records: Nets, batch, key):
        critic_key, actor_key = jax.random.split(key)
        critic, c_metrics = oc.grad_step(
            tx,
            records.critic,
            sac_critic_loss,
            batch,
            critic_key,
            critic_apply=n.critic.apply,
            target_critic_params=records.critic.target,
            actor_params=records.actor.params,
            actor_apply=n.actor.apply,
            alpha=0.0,
            discount=config.discount,
        )
        actor, a_metrics = oc.grad_step(
            tx,
            records.actor,
            advantage_weighted_actor_loss,
            batch,
            actor_key,
            policy_apply=n.actor.apply,
            q_apply=n.critic.apply,
            q_params=critic.params,
            temperature=config.temperature,
            max_weight=config.max_weight,
            mode=mode,
            num_samples=config.num_samples,
        )
        metrics = {"critic_loss": c_metrics["critic_loss"], "q_data": c_metrics["q_mean"], **a_metrics}
        return Nets(actor, ts.soft_update(critic, config.tau)), metrics

    return update


def make_advantage_weighted(config, env, env_params, name: str, mode: str) -> Algorithm:
    """AWAC's critic and advantage-weighted actor; ``mode`` picks the weights (``"exp"``: AWAC and CRR-exp,
    ``"binary"``: CRR-binary; see :func:`jaxrl.losses.offline.crr_weights`). ``config`` has AWAC's fields."""
    env, n_act, n_obs = oc.prepare(env, env_params, config, name)
    networks = make_networks(config, n_act)
    tx = optax.adam(config.learning_rate)

    def init(key):
        key, ak, ck = jax.random.split(key, 3)
        o, a = jnp.zeros((n_obs,), jnp.float32), jnp.zeros((n_act,), jnp.float32)
        critic = ts.create(tx, networks.critic.init(ck, o, a), target=True)
        return oc.init_state(env, config, key, Nets(ts.create(tx, networks.actor.init(ak, o)), critic))

    step = oc.make_step(env, config, oc.on_nets(make_update(config, networks, tx, mode)), update_keys=1)
    return oc.algorithm(env, env_params, config, init, step, oc.stochastic_act(networks.actor))


def make(config: Config, env, env_params) -> Algorithm:
    return make_advantage_weighted(config, env, env_params, "awac", mode="exp")


def make_finetune(config: Config, env, env_params, **kw) -> Algorithm:
    """Offline-to-online AWAC (the setting AWAC was designed for): continue a trained AWAC state with env
    interaction, offline data mixed into the replay buffer (:func:`jaxrl.algos.offline.finetune.make_finetune`).

    ``init(key, offline_state)``; ``kw``: ``online_steps``, ``num_envs``, ``updates_per_step``."""
    networks = make_networks(config, action_dim(env, env_params))
    update = make_update(config, networks, optax.adam(config.learning_rate), "exp")
    return finetune.make_finetune(
        config,
        env,
        env_params,
        name="awac",
        act=oc.stochastic_act(networks.actor),
        update=update,
        **kw,
    )
