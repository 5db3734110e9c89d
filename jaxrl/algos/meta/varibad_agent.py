"""VariBAD's agent (Zintgraf et al. 2020): the networks, a trial (one BAMDP rollout) with the posterior updated
step by step, and the VAE loss over a batch of trials. The algorithm (config, PPO and VAE steps, evaluation) is
:mod:`jaxrl.algos.meta.varibad`, whose docstring gives the equations.

    q(m | tau_{:t}) = N(mu_t, diag exp(logvar_t)):  (h_t, [mu_t, logvar_t]) = GRU(h_{t-1}, (phi(a_t), r_t, s'_t))
    phi(a) = one_hot(a) (Discrete actions)  or  clip(a, -1, 1) (Box actions, in the agent's [-1, 1]^d units)
    policy pi(a | s_t, mu_t, logvar_t): categorical (Discrete) or diagonal Gaussian (Box), stop_gradient on the belief
    VAE: -(1 / (T+1)) sum_t [ E_{q_t} sum_j log p(r_j | s'_j[, phi(a_j)], m) - beta KL(q_t || q_{t-1})]  (q_0 = N(0, I))

Box actions: the agent acts in ``[-1, 1]^d``; :class:`jaxrl.algos.meta.common.TaskBoxActions` clips the action and
maps it affinely onto the task's action box (as MAML and CAVIA do; on brax locomotion the box is ``[-1, 1]^d``, so
the map is only the clip; on ``point-robot`` it scales onto ``[-0.1, 0.1]^2``). The encoder reads the executed
action in those units, ``clip(a, -1, 1)``, so it never sees the Gaussian's out-of-box tail.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrl import nets
from jaxrl.algos.meta.common import TaskBoxActions, check_family, episode_horizon
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
    enc_in: jax.Array  # x_t = (phi(a_t), r_t, s'_t): the encoder's input (phi: one_hot or clip(a, -1, 1))
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
    discrete: bool = True
    decoder_action: bool = False  # the reward decoder also reads phi(a_t)

    def action_features(self, action):
        """``phi(a)``: ``one_hot(a)`` for Discrete actions; for Box actions the executed action ``clip(a, -1, 1)``
        (the agent's units; ``self.env`` maps them onto the task's box)."""
        if self.discrete:
            return jax.nn.one_hot(action, self.n_act, dtype=jnp.float32)
        return jnp.clip(jnp.asarray(action, jnp.float32).reshape(self.n_act), -1.0, 1.0)

    def enc_input(self, action, reward, next_obs):
        """``x_t = (phi(a_t), r_t, s'_t)``."""
        a = self.action_features(action)
        return jnp.concatenate([a, jnp.reshape(reward, (1,)).astype(jnp.float32), next_obs])

    def decoder_input_dim(self) -> int:
        return self.n_obs + (self.n_act if self.decoder_action else 0)

    def decoder_inputs(self, next_obs, enc_in):
        """The decoder's per-step input beside ``m``: ``s'_t``, or ``(s'_t, phi(a_t))`` with ``decoder_action``
        (``phi(a_t)`` is the first ``n_act`` entries of the encoder input)."""
        if not self.decoder_action:
            return next_obs
        return jnp.concatenate([next_obs, enc_in[..., : self.n_act]], axis=-1)

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
    """The networks for the family's action space: a categorical policy on Discrete actions, a diagonal Gaussian
    (state-independent log-std, initial std 1) on Box actions acting in ``[-1, 1]^d`` through
    :class:`~jaxrl.algos.meta.common.TaskBoxActions`."""
    check_family("varibad", family, env_params)
    one_task = jax.tree.map(lambda x: x[0], env_params)
    discrete = is_discrete(family.env, one_task)
    n_act, n_obs = action_dim(family.env, one_task), obs_dim(family.env, one_task)
    horizon = episode_horizon(env_params, default=config.horizon)
    if config.horizon != horizon:
        raise ConfigError(
            f"varibad.Config.horizon={config.horizon} does not match the tasks' episode length {horizon}: "
            f"set varibad.Config(horizon={horizon}) (--horizon {horizon})"
        )
    encoder = recurrent.make_gru(2 * config.latent_dim, config.encoder_hidden, config.encoder_embed, "relu", 0.1)
    decoder = nets.make_mlp(1, config.decoder_hidden, "relu")
    if discrete:
        policy, env = nets.make_categorical_policy(n_act, config.hidden, config.activation), family.env
    else:
        policy, env = nets.make_gaussian_policy(n_act, config.hidden, config.activation), TaskBoxActions(family.env)
    value = nets.make_value_network(config.hidden, config.activation)
    trial_len = config.episodes_per_trial * horizon
    sizes = (n_obs, n_act, trial_len, config.latent_dim)
    return Agent(encoder, decoder, policy, value, env, *sizes, discrete, config.decoder_action)


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
        dec_in = agent.decoder_inputs(next_obs, enc_in)  # s'_j, or (s'_j, phi(a_j)) with decoder_action
        return elbo.trial_negative_elbo(decode, mean, logvar, dec_in, reward, active, key, **elbo_kw)

    def loss(vae, trials: Trial, key):
        keys = jax.random.split(key, trials.reward.shape[1])
        total, metrics = jax.vmap(one_trial, in_axes=(None, 1, 1, 1, 1, 0))(
            vae, trials.enc_in, trials.next_obs, trials.reward, trials.active, keys
        )
        return jnp.mean(total), jax.tree.map(jnp.mean, metrics)

    return loss
