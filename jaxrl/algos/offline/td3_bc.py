"""TD3+BC (Fujimoto & Gu, "A Minimalist Approach to Offline RL", NeurIPS 2021).

TD3 (twin Q, target policy smoothing, delayed actor and target updates) whose actor loss adds behaviour cloning:
``L_pi = -lambda mean Q_1(s, pi(s)) + mean (pi(s) - a)^2``, ``lambda = alpha / mean |Q_1|``
(:func:`jaxrl.losses.offline.td3_bc_actor_loss`), on states standardised by the dataset's mean and std (the paper's
other change, ``normalize_states``; :mod:`jaxrl.algos.offline.common`). Critic: ``sum_e mean (Q_e(s, a) - y)^2``,
``y = r + discount (1 - d) min_e Qhat_e(s', clip(mu_targ(s') + clip(sigma eps, -c, c), -1, 1))``. One ``step`` =
``updates_per_iteration`` gradient updates; ``total_env_steps`` counts them. :mod:`jaxrl.algos.offline.rebrac`
shares the TD3 machinery (:func:`make_td3_like`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrl import nets
from jaxrl.algos import train_state as ts
from jaxrl.algos.common import Algorithm, phase_cond
from jaxrl.algos.offline import common as oc
from jaxrl.algos.offline.bc import deterministic_act, make_actor
from jaxrl.config import config, hyper, static
from jaxrl.losses.offline import ensemble_mse, ensemble_q, td3_bc_actor_loss, td_target

State = oc.State  # ``extra``: the number of updates made (the actor and targets move every policy_delay-th)


@config
class TD3Config(oc.TargetConfig):
    """The fields of TD3 on dataset batches (TD3+BC, ReBRAC)."""

    policy_noise: float = hyper(0.2, low=0, help="target policy smoothing noise (action units of [-1, 1])")
    noise_clip: float = hyper(0.5, low=0, help="clip of the smoothing noise")
    policy_delay: int = static(2, low=1, help="critic updates per actor / target update")


@config
class Config(TD3Config):
    alpha: float = hyper(2.5, low=0, help="weight of Q against the BC term (lambda = alpha / mean|Q|)")
    # the paper's second change to TD3 (its section 5): states standardised by the dataset's mean and std
    normalize_states: bool = static(
        True, help="standardise observations by the dataset's per-feature mean and std (the policy acts likewise)"
    )


class Nets(NamedTuple):
    actor: ts.TrainState  # with its target
    critic: ts.TrainState  # leading [2] ensemble axis; with its target


def _td3_critic_loss(
    q_params,
    batch,
    key,
    *,
    q_apply,
    target_q_params,
    actor_apply,
    target_actor_params,
    discount,
    policy_noise,
    noise_clip,
):
    """TD3 critic with target policy smoothing (see the module docstring)."""
    mu = actor_apply(target_actor_params, batch.next_obs)
    noise = jnp.clip(policy_noise * jax.random.normal(key, mu.shape), -noise_clip, noise_clip)
    a_tp1 = jnp.clip(mu + noise, -1.0, 1.0)
    v_tp1 = jnp.min(ensemble_q(q_apply, target_q_params, batch.next_obs, a_tp1), axis=0)
    y = jax.lax.stop_gradient(td_target(batch.reward, discount, batch.terminated, v_tp1))
    q = ensemble_q(q_apply, q_params, batch.obs, batch.action)
    loss = ensemble_mse(q, y)
    return loss, {"critic_loss": loss, "q_data": jnp.mean(q), "target": jnp.mean(y)}


def _make_update(config, tx, actor: nets.Network, critic_net: nets.Network, critic_loss, actor_loss):
    """``update(state, batch, noise_key)``: a critic update, and every ``policy_delay``-th an actor and target
    update."""

    def update(state: State, batch, noise_key):
        records, count = state.nets, state.extra
        critic, c_metrics = oc.grad_step(
            tx,
            records.critic,
            critic_loss,
            batch,
            noise_key,
            q_apply=critic_net.apply,
            target_q_params=records.critic.target,
            actor_apply=actor.apply,
            target_actor_params=records.actor.target,
        )

        def actor_and_targets(actor_record, critic_target):
            kw = dict(actor_apply=actor.apply, q_apply=critic_net.apply, q_params=critic.params)
            actor_record, a_metrics = oc.grad_step(tx, actor_record, actor_loss, batch, **kw)
            critic_target = ts.polyak(critic.params, critic_target, config.tau)
            return ts.soft_update(actor_record, config.tau), critic_target, a_metrics

        def unchanged(actor_record, critic_target):
            shapes = jax.eval_shape(actor_and_targets, actor_record, critic_target)[-1]
            return actor_record, critic_target, jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)

        # Every policy_delay-th update moves the actor and the targets; every run of the program is at the same
        # update count, so phase_cond runs the actor's work only on those updates (a masked update would compute
        # it every time and throw it away).
        delayed = (count % config.policy_delay) == 0
        actor_record, critic_target, a_metrics = phase_cond(
            delayed, actor_and_targets, unchanged, records.actor, records.critic.target
        )
        metrics = {
            **c_metrics,
            "mc_return": jnp.mean(batch.extras.mc_returns),
            **{k: (v, delayed) for k, v in a_metrics.items()},  # averaged over the updates that moved the actor
        }
        nets_ = Nets(actor_record, critic._replace(target=critic_target))
        return dataclasses.replace(state, nets=nets_, extra=count + 1), metrics

    return update


def make_td3_like(
    config,
    env,
    env_params,
    name: str,
    *,
    critic_loss: Callable,
    actor_loss: Callable,
    q_network: nets.Network | None = None,
    sample: Callable | None = None,
) -> Algorithm:
    """TD3 on dataset batches (twin Q, delayed actor and target updates; TD3+BC, ReBRAC).

    ``critic_loss(q_params, batch, key, *, q_apply, target_q_params, actor_apply, target_actor_params)`` and
    ``actor_loss(actor_params, batch, *, actor_apply, q_apply, q_params)`` return ``(loss, metrics)``, with the
    algorithm's hyperparameters already bound; ``q_apply`` is the twin ensemble's. ``q_network``: ONE critic
    (default: an MLP of ``config.hidden``), made a twin ensemble here. ``sample(state, key) -> batch`` (default:
    :func:`oc.sample_batch`). ``config`` is a :class:`TD3Config`.
    """
    env, n_act, n_obs = oc.prepare(env, env_params, config, name)
    actor = make_actor(n_act, config.hidden, config.activation)
    q_single = q_network if q_network is not None else nets.make_value_network(config.hidden, config.activation)
    critic_net = nets.make_ensemble(q_single, 2)
    tx = optax.adam(config.learning_rate)

    def init(key):
        key, ak, ck = jax.random.split(key, 3)
        o, a = jnp.zeros((n_obs,), jnp.float32), jnp.zeros((n_act,), jnp.float32)
        records = Nets(
            ts.create(tx, actor.init(ak, o), target=True), ts.create(tx, critic_net.init(ck, o, a), target=True)
        )
        return oc.init_state(env, config, key, records, extra=jnp.zeros((), jnp.int32))

    update = _make_update(config, tx, actor, critic_net, critic_loss, actor_loss)
    step = oc.make_step(env, config, update, update_keys=1, sample=sample)
    return oc.algorithm(env, env_params, config, init, step, deterministic_act(actor))


def make(config: Config, env, env_params) -> Algorithm:
    critic_loss = functools.partial(
        _td3_critic_loss, discount=config.discount, policy_noise=config.policy_noise, noise_clip=config.noise_clip
    )
    actor_loss = functools.partial(td3_bc_actor_loss, alpha=config.alpha)
    return make_td3_like(config, env, env_params, "td3_bc", critic_loss=critic_loss, actor_loss=actor_loss)
