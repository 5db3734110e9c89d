"""Soft actor-critic (Haarnoja et al., 2018) with twin Q, target networks and a learned temperature.

One ``step`` = one environment step in each of ``num_envs`` envs (uniform random actions until
``learning_starts``), stored in the replay buffer, then ``updates_per_step`` gradient updates of critic, actor
and temperature (skipped until the buffer holds ``learning_starts`` transitions): the off-policy skeleton of
:mod:`jaxrl.algos.off_policy`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrl import nets
from jaxrl.algos import off_policy
from jaxrl.algos import train_state as ts
from jaxrl.algos.base_config import OffPolicyConfig
from jaxrl.algos.common import (
    Algorithm,
    make_evaluate,
    make_train_env,
    obs_normalizer,
    sac_actor_temperature_update,
)
from jaxrl.algos.train_state import TrainState
from jaxrl.config import ConfigError, config, hyper, static
from jaxrl.data import replay
from jaxrl.data import rollout as rollout_lib
from jaxrl.envs.wrappers import action_dim, is_discrete, obs_dim
from jaxrl.losses.sac import sac_critic_loss

State = off_policy.State


@config
class Config(OffPolicyConfig):
    init_alpha: float = hyper(1.0, low=0, low_open=True, help="initial temperature")
    target_entropy_scale: float = hyper(1.0, help="target entropy = -scale * action_dim")
    normalize_observations: bool = static(False, choices=(True, False), help="running obs normalisation")
    total_env_steps: int = static(20_000, low=1, help="training length in environment steps")


class SACNets(NamedTuple):
    actor: TrainState
    critic: TrainState  # with its target copy
    temperature: TrainState  # params: log alpha


def make(config: Config, env, env_params) -> Algorithm:
    if is_discrete(env, env_params):
        raise ConfigError("sac needs a continuous (Box) action space; use ppo for discrete actions")
    n_act, n_obs = action_dim(env, env_params), obs_dim(env, env_params)
    actor_net = nets.make_tanh_gaussian_policy(n_act, config.hidden, config.activation)
    critic_net = nets.make_q_ensemble(config.hidden, config.activation, num_members=2)
    train_env = make_train_env(env, env_params, config.num_envs, config.normalize_observations)
    tx = optax.adam(config.learning_rate)
    target_entropy = -config.target_entropy_scale * n_act

    def init_nets(actor_key, critic_key):
        example = off_policy.example_transition(n_obs, n_act)
        log_alpha = jnp.log(jnp.asarray(config.init_alpha, jnp.float32))
        sac_nets = SACNets(
            ts.create(tx, actor_net.init(actor_key, example.obs)),
            ts.create(tx, critic_net.init(critic_key, example.obs, example.action), target=True),
            ts.create(tx, log_alpha),
        )
        return sac_nets, replay.init(example, config.buffer_size)

    def act(state: State, obs, key, deterministic: bool = False):
        dist = actor_net.apply(state.params.actor.params, obs_normalizer(state.env_state)(obs))
        return nets.mode(dist) if deterministic else dist.sample(seed=key)

    def update(buffer, sac_nets: SACNets, key):
        batch_key, critic_key, actor_key = jax.random.split(key, 3)
        batch = replay.sample(buffer, batch_key, config.batch_size)
        critic_grads, c_metrics = jax.grad(sac_critic_loss, has_aux=True)(
            sac_nets.critic.params,
            batch,
            critic_key,
            critic_apply=critic_net.apply,
            target_critic_params=sac_nets.critic.target,
            actor_params=sac_nets.actor.params,
            actor_apply=actor_net.apply,
            alpha=jnp.exp(sac_nets.temperature.params),
            discount=config.discount,
        )
        critic = ts.apply_gradient(tx, sac_nets.critic, critic_grads)
        actor, temperature, at_metrics = sac_actor_temperature_update(
            tx,
            sac_nets.actor,
            sac_nets.temperature,
            batch,
            actor_key,
            actor_apply=actor_net.apply,
            critic_apply=critic_net.apply,
            critic_params=critic.params,
            target_entropy=target_entropy,
        )
        return SACNets(actor, ts.soft_update(critic, config.tau), temperature), {**c_metrics, **at_metrics}

    hooks = off_policy.Hooks(
        policy=act,
        update=update,
        add=replay.add,
        fill=lambda buffer: buffer.size,
        extras=lambda info: (),
        track=lambda tracker, info: (tracker, rollout_lib.episode_metrics(info)),
    )
    return Algorithm(
        init=off_policy.make_init(train_env, env_params, init_nets, num_net_keys=2),
        step=off_policy.make_step(
            train_env,
            env_params,
            hooks,
            learning_starts=config.learning_starts,
            updates_per_step=config.updates_per_step,
        ),
        act=act,
        evaluate=make_evaluate(env, env_params, act),
        config=config,
        env_steps_per_iteration=config.env_steps_per_iteration,
    )
