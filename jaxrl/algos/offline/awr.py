"""Advantage-Weighted Regression (Peng, Kumar, Zhang & Levine, "Advantage-Weighted Regression: Simple and Scalable
Off-Policy RL", 2019) on a fixed dataset.

Value: ``L_V = mean_b (V(s_b) - R_b)^2`` (:func:`jaxrl.losses.offline.awr_value_loss`). Actor:
``L_pi = -mean_b min(exp((R_b - V(s_b)) / beta), w_max) log pi(a_b | s_b)``
(:func:`jaxrl.losses.offline.awr_actor_loss`). The return ``R`` is, by ``returns``:

* ``"td_lambda"`` (the paper's choice, ``lambda = 0.95``): the TD(lambda) return of every row of the dataset,
  ``R_t = r_t + discount (1 - d_t) [(1 - lambda) V(s_{t+1}) + lambda R_{t+1}]`` inside an episode and
  ``R_t = r_t + discount (1 - d_t) V(s_{t+1})`` on its last row (a timeout bootstraps, a terminal does not),
  recomputed with the current ``V`` once per ``step`` (as the paper recomputes it once per iteration)
  (:func:`dataset_lambda_returns`); ``lambda = 1`` is the Monte-Carlo return with a bootstrap at timeouts;
* ``"mc"``: the discounted Monte-Carlo return of the data to the end of its episode (no bootstrap at all).

Policy: tanh-Gaussian (the weights need no critic of actions, so nothing queries actions outside the data). One
``step`` = ``updates_per_iteration`` gradient updates; ``total_env_steps`` counts them.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrl import nets
from jaxrl.algos import train_state as ts
from jaxrl.algos.common import Algorithm
from jaxrl.algos.offline import common as oc
from jaxrl.algos.offline import sampling
from jaxrl.config import config, hyper, static
from jaxrl.data import dataset as ds
from jaxrl.losses.offline import awr_actor_loss, awr_value_loss

State = oc.State  # its sampler's ``mc_returns`` hold the value targets R of the dataset's rows


@config
class Config(oc.OfflineConfig):
    learning_rate: float = hyper(1e-3, low=0, low_open=True, help="Adam step size of the actor")
    value_learning_rate: float = hyper(1e-3, low=0, low_open=True, help="Adam step size of the value function")
    td_lambda: float = hyper(0.95, low=0, high=1, help="lambda of the TD(lambda) returns (returns='td_lambda')")
    temperature: float = hyper(1.0, low=0, low_open=True, help="beta of the weights exp(A / beta)")
    max_weight: float = hyper(20.0, low=0, low_open=True, help="cap on the advantage weights")
    returns: str = static(
        "td_lambda",
        choices=("td_lambda", "mc"),
        help="value targets: TD(lambda) returns with the current V, or Monte-Carlo returns",
    )


class Nets(NamedTuple):
    actor: ts.TrainState
    value: ts.TrainState


def dataset_lambda_returns(member: ds.Dataset, v_tp1: jax.Array, discount, lambda_) -> jax.Array:
    """``[N]`` TD(lambda) returns of a dataset's rows given ``v_tp1 = V(s_{t+1})`` (``[N]``); 0 on padding.

    ``R_t = r_t + discount (1 - d_t) [V(s_{t+1}) + lambda (1 - end_t) (R_{t+1} - V(s_{t+1}))]`` with ``end_t`` from
    :func:`jaxrl.data.dataset.episode_ends` (terminal, timeout, or the data's episode cut).
    """
    valid = (member.mask > 0).astype(jnp.float32) if member.mask is not None else jnp.ones_like(member.rewards)
    discount_t = discount * (1.0 - member.terminals.astype(jnp.float32))
    trace_t = lambda_ * (1.0 - ds.episode_ends(member))

    def backward(ret_tp1, xs):
        r_t, d_t, c_t, v = xs
        ret = r_t + d_t * (v + c_t * (ret_tp1 - v))
        return ret, ret

    _, returns = jax.lax.scan(
        backward,
        jnp.zeros((), jnp.float32),
        (member.rewards.astype(jnp.float32), discount_t, trace_t, v_tp1),
        reverse=True,
    )
    return returns * valid


def make(config: Config, env, env_params) -> Algorithm:
    env, n_act, n_obs = oc.prepare(env, env_params, config, "awr")
    actor_net = nets.make_tanh_gaussian_policy(n_act, config.hidden, config.activation)
    value_net = nets.make_value_network(config.hidden, config.activation)
    actor_tx, value_tx = optax.adam(config.learning_rate), optax.adam(config.value_learning_rate)

    def with_targets(state):
        """The value targets of every row, recomputed with the current V once per ``step``."""
        if config.returns == "mc":
            return state
        member = oc.member(env, state.sampler.index)
        next_obs = sampling.standardize(state.sampler.obs_stats, member.next_observations)
        v_tp1 = jax.lax.stop_gradient(value_net.apply(state.nets.value.params, next_obs))
        member = dataclasses.replace(member, rewards=sampling.scale_rewards(state.sampler.reward_scale, member.rewards))
        returns = dataset_lambda_returns(member, v_tp1, config.discount, config.td_lambda)
        return state.replace(sampler=state.sampler.replace(mc_returns=returns))

    def init(key):
        key, ak, vk = jax.random.split(key, 3)
        o = jnp.zeros((n_obs,), jnp.float32)
        records = Nets(ts.create(actor_tx, actor_net.init(ak, o)), ts.create(value_tx, value_net.init(vk, o)))
        return with_targets(oc.init_state(env, config, key, records))

    def update(nets: Nets, batch):
        returns = batch.extras.mc_returns
        value, v_metrics = oc.grad_step(
            value_tx, nets.value, awr_value_loss, batch, value_apply=value_net.apply, returns=returns
        )
        actor, a_metrics = oc.grad_step(
            actor_tx,
            nets.actor,
            awr_actor_loss,
            batch,
            policy_apply=actor_net.apply,
            value_apply=value_net.apply,
            value_params=value.params,
            returns=returns,
            temperature=config.temperature,
            max_weight=config.max_weight,
        )
        return Nets(actor, value), {**v_metrics, **a_metrics, "value_target": jnp.mean(returns)}

    step = oc.make_step(env, config, oc.on_nets(update), prepare_state=with_targets)
    return oc.algorithm(env, env_params, config, init, step, oc.stochastic_act(actor_net))
