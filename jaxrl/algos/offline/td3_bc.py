"""TD3+BC (Fujimoto & Gu, "A Minimalist Approach to Offline RL", NeurIPS 2021).

TD3 (twin Q, target policy smoothing, delayed actor and target updates) whose actor loss adds behaviour cloning:
``L_pi = -lambda mean Q_1(s, pi(s)) + mean (pi(s) - a)^2``, ``lambda = alpha / mean |Q_1|``
(:func:`jaxrl.losses.offline.td3_bc_actor_loss`). Critic: ``sum_e mean (Q_e(s, a) - y)^2``,
``y = r + gamma (1 - d) min_e Qhat_e(s', clip(mu_targ(s') + clip(sigma eps, -c, c), -1, 1))``. One ``step`` =
``updates_per_iteration`` gradient updates; ``total_env_steps`` counts them. :mod:`jaxrl.algos.offline.rebrac`
shares the TD3 machinery (:func:`make_td3_like`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import nets
from jaxrl.algos.common import Algorithm, phase_cond
from jaxrl.algos.offline import common as oc
from jaxrl.algos.offline.bc import make_actor
from jaxrl.config import config, hyper, static
from jaxrl.losses.offline import ensemble_mse, ensemble_q, td3_bc_actor_loss, td_target


@config
class Config(oc.CountsUpdates):
    learning_rate: float = hyper(3e-4, low=0, low_open=True, help="Adam step size (actor and critic)")
    gamma: float = hyper(0.99, low=0, high=1, help="discount")
    tau: float = hyper(0.005, low=0, high=1, low_open=True, help="target-network Polyak rate")
    alpha: float = hyper(2.5, low=0, help="weight of Q against the BC term (lambda = alpha / mean|Q|)")
    policy_noise: float = hyper(0.2, low=0, help="target policy smoothing noise (action units of [-1, 1])")
    noise_clip: float = hyper(0.5, low=0, help="clip of the smoothing noise")
    dataset_index: float = hyper(0, low=0, help="which of the stacked datasets this run trains on")
    policy_delay: int = static(2, low=1, help="critic updates per actor / target update")
    batch_size: int = static(256, low=1, help="minibatch size")
    updates_per_iteration: int = static(100, low=1, help="gradient updates per iteration (per step call)")
    hidden: tuple[int, ...] = static((256, 256), help="hidden layer widths (actor and critic)")
    activation: str = static("relu", choices=tuple(nets.core.ACTIVATIONS), help="hidden activation")
    total_env_steps: int = static(20_000, low=1, help="training length in gradient updates (offline: no env steps)")


class Params(NamedTuple):
    actor: Any
    critic: Any  # leading [2] ensemble axis
    target_actor: Any
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
    num_updates: jax.Array


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
    mu = actor_apply(target_actor_params, batch.next_observations)
    noise = jnp.clip(policy_noise * jax.random.normal(key, mu.shape), -noise_clip, noise_clip)
    a_tp1 = jnp.clip(mu + noise, -1.0, 1.0)
    v_tp1 = jnp.min(ensemble_q(q_apply, target_q_params, batch.next_observations, a_tp1), axis=0)
    y = jax.lax.stop_gradient(td_target(batch.rewards, discount, batch.terminals, v_tp1))
    q = ensemble_q(q_apply, q_params, batch.observations, batch.actions)
    loss = ensemble_mse(q, y)
    return loss, {"critic_loss": loss, "q_data": jnp.mean(q), "target": jnp.mean(y)}


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
    algorithm's hyperparameters already bound. ``q_network``: ONE critic (default: an MLP of ``config.hidden``),
    made a twin ensemble here. ``sample(sampler, key) -> batch`` (default: :func:`oc.sample_batch`). ``config``
    needs ``learning_rate``, ``gamma``, ``tau``, ``dataset_index``, ``policy_delay``, ``batch_size``,
    ``updates_per_iteration``, ``hidden``, ``activation``.
    """
    env, n_act, n_obs = oc.prepare(env, env_params, config, name)
    actor = make_actor(n_act, config.hidden, config.activation)
    q_single = q_network if q_network is not None else nets.make_value_network(config.hidden, config.activation)
    critic_net = nets.make_ensemble(q_single, 2)
    tx = optax.adam(config.learning_rate)
    if sample is None:
        sample = lambda sampler, key: oc.sample_batch(env, sampler, key, config.batch_size)

    def init(key):
        key, ak, ck = jax.random.split(key, 3)
        o, a = jnp.zeros((n_obs,), jnp.float32), jnp.zeros((n_act,), jnp.float32)
        actor_params, critic = actor.init(ak, o), critic_net.init(ck, o, a)
        params = Params(actor_params, critic, actor_params, critic)
        sampler = oc.init_sampler(env, oc.dataset_index(config), config.gamma)
        return State(
            params,
            OptState(tx.init(actor_params), tx.init(critic)),
            sampler,
            key,
            jnp.zeros((), jnp.int32),
            jnp.zeros((), jnp.int32),
        )

    def step(state: State):
        def update(carry, key):
            params, opt_state, count = carry
            batch_key, noise_key = jax.random.split(key)
            batch = sample(state.sampler, batch_key)
            c_grads, c_metrics = jax.grad(critic_loss, has_aux=True)(
                params.critic,
                batch,
                noise_key,
                q_apply=q_single.apply,
                target_q_params=params.target_critic,
                actor_apply=actor.apply,
                target_actor_params=params.target_actor,
            )
            c_updates, c_opt = tx.update(c_grads, opt_state.critic, params.critic)
            critic = optax.apply_updates(params.critic, c_updates)

            def actor_and_targets(actor_params, a_opt, target_actor, target_critic):
                a_grads, a_metrics = jax.grad(actor_loss, has_aux=True)(
                    actor_params, batch, actor_apply=actor.apply, q_apply=q_single.apply, q_params=critic
                )
                a_updates, a_opt = tx.update(a_grads, a_opt, actor_params)
                actor_params = optax.apply_updates(actor_params, a_updates)
                return (
                    actor_params,
                    a_opt,
                    optax.incremental_update(actor_params, target_actor, config.tau),
                    optax.incremental_update(critic, target_critic, config.tau),
                    a_metrics,
                )

            def unchanged(actor_params, a_opt, target_actor, target_critic):
                shapes = jax.eval_shape(actor_and_targets, actor_params, a_opt, target_actor, target_critic)[-1]
                return (
                    actor_params,
                    a_opt,
                    target_actor,
                    target_critic,
                    jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes),
                )

            # Every policy_delay-th update moves the actor and the targets; every run of the program is at the
            # same update count, so phase_cond runs the actor's work only on those updates (a masked update
            # would compute it every time and throw it away).
            delayed = (count % config.policy_delay) == 0
            actor_params, a_opt, target_actor, target_critic, a_metrics = phase_cond(
                delayed,
                actor_and_targets,
                unchanged,
                params.actor,
                opt_state.actor,
                params.target_actor,
                params.target_critic,
            )
            metrics = {
                **c_metrics,
                "mc_return": jnp.mean(batch.mc_returns),
                **{k: (v, delayed) for k, v in a_metrics.items()},
            }
            return (
                Params(actor_params, critic, target_actor, target_critic),
                OptState(a_opt, c_opt),
                count + 1,
            ), metrics

        key, k = jax.random.split(state.key)
        (params, opt_state, count), metrics = jax.lax.scan(
            update,
            (state.params, state.opt_state, state.num_updates),
            jax.random.split(k, config.updates_per_iteration),
        )
        # actor metrics are averaged over the updates that moved the actor, the rest over all updates
        metrics = {
            k: (jnp.sum(v[0] * v[1]) / jnp.maximum(jnp.sum(v[1]), 1) if isinstance(v, tuple) else jnp.mean(v))
            for k, v in metrics.items()
        }
        return state.replace(
            params=params, opt_state=opt_state, key=key, iteration=state.iteration + 1, num_updates=count
        ), metrics

    def act(state, obs, key, deterministic: bool = True):
        return actor.apply(state.params.actor, obs)

    return Algorithm(
        init=init,
        step=step,
        act=act,
        evaluate=oc.make_offline_evaluate(env, env_params, act),
        config=config,
        env_steps_per_iteration=config.env_steps_per_iteration,
    )


def make(config: Config, env, env_params) -> Algorithm:
    critic_loss = functools.partial(
        _td3_critic_loss, discount=config.gamma, policy_noise=config.policy_noise, noise_clip=config.noise_clip
    )
    actor_loss = functools.partial(td3_bc_actor_loss, alpha=config.alpha)
    return make_td3_like(config, env, env_params, "td3_bc", critic_loss=critic_loss, actor_loss=actor_loss)
