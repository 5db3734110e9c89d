"""AlgaeDICE on a fixed dataset (Nachum, Dai, Kostrikov, Chow, Li & Schuurmans, "AlgaeDICE: Policy Gradient from
Arbitrary Experience", 2019).

The policy value is written as ``min_nu`` of an off-policy Fenchel-dual objective over the data,
``J(nu, pi) = alpha (1 - discount) E[nu(s0, a0)] + E_D[f_p(r + discount nu(s', a') - nu(s, a))]``,
``f_p(x) = |x|^p / p`` (:func:`~jaxrl.losses.generative.algaedice_nu_loss`), and the tanh-Gaussian policy
ascends it with the envelope-theorem gradient (:func:`~jaxrl.losses.generative.algaedice_actor_loss`). As in the
reference implementation: twin ``nu`` networks (summed in ``nu``'s loss, averaged in the policy's), a next value mixing
``0.05`` of the online ``nu`` with ``0.95`` of the target ensemble's minimum, an entropy bonus whose temperature
is tuned to ``-action_dim`` (:func:`~jaxrl.losses.sac.sac_temperature_loss`), and actor, temperature and target
updates every ``actor_update_every`` ``nu`` updates. (The reference's orthogonal regulariser of the actor is left
out.) Initial states ``s0`` are the dataset's episode starts (``init_states="episode_starts"``) or the sampled
batch's states (``"batch"``). Nothing in the objective keeps the policy near the data's actions: it is known to be
weak offline. One ``step`` = ``updates_per_iteration`` gradient updates; ``total_env_steps`` counts them.
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
from jaxrl.config import config, hyper, static
from jaxrl.data import dataset as ds
from jaxrl.losses.generative import algaedice_actor_loss, algaedice_nu_loss
from jaxrl.losses.sac import sac_temperature_loss

State = oc.State  # ``extra``: :class:`Extra`


@config
class Config(oc.EntropyConfig):
    learning_rate: float = hyper(1e-3, low=0, low_open=True, help="Adam step size (actor, nu, temperature)")
    discount: float = hyper(0.99, low=0, high=1, high_open=True, help="discount (< 1: the (1 - discount) s0 term)")
    algae_alpha: float = hyper(0.01, low=0, help="alpha: weight of the initial-state term (the regulariser)")
    f_exponent: float = hyper(1.5, low=1, low_open=True, help="p of f(x) = |x|^p / p (2: the paper's x^2 / 2)")
    online_mix: float = hyper(0.05, low=0, high=1, help="weight of the online nu in the next-state value")
    actor_update_every: int = static(2, low=1, help="nu updates per actor / temperature / target update")
    init_states: str = static(
        "episode_starts",
        choices=("episode_starts", "batch"),
        help="where s0 comes from: the dataset's episode starts, or the batch's states",
    )


class Nets(NamedTuple):
    actor: ts.TrainState
    nu: ts.TrainState  # leading [2] ensemble axis; with its target
    log_alpha: ts.TrainState


class Extra(NamedTuple):
    init_sampler: oc.Sampler  # over the rows whose state starts an episode
    num_updates: jax.Array


def episode_starts(member: ds.Dataset) -> jax.Array:
    """``[N]`` float32: 1 on valid rows that start an episode (row 0, and rows after an episode end)."""
    ends = ds.episode_ends(member)
    starts = jnp.concatenate([jnp.ones((1,), jnp.float32), ends[:-1]])
    valid = jnp.ones_like(starts) if member.mask is None else (jnp.asarray(member.mask) > 0).astype(jnp.float32)
    return starts * valid


def _make_update(config, tx, actor_net: nets.Network, nu_net: nets.Network, target_entropy):
    """``update(state, (batch, init_obs), nu_key, actor_key)``: a ``nu`` update, and every
    ``actor_update_every``-th the actor, temperature and target update."""

    def update(state: State, batch_and_starts, nu_key, actor_key):
        (batch, init_obs), r, count = batch_and_starts, state.nets, state.extra.num_updates
        common = dict(
            init_obs=init_obs,
            discount=config.discount,
            alpha=config.algae_alpha,
            p=config.f_exponent,
            entropy_coef=jnp.exp(r.log_alpha.params),
            online_mix=config.online_mix,
            policy_apply=actor_net.apply,
            nu_apply=nu_net.apply,
            target_nu_params=r.nu.target,
        )
        nu, n_metrics = oc.grad_step(tx, r.nu, algaedice_nu_loss, batch, nu_key, policy_params=r.actor.params, **common)
        actor, a_metrics = oc.grad_step(
            tx, r.actor, algaedice_actor_loss, batch, actor_key, nu_params=nu.params, **common
        )
        log_alpha, t_metrics = oc.grad_step(
            tx, r.log_alpha, sac_temperature_loss, a_metrics["log_prob"], target_entropy
        )

        delayed = ((count + 1) % config.actor_update_every) == 0
        pick = lambda new, old: jax.tree.map(lambda n, o: jnp.where(delayed, n, o), new, old)
        nu = nu._replace(target=pick(ts.polyak(nu.params, r.nu.target, config.tau), r.nu.target))
        metrics = {**n_metrics, **a_metrics, **t_metrics, "mc_return": jnp.mean(batch.extras.mc_returns)}
        del metrics["log_prob"]
        records = Nets(pick(actor, r.actor), nu, pick(log_alpha, r.log_alpha))
        return dataclasses.replace(state, nets=records, extra=state.extra._replace(num_updates=count + 1)), metrics

    return update


def make(config: Config, env, env_params) -> Algorithm:
    env, n_act, n_obs = oc.prepare(env, env_params, config, "algaedice")
    actor_net = nets.make_tanh_gaussian_policy(n_act, config.hidden, config.activation)
    nu_net = nets.make_ensemble(nets.make_value_network(config.hidden, config.activation), 2)
    tx = optax.adam(config.learning_rate)

    def init(key):
        key, ak, nk = jax.random.split(key, 3)
        o, a = jnp.zeros((n_obs,), jnp.float32), jnp.zeros((n_act,), jnp.float32)
        records = Nets(
            ts.create(tx, actor_net.init(ak, o)),
            ts.create(tx, nu_net.init(nk, o, a), target=True),
            ts.create(tx, jnp.log(jnp.asarray(config.init_alpha, jnp.float32))),
        )
        index = oc.dataset_index(config)
        starts = oc.init_sampler(
            env,
            index,
            config.discount,
            episode_starts(oc.member(env, index)),
            config.normalize_states,
            config.normalize_rewards,
        )
        return oc.init_state(env, config, key, records, extra=Extra(starts, jnp.zeros((), jnp.int32)))

    def sample(state: State, batch_key, init_key):
        batch = oc.sample_batch(env, state.sampler, batch_key, config.batch_size)
        if config.init_states == "batch":
            return batch, batch.obs
        return batch, oc.sample_batch(env, state.extra.init_sampler, init_key, config.batch_size).obs

    update = _make_update(config, tx, actor_net, nu_net, -config.target_entropy_scale * n_act)
    step = oc.make_step(env, config, update, update_keys=2, sample=sample, sample_keys=2)
    return oc.algorithm(env, env_params, config, init, step, oc.stochastic_act(actor_net))
