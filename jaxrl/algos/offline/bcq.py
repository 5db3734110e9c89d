"""Batch-Constrained deep Q-learning, continuous actions (Fujimoto, Meger & Precup, ICML 2019).

The policy only chooses among actions the data makes likely: a conditional VAE ``G(s) = D(s, z)`` with a clipped
latent ``z`` generates behaviour-like actions (:func:`~jaxrl.losses.generative.vae_loss`), a perturbation
actor moves each by at most ``Phi`` per dimension (:func:`~jaxrl.losses.generative.bcq_actor_loss`:
``-Q_1(s, a~ + xi(s, a~))``), and twin critics regress onto
``r + discount (1 - d) max_n [lambda min_e Qhat_e + (1 - lambda) max_e Qhat_e](s', a_n)`` over ``n`` generated and
perturbed candidates (:func:`~jaxrl.losses.generative.bcq_critic_loss`). ``act`` generates
``num_act_samples`` candidates and takes the one with the highest ``Q_1``. Each update trains the VAE, the
critics, the actor, then moves the target critic and target actor by ``tau``. One ``step`` =
``updates_per_iteration`` gradient updates; ``total_env_steps`` counts them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrl import nets
from jaxrl.algos import train_state as ts
from jaxrl.algos.common import Algorithm
from jaxrl.algos.offline import common as oc
from jaxrl.config import config, hyper, static
from jaxrl.losses.generative import bcq_actor_loss, bcq_candidates, bcq_critic_loss, vae_loss

State = oc.State


@config
class Config(oc.TargetConfig):
    learning_rate: float = hyper(1e-3, low=0, low_open=True, help="Adam step size (VAE, actor, critic)")
    lam: float = hyper(0.75, low=0, high=1, help="weight of min over max of the twin Qs in the target (lambda)")
    max_perturbation: float = hyper(
        0.05, low=0, high=2, help="Phi: the largest perturbation per action dimension ([-1, 1] units)"
    )
    kl_weight: float = hyper(0.5, low=0, help="weight of the VAE's KL term")
    latent_clip: float = hyper(0.5, low=0, low_open=True, help="the decoding latent is clipped to [-c, c]")
    num_samples: int = static(10, low=1, help="candidate actions per next state in the critic target")
    num_act_samples: int = static(10, low=1, help="candidate actions per state when acting")
    latent_dim: int = static(0, low=0, help="VAE latent size (0: twice the action dimension)")
    vae_hidden: tuple[int, ...] = static((750, 750), help="hidden layer widths of the VAE encoder and decoder")


class Nets(NamedTuple):
    vae: ts.TrainState  # {"encoder": ..., "decoder": ...}
    actor: ts.TrainState  # perturbation network xi; with its target
    critic: ts.TrainState  # leading [2] ensemble axis; with its target


class VAE(NamedTuple):
    """The conditional VAE as pure functions over ``{"encoder", "decoder"}`` params."""

    init: Any  # (key, obs, action) -> params
    encode: Any  # (params, obs, action) -> (mean, log_std), each [..., Z]
    decode: Any  # (params, obs, z) -> action in [-1, 1]


def make_vae(n_act: int, latent_dim: int, hidden, activation) -> VAE:
    encoder = nets.make_mlp(2 * latent_dim, hidden, activation)
    decoder = nets.make_mlp(n_act, hidden, activation)

    def init(key, obs, action):
        ek, dk = jax.random.split(key)
        return {
            "encoder": encoder.init(ek, obs, action),
            "decoder": decoder.init(dk, obs, jnp.zeros(obs.shape[:-1] + (latent_dim,), obs.dtype)),
        }

    def encode(params, obs, action):
        out = encoder.apply(params["encoder"], obs, action)
        return out[..., :latent_dim], out[..., latent_dim:]

    def decode(params, obs, z):
        return jnp.tanh(decoder.apply(params["decoder"], obs, z))

    return VAE(init, encode, decode)


def _make_update(config, tx, vae: VAE, actor: nets.Network, critic_net: nets.Network, latent_dim: int):
    """``update(nets, batch, vae_key, critic_key, actor_key)``: the VAE, the critics, the actor, then the targets."""
    gen = dict(decode_apply=vae.decode, latent_dim=latent_dim, latent_clip=config.latent_clip)
    gen.update(perturb_apply=actor.apply, max_perturbation=config.max_perturbation, q_apply=critic_net.apply)

    def update(records: Nets, batch, vae_key, critic_key, actor_key):
        kw = dict(encode_apply=vae.encode, decode_apply=vae.decode, kl_weight=config.kl_weight)
        vae_rec, v_metrics = oc.grad_step(tx, records.vae, vae_loss, batch, vae_key, **kw)
        kw = dict(gen, vae_params=vae_rec.params)
        critic, c_metrics = oc.grad_step(
            tx,
            records.critic,
            bcq_critic_loss,
            batch,
            critic_key,
            target_q_params=records.critic.target,
            target_perturb_params=records.actor.target,
            discount=config.discount,
            lam=config.lam,
            num_samples=config.num_samples,
            **kw,
        )
        actor_rec, a_metrics = oc.grad_step(
            tx, records.actor, bcq_actor_loss, batch, actor_key, q_params=critic.params, **kw
        )
        records = Nets(vae_rec, ts.soft_update(actor_rec, config.tau), ts.soft_update(critic, config.tau))
        return records, {**v_metrics, **c_metrics, **a_metrics, "mc_return": jnp.mean(batch.extras.mc_returns)}

    return update


def make(config: Config, env, env_params) -> Algorithm:
    env, n_act, n_obs = oc.prepare(env, env_params, config, "bcq")
    latent_dim = config.latent_dim or 2 * n_act
    vae = make_vae(n_act, latent_dim, config.vae_hidden, config.activation)
    actor = nets.make_mlp(n_act, config.hidden, config.activation)
    q_single = nets.make_value_network(config.hidden, config.activation)
    critic_net = nets.make_ensemble(q_single, 2)
    tx = optax.adam(config.learning_rate)

    def init(key):
        key, vk, ak, ck = jax.random.split(key, 4)
        o, a = jnp.zeros((n_obs,), jnp.float32), jnp.zeros((n_act,), jnp.float32)
        records = Nets(
            ts.create(tx, vae.init(vk, o, a)),
            ts.create(tx, actor.init(ak, o, a), target=True),
            ts.create(tx, critic_net.init(ck, o, a), target=True),
        )
        return oc.init_state(env, config, key, records)

    def act(state, obs, key, deterministic: bool = True):
        """The argmax of ``Q_1`` over ``num_act_samples`` generated and perturbed candidates (``obs [..., O]``)."""
        p = state.nets
        cand = bcq_candidates(
            obs,
            key,
            vae_params=p.vae.params,
            decode_apply=vae.decode,
            latent_dim=latent_dim,
            perturb_apply=actor.apply,
            perturb_params=p.actor.params,
            max_perturbation=config.max_perturbation,
            num_samples=config.num_act_samples,
            latent_clip=config.latent_clip,
        )  # [N, ..., A]
        q1 = q_single.apply(
            jax.tree.map(lambda x: x[0], p.critic.params),
            jnp.broadcast_to(obs, cand.shape[:-1] + obs.shape[-1:]),
            cand,
        )
        best = jnp.argmax(q1, axis=0)  # [...]
        return jnp.take_along_axis(cand, best[None, ..., None], axis=0)[0]

    update = oc.on_nets(_make_update(config, tx, vae, actor, critic_net, latent_dim))
    step = oc.make_step(env, config, update, update_keys=3)
    return oc.algorithm(env, env_params, config, init, step, act)
