"""MAML for RL (Finn et al. 2017) with a ProMP-style clipped (Rothfuss et al. 2019) or TRPO outer step, first-order
MAML and Reptile (Nichol et al. 2018) on the same pure ``adapt``.

Per iteration, on each of ``num_tasks`` fresh tasks (a vmap axis): K = ``num_inner_steps`` policy-gradient steps
``theta^{k+1} = theta^k + alpha grad L(theta^k; D^k)``, each on ``num_trajectories`` fresh trajectories D^k of
theta^k (``surrogate``, baseline and advantages: :func:`jaxrl.losses.meta.normalized_pg_batch`). ``adapt(params,
[D^0..D^{K-1}]) -> theta^K`` is pure, so the meta-gradient is ``jax.grad`` through it (``first_order=True``:
FO-MAML). The outer step on the adapted policies' data D^K: ``'promp'``, ``num_outer_epochs`` Adam steps on ProMP's
clipped surrogate; ``'trpo'``, a natural-gradient step under ``mean_i KL <= max_kl``; ``'reptile'``, the Adam
direction ``theta - mean_i theta_i^K``. Meta-test: see :func:`evaluate`. Later ProMP epochs take the inner gradient
at theta != theta_old on data of theta_old without an importance weight (DiCE's box is 1 at the current params);
with few outer epochs this bias is small.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import nets
from jaxrl.algos import train_state
from jaxrl.algos.base_config import OnlineConfig
from jaxrl.algos.common import Algorithm
from jaxrl.algos.meta import budget, common, episodes
from jaxrl.config import ConfigError, config, config_name, hyper, static
from jaxrl.losses import meta as meta_losses
from jaxrl.losses.meta import PGBatch, Trajectories
from jaxrl.losses.trpo import natural_gradient_step


@config
class Config(OnlineConfig):
    inner_lr: float = hyper(0.1, low=0, low_open=True, help="inner (adaptation) step size alpha")
    outer_lr: float = hyper(1e-3, low=0, low_open=True, help="outer Adam step size")
    clip_eps: float = hyper(0.3, low=0, low_open=True, help="ProMP outer ratio clip range")
    max_kl: float = hyper(0.01, low=0, low_open=True, help="outer='trpo': mean KL of the adapted policies")
    cg_damping: float = hyper(0.1, low=0, help="outer='trpo': damping of the Fisher-vector product")
    baseline_reg: float = hyper(1e-5, low=0, help="ridge term of the linear-feature baseline fit")
    num_tasks: int = static(20, low=1, help="meta-batch: tasks per iteration")
    num_trajectories: int = static(20, low=1, help="trajectories per task per inner step (and post-adaptation)")
    num_inner_steps: int = static(1, low=0, help="adaptation steps in training (0: multi-task pre-training)")
    num_outer_epochs: int = static(5, low=1, help="ProMP outer steps per batch of data")
    eval_inner_steps: int = static(3, low=1, help="adaptation steps measured at meta-test")
    outer: str = static("promp", choices=("promp", "trpo", "reptile"), help="outer optimiser")
    cg_iters: int = static(10, low=1, help="outer='trpo': conjugate-gradient iterations")
    first_order: bool = static(False, choices=(True, False), help="first-order MAML (no second derivatives)")
    surrogate: str = static("dice", choices=("dice", "lvc", "naive"), help="inner policy-gradient surrogate")
    policy: str = static("mlp", choices=("mlp", "gru"), help="policy network (MAML needs a feed-forward one)")
    hidden: tuple[int, ...] = static((64, 64), help="policy hidden widths")
    activation: str = static("tanh", choices=tuple(nets.core.ACTIVATIONS), help="hidden activation")
    log_std_init: float = static(-0.5, help="initial log std of the Gaussian policy (actions in [-1, 1])")
    horizon: int = static(100, low=1, help="episode length (must match the tasks' max_steps_in_episode)")
    memory_limit_gb: float = static(4.0, low=0, help="refuse unrolled inner loops estimated above this")
    total_env_steps: int = static(2_000_000, low=1, help="training length in environment steps")

    def validate(self):  # no length check: a run shorter than one iteration runs one
        if self.policy != "mlp":  # a recurrent policy belongs to a recurrent meta-learner
            raise ConfigError(f"{config_name(self)}.policy={self.policy!r}: MAML needs a feedforward policy; use 'rl2'")
        if self.eval_inner_steps < self.num_inner_steps:
            raise ConfigError(
                f"{config_name(self)}.eval_inner_steps={self.eval_inner_steps} must be >= num_inner_steps="
                f"{self.num_inner_steps} (eval_return is the return after num_inner_steps steps)"
            )
        if self.outer == "reptile" and self.num_inner_steps < 1:
            raise ConfigError("maml.Config.num_inner_steps must be >= 1 for outer='reptile'")

    @property
    def env_steps_per_iteration(self) -> int:
        return self.num_tasks * self.num_trajectories * self.horizon * (self.num_inner_steps + 1)


@struct.dataclass
class State:
    policy: train_state.TrainState
    key: jax.Array
    iteration: jax.Array


class Setup(NamedTuple):
    """What ``make`` fixes: the config, the Gaussian policy network, the single-task env acting in [-1, 1]^d, the
    outer optimiser, the observation size and the keyword arguments of :mod:`jaxrl.losses.meta`'s functions."""

    config: Config
    policy: Any
    env: Any
    tx: Any
    obs_dim: int
    inner: dict  # of the inner step (vpg_inner_step, inner_gradient): log_prob_fn, surrogate, discount
    ratio: dict  # of the outer ratio (outer_ratio_and_advantage): log_prob_fn, discount, baseline_reg
    adaptation: meta_losses.Adaptation  # what the inner loop adapts (MAML: every parameter; CAVIA: a context)


class Parts(NamedTuple):
    """The pieces behind an algorithm, bound to its setup, for tests and scripts (see the functions' docs)."""

    adapt: Any  # (params, [PGBatch]) -> params
    rollout: Any  # (params, task, key, n) -> Trajectories
    pg_batch: Any  # Trajectories -> PGBatch
    log_prob_fn: Any  # (params, obs, action) -> log-probabilities
    outer_loss: Any  # (params, batches, post) -> loss
    policy_net: Any
    collect_and_meta_grad: Any = None  # (params, task, key, steps) -> batches, post, pre_return, loss, meta-grad


def rollout(s: Setup, params, task, key, n: int) -> Trajectories:
    """``n`` episodes of ``horizon`` steps on one task with the stochastic policy."""
    return episodes.stochastic_rollout(s.env, task, partial(s.policy.apply, params), key, n, s.config.horizon)


def pg_batch(cfg: Config, tr: Trajectories) -> PGBatch:
    return meta_losses.normalized_pg_batch(tr, discount=cfg.discount, baseline_reg=cfg.baseline_reg)


def adapt(s: Setup, params, batches: list[PGBatch], first_order: bool | None = None):
    """Pure adaptation: one inner step per batch, in order, from ``start(params)`` (:func:`jaxrl.losses.meta.adapt`)."""
    first_order = s.config.first_order if first_order is None else first_order
    return s.adaptation.steps(s.adaptation.start(params), batches, first_order)


def clipped_loss_at(s: Setup, adapted, post: Trajectories):
    return meta_losses.promp_outer_loss(adapted, post, clip_eps=s.config.clip_eps, **s.ratio)


def outer_loss(s: Setup, params, batches, post: Trajectories):
    """ProMP clipped surrogate for one task, through ``adapt`` (negated: a loss)."""
    return clipped_loss_at(s, adapt(s, params, batches), post)


def collect(s: Setup, params, task, key, steps: int, inner_step=None):
    """:func:`common.inner_loop` on one task (default inner step: first order): ``(batches, post, pre_return,
    adapted, [aux])``."""
    inner_step = inner_step or (lambda p, b: (s.adaptation.steps(p, [b], True), None))
    start, run = s.adaptation.start(params), lambda p, k: rollout(s, p, task, k, s.config.num_trajectories)
    trs, batches, adapted, auxs = common.inner_loop(start, key, steps, run, partial(pg_batch, s.config), inner_step)
    return batches, trs[-1], episodes.mean_return(trs[0]), adapted, auxs


def collect_and_meta_grad(s: Setup, params, task, key, steps: int):
    """``collect`` fused with the first ProMP epoch's ``value_and_grad(outer_loss)(params, batches, post)`` for one
    task, with less work: each inner gradient, computed once with ``jax.linearize`` (CAVIA: ``jax.vjp``), both adapts
    and gives the pull-backs of the meta-gradient (:func:`jaxrl.losses.meta.backprop_inner_steps`)."""
    batches, post, pre_return, adapted, hvps = collect(s, params, task, key, steps, s.adaptation.linearized_step)
    value, grad = jax.value_and_grad(partial(clipped_loss_at, s))(adapted, post)
    grad = s.adaptation.meta_grad(meta_losses.backprop_inner_steps(grad, hvps, s.config.inner_lr))
    return batches, post, pre_return, value, grad


def promp_outer(s: Setup, policy: train_state.TrainState, data):
    """ProMP: ``num_outer_epochs`` Adam steps on the clipped surrogate; the first epoch's meta-gradient came with
    the data (:func:`collect_and_meta_grad`)."""
    batches, post, _, first_loss, first_grads = data
    outer_kw = dict(batches=batches, post=post, adapt_fn=partial(adapt, s), **s.ratio)
    loss = partial(meta_losses.promp_meta_loss, clip_eps=s.config.clip_eps, **outer_kw)
    policy = common.outer_epochs(s.tx, policy, first_grads, loss, s.config.num_outer_epochs)
    return policy, {"outer_loss": jnp.mean(first_loss)}


def trpo_outer(s: Setup, policy: train_state.TrainState, data):
    """MAML-TRPO (Finn et al. 2017): one natural-gradient step maximising the adapted policies' surrogate subject
    to their mean KL from the old adapted policies ``<= max_kl``, both through ``adapt``."""
    cfg, (batches, post) = s.config, data[:2]
    old = jax.lax.stop_gradient(jax.vmap(lambda b: adapt(s, policy.params, b))(batches))
    data_kw = dict(batches=batches, post=post, adapt_fn=partial(adapt, s))
    gain = partial(meta_losses.meta_surrogate_gain, **data_kw, **s.ratio)
    kl = partial(meta_losses.meta_kl, old=old, dist_fn=s.policy.apply, **data_kw)
    new, m = natural_gradient_step(policy.params, gain, kl, cfg.max_kl, cg_iters=cfg.cg_iters, damping=cfg.cg_damping)
    metrics = {"outer_loss": -m["surrogate_before"], "outer_kl": m["kl"], "outer_step_fraction": m["step_fraction"]}
    return policy._replace(params=new), metrics


def reptile_outer(s: Setup, policy: train_state.TrainState, data):
    """Reptile: the Adam update direction is ``theta - mean_i theta_i^K``."""
    adapted = jax.vmap(lambda b: adapt(s, policy.params, b, first_order=True))(data[0])
    direction = jax.tree.map(lambda p, a: p - jnp.mean(a, axis=0), policy.params, adapted)
    return train_state.apply_gradient(s.tx, policy, direction), {"outer_loss": jnp.zeros(())}


OUTER_STEPS = {"promp": promp_outer, "trpo": trpo_outer, "reptile": reptile_outer}


def learn(s: Setup, state: State, tasks, key):
    """Per-task inner adaptation, then the configured outer step (the second phase of :func:`common.meta_step`)."""
    gather = collect_and_meta_grad if s.config.outer == "promp" else collect
    params, steps = state.policy.params, s.config.num_inner_steps
    data = common.per_task(lambda task, k: gather(s, params, task, k, steps), tasks, key)
    policy, metrics = OUTER_STEPS[s.config.outer](s, state.policy, data)
    returns = {"pre_adaptation_return": jnp.mean(data[2]), "post_adaptation_return": episodes.mean_return(data[1])}
    return dataclasses.replace(state, policy=policy), {**metrics, **returns}


def evaluate(s: Setup, env_params, state: State, key, num_episodes: int):
    """The mean return over the held-out tasks after k = 0..``eval_inner_steps`` first-order inner steps, each on
    ``num_trajectories`` fresh trajectories (``adaptation``); ``eval_return`` after ``num_inner_steps`` (at least 1)."""
    cfg, start = s.config, s.adaptation.start(state.policy.params)

    def one_task(task, k):
        returns = lambda p, k: episodes.mean_return(rollout(s, p, task, k, num_episodes))
        fresh_batch = lambda p, k: pg_batch(cfg, rollout(s, p, task, k, cfg.num_trajectories))
        step = lambda p, k: s.adaptation.steps(p, [fresh_batch(p, k)], True)
        return common.adaptation_curve(start, k, cfg.eval_inner_steps, returns, step)

    curve = jnp.mean(common.per_task(one_task, env_params, key), axis=0)
    return {"eval_return": curve[max(cfg.num_inner_steps, 1)], "adaptation": curve}


def act(s: Setup, state: State, obs, key, deterministic: bool = False):
    """The *unadapted* meta-policy (adapt it with ``adapt`` first for a given task)."""
    dist = s.policy.apply(s.adaptation.start(state.policy.params), obs)
    return nets.mode(dist) if deterministic else dist.sample(seed=key)


def setup(cfg: Config, env, env_params, name: str = "maml", wrap_policy=None, adaptation=None) -> Setup:
    """Check the family and the inner loop's memory; a variant (CAVIA) brings its name, wrap_policy and adaptation."""
    spec = common.continuous_family(name, env, env_params, cfg.horizon, f"{name.upper()} adapts a Gaussian policy")
    policy_net = nets.make_gaussian_policy(spec.action_dim, cfg.hidden, cfg.activation, log_std_init=cfg.log_std_init)
    policy_net = wrap_policy(policy_net) if wrap_policy else policy_net
    budget.check_inner_loop_memory(name, cfg, spec, policy_net.init)
    log_prob_fn = lambda params, obs, action: policy_net.apply(params, obs).log_prob(action)
    inner = dict(log_prob_fn=log_prob_fn, surrogate=cfg.surrogate, discount=cfg.discount)
    ratio = dict(log_prob_fn=log_prob_fn, discount=cfg.discount, baseline_reg=cfg.baseline_reg)
    adapting = (adaptation or meta_losses.maml_adaptation)(inner, cfg.inner_lr, cfg.first_order)
    task_env, tx = common.TaskBoxActions(spec.env), optax.adam(cfg.outer_lr)
    return Setup(cfg, policy_net, task_env, tx, spec.obs_dim, inner, ratio, adapting)


def init(s: Setup, key: jax.Array) -> State:
    key, pk = jax.random.split(key)
    params = s.policy.init(pk, jnp.zeros((s.obs_dim,), jnp.float32))
    return State(train_state.create(s.tx, params), key, jnp.zeros((), jnp.int32))


def make(config: Config, env, env_params, s: Setup | None = None) -> Algorithm:
    s = setup(config, env, env_params) if s is None else s  # a variant (CAVIA) passes its own setup
    gather: Callable[[Any, jax.Array], tuple[Any, dict]] = lambda state, key: (env.sample(key, config.num_tasks), {})
    step = lambda state: common.meta_step(state, gather, partial(learn, s))
    functions = partial(init, s), step, partial(act, s), partial(evaluate, s, env_params)
    return Algorithm(*functions, config=config, env_steps_per_iteration=config.env_steps_per_iteration)


def make_parts(config: Config, env, env_params, s: Setup | None = None) -> Parts:
    s = setup(config, env, env_params) if s is None else s
    bound = (partial(adapt, s), partial(rollout, s), partial(pg_batch, config), s.inner["log_prob_fn"])
    return Parts(*bound, partial(outer_loss, s), s.policy, partial(collect_and_meta_grad, s))
