"""Task-embedding PPO (TE-PPO): PPO with a learned latent task embedding shared by all tasks.

After Hausman et al., 2018, "Learning an embedding space for transferable robot skills" (as in garage's TE-PPO).

Three learned pieces besides the value function:

* embedding ``p_phi(z | omega)``: a diagonal Gaussian over a ``latent_dim`` latent, from the task context omega;
* policy ``pi_theta(a | s, z)``: sees the state and the latent only (the task reaches it through ``z``);
* inference network ``q_psi(z | s_{t-W+2..t+1})``: recovers the latent from a window of the last ``W`` states.

Each episode of task ``k`` draws one latent ``z ~ p_phi(. | omega_k)`` and keeps it to the episode's end. The
agent maximises (paper, eq. 3; the three weights are ``embedding_ent_coef``, ``inference_coef``, ``ent_coef``)

    E[ sum_t gamma^t (r_t + inference_coef * log q_psi(z | window_{t+1})) ]
      + embedding_ent_coef * E_k H[p_phi(. | omega_k)] + ent_coef * E H[pi_theta(. | s, z)],

so the policy is rewarded for behaviour from which its latent can be told (distinct, identifiable skills), and
the embedding for staying broad. The policy-gradient part is PPO (:func:`jaxrl.losses.ppo.ppo_loss`, unchanged)
on the hierarchical policy whose "action" is the pair ``(z, a)``: the ratio is
``p_phi(z|omega) pi_theta(a|s,z) / (p_old(z|omega) pi_old(a|s,z))``, so the embedding learns from returns
through the score function (the value baseline ``V(s, omega)`` does not see ``z``, so a latent's whole
episode is credited to it). The inference network is trained by maximum likelihood on the collected
``(window, z)`` pairs (``inference_loss_coef * E[-log q_psi(z | window)]``). PPO's optimiser, clipping and
minibatch loop are reused from :mod:`jaxrl.algos.single.ppo`; the env side from :mod:`.mt_ppo`.

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
from jaxrl.algos.common import Algorithm
from jaxrl.algos.multitask import mt_ppo
from jaxrl.algos.single import ppo
from jaxrl.config import config, hyper, static
from jaxrl.data import rollout as rollout_lib
from jaxrl.envs.wrappers import action_dim, is_discrete, obs_dim
from jaxrl.losses.gae import generalized_advantage_estimation
from jaxrl.losses.ppo import PPOBatch, ppo_loss

__all__ = ["Config", "TEParams", "State", "make"]

LOG_STD_MIN, LOG_STD_MAX = -3.0, 1.0  # latent Gaussians (bounds the inference log-density bonus)


@config
class Config(ppo.Config):
    num_envs: int = static(16, low=1, help="parallel environments in all; a multiple of the number of tasks")
    latent_dim: int = static(4, low=1, help="task-embedding (skill latent) size")
    window: int = static(4, low=1, help="states in the inference network's trajectory window")
    embedding_hidden: tuple[int, ...] = static((32,), help="embedding network hidden widths")
    inference_hidden: tuple[int, ...] = static((64, 64), help="inference network hidden widths")
    embedding_ent_coef: float = hyper(1e-3, low=0, help="weight of the embedding entropy H[p(z|task)]")
    inference_coef: float = hyper(5e-2, low=0, help="weight of the reward bonus log q(z|window)")
    inference_loss_coef: float = hyper(1.0, low=0, help="weight of the inference network's NLL loss")
    total_env_steps: int = static(2_000_000, low=1, help="training length in environment steps (all tasks)")


class TEParams(NamedTuple):
    policy: Any
    value: Any
    embedding: Any
    inference: Any


@struct.dataclass
class State:
    params: TEParams
    opt_state: Any
    env_state: Any
    obs: jax.Array  # [N, O + D]
    latent: jax.Array  # [N, L] the running episode's latent per env
    window: jax.Array  # [N, W, O] the last W states (without context) per env
    key: jax.Array
    iteration: jax.Array


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


def make(config: Config, env, env_params) -> Algorithm:
    k, m = mt_ppo.check_suite(config, env, "te_ppo")
    train_env = mt_ppo.make_train_env(env, m)
    discrete = is_discrete(train_env, env_params)
    n_act = action_dim(train_env, env_params)
    n_ctx = int(train_env.context_dim)
    n_full = obs_dim(train_env, env_params)  # O + D
    n_state, n_lat, w = n_full - n_ctx, config.latent_dim, config.window
    if discrete:
        policy_net = nets.make_categorical_policy(n_act, config.hidden, config.activation)
    else:
        policy_net = nets.make_gaussian_policy(n_act, config.hidden, config.activation)
    value_net = nets.make_value_network(config.hidden, config.activation)
    embedding_net = nets.make_mlp(2 * n_lat, config.embedding_hidden, "tanh")
    inference_net = nets.make_mlp(2 * n_lat, config.inference_hidden, config.activation)
    tx = ppo.make_optimizer(config)

    embedding = lambda p, omega: _gaussian(embedding_net.apply(p.embedding, omega))
    inference = lambda p, win: _gaussian(inference_net.apply(p.inference, win.reshape(*win.shape[:-2], -1)))
    policy = lambda p, s, z: policy_net.apply(p.policy, jnp.concatenate([s, z], axis=-1))

    def split_obs(obs_ext):
        """``[.., O + D + L] -> (s [O], omega [D], z [L])``."""
        return obs_ext[..., :n_state], obs_ext[..., n_state:n_full], obs_ext[..., n_full:]

    def joint_apply(p, obs_ext):
        s, omega, z = split_obs(obs_ext)
        return JointPolicy(policy(p, s, z), embedding(p, omega), z)

    value_apply = lambda p, obs_ext: value_net.apply(p.value, obs_ext[..., :n_full])

    def init(key: jax.Array) -> State:
        key, pk, vk, ek, ik, rk, zk = jax.random.split(key, 7)
        omega = jnp.zeros((n_ctx,))
        params = TEParams(
            policy_net.init(pk, jnp.zeros((n_state + n_lat,))),
            value_net.init(vk, jnp.zeros((n_full,))),
            embedding_net.init(ek, omega),
            inference_net.init(ik, jnp.zeros((w * n_state,))),
        )
        obs, env_state = train_env.reset(rk, env_params)
        latent = embedding(params, obs[:, n_state:]).sample(seed=zk)
        window = jnp.repeat(obs[:, None, :n_state], w, axis=1)
        return State(params, tx.init(params), env_state, obs, latent, window, key, jnp.zeros((), jnp.int32))

    def act(state: State, obs, key, deterministic: bool = False):
        z_key, a_key = jax.random.split(key)
        s, omega = obs[..., :n_state], obs[..., n_state:]
        emb = embedding(state.params, omega)
        z = emb.mean() if deterministic else emb.sample(seed=z_key)
        dist = policy(state.params, s, z)
        return nets.mode(dist) if deterministic else dist.sample(seed=a_key)

    def te_loss(p, batch):
        ppo_batch, window, omega = batch
        total, metrics = ppo_loss(
            p,
            ppo_batch,
            policy_apply=joint_apply,
            value_apply=value_apply,
            clip_eps=config.clip_eps,
            vf_coef=config.vf_coef,
            ent_coef=config.ent_coef,
            clip_value=config.clip_value,
            normalize_advantages=config.normalize_advantages,
        )
        emb_entropy = jnp.mean(embedding(p, omega).entropy())
        nll = -jnp.mean(inference(p, window).log_prob(split_obs(ppo_batch.obs)[2]))
        total = total - config.embedding_ent_coef * emb_entropy + config.inference_loss_coef * nll
        return total, {**metrics, "embedding_entropy": emb_entropy, "inference_nll": nll}

    grad_fn = jax.grad(te_loss, has_aux=True)

    def step(state: State):
        key, rollout_key, perm_key = jax.random.split(state.key, 3)
        params = state.params

        def one_step(carry, step_key):
            env_state, obs, z, window = carry
            a_key, e_key, z_key = jax.random.split(step_key, 3)
            obs_ext = jnp.concatenate([obs, z], axis=-1)
            dist = joint_apply(params, obs_ext)
            action = dist.policy.sample(seed=a_key)
            log_prob, value = dist.log_prob(action), value_apply(params, obs_ext)
            next_obs, env_state, reward, terminated, truncated, info = train_env.step(
                e_key, env_state, action, env_params
            )
            final = info["final_observation"]
            window_next = jnp.concatenate([window[:, 1:], final[:, None, :n_state]], axis=1)
            log_q = inference(params, window_next).log_prob(z)
            done = jnp.logical_or(terminated, truncated)
            fresh = embedding(params, next_obs[:, n_state:]).sample(seed=z_key)
            z_next = jnp.where(done[:, None], fresh, z)
            window_reset = jnp.repeat(next_obs[:, None, :n_state], w, axis=1)
            window_carry = jnp.where(done[:, None, None], window_reset, window_next)
            out = (obs_ext, action, reward, log_q, log_prob, value, final, terminated, truncated, window_next, info)
            return (env_state, next_obs, z_next, window_carry), out

        carry = (state.env_state, state.obs, state.latent, state.window)
        (env_state, obs, latent, window), out = jax.lax.scan(
            one_step, carry, jax.random.split(rollout_key, config.num_steps)
        )
        obs_ext, action, reward, log_q, log_prob, value, final, terminated, truncated, windows, infos = out
        bonus = config.inference_coef * log_q
        v_tp1 = value_net.apply(params.value, final)
        discount = config.gamma * (1.0 - terminated.astype(jnp.float32))
        adv, target = generalized_advantage_estimation(
            reward + bonus, value, v_tp1, discount, jnp.logical_or(terminated, truncated), config.gae_lambda
        )
        data = (PPOBatch(obs_ext, action, log_prob, value, adv, target), windows, obs_ext[..., n_state:n_full])
        data = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), data)  # [T, N, ...] -> [T * N, ...]
        new_params, opt_state, metrics = ppo.minibatch_epochs(
            grad_fn, tx, params, state.opt_state, data, perm_key, config.num_epochs, config.num_minibatches
        )
        metrics.update(rollout_lib.episode_metrics(infos))
        metrics.update(mt_ppo.tracker_metrics(env_state))
        metrics.update({"inference_bonus": jnp.mean(bonus), "inference_log_q": jnp.mean(log_q)})
        return State(new_params, opt_state, env_state, obs, latent, window, key, state.iteration + 1), metrics

    return Algorithm(
        init=init,
        step=step,
        act=act,
        evaluate=mt_ppo.make_task_evaluate(env, env_params, act),
        config=config,
        env_steps_per_iteration=config.env_steps_per_iteration,
    )
