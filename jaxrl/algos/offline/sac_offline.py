"""Naive offline SAC: soft actor-critic trained only on dataset batches (no env interaction).

The baseline that shows why offline RL needs conservatism: the actor maximises ``Q(s, pi(s))`` at actions the
data never tried, where nothing corrects the critic, so Q over-estimates (the metrics ``q_policy`` (Q at the
policy's actions), ``q_data`` (Q at the dataset's actions) and ``mc_return`` (the discounted Monte-Carlo return
of the sampled rows) show the gap grow). The actor and temperature losses are :mod:`jaxrl.losses.sac`'s; the
critic's is SAC's on an ensemble (:func:`jaxrl.losses.offline.edac_critic_loss` with ``eta=None``, SAC-N's). One
``step`` = ``updates_per_iteration`` gradient updates; ``total_env_steps`` counts gradient updates.
:mod:`jaxrl.algos.offline.cql` is this plus the conservative penalty.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, cast

import jax
import jax.numpy as jnp
import optax

from jaxrl import nets
from jaxrl.algos import train_state as ts
from jaxrl.algos.common import Algorithm, phase_cond, sac_actor_temperature_update
from jaxrl.algos.offline import common as oc
from jaxrl.config import config
from jaxrl.losses.offline import calql_critic_loss, cql_alpha_loss, cql_bc_actor_loss, cql_critic_loss, edac_critic_loss
from jaxrl.losses.sac import sac_actor_loss

State = oc.State

# CQL-Lagrange's log multiplier stays in [exp(-10), 1e6] (the reference code clamps alpha' to [0, 1e6]).
LOG_CQL_ALPHA_BOUNDS = (-10.0, math.log(1e6))


@config
class Config(oc.EntropyConfig):
    """Offline SAC's fields are the family's (:class:`~jaxrl.algos.offline.base_config.EntropyConfig`)."""


class Nets(NamedTuple):
    actor: ts.TrainState
    critic: ts.TrainState  # leading [num_critics] ensemble axis; with its target
    log_alpha: ts.TrainState
    log_cql_alpha: ts.TrainState | None = None  # CQL-Lagrange's multiplier (log); None otherwise


class Networks(NamedTuple):
    actor: nets.Network
    critic: nets.Network  # the ensemble of num_critics members (one vmapped parameter axis): [E, B]


def make_networks(config, n_act: int, num_critics: int = 2) -> Networks:
    q_single = nets.make_value_network(config.hidden, config.activation)
    return Networks(
        nets.make_tanh_gaussian_policy(n_act, config.hidden, config.activation),
        nets.make_ensemble(q_single, num_critics),
    )


def _critic_loss(config, n: Networks, kind: str, lagrange: bool):
    """``loss(critic_params, batch, nets, alpha, key)``: SAC's, EDAC's or CQL's (``config.cql_variant``,
    ``config.calibrated``: Cal-QL's floor) critic loss."""

    def loss(critic, batch, nets_: Nets, alpha, key):
        common = dict(
            q_apply=n.critic.apply,
            target_q_params=nets_.critic.target,
            policy_apply=n.actor.apply,
            policy_params=nets_.actor.params,
            discount=config.discount,
            # SAC's soft target; CQL with backup_entropy=False: its authors' hard one
            entropy_coef=alpha if kind != "cql" or config.backup_entropy else 0.0,
        )
        if kind != "cql":  # SAC's loss is SAC-N's (eta=None: no diversity term computed); EDAC's adds the term
            return edac_critic_loss(critic, batch, key, eta=config.eta if kind == "edac" else None, **common)
        cql_alpha = jnp.exp(cast(ts.TrainState, nets_.log_cql_alpha).params) if lagrange else config.cql_alpha
        return (calql_critic_loss if config.calibrated else cql_critic_loss)(
            critic,
            batch,
            key,
            cql_alpha=jax.lax.stop_gradient(cql_alpha),
            num_samples=config.num_samples,
            temperature=config.cql_temperature,
            variant=config.cql_variant,
            **common,
        )

    return loss


def _warm_start_grads(n: Networks, batch, critic, key, imitate):
    """CQL's first ``bc_steps`` updates imitate the data; then SAC's actor loss."""

    def grads(actor, alpha):
        kw = dict(actor_apply=n.actor.apply, alpha=alpha)
        maximise_q = lambda: jax.grad(sac_actor_loss, has_aux=True)(
            actor, batch, key, critic_apply=n.critic.apply, critic_params=critic, **kw
        )
        clone = lambda: jax.grad(cql_bc_actor_loss, has_aux=True)(actor, batch, key, **kw)
        return phase_cond(imitate, clone, maximise_q)

    return grads


def make_keyed_update(
    config, networks: Networks, tx, n_act: int, *, conservative: bool = False, diversity: bool = False
):
    """``update(nets, batch, critic_key, actor_key, imitate=False) -> (nets, metrics)``: one critic, actor,
    temperature and target update (and CQL-Lagrange's multiplier). ``conservative``: CQL's critic loss
    (``config.lagrange``: the penalty weight learned to hold ``config.target_action_gap``); ``diversity``: EDAC's;
    otherwise SAC's. ``imitate`` (CQL with ``bc_steps``): the actor takes :func:`cql_bc_actor_loss`."""
    n = networks
    kind = "cql" if conservative else ("edac" if diversity else "sac")
    lagrange = conservative and config.lagrange
    critic_loss = _critic_loss(config, n, kind, lagrange)
    multiplier_tx = optax.adam(config.cql_alpha_learning_rate) if lagrange else None
    warm_start = conservative and config.bc_steps > 0

    def update(nets_: Nets, batch, critic_key, actor_key, imitate=False):
        alpha = jnp.exp(nets_.log_alpha.params)
        critic, c_metrics = oc.grad_step(tx, nets_.critic, critic_loss, batch, nets_, alpha, critic_key)
        actor, temperature, at_metrics = sac_actor_temperature_update(
            tx,
            nets_.actor,
            nets_.log_alpha,
            batch,
            actor_key,
            actor_apply=n.actor.apply,
            critic_apply=n.critic.apply,
            critic_params=critic.params,
            target_entropy=-config.target_entropy_scale * n_act,
            actor_grads=_warm_start_grads(n, batch, critic.params, actor_key, jnp.asarray(imitate))
            if warm_start
            else None,
        )
        critic = ts.soft_update(critic, config.tau)
        metrics = {
            "critic_loss": c_metrics["critic_loss"],
            **at_metrics,
            "q_policy": oc.q_at_mode(n.actor.apply, actor.params, n.critic.apply, critic.params, batch.obs),
            # the data's values as the critic loss saw them (the update's start, as TD3+BC, ReBRAC and BRAC report
            # them): a second ensemble call after the step cost SAC-N and EDAC at N = 50 a tenth of their update
            "q_data": c_metrics["q_min"],
            "mc_return": jnp.mean(batch.extras.mc_returns),
        }
        metrics.update({k: c_metrics[k] for k in ("cql_gap", "bound_rate", "diversity") if k in c_metrics})
        if jax.tree.leaves(critic.params)[0].shape[0] > 2:  # the ensemble's size
            metrics["q_std"] = c_metrics["q_std"]
        multiplier = nets_.log_cql_alpha
        if lagrange and multiplier is not None:  # init_nets makes the multiplier whenever lagrange
            m_grad = jax.grad(cql_alpha_loss)(multiplier.params, c_metrics["cql_gap"], config.target_action_gap)
            multiplier = ts.apply_gradient(multiplier_tx, multiplier, m_grad)
            multiplier = multiplier._replace(params=jnp.clip(multiplier.params, *LOG_CQL_ALPHA_BOUNDS))
            metrics["cql_alpha"] = jnp.exp(multiplier.params)
        return Nets(actor, critic, temperature, multiplier), metrics

    return update


def make_update(config, networks: Networks, tx, n_act: int, *, conservative: bool = False, diversity: bool = False):
    """:func:`make_keyed_update` with one key, split in two (offline training and fine-tuning)."""
    keyed = make_keyed_update(config, networks, tx, n_act, conservative=conservative, diversity=diversity)

    def update(nets_: Nets, batch, key, imitate=False):
        critic_key, actor_key = jax.random.split(key)
        return keyed(nets_, batch, critic_key, actor_key, imitate)

    return update


def init_nets(config, networks: Networks, tx, key, n_obs: int, n_act: int, *, lagrange: bool = False) -> Nets:
    """Fresh records (target = critic; CQL-Lagrange's multiplier at ``config.cql_alpha``)."""
    ak, ck = jax.random.split(key)
    o, a = jnp.zeros((n_obs,), jnp.float32), jnp.zeros((n_act,), jnp.float32)
    multiplier = None
    if lagrange:
        log_cql_alpha = jnp.clip(jnp.log(jnp.asarray(config.cql_alpha, jnp.float32)), *LOG_CQL_ALPHA_BOUNDS)
        multiplier = ts.create(optax.adam(config.cql_alpha_learning_rate), log_cql_alpha)
    return Nets(
        ts.create(tx, networks.actor.init(ak, o)),
        ts.create(tx, networks.critic.init(ck, o, a), target=True),
        ts.create(tx, jnp.log(jnp.asarray(config.init_alpha, jnp.float32))),
        multiplier,
    )


def make_sac_like(
    config, env, env_params, name: str, conservative: bool = False, num_critics: int = 2, diversity: bool = False
) -> Algorithm:
    """SAC on dataset batches with a ``num_critics``-member Q ensemble (targets and actor use its minimum);
    ``conservative``: CQL's critic loss, ``diversity``: EDAC's (:func:`make_keyed_update`). With ``num_critics > 2``
    the metrics add ``q_std`` (the ensemble's standard deviation at the data's actions)."""
    env, n_act, n_obs = oc.prepare(env, env_params, config, name)
    networks = make_networks(config, n_act, num_critics)
    tx = optax.adam(config.learning_rate)
    update_fn = make_update(config, networks, tx, n_act, conservative=conservative, diversity=diversity)

    def init(key):
        key, pk = jax.random.split(key)
        records = init_nets(config, networks, tx, pk, n_obs, n_act, lagrange=conservative and config.lagrange)
        return oc.init_state(env, config, key, records)

    def update(state: State, batch, key):
        # CQL's actor warm start, decided per iteration (all updates of an iteration alike)
        imitate = (state.iteration * config.updates_per_iteration < config.bc_steps) if conservative else False
        records, metrics = update_fn(state.nets, batch, key, imitate)
        return dataclasses.replace(state, nets=records), metrics

    step = oc.make_step(env, config, update, update_keys=1)
    return oc.algorithm(env, env_params, config, init, step, oc.stochastic_act(networks.actor))


def make_value_check(config, env, env_params, *, num_critics: int = 2, horizon: int = 500):
    """``check(state, key, n) -> {"q_estimate" [n], "policy_return" [n]}``: ``min_e Q_e(s_0, mu(s_0))`` at ``n``
    initial states of the dataset's env against the discounted return the deterministic policy gets from them in
    ``horizon`` steps (time limit lifted): the CQL paper's over-estimation check (figure 1 / table 3)."""
    from jaxrl.algos.common import _base_stack
    from jaxrl.data import rollout as rollout_lib
    from jaxrl.envs.wrappers import VmapEnv, action_dim

    env = oc.check_offline_env(env, "value check")
    networks = make_networks(config, action_dim(env, env_params), num_critics)
    lift = hasattr(env_params, "max_steps_in_episode")
    long_params = env_params.replace(max_steps_in_episode=horizon) if lift else env_params
    base = _base_stack(env.env, long_params)

    def check(state, key, n: int):
        venv = VmapEnv(base, n)
        policy = lambda obs, k: nets.mode(networks.actor.apply(state.nets.actor.params, obs))
        returns = rollout_lib.evaluate(venv, long_params, policy, key, n, horizon, discount=config.discount)
        obs0, _ = venv.reset(jax.random.split(key)[0], long_params)  # the same initial states
        q = networks.critic.apply(state.nets.critic.params, obs0, policy(obs0, None))
        return {"q_estimate": jnp.min(q, axis=0), "policy_return": returns}

    return check


def make(config: Config, env, env_params) -> Algorithm:
    return make_sac_like(config, env, env_params, "sac_offline", conservative=False)
