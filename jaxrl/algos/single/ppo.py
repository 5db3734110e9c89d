"""PPO (Schulman et al., 2017) for discrete and continuous actions, as pure functions.

One ``step`` = collect ``num_steps`` x ``num_envs`` transitions, compute GAE advantages (truncated episodes
bootstrap from their final observation), then ``num_epochs`` passes of ``num_minibatches`` clipped-surrogate
updates (the on-policy skeleton, :mod:`jaxrl.algos.on_policy`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxrl import nets
from jaxrl.algos import train_state
from jaxrl.algos.common import Algorithm, make_evaluate, make_train_env, obs_normalizer
from jaxrl.algos.on_policy import (
    ActorCritic,
    PPOConfig,
    State,
    actor_critic_nets,
    init_actor_critic,
    make_ppo_learn,
    make_rollout,
    make_step,
)
from jaxrl.algos.on_policy import make_ppo_optimizer as make_optimizer
from jaxrl.config import config, static
from jaxrl.envs.wrappers import obs_dim
from jaxrl.losses.ppo import ppo_loss

__all__ = ["Config", "State", "ActorCritic", "make", "make_optimizer", "ppo_learner", "actor_critic_loss"]


@config
class Config(PPOConfig):
    normalize_observations: bool = static(False, choices=(True, False), help="running obs normalisation")


def actor_critic_loss(config, policy_apply, value_apply):
    """``loss(params, batch) -> (total, metrics)``: :func:`jaxrl.losses.ppo.ppo_loss` with ``config``'s weights."""
    return functools.partial(
        ppo_loss,
        policy_apply=policy_apply,
        value_apply=value_apply,
        clip_eps=config.clip_eps,
        vf_coef=config.vf_coef,
        ent_coef=config.ent_coef,
        clip_value=config.clip_value,
        normalize_advantages=config.normalize_advantages,
    )


def ppo_learner(config):
    """``learner(loss) -> (tx, learn)``: PPO's optimiser and its epochs x minibatches of ``loss``."""

    def learner(loss):
        tx = make_optimizer(config)
        return tx, make_ppo_learn(loss, tx, config)

    return learner


def make(
    config: Config,
    env,
    env_params,
    *,
    train_env=None,
    make_evaluate_fn=None,
    learner=None,
    metrics_fn=None,
    networks=None,
) -> Algorithm:
    """PPO on ``env``. ``train_env`` (optional): a ready vectorised training env of ``num_envs`` copies with
    episode statistics (e.g. a multi-task ``MultiTaskEnv``) used instead of the default stack; spaces are then
    read from it. ``make_evaluate_fn(act) -> evaluate`` (optional) replaces the default evaluation;
    ``learner(loss) -> (tx, learn)`` the default :func:`ppo_learner`; ``metrics_fn(env_state) -> dict`` adds
    rollout metrics; ``networks`` a ``(policy, value)`` pair of ``Network`` instead of the config's MLPs (MT-PPO's
    multi-task architectures)."""
    spaces_env = env if train_env is None else train_env
    policy_net, value_net = networks or actor_critic_nets(spaces_env, env_params, config)
    n_obs = obs_dim(spaces_env, env_params)
    if train_env is None:
        train_env = make_train_env(env, env_params, config.num_envs, config.normalize_observations)
    loss = actor_critic_loss(
        config, lambda p, obs: policy_net.apply(p.policy, obs), lambda p, obs: value_net.apply(p.value, obs)
    )
    tx, learn = (learner or ppo_learner(config))(loss)

    def init(key: jax.Array) -> State:
        key, params, env_carry = init_actor_critic(key, policy_net, value_net, n_obs, train_env, env_params)
        return State(train_state.create(tx, params), env_carry, key, jnp.zeros((), jnp.int32))

    def act(state: State, obs, key, deterministic: bool = False):
        dist = policy_net.apply(state.params.policy, obs_normalizer(state.env_state)(obs))
        return nets.mode(dist) if deterministic else dist.sample(seed=key)

    rollout = make_rollout(
        train_env, env_params, policy_net, value_net, config, values_per_step=True, metrics_fn=metrics_fn
    )
    evaluate = make_evaluate(env, env_params, act) if make_evaluate_fn is None else make_evaluate_fn(act)
    return Algorithm(
        init=init,
        step=make_step(rollout, learn),
        act=act,
        evaluate=evaluate,
        config=config,
        env_steps_per_iteration=config.env_steps_per_iteration,
    )
