"""Implicit Q-learning (Kostrikov, Nair & Levine, ICLR 2022).

Never queries Q at actions outside the data: ``V`` is an upper expectile of ``Q(s, a_data)``
(:func:`~jaxrl.losses.offline.iql_value_loss`), ``Q`` regresses onto ``r + discount V(s')``
(:func:`~jaxrl.losses.offline.iql_critic_loss`), and the policy is advantage-weighted regression with weights
``min(exp(beta (Q - V)), 100)`` (:func:`~jaxrl.losses.offline.iql_actor_loss`). Policy: a diagonal Gaussian,
actions clipped to ``[-1, 1]``. One ``step`` = ``updates_per_iteration`` gradient updates; ``total_env_steps``
counts them. :func:`make_finetune` continues a trained state online (offline data mixed into a replay buffer).
On D4RL's MuJoCo locomotion data the paper scales rewards by ``1000 / (max - min)`` of the dataset's episode
returns: ``normalize_rewards`` (off by default, as it is that benchmark's setting; ``experiments/offline_table.py``
turns it on for locomotion envs).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrl import nets
from jaxrl.algos import train_state as ts
from jaxrl.algos.common import Algorithm
from jaxrl.algos.offline import common as oc
from jaxrl.algos.offline import finetune
from jaxrl.config import config, hyper
from jaxrl.envs.wrappers import action_dim
from jaxrl.losses.offline import iql_actor_loss, iql_critic_loss, iql_value_loss

State = oc.State
FinetuneState = finetune.FinetuneState  # re-exported


@config
class Config(oc.TargetConfig):
    expectile: float = hyper(0.7, low=0, high=1, low_open=True, high_open=True, help="value expectile tau")
    inverse_temperature: float = hyper(3.0, low=0, help="beta of the advantage weights exp(beta A)")
    max_weight: float = hyper(100.0, low=0, low_open=True, help="cap on the advantage weights")


class Nets(NamedTuple):
    actor: ts.TrainState
    critic: ts.TrainState  # leading [2] ensemble axis; with its target
    value: ts.TrainState


class Networks(NamedTuple):
    actor: nets.Network
    critic: nets.Network  # twin Q ensemble: [2, B]
    value: nets.Network


def make_networks(config, n_act: int) -> Networks:
    return Networks(
        nets.make_gaussian_policy(n_act, config.hidden, config.activation),
        nets.make_ensemble(nets.make_value_network(config.hidden, config.activation), 2),
        nets.make_value_network(config.hidden, config.activation),
    )


def make_update(config, networks: Networks, tx):
    """``update(nets, batch, key=None) -> (nets, metrics)``: one IQL update (value, actor, critic, target), shared
    by offline training and fine-tuning (it draws no random numbers)."""
    n = networks

    def update(records: Nets, batch, key=None):
        q = dict(q_apply=n.critic.apply, target_q_params=records.critic.target)
        value, v_metrics = oc.grad_step(
            tx, records.value, iql_value_loss, batch, value_apply=n.value.apply, expectile=config.expectile, **q
        )
        actor, a_metrics = oc.grad_step(
            tx,
            records.actor,
            iql_actor_loss,
            batch,
            policy_apply=n.actor.apply,
            value_apply=n.value.apply,
            value_params=value.params,
            inverse_temperature=config.inverse_temperature,
            max_weight=config.max_weight,
            **q,
        )
        critic, c_metrics = oc.grad_step(
            tx,
            records.critic,
            iql_critic_loss,
            batch,
            q_apply=n.critic.apply,
            value_apply=n.value.apply,
            value_params=value.params,
            discount=config.discount,
        )
        return Nets(actor, ts.soft_update(critic, config.tau), value), {**v_metrics, **a_metrics, **c_metrics}

    return update


def make_act(networks: Networks):
    def act(state, obs, key, deterministic: bool = False):
        dist = networks.actor.apply(state.nets.actor.params, obs)
        a = dist.mode() if deterministic else dist.sample(seed=key)
        return jnp.clip(a, -1.0, 1.0)

    return act


def make(config: Config, env, env_params) -> Algorithm:
    env, n_act, n_obs = oc.prepare(env, env_params, config, "iql")
    networks = make_networks(config, n_act)
    tx = optax.adam(config.learning_rate)

    def init(key):
        key, ak, ck, vk = jax.random.split(key, 4)
        o, a = jnp.zeros((n_obs,), jnp.float32), jnp.zeros((n_act,), jnp.float32)
        records = Nets(
            ts.create(tx, networks.actor.init(ak, o)),
            ts.create(tx, networks.critic.init(ck, o, a), target=True),
            ts.create(tx, networks.value.init(vk, o)),
        )
        return oc.init_state(env, config, key, records)

    step = oc.make_step(env, config, oc.on_nets(make_update(config, networks, tx)))
    return oc.algorithm(env, env_params, config, init, step, make_act(networks))


def make_finetune(config: Config, env, env_params, **kw) -> Algorithm:
    """Offline-to-online IQL: continue a trained IQL state with env interaction (offline data mixed into the
    replay buffer; see :func:`jaxrl.algos.offline.finetune.make_finetune`).
    ``init(key, offline_state)``; ``kw``: ``online_steps``, ``num_envs``, ``updates_per_step``."""
    networks = make_networks(config, action_dim(env, env_params))
    return finetune.make_finetune(
        config,
        env,
        env_params,
        name="iql",
        act=make_act(networks),
        update=make_update(config, networks, optax.adam(config.learning_rate)),
        **kw,
    )
