"""VariBAD's agent (Zintgraf et al. 2020): the networks, a trial (one BAMDP rollout) with the posterior updated
step by step, and the VAE loss over a batch of trials. The algorithm (config, PPO and VAE steps, evaluation) is
:mod:`jaxrl.algos.meta.varibad`, whose docstring gives the equations.

    q(m | tau_{:t}) = N(mu_t, diag exp(logvar_t)):  (h_t, [mu_t, logvar_t]) = GRU(h_{t-1}, (one_hot(a_t), r_t, s'_t))
    policy and value on (s_t, stop_gradient(mu_t, logvar_t))
    VAE: -(1 / (T+1)) sum_t [ E_{q_t} sum_j log p(r_j | s'_j, m) - beta KL(q_t || q_{t-1}) ]   (q_0 = N(0, I))
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrl import nets
from jaxrl.algos.meta.common import check_family, episode_horizon
from jaxrl.config import ConfigError
from jaxrl.envs.wrappers import action_dim, is_discrete, obs_dim
from jaxrl.losses import varibad as elbo
from jaxrl.nets import recurrent


class Trial(NamedTuple):
    """One trial, time-major ``[T, ...]`` (a batch of trials adds an axis after T)."""

    policy_in: jax.Array  # (s_t, mu_t, logvar_t): the policy's input
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array  # masked by `active`
    active: jax.Array
    episode: jax.Array
    enc_in: jax.Array  # x_t = (one_hot(a_t), r_t, s'_t): the encoder's input
    next_obs: jax.Array  # s'_t (before any auto-reset): the decoder's input


class Agent(NamedTuple):
    encoder: Any  # RecurrentNetwork: GRU -> (mu, logvar) [2L]
    decoder: Any  # Network: (m, s') -> r_hat
    policy: Any
    value: Any
    env: Any
    n_obs: int
    n_act: int
    trial_len: int
    latent_dim: int

    def enc_input(self, action, reward, next_obs):
        a = jax.nn.one_hot(action, self.n_act, dtype=jnp.float32)
        return jnp.concatenate([a, jnp.reshape(reward, (1,)).astype(jnp.float32), next_obs])

    def posterior(self, out):
        """``(mu, logvar)`` from the encoder's ``[..., 2L]`` output (log-variance clipped to [-10, 5])."""
        return out[..., : self.latent_dim], jnp.clip(out[..., self.latent_dim :], -10.0, 5.0)

    def observe(self, encoder_params, h, action, reward, next_obs):
        """The posterior after one more transition: ``(h', mu, logvar, x)`` with the encoder's input ``x``."""
        x = self.enc_input(action, reward, next_obs)
        h, out = self.encoder.apply(encoder_params, h, x)
        return (h, *self.posterior(out), x)

    def policy_input(self, obs, mean, logvar):
        return jnp.concatenate([obs, jax.lax.stop_gradient(mean), jax.lax.stop_gradient(logvar)], axis=-1)


def make_agent(config: Any, family, env_params) -> Agent:
    check_family("varibad", family, env_params)
    one_task = jax.tree.map(lambda x: x[0], env_params)
    if not is_discrete(family.env, one_task):
        raise ConfigError("varibad: this implementation needs a discrete action space (one-hot actions)")
    n_act, n_obs = action_dim(family.env, one_task), obs_dim(family.env, one_task)
    horizon = episode_horizon(env_params, default=config.horizon)
    if config.horizon != horizon:
        raise ConfigError(f"varibad.Config.horizon={config.horizon} does not match the tasks' episode length {horizon}")
    encoder = recurrent.make_gru(2 * config.latent_dim, config.encoder_hidden, config.encoder_embed, "relu", 0.1)
    decoder = nets.make_mlp(1, config.decoder_hidden, "relu")
    policy = nets.make_categorical_policy(n_act, config.hidden, config.activation)
    value = nets.make_value_network(config.hidden, config.activation)
    trial_len = config.episodes_per_trial * horizon
    return Agent(encoder, decoder, policy, value, family.env, n_obs, n_act, trial_len, config.latent_dim)


def run_trial(agent: Agent, config: Any, params: Any, task, key, deterministic: bool = False) -> Trial:
    """One trial on ``task`` from the prior (zero encoder state); unbatched, vmap for a batch of tasks."""
    reset_key, key = jax.random.split(key)
    obs, env_state = agent.env.reset(reset_key, task)
    zeros = jnp.zeros((agent.latent_dim,), jnp.float32)
    carry0 = (env_state, obs, agent.encoder.initial_hidden(), zeros, zeros, jnp.zeros((), jnp.int32))

    def body(carry, k):
        env_state, obs, h, mean, logvar, episode = carry
        obs = jnp.asarray(obs, jnp.float32).reshape(agent.n_obs)
        x = agent.policy_input(obs, mean, logvar)
        dist = agent.policy.apply(params.policy.policy, x)
        value = agent.value.apply(params.policy.value, x)
        act_key, step_key = jax.random.split(k)
        action = nets.core.mode(dist) if deterministic else dist.sample(seed=act_key)
        next_obs, env_state, reward, terminated, truncated, info = agent.env.step(step_key, env_state, action, task)
        final_obs = jnp.asarray(info["final_observation"], jnp.float32).reshape(agent.n_obs)
        reward = jnp.asarray(reward, jnp.float32)
        h, new_mean, new_logvar, enc_x = agent.observe(params.vae["encoder"], h, action, reward, final_obs)
        done = jnp.logical_or(terminated, truncated).astype(jnp.int32)
        active = (episode < config.episodes_per_trial).astype(jnp.float32)
        step = Trial(x, action, dist.log_prob(action), value, reward * active, active, episode, enc_x, final_obs)
        return (env_state, next_obs, h, new_mean, new_logvar, episode + done), step

    _, trial = jax.lax.scan(body, carry0, jax.random.split(key, agent.trial_len))
    return trial


def make_vae_loss(agent: Agent, config: Any):
    """The negative ELBO over the prefixes of a batch of trials ``[T, B]`` (mean over trials)."""
    elbo_kw = dict(kl_weight=config.kl_weight, num_prefixes=config.elbo_prefixes, likelihood=config.reward_likelihood)

    def one_trial(vae, enc_in, next_obs, reward, active, key):
        _, out = agent.encoder.unroll(vae["encoder"], agent.encoder.initial_hidden(), enc_in)  # [T, 2L]
        zero = jnp.zeros((1, 2 * agent.latent_dim), jnp.float32)
        mean, logvar = agent.posterior(jnp.concatenate([zero, out]))  # [T+1, L]: q_0 = the prior N(0, I)
        decode = lambda m, s: agent.decoder.apply(vae["decoder"], m, s)
        return elbo.trial_negative_elbo(decode, mean, logvar, next_obs, reward, active, key, **elbo_kw)

    def loss(vae, trials: Trial, key):
        keys = jax.random.split(key, trials.reward.shape[1])
        total, metrics = jax.vmap(one_trial, in_axes=(None, 1, 1, 1, 1, 0))(
            vae, trials.enc_in, trials.next_obs, trials.reward, trials.active, keys
        )
        return jnp.mean(total), jax.tree.map(jnp.mean, metrics)

    return loss
