"""MAML for RL (Finn et al. 2017) with a ProMP-style clipped (Rothfuss et al. 2019) or TRPO outer step, first-order
MAML and Reptile (Nichol et al. 2018) on the same pure ``adapt``.

Per iteration, for each of ``num_tasks`` fresh tasks tau_i ~ p(tau) (a vmap axis):

1. collect ``num_trajectories`` trajectories D_i^0 with theta; for k = 1..K (``num_inner_steps``) adapt
   ``theta_i^k = theta_i^{k-1} + alpha grad L_DiCE(theta_i^{k-1}; D_i^{k-1})`` and collect D_i^k with theta_i^k.
   ``adapt(params, [D^0..D^{K-1}]) -> theta^K`` is a pure function (vpg_inner_step with the DiCE surrogate and a
   per-task linear-feature baseline; rewards and baseline are divided by a no-gradient ``T * std(advantage)``
   so that alpha is in normalised units, as MAML's and ProMP's implementations normalise advantages), so the
   meta-gradient is ``jax.grad`` of a function that calls ``jax.grad``.
2. outer step(s): ``outer='promp'``: ``num_outer_epochs`` Adam steps on the clipped surrogate

       L(theta) = -mean_i E_{D_i^K}[ min(rho A, clip(rho, 1 - eps, 1 + eps) A) ],
       rho = pi_{adapt(theta, D_i)}(a|s) / pi_{theta_i^K, old}(a|s),

   with A the return-to-go minus the linear baseline fitted on D_i^K, differentiated through ``adapt``
   (second order; ``first_order=True`` stops the gradient through the inner gradient: FO-MAML).
   ``outer='trpo'``: MAML's original outer optimiser: one natural-gradient step (conjugate gradient on
   Fisher-vector products, KL line search: :func:`jaxrl.losses.trpo.natural_gradient_step`, the piece MT-TRPO
   uses) maximising the unclipped surrogate subject to ``mean_i KL(pi_{theta_i^K, old} || pi_{adapt(theta, D_i)})
   <= max_kl`` on D_i^K's states; surrogate and KL both go through ``adapt``.
   ``outer='reptile'``: the Adam update direction is ``theta - mean_i theta_i^K`` (no post-adaptation data needed
   for the update).
   ``num_inner_steps=0`` is plain multi-task policy-gradient pre-training (the "pretrained" baseline of the MAML
   paper), evaluated with the same meta-test adaptation.

Meta-test (``evaluate``): on every held-out task, the return of the policy after k = 0..``eval_inner_steps``
inner steps (each from ``num_trajectories`` fresh trajectories) -> ``adaptation [eval_inner_steps + 1]``;
``eval_return`` is the return after ``num_inner_steps`` steps (at least 1). Returns are means over
``num_episodes`` sampled (stochastic-policy) episodes, as in the MAML paper.

Notes: the inner gradient at theta != theta_old (later ProMP epochs) uses D_i collected by theta_old without an
importance weight (DiCE's box is 1 at the current params); with few outer epochs this bias is small.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import nets
from jaxrl.algos.common import Algorithm
from jaxrl.algos.meta.common import check_family, check_memory, episode_horizon, estimate_unrolled_bytes
from jaxrl.config import ConfigError, config, hyper, static
from jaxrl.envs.wrappers import RescaleAction, action_dim, is_discrete, obs_dim
from jaxrl.losses.meta import PGBatch, discounted_reward_to_go, surrogate_objective, vpg_inner_step
from jaxrl.losses.ppo import clipped_surrogate_loss
from jaxrl.losses.trpo import natural_gradient_step
from jaxrl.nets.recurrent import param_count


@config
class Config:
    inner_lr: float = hyper(0.1, low=0, low_open=True, help="inner (adaptation) step size alpha")
    outer_lr: float = hyper(1e-3, low=0, low_open=True, help="outer Adam step size")
    gamma: float = hyper(0.99, low=0, high=1, help="discount")
    clip_eps: float = hyper(0.3, low=0, low_open=True, help="ProMP outer ratio clip range")
    max_kl: float = hyper(
        0.01, low=0, low_open=True, help="outer='trpo': trust region, mean KL of the adapted policies"
    )
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

    def __post_init__(self):
        if self.policy != "mlp":
            raise ConfigError(
                f"maml.Config.policy={self.policy!r}: MAML adapts a feed-forward policy by gradient "
                f"steps; a recurrent policy belongs to a recurrent meta-learner (use 'rl2')"
            )
        if self.eval_inner_steps < self.num_inner_steps:
            raise ConfigError(
                f"maml.Config.eval_inner_steps={self.eval_inner_steps} must be >= num_inner_steps="
                f"{self.num_inner_steps} (eval_return is the return after num_inner_steps steps)"
            )
        if self.outer == "reptile" and self.num_inner_steps < 1:
            raise ConfigError("maml.Config.num_inner_steps must be >= 1 for outer='reptile'")

    @property
    def env_steps_per_iteration(self) -> int:
        return self.num_tasks * self.num_trajectories * self.horizon * (self.num_inner_steps + 1)

    @property
    def num_iterations(self) -> int:
        return max(self.total_env_steps // self.env_steps_per_iteration, 1)


@struct.dataclass
class State:
    params: Any
    opt_state: Any
    key: jax.Array
    iteration: jax.Array


class Trajectories(NamedTuple):
    """``[N, T, ...]`` trajectories of one task."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    mask: jax.Array  # 1 until (and including) the step that ends the episode
    log_prob: jax.Array


def linear_baseline(obs: jax.Array, returns: jax.Array, mask: jax.Array, reg) -> jax.Array:
    """Least-squares fit of ``returns [N, T]`` on features ``(o, o^2, t, t^2, t^3, 1)`` (Duan et al. 2016's
    benchmark baseline), evaluated on the same states; ``[N, T]``, no gradient."""
    n, t = returns.shape
    time = jnp.broadcast_to(jnp.arange(t, dtype=jnp.float32)[None, :, None] / 100.0, (n, t, 1))
    o = jnp.clip(obs, -10.0, 10.0)
    feats = jnp.concatenate([o, o**2, time, time**2, time**3, jnp.ones_like(time)], axis=-1) * mask[..., None]
    f = feats.reshape(-1, feats.shape[-1])
    y = (returns * mask).reshape(-1)
    a = f.T @ f + (reg + 1e-6) * jnp.eye(f.shape[1])
    w = jnp.linalg.solve(a, f.T @ y)
    return jax.lax.stop_gradient((feats @ w) * mask)


class Parts(NamedTuple):
    """The closures behind an algorithm, for tests and scripts: ``adapt(params, [PGBatch]) -> params``,
    ``rollout(params, task, key, n) -> Trajectories``, ``pg_batch(Trajectories) -> PGBatch``,
    ``log_prob_fn(params, obs, action)``, ``outer_loss(params, batches, post)`` and the policy network."""

    adapt: Any
    rollout: Any
    pg_batch: Any
    log_prob_fn: Any
    outer_loss: Any
    policy_net: Any
    collect_and_meta_grad: Any = None  # (params, task, key, steps) -> batches, post, pre_return, loss, meta-grad


def make(config: Config, env, env_params) -> Algorithm:
    return _build(config, env, env_params)[0]


def make_parts(config: Config, env, env_params) -> Parts:
    return _build(config, env, env_params)[1]


def _build(config: Config, env, env_params):
    check_family("maml", env, env_params)
    family, base_env = env, env.env
    one_task = jax.tree.map(lambda x: x[0], env_params)
    if is_discrete(base_env, one_task):
        raise ValueError("maml: this implementation adapts a Gaussian policy; the family's actions are discrete")
    horizon = episode_horizon(env_params)
    if horizon != config.horizon:
        raise ConfigError(
            f"maml.Config.horizon={config.horizon} does not match the tasks' episode length "
            f"{horizon}: set maml.Config(horizon={horizon})"
        )
    n_act, n_obs = action_dim(base_env, one_task), obs_dim(base_env, one_task)
    space = base_env.action_space(one_task)
    act_env = RescaleAction(base_env, space.low, space.high)
    policy_net = nets.make_gaussian_policy(n_act, config.hidden, config.activation, log_std_init=config.log_std_init)

    num_params = param_count(jax.eval_shape(policy_net.init, jax.random.PRNGKey(0), jnp.zeros((n_obs,))))
    estimate = estimate_unrolled_bytes(
        num_params,
        config.num_tasks,
        config.num_inner_steps,
        config.num_trajectories * horizon * (n_obs + n_act + 2 * 64),
        order=1 if config.first_order else 2,
    )
    check_memory("maml", estimate, int(config.memory_limit_gb * 2**30))

    tx = optax.adam(config.outer_lr)

    def log_prob_fn(params, obs, action):
        return policy_net.apply(params, obs).log_prob(action)

    def rollout(params, task, key, n: int) -> Trajectories:
        """``n`` episodes of ``horizon`` steps on one task with the stochastic policy."""

        def episode(k):
            reset_key, k = jax.random.split(k)
            obs, env_state = act_env.reset(reset_key, task)

            def body(carry, kt):
                env_state, obs, alive = carry
                a_key, s_key = jax.random.split(kt)
                dist = policy_net.apply(params, obs)
                action = dist.sample(seed=a_key)
                next_obs, env_state, r, term, trunc, _ = act_env.step(s_key, env_state, action, task)
                out = Trajectories(obs, action, r * alive, alive, dist.log_prob(action))
                alive = alive * (1.0 - jnp.logical_or(term, trunc).astype(jnp.float32))
                return (env_state, next_obs, alive), out

            _, tr = jax.lax.scan(body, (env_state, obs, jnp.ones(())), jax.random.split(k, horizon))
            return tr

        return jax.vmap(episode)(jax.random.split(key, n))

    def pg_batch(tr: Trajectories) -> PGBatch:
        discounts = config.gamma ** jnp.arange(horizon, dtype=jnp.float32)
        rtg = discounted_reward_to_go(tr.reward, config.gamma) / discounts  # usual return-to-go from t
        base = linear_baseline(tr.obs, rtg, tr.mask, config.baseline_reg)
        # Scale (a constant, no gradient) so that alpha is in normalised units, as MAML's and ProMP's code
        # normalise advantages: rewards and baseline / (T * std of the advantages over valid steps).
        valid = jnp.maximum(jnp.sum(tr.mask), 1.0)
        adv = (rtg - base) * tr.mask
        std = jnp.sqrt(jnp.sum((adv - jnp.sum(adv) / valid) ** 2 * tr.mask) / valid)
        scale = jax.lax.stop_gradient(1.0 / (horizon * (std + 1e-6)))
        return PGBatch(tr.obs, tr.action, tr.reward * scale, base * scale, tr.mask)

    def adapt(params, batches: list[PGBatch], first_order: bool = config.first_order):
        """Pure adaptation: one DiCE policy-gradient step per batch, in order."""
        for b in batches:
            params = vpg_inner_step(
                params,
                b,
                log_prob_fn=log_prob_fn,
                alpha=config.inner_lr,
                surrogate=config.surrogate,
                first_order=first_order,
                discount=config.gamma,
            )
        return params

    def episode_return(tr: Trajectories):
        return jnp.mean(jnp.sum(tr.reward, axis=-1))

    def collect(params, task, key, steps: int):
        """Inner data D^0..D^{steps-1} and the adapted policy's trajectories D^steps (all with stop-gradient)."""
        params = jax.lax.stop_gradient(params)
        batches, returns = [], []
        for k in jax.random.split(key, steps + 1)[:steps]:
            tr = rollout(params, task, k, config.num_trajectories)
            returns.append(episode_return(tr))
            batches.append(pg_batch(tr))
            params = adapt(params, batches[-1:], first_order=True)
        post = rollout(params, task, jax.random.split(key, steps + 1)[steps], config.num_trajectories)
        return batches, post, (returns[0] if returns else episode_return(post))

    def outer_ratio_and_advantage(params, batches, post: Trajectories):
        """The adapted policy's likelihood ratio on the post-adaptation data (through ``adapt``) and that data's
        standardised advantages (masked), ``[N, T]`` each."""
        return ratio_and_advantage_at(adapt(params, batches), post)

    def ratio_and_advantage_at(adapted, post: Trajectories):
        ratio = jnp.exp(log_prob_fn(adapted, post.obs, post.action) - post.log_prob)
        discounts = config.gamma ** jnp.arange(horizon, dtype=jnp.float32)
        adv = discounted_reward_to_go(post.reward, config.gamma) / discounts - pg_batch(post).baseline
        adv = (adv - jnp.sum(adv * post.mask) / jnp.sum(post.mask)) * post.mask
        return ratio, adv / (jnp.sqrt(jnp.sum(adv**2) / jnp.sum(post.mask)) + 1e-8)

    def outer_loss(params, batches, post: Trajectories):
        """ProMP clipped surrogate for one task, through ``adapt`` (negated: a loss)."""
        ratio, adv = outer_ratio_and_advantage(params, batches, post)
        # clipped_surrogate_loss averages over all [N, T] entries; rescale to an average over valid steps
        return clipped_surrogate_loss(ratio, adv, config.clip_eps) * post.mask.size / jnp.sum(post.mask)

    def clipped_loss_at(adapted, post: Trajectories):
        """``outer_loss`` as a function of the adapted parameters (no ``adapt`` inside)."""
        ratio, adv = ratio_and_advantage_at(adapted, post)
        return clipped_surrogate_loss(ratio, adv, config.clip_eps) * post.mask.size / jnp.sum(post.mask)

    def collect_and_meta_grad(params, task, key, steps: int):
        """``collect`` fused with the first ProMP epoch's ``value_and_grad(outer_loss)(params, batches, post)``
        for one task, computing the same numbers with less work: each inner step's gradient is computed once,
        with ``jax.linearize`` (forward-over-reverse), and used both to adapt (and collect D^{k+1}) and, through
        the saved linearisation, for the Hessian-vector products of the meta-gradient. With
        ``theta_{k+1} = theta_k + alpha grad J_k(theta_k)`` (the batches are data: no gradient), the chain rule gives
        ``g_K = grad L(theta_K)``, ``g_k = g_{k+1} + alpha H_k g_{k+1}`` (``H_k`` the symmetric Hessian of J_k at
        theta_k; ``H_k = 0`` for first order), ``g_0 = d L(adapt(theta)) / d theta``: no reverse-over-reverse
        pass and no second forward/backward over the inner data."""
        keys = jax.random.split(key, steps + 1)
        batches, returns, hvps, p = [], [], [], jax.lax.stop_gradient(params)
        for k in range(steps):
            tr = rollout(p, task, keys[k], config.num_trajectories)
            returns.append(episode_return(tr))
            batch = pg_batch(tr)
            batches.append(batch)

            def inner_grad(q, b=batch):
                return jax.grad(
                    lambda r: surrogate_objective(
                        log_prob_fn(r, b.observations, b.actions),
                        b.rewards,
                        surrogate=config.surrogate,
                        discount=config.gamma,
                        baseline=b.baseline,
                        mask=b.mask,
                    )
                )(q)

            if config.first_order:
                g = inner_grad(p)
            else:
                g, hvp = jax.linearize(inner_grad, p)
                hvps.append(hvp)
            p = jax.tree.map(lambda x, d: x + config.inner_lr * d, p, g)
        post = rollout(p, task, keys[steps], config.num_trajectories)
        value, v = jax.value_and_grad(clipped_loss_at)(p, post)
        for hvp in reversed(hvps):
            v = jax.tree.map(lambda a, h: a + config.inner_lr * h, v, hvp(v))
        return batches, post, (returns[0] if returns else episode_return(post)), value, v

    def trpo_outer_step(params, batches, post: Trajectories):
        """MAML-TRPO (Finn et al. 2017): one natural-gradient step on the meta-parameters, maximising the adapted
        policies' surrogate ``E[pi_theta'(a|s) / pi_old'(a|s) A]`` subject to the mean over tasks of
        ``KL(pi_old' || pi_theta')`` on the post-adaptation states ``<= max_kl``; both go through ``adapt``, so
        the Fisher-vector products differentiate through the inner step."""

        def surrogate(p):
            def one(b, tr):
                ratio, adv = outer_ratio_and_advantage(p, b, tr)
                return jnp.sum(ratio * adv) / jnp.sum(tr.mask)

            return jnp.mean(jax.vmap(one)(batches, post))

        old = jax.lax.stop_gradient(jax.vmap(lambda b: adapt(params, b))(batches))

        def mean_kl(p):
            def one(b, tr, old_i):
                new_dist = policy_net.apply(adapt(p, b), tr.obs)
                kl = policy_net.apply(old_i, tr.obs).kl_divergence(new_dist)
                return jnp.sum(kl * tr.mask) / jnp.sum(tr.mask)

            return jnp.mean(jax.vmap(one)(batches, post, old))

        return natural_gradient_step(
            params, surrogate, mean_kl, config.max_kl, cg_iters=config.cg_iters, damping=config.cg_damping
        )

    def init(key: jax.Array) -> State:
        key, pk = jax.random.split(key)
        params = policy_net.init(pk, jnp.zeros((n_obs,), jnp.float32))
        return State(params, tx.init(params), key, jnp.zeros((), jnp.int32))

    def step(state: State):
        key, task_key, data_key = jax.random.split(state.key, 3)
        tasks = family.sample(task_key, config.num_tasks)
        task_keys = jax.random.split(data_key, config.num_tasks)
        if config.outer == "promp":  # the first epoch's meta-gradient comes with the data (less work)
            batches, post, pre_return, first_loss, first_grads = jax.vmap(
                collect_and_meta_grad, in_axes=(None, 0, 0, None)
            )(state.params, tasks, task_keys, config.num_inner_steps)
        else:
            batches, post, pre_return = jax.vmap(collect, in_axes=(None, 0, 0, None))(
                state.params, tasks, task_keys, config.num_inner_steps
            )

        if config.outer == "reptile":
            adapted = jax.vmap(lambda b: adapt(state.params, b, first_order=True))(batches)
            direction = jax.tree.map(lambda p, a: p - jnp.mean(a, axis=0), state.params, adapted)
            updates, opt_state = tx.update(direction, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
            metrics = {"outer_loss": jnp.zeros(())}
        elif config.outer == "trpo":
            params, trpo_metrics = trpo_outer_step(state.params, batches, post)
            opt_state = state.opt_state
            metrics = {
                "outer_loss": -trpo_metrics["surrogate_before"],
                "outer_kl": trpo_metrics["kl"],
                "outer_step_fraction": trpo_metrics["step_fraction"],
            }
        else:
            loss = lambda p: jnp.mean(jax.vmap(outer_loss, in_axes=(None, 0, 0))(p, batches, post))

            def outer_step(carry, _):
                params, opt_state = carry
                value, grads = jax.value_and_grad(loss)(params)
                updates, opt_state = tx.update(grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), value

            grads = jax.tree.map(lambda g: jnp.mean(g, axis=0), first_grads)
            updates, opt_state = tx.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
            if config.num_outer_epochs > 1:
                (params, opt_state), _ = jax.lax.scan(
                    outer_step, (params, opt_state), None, length=config.num_outer_epochs - 1
                )
            metrics = {"outer_loss": jnp.mean(first_loss)}
        metrics["pre_adaptation_return"] = jnp.mean(pre_return)
        metrics["post_adaptation_return"] = episode_return(post)
        return State(params, opt_state, key, state.iteration + 1), metrics

    def act(state: State, obs, key, deterministic: bool = False):
        """The *unadapted* meta-policy (adapt it with ``adapt`` first for a given task)."""
        dist = policy_net.apply(state.params, obs)
        return nets.mode(dist) if deterministic else dist.sample(seed=key)

    def evaluate(state: State, key, num_episodes: int):
        def one_task(task, k):
            params = state.params
            keys = jax.random.split(k, 2 * (config.eval_inner_steps + 1))
            returns = []
            for s in range(config.eval_inner_steps + 1):
                returns.append(episode_return(rollout(params, task, keys[2 * s], num_episodes)))
                if s < config.eval_inner_steps:
                    batch = pg_batch(rollout(params, task, keys[2 * s + 1], config.num_trajectories))
                    params = adapt(params, [batch], first_order=True)
            return jnp.stack(returns)

        k_test = jax.tree.leaves(env_params)[0].shape[0]
        curve = jnp.mean(jax.vmap(one_task)(env_params, jax.random.split(key, k_test)), axis=0)
        return {"eval_return": curve[max(config.num_inner_steps, 1)], "adaptation": curve}

    algo = Algorithm(
        init=init,
        step=step,
        act=act,
        evaluate=evaluate,
        config=config,
        env_steps_per_iteration=config.env_steps_per_iteration,
    )
    return algo, Parts(adapt, rollout, pg_batch, log_prob_fn, outer_loss, policy_net, collect_and_meta_grad)
