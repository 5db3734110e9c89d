"""Naive offline SAC: soft actor-critic trained only on dataset batches (no env interaction).

The baseline that shows why offline RL needs conservatism: the actor maximises ``Q(s, pi(s))`` at actions the
data never tried, where nothing corrects the critic, so Q over-estimates (the metrics ``q_policy`` (Q at the
policy's actions), ``q_data`` (Q at the dataset's actions) and ``mc_return`` (the discounted Monte-Carlo return
of the sampled rows) show the gap grow). The critic, actor and temperature losses are
:mod:`jaxrl.losses.sac`'s. One ``step`` = ``updates_per_iteration`` gradient updates; ``total_env_steps`` counts
gradient updates. :mod:`jaxrl.algos.offline.cql` is this plus the conservative penalty.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import nets
from jaxrl.algos.common import Algorithm, gradient_step, phase_cond, sac_actor_temperature_step
from jaxrl.algos.offline import common as oc
from jaxrl.config import config, hyper, static
from jaxrl.losses.offline import (
    calql_critic_loss,
    cql_alpha_loss,
    cql_bc_actor_loss,
    cql_critic_loss,
    edac_critic_loss,
    ensemble_q,
)
from jaxrl.losses.sac import sac_actor_loss, sac_critic_loss


@config
class Config(oc.CountsUpdates):
    learning_rate: float = hyper(3e-4, low=0, low_open=True, help="Adam step size (actor, critic, temperature)")
    gamma: float = hyper(0.99, low=0, high=1, help="discount")
    tau: float = hyper(0.005, low=0, high=1, low_open=True, help="target-network Polyak rate")
    init_alpha: float = hyper(1.0, low=0, low_open=True, help="initial temperature")
    target_entropy_scale: float = hyper(1.0, help="target entropy = -scale * action_dim")
    dataset_index: float = hyper(0, low=0, help="which of the stacked datasets this run trains on")
    batch_size: int = static(256, low=1, help="minibatch size")
    updates_per_iteration: int = static(100, low=1, help="gradient updates per iteration (per step call)")
    hidden: tuple[int, ...] = static((256, 256), help="hidden layer widths (actor and critic)")
    activation: str = static("relu", choices=tuple(nets.core.ACTIVATIONS), help="hidden activation")
    total_env_steps: int = static(20_000, low=1, help="training length in gradient updates (offline: no env steps)")


class Params(NamedTuple):
    actor: Any
    critic: Any  # leading [num_critics] ensemble axis
    target_critic: Any
    log_alpha: jax.Array
    log_cql_alpha: Any = None  # CQL-Lagrange's multiplier (log); None otherwise


class OptState(NamedTuple):
    actor: Any
    critic: Any
    alpha: Any
    cql_alpha: Any = None


@struct.dataclass
class State:
    params: Params
    opt_state: OptState
    sampler: oc.Sampler
    key: jax.Array
    iteration: jax.Array


class Networks(NamedTuple):
    actor: Any
    q_single: Any  # one critic member
    critic: Any  # the ensemble of num_critics members (one vmapped parameter axis)


# CQL-Lagrange's log multiplier stays in [exp(-10), 1e6] (the reference code clamps alpha' to [0, 1e6]).
LOG_CQL_ALPHA_BOUNDS = (-10.0, math.log(1e6))


def make_networks(config, n_act: int, num_critics: int = 2) -> Networks:
    q_single = nets.make_value_network(config.hidden, config.activation)
    return Networks(
        nets.make_tanh_gaussian_policy(n_act, config.hidden, config.activation),
        q_single,
        nets.make_ensemble(q_single, num_critics),
    )


def make_act(networks: Networks):
    def act(state, obs, key, deterministic: bool = False):
        dist = networks.actor.apply(state.params.actor, obs)
        return nets.mode(dist) if deterministic else dist.sample(seed=key)

    return act


def _kind(config, conservative: bool, diversity: bool) -> str:
    if conservative:
        return "cql"
    return "edac" if diversity else "sac"


def make_update(config, networks: Networks, tx, n_act: int, *, conservative: bool = False, diversity: bool = False):
    """``update(params, opt_state, batch, key, imitate=False) -> (params, opt_state, metrics)``: one critic,
    actor, temperature and target update (and CQL-Lagrange's multiplier), shared by offline training and
    fine-tuning; :func:`make_keyed_update` with the key split in two. ``imitate`` (CQL with ``bc_steps``): the
    actor takes :func:`cql_bc_actor_loss` instead of SAC's."""
    keyed = make_keyed_update(config, networks, tx, n_act, conservative=conservative, diversity=diversity)

    def update(params: Params, opt_state: OptState, batch, key, imitate=False):
        critic_key, actor_key = jax.random.split(key)
        return keyed(params, opt_state, batch, critic_key, actor_key, imitate)

    return update


def make_keyed_update(
    config, networks: Networks, tx, n_act: int, *, conservative: bool = False, diversity: bool = False
):
    """``update(params, opt_state, batch, critic_key, actor_key, imitate=False)``: :func:`make_update`'s step for
    callers that split their own keys (MOPO / MOReL keep their random stream).

    ``conservative``: CQL's critic loss with ``config.cql_variant`` ("H" or "rho"), ``config.calibrated``
    (Cal-QL's floor) and ``config.lagrange`` (the penalty weight learned to hold ``config.target_action_gap``);
    ``diversity``: EDAC's; otherwise SAC's."""
    n = networks
    kind = _kind(config, conservative, diversity)
    target_entropy = -config.target_entropy_scale * n_act
    lagrange = conservative and config.lagrange
    multiplier_tx = optax.adam(config.cql_alpha_learning_rate) if lagrange else None
    warm_start = conservative and config.bc_steps > 0

    def critic_loss(critic, batch, params, alpha, key):
        common = dict(
            q_apply=n.q_single.apply,
            target_q_params=params.target_critic,
            policy_apply=n.actor.apply,
            policy_params=params.actor,
            discount=config.gamma,
            entropy_coef=alpha,
        )
        if kind == "cql":
            cql_alpha = jnp.exp(params.log_cql_alpha) if lagrange else config.cql_alpha
            loss = calql_critic_loss if config.calibrated else cql_critic_loss
            return loss(
                critic,
                batch,
                key,
                cql_alpha=jax.lax.stop_gradient(cql_alpha),
                num_samples=config.num_samples,
                temperature=config.cql_temperature,
                variant=config.cql_variant,
                **common,
            )
        if kind == "edac":
            return edac_critic_loss(critic, batch, key, eta=config.eta, **common)
        return sac_critic_loss(
            critic,
            batch,
            critic_apply=n.critic.apply,
            target_critic_params=params.target_critic,
            actor_params=params.actor,
            actor_apply=n.actor.apply,
            alpha=alpha,
            gamma=config.gamma,
            key=key,
        )

    def warm_start_grads(batch, critic, key, imitate):
        """CQL's first ``bc_steps`` updates imitate the data; then SAC's actor loss."""

        def grads(actor, alpha):
            maximise_q = lambda: jax.grad(sac_actor_loss, has_aux=True)(
                actor,
                batch,
                actor_apply=n.actor.apply,
                critic_apply=n.critic.apply,
                critic_params=critic,
                alpha=alpha,
                key=key,
            )
            clone = lambda: jax.grad(cql_bc_actor_loss, has_aux=True)(
                actor, batch, actor_apply=n.actor.apply, alpha=alpha, key=key
            )
            return phase_cond(imitate, clone, maximise_q)

        return grads

    def update(params: Params, opt_state: OptState, batch, critic_key, actor_key, imitate=False):
        alpha = jnp.exp(params.log_alpha)
        c_grads, c_metrics = jax.grad(critic_loss, has_aux=True)(params.critic, batch, params, alpha, critic_key)
        critic, c_opt = gradient_step(tx, c_grads, opt_state.critic, params.critic)
        actor, a_opt, log_alpha, t_opt, at_metrics = sac_actor_temperature_step(
            tx,
            params.actor,
            opt_state.actor,
            params.log_alpha,
            opt_state.alpha,
            batch,
            actor_key,
            actor_apply=n.actor.apply,
            critic_apply=n.critic.apply,
            critic_params=critic,
            target_entropy=target_entropy,
            actor_grads=warm_start_grads(batch, critic, actor_key, jnp.asarray(imitate)) if warm_start else None,
        )

        target = optax.incremental_update(critic, params.target_critic, config.tau)
        pi = nets.mode(n.actor.apply(actor, batch.observations))
        q_policy = jnp.mean(jnp.min(ensemble_q(n.q_single.apply, critic, batch.observations, pi), axis=0))
        q_ens = ensemble_q(n.q_single.apply, critic, batch.observations, batch.actions)
        metrics = {
            "critic_loss": c_metrics["critic_loss"],
            **at_metrics,
            "q_policy": q_policy,
            "q_data": jnp.mean(jnp.min(q_ens, axis=0)),
            "mc_return": jnp.mean(batch.mc_returns),
        }
        metrics.update({k: c_metrics[k] for k in ("cql_gap", "bound_rate", "diversity") if k in c_metrics})
        if q_ens.shape[0] > 2:
            metrics["q_std"] = jnp.mean(jnp.std(q_ens, axis=0))
        log_cql_alpha, m_opt = params.log_cql_alpha, opt_state.cql_alpha
        if lagrange:
            m_grad = jax.grad(cql_alpha_loss)(log_cql_alpha, c_metrics["cql_gap"], config.target_action_gap)
            m_updates, m_opt = multiplier_tx.update(m_grad, m_opt, log_cql_alpha)
            log_cql_alpha = jnp.clip(optax.apply_updates(log_cql_alpha, m_updates), *LOG_CQL_ALPHA_BOUNDS)
            metrics["cql_alpha"] = jnp.exp(log_cql_alpha)
        return (Params(actor, critic, target, log_alpha, log_cql_alpha), OptState(a_opt, c_opt, t_opt, m_opt), metrics)

    return update


def init_params(config, networks: Networks, tx, key, n_obs: int, n_act: int, *, lagrange: bool = False):
    """Fresh ``(Params, OptState)`` (target critic = critic; CQL-Lagrange's multiplier at ``config.cql_alpha``)."""
    ak, ck = jax.random.split(key)
    o, a = jnp.zeros((n_obs,), jnp.float32), jnp.zeros((n_act,), jnp.float32)
    critic = networks.critic.init(ck, o, a)
    log_cql_alpha, m_opt = None, None
    if lagrange:
        log_cql_alpha = jnp.clip(jnp.log(jnp.asarray(config.cql_alpha, jnp.float32)), *LOG_CQL_ALPHA_BOUNDS)
        m_opt = optax.adam(config.cql_alpha_learning_rate).init(log_cql_alpha)
    params = Params(
        networks.actor.init(ak, o), critic, critic, jnp.log(jnp.asarray(config.init_alpha, jnp.float32)), log_cql_alpha
    )
    return params, OptState(tx.init(params.actor), tx.init(params.critic), tx.init(params.log_alpha), m_opt)


def make_sac_like(
    config, env, env_params, name: str, conservative: bool = False, num_critics: int = 2, diversity: bool = False
) -> Algorithm:
    """SAC on dataset batches with a ``num_critics``-member Q ensemble (targets and actor use the minimum over
    members). ``conservative`` swaps the critic loss for CQL's (``config.cql_alpha`` etc.); ``diversity`` for
    EDAC's (TD error plus ``config.eta`` times the ensemble-gradient similarity,
    :func:`jaxrl.losses.offline.edac_critic_loss`). With ``num_critics > 2`` the metrics add ``q_std`` (the
    ensemble's standard deviation at the data's actions)."""
    env, n_act, n_obs = oc.prepare(env, env_params, config, name)
    networks = make_networks(config, n_act, num_critics)
    tx = optax.adam(config.learning_rate)
    update_fn = make_update(config, networks, tx, n_act, conservative=conservative, diversity=diversity)
    lagrange = conservative and config.lagrange

    def init(key):
        key, pk = jax.random.split(key)
        params, opt_state = init_params(config, networks, tx, pk, n_obs, n_act, lagrange=lagrange)
        sampler = oc.init_sampler(env, oc.dataset_index(config), config.gamma)
        return State(params, opt_state, sampler, key, jnp.zeros((), jnp.int32))

    def step(state: State):
        # CQL's actor warm start, decided per iteration (all updates of an iteration alike)
        imitate = (state.iteration * config.updates_per_iteration < config.bc_steps) if conservative else False

        def update(carry, key):
            batch_key, k = jax.random.split(key)
            batch = oc.sample_batch(env, state.sampler, batch_key, config.batch_size)
            params, opt_state, metrics = update_fn(*carry, batch, k, imitate)
            return (params, opt_state), metrics

        key, k = jax.random.split(state.key)
        (params, opt_state), metrics = oc.scan_updates(
            update, (state.params, state.opt_state), k, config.updates_per_iteration
        )
        return state.replace(params=params, opt_state=opt_state, key=key, iteration=state.iteration + 1), metrics

    act = make_act(networks)
    return Algorithm(
        init=init,
        step=step,
        act=act,
        evaluate=oc.make_offline_evaluate(env, env_params, act),
        config=config,
        env_steps_per_iteration=config.env_steps_per_iteration,
    )


def make_value_check(config, env, env_params, *, num_critics: int = 2, horizon: int = 500):
    """``check(state, key, n) -> {"q_estimate" [n], "policy_return" [n]}``: the critic's value of the
    deterministic policy at ``n`` initial states of the dataset's env, ``min_e Q_e(s_0, mu(s_0))``, against the
    discounted return that policy really gets from them in ``horizon`` steps (time limit lifted; the tail beyond is
    ``gamma^horizon`` of the value, 0.7% at 0.99 and 500). The over-estimation check of the CQL paper (its
    figure 1 / table 3): naive offline SAC's estimate sits far above what its policy gets, CQL's below."""
    from jaxrl.algos.common import _base_stack
    from jaxrl.data import rollout as rollout_lib
    from jaxrl.envs.wrappers import VmapEnv, action_dim

    env = oc.check_offline_env(env, "value check")
    n_act = action_dim(env, env_params)
    networks = make_networks(config, n_act, num_critics)
    long_params = (
        env_params.replace(max_steps_in_episode=horizon) if hasattr(env_params, "max_steps_in_episode") else env_params
    )
    base = _base_stack(env.env, long_params)

    def check(state, key, n: int):
        venv = VmapEnv(base, n)
        policy = lambda obs, k: nets.mode(networks.actor.apply(state.params.actor, obs))
        returns = rollout_lib.evaluate(venv, long_params, policy, key, n, horizon, discount=config.gamma)
        obs0, _ = venv.reset(jax.random.split(key)[0], long_params)  # the same initial states
        q = ensemble_q(networks.q_single.apply, state.params.critic, obs0, policy(obs0, None))
        return {"q_estimate": jnp.min(q, axis=0), "policy_return": returns}

    return check


def make(config: Config, env, env_params) -> Algorithm:
    return make_sac_like(config, env, env_params, "sac_offline", conservative=False)
