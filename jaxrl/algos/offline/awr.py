"""Advantage-Weighted Regression (Peng, Kumar, Zhang & Levine, "Advantage-Weighted Regression: Simple and Scalable
Off-Policy RL", 2019) on a fixed dataset.

Value: ``L_V = mean_b (V(s_b) - R_b)^2`` (:func:`jaxrl.losses.offline.awr_value_loss`). Actor:
``L_pi = -mean_b min(exp((R_b - V(s_b)) / beta), w_max) log pi(a_b | s_b)``
(:func:`jaxrl.losses.offline.awr_actor_loss`). The return ``R`` is, by ``returns``:

* ``"td_lambda"`` (the paper's choice, ``lambda = 0.95``): the TD(lambda) return of every row of the dataset,
  ``R_t = r_t + gamma (1 - d_t) [(1 - lambda) V(s_{t+1}) + lambda R_{t+1}]`` inside an episode and
  ``R_t = r_t + gamma (1 - d_t) V(s_{t+1})`` on its last row (a timeout bootstraps, a terminal does not),
  recomputed with the current ``V`` once per ``step`` (as the paper recomputes it once per iteration)
  (:func:`dataset_lambda_returns`); ``lambda = 1`` is the Monte-Carlo return with a bootstrap at timeouts;
* ``"mc"``: the discounted Monte-Carlo return of the data to the end of its episode (no bootstrap at all).

Policy: tanh-Gaussian (the weights need no critic of actions, so nothing queries actions outside the data). One
``step`` = ``updates_per_iteration`` gradient updates; ``total_env_steps`` counts them.
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
from jaxrl.data import dataset as ds
from jaxrl.losses.offline import awr_actor_loss, awr_value_loss


@config
class Config(oc.CountsUpdates):
    learning_rate: float = hyper(1e-3, low=0, low_open=True, help="Adam step size of the actor")
    value_learning_rate: float = hyper(1e-3, low=0, low_open=True, help="Adam step size of the value function")
    gamma: float = hyper(0.99, low=0, high=1, help="discount")
    td_lambda: float = hyper(0.95, low=0, high=1, help="lambda of the TD(lambda) returns (returns='td_lambda')")
    temperature: float = hyper(1.0, low=0, low_open=True, help="beta of the weights exp(A / beta)")
    max_weight: float = hyper(20.0, low=0, low_open=True, help="cap on the advantage weights")
    dataset_index: float = hyper(0, low=0, help="which of the stacked datasets this run trains on")
    returns: str = static(
        "td_lambda",
        choices=("td_lambda", "mc"),
        help="value targets: TD(lambda) returns with the current V, or Monte-Carlo returns",
    )
    batch_size: int = static(256, low=1, help="minibatch size")
    updates_per_iteration: int = static(100, low=1, help="gradient updates per iteration (per step call)")
    hidden: tuple[int, ...] = static((256, 256), help="hidden layer widths (actor and value)")
    activation: str = static("relu", choices=tuple(nets.core.ACTIVATIONS), help="hidden activation")
    total_env_steps: int = static(20_000, low=1, help="training length in gradient updates (offline: no env steps)")


class Params(NamedTuple):
    actor: Any
    value: Any


class OptState(NamedTuple):
    actor: Any
    value: Any


@struct.dataclass
class State:
    params: Params
    opt_state: OptState
    sampler: oc.Sampler  # its ``mc_returns`` hold the value targets R of the dataset's rows
    key: jax.Array
    iteration: jax.Array


def dataset_lambda_returns(member: ds.Dataset, v_tp1: jax.Array, discount, lambda_) -> jax.Array:
    """``[N]`` TD(lambda) returns of a dataset's rows given ``v_tp1 = V(s_{t+1})`` (``[N]``); 0 on padding.

    ``R_t = r_t + gamma (1 - d_t) [V(s_{t+1}) + lambda (1 - end_t) (R_{t+1} - V(s_{t+1}))]`` with ``end_t`` from
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

    def targets(value_params, sampler):
        if config.returns == "mc":
            return sampler
        member = oc.member(env, sampler.index)
        v_tp1 = jax.lax.stop_gradient(value_net.apply(value_params, member.next_observations))
        return sampler.replace(mc_returns=dataset_lambda_returns(member, v_tp1, config.gamma, config.td_lambda))

    def init(key):
        key, ak, vk = jax.random.split(key, 3)
        o = jnp.zeros((n_obs,), jnp.float32)
        params = Params(actor_net.init(ak, o), value_net.init(vk, o))
        sampler = oc.init_sampler(env, oc.dataset_index(config), config.gamma)
        return State(
            params,
            OptState(actor_tx.init(params.actor), value_tx.init(params.value)),
            targets(params.value, sampler),
            key,
            jnp.zeros((), jnp.int32),
        )

    def step(state: State):
        sampler = targets(state.params.value, state.sampler)

        def update(carry, key):
            params, opt_state = carry
            batch = oc.sample_batch(env, sampler, key, config.batch_size)
            returns = batch.mc_returns
            v_grads, v_metrics = jax.grad(awr_value_loss, has_aux=True)(
                params.value, batch, value_apply=value_net.apply, returns=returns
            )
            v_updates, v_opt = value_tx.update(v_grads, opt_state.value, params.value)
            value = optax.apply_updates(params.value, v_updates)
            a_grads, a_metrics = jax.grad(awr_actor_loss, has_aux=True)(
                params.actor,
                batch,
                policy_apply=actor_net.apply,
                value_apply=value_net.apply,
                value_params=value,
                returns=returns,
                temperature=config.temperature,
                max_weight=config.max_weight,
            )
            a_updates, a_opt = actor_tx.update(a_grads, opt_state.actor, params.actor)
            actor = optax.apply_updates(params.actor, a_updates)
            metrics = {**v_metrics, **a_metrics, "value_target": jnp.mean(returns)}
            return (Params(actor, value), OptState(a_opt, v_opt)), metrics

        key, k = jax.random.split(state.key)
        (params, opt_state), metrics = oc.scan_updates(
            update, (state.params, state.opt_state), k, config.updates_per_iteration
        )
        return state.replace(
            params=params, opt_state=opt_state, sampler=sampler, key=key, iteration=state.iteration + 1
        ), metrics

    def act(state, obs, key, deterministic: bool = False):
        dist = actor_net.apply(state.params.actor, obs)
        return nets.mode(dist) if deterministic else dist.sample(seed=key)

    return Algorithm(
        init=init,
        step=step,
        act=act,
        evaluate=oc.make_offline_evaluate(env, env_params, act),
        config=config,
        env_steps_per_iteration=config.env_steps_per_iteration,
    )
