"""Batch-Constrained deep Q-learning, continuous actions (Fujimoto, Meger & Precup, ICML 2019).

The policy only chooses among actions the data makes likely: a conditional VAE ``G(s) = D(s, z)`` with a clipped
latent ``z`` generates behaviour-like actions (:func:`~jaxrl.losses.generative.vae_loss`), a perturbation
actor moves each by at most ``Phi`` per dimension (:func:`~jaxrl.losses.generative.bcq_actor_loss`:
``-Q_1(s, a~ + xi(s, a~))``), and twin critics regress onto
``r + gamma (1 - d) max_n [lambda min_e Qhat_e + (1 - lambda) max_e Qhat_e](s', a_n)`` over ``n`` generated and
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
from flax import struct

from jaxrl import nets
from jaxrl.algos.common import Algorithm
from jaxrl.algos.offline import common as oc
from jaxrl.config import config, hyper, static
from jaxrl.losses.generative import bcq_actor_loss, bcq_candidates, bcq_critic_loss, vae_loss


@config
class Config(oc.CountsUpdates):
    learning_rate: float = hyper(1e-3, low=0, low_open=True, help="Adam step size (VAE, actor, critic)")
    gamma: float = hyper(0.99, low=0, high=1, help="discount")
    tau: float = hyper(0.005, low=0, high=1, low_open=True, help="target-network Polyak rate")
    lam: float = hyper(0.75, low=0, high=1, help="weight of min over max of the twin Qs in the target (lambda)")
    max_perturbation: float = hyper(
        0.05, low=0, high=2, help="Phi: the largest perturbation per action dimension ([-1, 1] units)"
    )
    kl_weight: float = hyper(0.5, low=0, help="weight of the VAE's KL term")
    latent_clip: float = hyper(0.5, low=0, low_open=True, help="the decoding latent is clipped to [-c, c]")
    dataset_index: float = hyper(0, low=0, help="which of the stacked datasets this run trains on")
    num_samples: int = static(10, low=1, help="candidate actions per next state in the critic target")
    num_act_samples: int = static(10, low=1, help="candidate actions per state when acting")
    latent_dim: int = static(0, low=0, help="VAE latent size (0: twice the action dimension)")
    batch_size: int = static(256, low=1, help="minibatch size")
    updates_per_iteration: int = static(100, low=1, help="gradient updates per iteration (per step call)")
    hidden: tuple[int, ...] = static((256, 256), help="hidden layer widths (actor and critic)")
    vae_hidden: tuple[int, ...] = static((750, 750), help="hidden layer widths of the VAE encoder and decoder")
    activation: str = static("relu", choices=tuple(nets.core.ACTIVATIONS), help="hidden activation")
    total_env_steps: int = static(20_000, low=1, help="training length in gradient updates (offline: no env steps)")


class Params(NamedTuple):
    vae: Any  # {"encoder": ..., "decoder": ...}
    actor: Any  # perturbation network xi
    critic: Any  # leading [2] ensemble axis
    target_actor: Any
    target_critic: Any


class OptState(NamedTuple):
    vae: Any
    actor: Any
    critic: Any


@struct.dataclass
class State:
    params: Params
    opt_state: OptState
    sampler: oc.Sampler
    key: jax.Array
    iteration: jax.Array


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


def make(config: Config, env, env_params) -> Algorithm:
    env, n_act, n_obs = oc.prepare(env, env_params, config, "bcq")
    latent_dim = config.latent_dim or 2 * n_act
    vae = make_vae(n_act, latent_dim, config.vae_hidden, config.activation)
    actor = nets.make_mlp(n_act, config.hidden, config.activation)
    q_single = nets.make_value_network(config.hidden, config.activation)
    critic_net = nets.make_ensemble(q_single, 2)
    tx = optax.adam(config.learning_rate)
    gen = dict(vae_params=None, decode_apply=vae.decode, latent_dim=latent_dim)

    def init(key):
        key, vk, ak, ck = jax.random.split(key, 4)
        o, a = jnp.zeros((n_obs,), jnp.float32), jnp.zeros((n_act,), jnp.float32)
        vae_params, actor_params, critic = vae.init(vk, o, a), actor.init(ak, o, a), critic_net.init(ck, o, a)
        params = Params(vae_params, actor_params, critic, actor_params, critic)
        opt_state = OptState(tx.init(vae_params), tx.init(actor_params), tx.init(critic))
        sampler = oc.init_sampler(env, oc.dataset_index(config), config.gamma)
        return State(params, opt_state, sampler, key, jnp.zeros((), jnp.int32))

    def update(carry, key):
        params, opt_state, sampler = carry
        batch_key, vae_key, critic_key, actor_key = jax.random.split(key, 4)
        batch = oc.sample_batch(env, sampler, batch_key, config.batch_size)

        v_grads, v_metrics = jax.grad(vae_loss, has_aux=True)(
            params.vae, batch, vae_key, encode_apply=vae.encode, decode_apply=vae.decode, kl_weight=config.kl_weight
        )
        v_updates, v_opt = tx.update(v_grads, opt_state.vae, params.vae)
        vae_params = optax.apply_updates(params.vae, v_updates)
        g = dict(gen, vae_params=vae_params)

        c_grads, c_metrics = jax.grad(bcq_critic_loss, has_aux=True)(
            params.critic,
            batch,
            critic_key,
            q_apply=q_single.apply,
            target_q_params=params.target_critic,
            perturb_apply=actor.apply,
            target_perturb_params=params.target_actor,
            discount=config.gamma,
            lam=config.lam,
            max_perturbation=config.max_perturbation,
            num_samples=config.num_samples,
            latent_clip=config.latent_clip,
            **g,
        )
        c_updates, c_opt = tx.update(c_grads, opt_state.critic, params.critic)
        critic = optax.apply_updates(params.critic, c_updates)

        a_grads, a_metrics = jax.grad(bcq_actor_loss, has_aux=True)(
            params.actor,
            batch,
            actor_key,
            perturb_apply=actor.apply,
            q_apply=q_single.apply,
            q_params=critic,
            max_perturbation=config.max_perturbation,
            latent_clip=config.latent_clip,
            **g,
        )
        a_updates, a_opt = tx.update(a_grads, opt_state.actor, params.actor)
        actor_params = optax.apply_updates(params.actor, a_updates)

        params = Params(
            vae_params,
            actor_params,
            critic,
            optax.incremental_update(actor_params, params.target_actor, config.tau),
            optax.incremental_update(critic, params.target_critic, config.tau),
        )
        metrics = {**v_metrics, **c_metrics, **a_metrics, "mc_return": jnp.mean(batch.mc_returns)}
        return (params, OptState(v_opt, a_opt, c_opt), sampler), metrics

    def step(state: State):
        key, k = jax.random.split(state.key)
        (params, opt_state, _), metrics = oc.scan_updates(
            update, (state.params, state.opt_state, state.sampler), k, config.updates_per_iteration
        )
        return state.replace(params=params, opt_state=opt_state, key=key, iteration=state.iteration + 1), metrics

    def act(state, obs, key, deterministic: bool = True):
        """The argmax of ``Q_1`` over ``num_act_samples`` generated and perturbed candidates (``obs [..., O]``)."""
        p = state.params
        cand = bcq_candidates(
            obs,
            key,
            vae_params=p.vae,
            decode_apply=vae.decode,
            latent_dim=latent_dim,
            perturb_apply=actor.apply,
            perturb_params=p.actor,
            max_perturbation=config.max_perturbation,
            num_samples=config.num_act_samples,
            latent_clip=config.latent_clip,
        )  # [N, ..., A]
        q1 = q_single.apply(
            jax.tree.map(lambda x: x[0], p.critic), jnp.broadcast_to(obs, cand.shape[:-1] + obs.shape[-1:]), cand
        )
        best = jnp.argmax(q1, axis=0)  # [...]
        return jnp.take_along_axis(cand, best[None, ..., None], axis=0)[0]

    return Algorithm(
        init=init,
        step=step,
        act=act,
        evaluate=oc.make_offline_evaluate(env, env_params, act),
        config=config,
        env_steps_per_iteration=config.env_steps_per_iteration,
    )
