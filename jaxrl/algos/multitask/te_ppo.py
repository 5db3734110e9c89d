"""Task-embedding PPO (TE-PPO): PPO with a learned latent task embedding shared by all tasks.

After Hausman et al., 2018, "Learning an embedding space for transferable robot skills" (as in garage's TE-PPO).

Three learned pieces besides the value function:

* embedding ``p_phi(z | omega)``: a diagonal Gaussian over a ``latent_dim`` latent, from the task context omega;
* policy ``pi_theta(a | s, z)``: sees the state and the latent only (the task reaches it through ``z``);
* inference network ``q_psi(z | s_{t-W+2..t+1})``: recovers the latent from a window of the last ``W`` states.

Each episode of task ``k`` draws one latent ``z ~ p_phi(. | omega_k)`` and keeps it to the episode's end. The
agent maximises (paper, eq. 3; the three weights are ``embedding_ent_coef``, ``inference_coef``, ``ent_coef``)

    E[ sum_t discount^t (r_t + inference_coef * log q_psi(z | window_{t+1})) ]
      + embedding_ent_coef * E_k H[p_phi(. | omega_k)] + ent_coef * E H[pi_theta(. | s, z)],

so the policy is rewarded for behaviour from which its latent can be told (distinct, identifiable skills), and
the embedding for staying broad. The policy-gradient part is PPO (:func:`jaxrl.losses.ppo.ppo_loss`, unchanged)
on the hierarchical policy whose "action" is the pair ``(z, a)``: the ratio is
``p_phi(z|omega) pi_theta(a|s,z) / (p_old(z|omega) pi_old(a|s,z))``, so the embedding learns from returns
through the score function (the value baseline ``V(s, omega)`` does not see ``z``, so a latent's whole
episode is credited to it). The inference network is trained by maximum likelihood on the collected
``(window, z)`` pairs (``inference_loss_coef * E[-log q_psi(z | window)]``). PPO's optimiser, clipping and
minibatch loop are the on-policy skeleton's (:mod:`jaxrl.algos.on_policy`); the env side and the per-task gradient
aggregation (``aggregator``, ``monitor_conflicts``) are MT-PPO's (:mod:`.mt_ppo`).

``act`` uses the embedding's mean latent when deterministic (``evaluate``) and a fresh sample otherwise.
Metrics add ``embedding_entropy``, ``inference_nll``, ``inference_bonus`` and the per-task return ``[K]``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import distrax
import jax
import jax.numpy as jnp
from flax import struct

from jaxrl import nets
from jaxrl.algos import on_policy, train_state
from jaxrl.algos.common import Algorithm
from jaxrl.algos.multitask import mt_ppo
from jaxrl.config import config, hyper, static
from jaxrl.data import rollout as rollout_lib
from jaxrl.envs.wrappers import obs_dim
from jaxrl.losses.ppo import PPOBatch, ppo_loss

__all__ = ["Config", "TEParams", "State", "make"]

LOG_STD_MIN, LOG_STD_MAX = -3.0, 1.0  # latent Gaussians (bounds the inference log-density bonus)


@config
class Config(mt_ppo.Config):
    latent_dim: int = static(4, low=1, help="task-embedding (skill latent) size")
    window: int = static(4, low=1, help="states in the inference network's trajectory window")
    embedding_hidden: tuple[int, ...] = static((32,), help="embedding network hidden widths")
    inference_hidden: tuple[int, ...] = static((64, 64), help="inference network hidden widths")
    embedding_ent_coef: float = hyper(1e-3, low=0, help="weight of the embedding entropy H[p(z|task)]")
    inference_coef: float = hyper(5e-2, low=0, help="weight of the reward bonus log q(z|window)")
    inference_loss_coef: float = hyper(1.0, low=0, help="weight of the inference network's NLL loss")


class TEParams(NamedTuple):
    policy: Any
    value: Any
    embedding: Any
    inference: Any


class TECarry(NamedTuple):
    env_state: Any
    obs: jax.Array  # [N, O + D]
    latent: jax.Array  # [N, L] the running episode's latent per env
    window: jax.Array  # [N, W, O] the last W states (without context) per env


@struct.dataclass
class State(on_policy.State):
    @property
    def latent(self) -> jax.Array:
        return self.env.latent

    @property
    def window(self) -> jax.Array:
        return self.env.window


class JointPolicy(NamedTuple):
    """The hierarchical policy ``p(z|omega) pi(a|s,z)`` with its latent ``z`` fixed (what ``ppo_loss`` sees)."""

    policy: Any  # distribution pi(. | s, z)
    embedding: Any  # distribution p(. | omega)
    latent: jax.Array

    def log_prob(self, action):
        return self.policy.log_prob(action) + self.embedding.log_prob(self.latent)

    def entropy(self):
        return self.policy.entropy()


def _gaussian(out: jax.Array) -> distrax.MultivariateNormalDiag:
    mean, log_std = jnp.split(out, 2, axis=-1)
    return distrax.MultivariateNormalDiag(mean, jnp.exp(jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)))


class Networks(NamedTuple):
    """TE-PPO's four networks as functions of :class:`TEParams`; ``obs_ext = (s [O], omega [D], z [L])``."""

    policy_net: Any
    value_net: Any
    embedding_net: Any
    inference_net: Any
    n_state: int  # O
    n_full: int  # O + D

    def embedding(self, p, omega):
        return _gaussian(self.embedding_net.apply(p.embedding, omega))

    def inference(self, p, win):
        return _gaussian(self.inference_net.apply(p.inference, win.reshape(*win.shape[:-2], -1)))

    def policy(self, p, s, z):
        return self.policy_net.apply(p.policy, jnp.concatenate([s, z], axis=-1))

    def split_obs(self, obs_ext):
        return obs_ext[..., : self.n_state], obs_ext[..., self.n_state : self.n_full], obs_ext[..., self.n_full :]

    def joint(self, p, obs_ext):
        s, omega, z = self.split_obs(obs_ext)
        return JointPolicy(self.policy(p, s, z), self.embedding(p, omega), z)

    def value(self, p, obs_ext):
        return self.value_net.apply(p.value, obs_ext[..., : self.n_full])


def make_networks(config: Config, train_env, env_params) -> Networks:
    policy_net, value_net = on_policy.actor_critic_nets(train_env, env_params, config)
    n_full = obs_dim(train_env, env_params)
    embedding_net = nets.make_mlp(2 * config.latent_dim, config.embedding_hidden, "tanh")
    inference_net = nets.make_mlp(2 * config.latent_dim, config.inference_hidden, config.activation)
    return Networks(policy_net, value_net, embedding_net, inference_net, n_full - int(train_env.context_dim), n_full)


def make_loss(config: Config, net: Networks):
    """PPO on the joint policy, minus the embedding's entropy bonus, plus the inference network's NLL."""

    def te_loss(p, batch):
        ppo_batch, window, omega = batch
        total, metrics = ppo_loss(
            p,
            ppo_batch,
            policy_apply=net.joint,
            value_apply=net.value,
            clip_eps=config.clip_eps,
            vf_coef=config.vf_coef,
            ent_coef=config.ent_coef,
            clip_value=config.clip_value,
            normalize_advantages=config.normalize_advantages,
        )
        emb_entropy = jnp.mean(net.embedding(p, omega).entropy())
        nll = -jnp.mean(net.inference(p, window).log_prob(net.split_obs(ppo_batch.obs)[2]))
        total = total - config.embedding_ent_coef * emb_entropy + config.inference_loss_coef * nll
        return total, {**metrics, "embedding_entropy": emb_entropy, "inference_nll": nll}

    return te_loss


def make_rollout(config: Config, net: Networks, train_env, env_params):
    """``rollout(params, carry, key) -> (carry, (PPOBatch, windows, omega) [T, N], metrics)``: one latent per
    episode, the inference bonus added to the reward before GAE."""
    n_state, w = net.n_state, config.window

    def one_step(params, carry, step_key):
        env_state, obs, z, window = carry
        a_key, e_key, z_key = jax.random.split(step_key, 3)
        obs_ext = jnp.concatenate([obs, z], axis=-1)
        dist = net.joint(params, obs_ext)
        action = dist.policy.sample(seed=a_key)
        log_prob, value = dist.log_prob(action), net.value(params, obs_ext)
        next_obs, env_state, reward, terminated, truncated, info = train_env.step(e_key, env_state, action, env_params)
        final = info["final_observation"]
        window_next = jnp.concatenate([window[:, 1:], final[:, None, :n_state]], axis=1)
        log_q = net.inference(params, window_next).log_prob(z)
        done = jnp.logical_or(terminated, truncated)
        fresh = net.embedding(params, next_obs[:, n_state:]).sample(seed=z_key)
        z_next = jnp.where(done[:, None], fresh, z)
        window_reset = jnp.repeat(next_obs[:, None, :n_state], w, axis=1)
        window_carry = jnp.where(done[:, None, None], window_reset, window_next)
        out = (obs_ext, action, reward, log_q, log_prob, value, final, terminated, truncated, window_next, info)
        return TECarry(env_state, next_obs, z_next, window_carry), out

    def rollout(params, carry: TECarry, key):
        step = lambda c, k: one_step(params, c, k)
        carry, out = jax.lax.scan(step, carry, jax.random.split(key, config.num_steps))
        obs_ext, action, reward, log_q, log_prob, value, final, terminated, truncated, windows, infos = out
        bonus = config.inference_coef * log_q
        v_tp1 = net.value_net.apply(params.value, final)
        adv, target = on_policy.advantages(
            reward + bonus, value, v_tp1, terminated, truncated, config.discount, config.gae_lambda
        )
        data = (PPOBatch(obs_ext, action, log_prob, value, adv, target), windows, obs_ext[..., n_state : net.n_full])
        metrics = {**rollout_lib.episode_metrics(infos), **mt_ppo.tracker_metrics(carry.env_state)}
        metrics.update({"inference_bonus": jnp.mean(bonus), "inference_log_q": jnp.mean(log_q)})
        return carry, data, metrics

    return rollout


def make(config: Config, env, env_params) -> Algorithm:
    k, m = mt_ppo.check_suite(config, env, "te_ppo")
    train_env = mt_ppo.make_train_env(env, m)
    net = make_networks(config, train_env, env_params)
    n_state, n_lat, w = net.n_state, config.latent_dim, config.window
    tx, learn = mt_ppo.ppo_learner(config, k)(make_loss(config, net))

    def init(key: jax.Array) -> State:
        key, pk, vk, ek, ik, rk, zk = jax.random.split(key, 7)
        params = TEParams(
            net.policy_net.init(pk, jnp.zeros((n_state + n_lat,))),
            net.value_net.init(vk, jnp.zeros((net.n_full,))),
            net.embedding_net.init(ek, jnp.zeros((net.n_full - n_state,))),
            net.inference_net.init(ik, jnp.zeros((w * n_state,))),
        )
        obs, env_state = train_env.reset(rk, env_params)
        latent = net.embedding(params, obs[:, n_state:]).sample(seed=zk)
        window = jnp.repeat(obs[:, None, :n_state], w, axis=1)
        carry = TECarry(env_state, obs, latent, window)
        return State(train_state.create(tx, params), carry, key, jnp.zeros((), jnp.int32))

    def act(state: State, obs, key, deterministic: bool = False):
        z_key, a_key = jax.random.split(key)
        s, omega = obs[..., :n_state], obs[..., n_state:]
        emb = net.embedding(state.params, omega)
        z = emb.mean() if deterministic else emb.sample(seed=z_key)
        dist = net.policy(state.params, s, z)
        return nets.mode(dist) if deterministic else dist.sample(seed=a_key)

    return Algorithm(
        init=init,
        step=on_policy.make_step(make_rollout(config, net, train_env, env_params), learn),
        act=act,
        evaluate=mt_ppo.make_task_evaluate(env, env_params, act),
        config=config,
        env_steps_per_iteration=config.env_steps_per_iteration,
    )
