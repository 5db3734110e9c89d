"""AlgaeDICE on a fixed dataset (Nachum, Dai, Kostrikov, Chow, Li & Schuurmans, "AlgaeDICE: Policy Gradient from
Arbitrary Experience", 2019).

The policy value is written as ``min_nu`` of an off-policy Fenchel-dual objective over the data,
``J(nu, pi) = alpha (1 - gamma) E[nu(s0, a0)] + E_D[f_p(r + gamma nu(s', a') - nu(s, a))]``, ``f_p(x) = |x|^p / p``
(:func:`~jaxrl.losses.generative.algaedice_nu_loss`), and the tanh-Gaussian policy ascends it with the
envelope-theorem gradient (:func:`~jaxrl.losses.generative.algaedice_actor_loss`). As in the reference
implementation: twin ``nu`` networks (summed in ``nu``'s loss, averaged in the policy's), a next value mixing
``0.05`` of the online ``nu`` with ``0.95`` of the target ensemble's minimum, an entropy bonus whose temperature
is tuned to ``-action_dim`` (:func:`~jaxrl.losses.sac.sac_temperature_loss`), and actor, temperature and target
updates every ``actor_update_every`` ``nu`` updates. (The reference's orthogonal regulariser of the actor is left
out.) Initial states ``s0`` are the dataset's episode starts (``init_states="episode_starts"``) or the sampled
batch's states (``"batch"``). Nothing in the objective keeps the policy near the data's actions: it is known to be
weak offline. One ``step`` = ``updates_per_iteration`` gradient updates; ``total_env_steps`` counts them.
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
from jaxrl.losses.generative import algaedice_actor_loss, algaedice_nu_loss
from jaxrl.losses.sac import sac_temperature_loss


@config
class Config(oc.CountsUpdates):
    learning_rate: float = hyper(1e-3, low=0, low_open=True, help="Adam step size (actor, nu, temperature)")
    gamma: float = hyper(0.99, low=0, high=1, high_open=True, help="discount (< 1: the (1 - gamma) s0 term)")
    tau: float = hyper(0.005, low=0, high=1, low_open=True, help="target-network Polyak rate")
    algae_alpha: float = hyper(0.01, low=0, help="alpha: weight of the initial-state term (the regulariser)")
    f_exponent: float = hyper(1.5, low=1, low_open=True, help="p of f(x) = |x|^p / p (2: the paper's x^2 / 2)")
    online_mix: float = hyper(0.05, low=0, high=1, help="weight of the online nu in the next-state value")
    init_alpha: float = hyper(1.0, low=0, low_open=True, help="initial entropy temperature")
    target_entropy_scale: float = hyper(1.0, help="target entropy = -scale * action_dim")
    dataset_index: float = hyper(0, low=0, help="which of the stacked datasets this run trains on")
    actor_update_every: int = static(2, low=1, help="nu updates per actor / temperature / target update")
    init_states: str = static(
        "episode_starts",
        choices=("episode_starts", "batch"),
        help="where s0 comes from: the dataset's episode starts, or the batch's states",
    )
    batch_size: int = static(256, low=1, help="minibatch size")
    updates_per_iteration: int = static(100, low=1, help="gradient updates per iteration (per step call)")
    hidden: tuple[int, ...] = static((256, 256), help="hidden layer widths (actor and nu)")
    activation: str = static("relu", choices=tuple(nets.core.ACTIVATIONS), help="hidden activation")
    total_env_steps: int = static(20_000, low=1, help="training length in gradient updates (offline: no env steps)")


class Params(NamedTuple):
    actor: Any
    nu: Any  # leading [2] ensemble axis
    target_nu: Any
    log_alpha: jax.Array


class OptState(NamedTuple):
    actor: Any
    nu: Any
    alpha: Any


@struct.dataclass
class State:
    params: Params
    opt_state: OptState
    sampler: oc.Sampler
    init_sampler: oc.Sampler  # over the rows whose state starts an episode
    key: jax.Array
    iteration: jax.Array
    num_updates: jax.Array


def episode_starts(member: ds.Dataset) -> jax.Array:
    """``[N]`` float32: 1 on valid rows that start an episode (row 0, and rows after an episode end)."""
    ends = ds.episode_ends(member)
    starts = jnp.concatenate([jnp.ones((1,), jnp.float32), ends[:-1]])
    valid = jnp.ones_like(starts) if member.mask is None else (jnp.asarray(member.mask) > 0).astype(jnp.float32)
    return starts * valid


def make(config: Config, env, env_params) -> Algorithm:
    env, n_act, n_obs = oc.prepare(env, env_params, config, "algaedice")
    actor_net = nets.make_tanh_gaussian_policy(n_act, config.hidden, config.activation)
    nu_single = nets.make_value_network(config.hidden, config.activation)
    nu_net = nets.make_ensemble(nu_single, 2)
    tx = optax.adam(config.learning_rate)
    target_entropy = -config.target_entropy_scale * n_act

    def init(key):
        key, ak, nk = jax.random.split(key, 3)
        o, a = jnp.zeros((n_obs,), jnp.float32), jnp.zeros((n_act,), jnp.float32)
        nu = nu_net.init(nk, o, a)
        params = Params(actor_net.init(ak, o), nu, nu, jnp.log(jnp.asarray(config.init_alpha, jnp.float32)))
        opt_state = OptState(tx.init(params.actor), tx.init(params.nu), tx.init(params.log_alpha))
        index = oc.dataset_index(config)
        sampler = oc.init_sampler(env, index, config.gamma)
        starts = oc.init_sampler(env, index, config.gamma, episode_starts(oc.member(env, index)))
        return State(params, opt_state, sampler, starts, key, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))

    def step(state: State):
        def update(carry, key):
            params, opt_state, count = carry
            batch_key, init_key, nu_key, actor_key = jax.random.split(key, 4)
            batch = oc.sample_batch(env, state.sampler, batch_key, config.batch_size)
            if config.init_states == "episode_starts":
                init_obs = oc.sample_batch(env, state.init_sampler, init_key, config.batch_size).observations
            else:
                init_obs = batch.observations
            alpha = jnp.exp(params.log_alpha)
            common = dict(
                init_observations=init_obs,
                discount=config.gamma,
                alpha=config.algae_alpha,
                p=config.f_exponent,
                entropy_coef=alpha,
                online_mix=config.online_mix,
            )

            n_grads, n_metrics = jax.grad(algaedice_nu_loss, has_aux=True)(
                params.nu,
                batch,
                nu_key,
                nu_apply=nu_single.apply,
                target_nu_params=params.target_nu,
                policy_apply=actor_net.apply,
                policy_params=params.actor,
                **common,
            )
            n_updates, n_opt = tx.update(n_grads, opt_state.nu, params.nu)
            nu = optax.apply_updates(params.nu, n_updates)

            a_grads, a_metrics = jax.grad(algaedice_actor_loss, has_aux=True)(
                params.actor,
                batch,
                actor_key,
                policy_apply=actor_net.apply,
                nu_apply=nu_single.apply,
                nu_params=nu,
                target_nu_params=params.target_nu,
                **common,
            )
            a_updates, a_opt_new = tx.update(a_grads, opt_state.actor, params.actor)
            actor_new = optax.apply_updates(params.actor, a_updates)

            t_grad, t_metrics = jax.grad(sac_temperature_loss, has_aux=True)(
                params.log_alpha, a_metrics["log_prob"], target_entropy
            )
            t_updates, t_opt_new = tx.update(t_grad, opt_state.alpha, params.log_alpha)
            log_alpha_new = optax.apply_updates(params.log_alpha, t_updates)

            delayed = ((count + 1) % config.actor_update_every) == 0
            pick = lambda new, old: jax.tree.map(lambda n, o: jnp.where(delayed, n, o), new, old)
            target_nu = pick(optax.incremental_update(nu, params.target_nu, config.tau), params.target_nu)
            new_params = Params(pick(actor_new, params.actor), nu, target_nu, pick(log_alpha_new, params.log_alpha))
            new_opt = OptState(pick(a_opt_new, opt_state.actor), n_opt, pick(t_opt_new, opt_state.alpha))
            metrics = {**n_metrics, **a_metrics, **t_metrics, "mc_return": jnp.mean(batch.mc_returns)}
            del metrics["log_prob"]
            return (new_params, new_opt, count + 1), metrics

        key, k = jax.random.split(state.key)
        (params, opt_state, count), metrics = oc.scan_updates(
            update, (state.params, state.opt_state, state.num_updates), k, config.updates_per_iteration
        )
        return state.replace(
            params=params, opt_state=opt_state, key=key, iteration=state.iteration + 1, num_updates=count
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
