"""Soft actor-critic (Haarnoja et al., 2018) with twin Q, target networks and a learned temperature.

One ``step`` = one environment step in each of ``num_envs`` envs (uniform random actions until
``learning_starts``), stored in the replay buffer, then ``updates_per_step`` gradient updates of critic, actor
and temperature (skipped, by :func:`~jaxrl.algos.common.phase_cond`, until the buffer holds ``learning_starts``
transitions).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import nets
from jaxrl.algos.common import (
    Algorithm,
    gradient_step,
    make_evaluate,
    make_train_env,
    obs_normalizer,
    phase_cond,
    sac_actor_temperature_step,
)
from jaxrl.config import ConfigError, config, hyper, static
from jaxrl.data import replay
from jaxrl.data import rollout as rollout_lib
from jaxrl.data.types import Transition
from jaxrl.envs.wrappers import action_dim, is_discrete, obs_dim
from jaxrl.losses.sac import sac_critic_loss


@config
class Config:
    learning_rate: float = hyper(1e-3, low=0, low_open=True, help="Adam step size (actor, critic, temperature)")
    gamma: float = hyper(0.99, low=0, high=1, help="discount")
    tau: float = hyper(0.005, low=0, high=1, low_open=True, help="target-network Polyak rate")
    init_alpha: float = hyper(1.0, low=0, low_open=True, help="initial temperature")
    target_entropy_scale: float = hyper(1.0, help="target entropy = -scale * action_dim")
    num_envs: int = static(1, low=1, help="parallel environments")
    batch_size: int = static(256, low=1, help="minibatch size")
    buffer_size: int = static(100_000, low=1, help="replay capacity (transitions)")
    learning_starts: int = static(1_000, low=0, help="random-action steps before updates start")
    updates_per_step: int = static(1, low=1, help="gradient updates per environment step")
    hidden: tuple[int, ...] = static((256, 256), help="hidden layer widths (actor and critic)")
    activation: str = static("relu", choices=tuple(nets.core.ACTIVATIONS), help="hidden activation")
    normalize_observations: bool = static(False, choices=(True, False), help="running obs normalisation")
    total_env_steps: int = static(20_000, low=1, help="training length in environment steps")

    def __post_init__(self):
        if self.total_env_steps < self.num_envs:
            raise ConfigError(
                f"sac.Config.total_env_steps={self.total_env_steps} is out of range: must be >= "
                f"num_envs = {self.num_envs}"
            )

    @property
    def env_steps_per_iteration(self) -> int:
        return self.num_envs

    @property
    def num_iterations(self) -> int:
        return self.total_env_steps // self.num_envs


class SACParams(NamedTuple):
    actor: Any
    critic: Any
    target_critic: Any
    log_alpha: jax.Array


class SACOptState(NamedTuple):
    actor: Any
    critic: Any
    alpha: Any


@struct.dataclass
class State:
    params: SACParams
    opt_state: SACOptState
    buffer: replay.ReplayState
    env_state: Any
    obs: jax.Array
    key: jax.Array
    iteration: jax.Array


def make(config: Config, env, env_params) -> Algorithm:
    if is_discrete(env, env_params):
        raise ConfigError("sac needs a continuous (Box) action space; use ppo for discrete actions")
    n_act, n_obs = action_dim(env, env_params), obs_dim(env, env_params)
    actor_net = nets.make_tanh_gaussian_policy(n_act, config.hidden, config.activation)
    critic_net = nets.make_q_ensemble(config.hidden, config.activation, num_members=2)
    train_env = make_train_env(env, env_params, config.num_envs, config.normalize_observations)
    tx = optax.adam(config.learning_rate)
    target_entropy = -config.target_entropy_scale * n_act

    def init(key: jax.Array) -> State:
        key, ak, ck, ek = jax.random.split(key, 4)
        o, a = jnp.zeros((n_obs,), jnp.float32), jnp.zeros((n_act,), jnp.float32)
        critic = critic_net.init(ck, o, a)
        params = SACParams(actor_net.init(ak, o), critic, critic, jnp.log(jnp.asarray(config.init_alpha, jnp.float32)))
        opt_state = SACOptState(tx.init(params.actor), tx.init(params.critic), tx.init(params.log_alpha))
        example = Transition(o, a, jnp.zeros(()), o, jnp.zeros((), bool), jnp.zeros((), bool))
        obs, env_state = train_env.reset(ek, env_params)
        return State(
            params, opt_state, replay.init(example, config.buffer_size), env_state, obs, key, jnp.zeros((), jnp.int32)
        )

    def act(state: State, obs, key, deterministic: bool = False):
        dist = actor_net.apply(state.params.actor, obs_normalizer(state.env_state)(obs))
        return nets.mode(dist) if deterministic else dist.sample(seed=key)

    def update(buffer, carry, key):
        params, opt_state = carry
        batch_key, critic_key, actor_key = jax.random.split(key, 3)
        batch = replay.sample(buffer, batch_key, config.batch_size)
        alpha = jnp.exp(params.log_alpha)

        critic_grads, c_metrics = jax.grad(sac_critic_loss, has_aux=True)(
            params.critic,
            batch,
            critic_apply=critic_net.apply,
            target_critic_params=params.target_critic,
            actor_params=params.actor,
            actor_apply=actor_net.apply,
            alpha=alpha,
            gamma=config.gamma,
            key=critic_key,
        )
        critic, c_opt = gradient_step(tx, critic_grads, opt_state.critic, params.critic)
        actor, a_opt, log_alpha, t_opt, at_metrics = sac_actor_temperature_step(
            tx,
            params.actor,
            opt_state.actor,
            params.log_alpha,
            opt_state.alpha,
            batch,
            actor_key,
            actor_apply=actor_net.apply,
            critic_apply=critic_net.apply,
            critic_params=critic,
            target_entropy=target_entropy,
        )
        target = optax.incremental_update(critic, params.target_critic, config.tau)
        new_params = SACParams(actor, critic, target, log_alpha)
        return (new_params, SACOptState(a_opt, c_opt, t_opt)), {**c_metrics, **at_metrics}

    metric_names = ("critic_loss", "q_mean", "target_q_mean", "actor_loss", "entropy", "temperature_loss", "alpha")

    def step(state: State):
        key, act_key, env_key, update_key = jax.random.split(state.key, 4)
        warmup = state.buffer.size < config.learning_starts
        policy_action = act(state, state.obs, act_key)
        random_action = jax.random.uniform(act_key, policy_action.shape, minval=-1.0, maxval=1.0)
        action = jnp.where(warmup, random_action, policy_action)
        obs, env_state, reward, terminated, truncated, info = train_env.step(
            env_key, state.env_state, action, env_params
        )
        buffer = replay.add(
            state.buffer, Transition(state.obs, action, reward, info["final_observation"], terminated, truncated)
        )

        # The buffer is read, not carried: keeping it out of the cond's operands and results spares a copy of
        # it in both branches (and avoided a stall of XLA:CPU's scheduler on large vmapped programs).
        def do_updates(carry):
            return jax.lax.scan(
                lambda c, k: update(buffer, c, k), carry, jax.random.split(update_key, config.updates_per_step)
            )

        def skip_updates(carry):
            zeros = {k: jnp.zeros((config.updates_per_step,), jnp.float32) for k in metric_names}
            return carry, zeros

        ready = buffer.size >= max(config.learning_starts, 1)
        (params, opt_state), metrics = phase_cond(ready, do_updates, skip_updates, (state.params, state.opt_state))
        metrics = jax.tree.map(jnp.mean, metrics)
        metrics.update(rollout_lib.episode_metrics(info))
        return State(params, opt_state, buffer, env_state, obs, key, state.iteration + 1), metrics

    return Algorithm(
        init=init,
        step=step,
        act=act,
        evaluate=make_evaluate(env, env_params, act),
        config=config,
        env_steps_per_iteration=config.env_steps_per_iteration,
    )
