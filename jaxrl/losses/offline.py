"""Pure offline-RL losses: BC, IQL, AWR/AWAC/CRR, CQL, BEAR, BRAC, TD3+BC, ReBRAC, MOPO/MOReL, SAC-N/EDAC.

Two layers, both pure and jittable:

* **elementwise pieces** (``expectile_loss``, ``awr_weights``, ``cql_logsumexp``, ``mmd_squared``,
  ``mopo_uncertainty``, ``gradient_similarity``, ...), small enough to check by hand;
* **full losses** ``loss(params, batch, [key,] *, apply_fn(s), ...) -> (scalar, metrics)``, where ``params``
  are the parameters being differentiated and everything else (other networks' params, hyperparameters)
  is keyword-only. Hyperparameters may be traced (vmapped grids).

Network conventions (no module system is assumed):

* ``q_apply(q_params, obs [B, O], actions [B, A]) -> [E, B]``: a Q ENSEMBLE of ``E`` members (params with a
  leading ``[E]`` axis on every leaf), as :func:`jaxrl.nets.make_q_ensemble` / :func:`jaxrl.nets.make_ensemble`
  build it and as SAC's critic loss takes it. One member's apply (``[B]``) is refused with a clear error.
* ``value_apply(v_params, obs) -> [B]``.
* ``policy_apply(params, obs) -> distrax.Distribution`` with batch shape ``[B]`` and event ``[A]``
  (``sample_and_log_prob`` must be reparameterised for actor losses that differentiate through samples).
* ``actor_apply(params, obs) -> [B, A]`` for deterministic actors (TD3+BC, ReBRAC).
* ``batch`` is a :class:`jaxrl.data.types.Transition` ``[B, ...]``: ``obs [B, O]``, ``action [B, A]``,
  ``reward [B]``, ``next_obs [B, O]``, ``terminated [B]`` (float 0/1); Cal-QL reads ``extras.mc_returns [B]``
  and ReBRAC ``extras.next_action [B, A]``.
* A loss that draws random numbers takes its ``key`` as the third positional parameter.

Ensemble reductions: TD targets use the minimum over the ensemble; the critic regression loss is the sum
over members of each member's mean squared error ``sum_e mean_b (Q_e - y)^2`` (as the reference
implementations of CQL, IQL and EDAC do).

``_t`` / ``_tp1`` name the time index of a quantity (``s_t``, ``s_{t+1}``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array
Metrics = dict[str, Array]

__all__ = [
    # shared
    "ensemble_q",
    "ensemble_q_samples",
    "ensemble_value_stats",
    "first_member_q",
    "td_target",
    "ensemble_mse",
    "lagrange_loss",
    # BC
    "bc_nll_loss",
    "bc_mse_loss",
    "weighted_bc_loss",
    # IQL
    "expectile_loss",
    "iql_value_loss",
    "iql_critic_loss",
    "iql_actor_loss",
    # AWR / AWAC / CRR
    "exp_advantage_weights",
    "awr_weights",
    "crr_weights",
    "awr_value_loss",
    "awr_actor_loss",
    "advantage_weighted_actor_loss",
    # CQL
    "cql_logsumexp",
    "cql_rho_estimate",
    "cql_critic_loss",
    "cql_alpha_loss",
    # Cal-QL
    "calql_bound",
    "calql_critic_loss",
    # BEAR
    "gaussian_kernel",
    "laplacian_kernel",
    "mmd_squared",
    "bear_actor_loss",
    # BRAC
    "kl_divergence_mc",
    "brac_critic_loss",
    "brac_actor_loss",
    # TD3+BC / ReBRAC
    "td3_bc_actor_loss",
    "rebrac_actor_loss",
    "rebrac_critic_loss",
    # model-based
    "gaussian_nll",
    "gaussian_ensemble_dynamics_loss",
    "mopo_uncertainty",
    "mopo_penalized_reward",
    "ensemble_disagreement",
    "morel_halting",
    # SAC-N / EDAC
    "gradient_similarity",
    "edac_diversity_penalty",
    "ensemble_q_and_action_grads",
    "edac_critic_loss",
]

sg = jax.lax.stop_gradient


# ============================================================================================== shared


def ensemble_q(q_apply: Callable, q_params: Any, obs: Array, actions: Array) -> Array:
    """``[E, B]`` values of the ensemble ``q_apply`` (see the module docstring) at one action per state; a clear
    error, at trace time, when ``q_apply`` is one member's apply."""
    try:
        q = q_apply(q_params, obs, actions)
    except Exception as e:  # any failure of the network call (flax raises its own shape errors): name the convention
        raise ValueError(f"{_ENSEMBLE_CONVENTION} (calling it failed: {type(e).__name__}: {e})") from e
    if jnp.shape(q)[1:] != jnp.shape(obs)[:-1]:
        raise ValueError(f"{_ENSEMBLE_CONVENTION}; it returned shape {jnp.shape(q)} for obs {jnp.shape(obs)}")
    return q


_ENSEMBLE_CONVENTION = (
    "q_apply must be a Q ENSEMBLE's apply, (params [E, ...], obs [B, O], actions [B, A]) -> [E, B] "
    "(jaxrl.nets.make_q_ensemble(...).apply or jaxrl.nets.make_ensemble(q, E).apply), not one member's apply"
)


def first_member_q(q_apply: Callable, q_params: Any, obs: Array, actions: Array) -> Array:
    """``[B]`` values of the ensemble's first member ``Q_1`` (TD3+BC's and BCQ's actor objective)."""
    return ensemble_q(q_apply, jax.tree.map(lambda x: x[:1], q_params), obs, actions)[0]


def ensemble_q_samples(q_apply: Callable, q_params: Any, obs: Array, actions_mb: Array) -> Array:
    """``[E, M, B]`` ensemble values at ``M`` sampled actions per state (``actions_mb: [M, B, A]``).

    One ensemble call on ``M * B`` rows (the states repeated ``M`` times): its ``[E, M * B]`` output reshapes to
    ``[E, M, B]`` without a copy, where a ``vmap`` over ``M`` gives ``[M, E, B]`` and a transpose (CQL's critic
    gradient took a third less time on one CPU core this way, the same values to float rounding)."""
    m, b = actions_mb.shape[:2]
    obs_mb = jnp.broadcast_to(obs, (m, *obs.shape)).reshape(m * b, *obs.shape[1:])
    q = ensemble_q(q_apply, q_params, obs_mb, actions_mb.reshape(m * b, *actions_mb.shape[2:]))
    return q.reshape(q.shape[0], m, b)


def ensemble_value_stats(q_t: Array) -> Metrics:
    """Metrics of ``[E, B]`` values at the data's actions, taken from the critic loss's own forward pass so that
    reporting them costs no second ensemble call: ``q`` (mean over members), ``q_min`` (mean of the members'
    minimum, what the targets and the actor use) and ``q_std`` (mean over states of the members' spread)."""
    return dict(q=jnp.mean(q_t), q_min=jnp.mean(jnp.min(q_t, axis=0)), q_std=jnp.mean(jnp.std(q_t, axis=0)))


def td_target(r_t: Array, discount: Array | float, terminal_t: Array, v_tp1: Array) -> Array:
    """One-step target ``y_t = r_t + discount * (1 - terminal_t) * v_{t+1}`` (no gradient is stopped here)."""
    return r_t + discount * (1.0 - terminal_t) * v_tp1


def ensemble_mse(q_t: Array, y_t: Array) -> Array:
    """``sum_e mean_b (q_t[e, b] - y_t[b])^2`` for ``q_t: [E, B]``, ``y_t: [B]``."""
    return jnp.sum(jnp.mean(jnp.square(q_t - y_t[None]), axis=-1))


def lagrange_loss(log_multiplier: Array, constraint: Array, target: Array | float) -> Array:
    """Dual loss of a Lagrange multiplier ``lambda = exp(log_multiplier) >= 0`` for ``constraint <= target``.

    ``L(log_lambda) = -exp(log_lambda) * (sg[mean(constraint)] - target)``; descending it raises ``lambda``
    while the constraint is violated (CQL's alpha with a target action gap, BEAR's MMD multiplier).
    """
    return -jnp.exp(log_multiplier) * (sg(jnp.mean(constraint)) - target)


def _sample_and_log_prob(dist, key, num_samples: int | None = None):
    if num_samples is None:
        return dist.sample_and_log_prob(seed=key)
    return dist.sample_and_log_prob(seed=key, sample_shape=(num_samples,))


# ================================================================================================== BC


def bc_nll_loss(params: Any, batch: Any, *, policy_apply: Callable) -> tuple[Array, Metrics]:
    """Behaviour cloning by maximum likelihood: ``L = -mean_b log pi(a_b | s_b)``.

    Also fits the behaviour policy ``pi_beta`` used by BRAC and BEAR. (Tanh-squashed policies need dataset
    actions strictly inside ``(-1, 1)``; clip them, e.g. to ``1 - 1e-6``, before calling.)
    """
    log_prob = policy_apply(params, batch.obs).log_prob(batch.action)
    loss = -jnp.mean(log_prob)
    return loss, dict(bc_loss=loss, log_prob=jnp.mean(log_prob))


def bc_mse_loss(params: Any, batch: Any, *, actor_apply: Callable) -> tuple[Array, Metrics]:
    """Deterministic behaviour cloning: ``L = mean_{b, i} (mu(s_b)_i - a_{b,i})^2`` (mean over all elements)."""
    loss = jnp.mean(jnp.square(actor_apply(params, batch.obs) - batch.action))
    return loss, dict(bc_loss=loss)


def weighted_bc_loss(params: Any, batch: Any, *, policy_apply: Callable, weights: Array) -> tuple[Array, Metrics]:
    """Weighted log-likelihood ``L = -mean_b sg[w_b] log pi(a_b | s_b)`` (AWR / AWAC / CRR / IQL actor;
    filtered BC with ``w = 1[top x% episode]``)."""
    log_prob = policy_apply(params, batch.obs).log_prob(batch.action)
    w = sg(weights)
    loss = -jnp.mean(w * log_prob)
    return loss, dict(actor_loss=loss, log_prob=jnp.mean(log_prob), weight_mean=jnp.mean(w), weight_max=jnp.max(w))


# ================================================================================================= IQL


def expectile_loss(u: Array, expectile: Array | float) -> Array:
    """Asymmetric squared loss ``L_tau(u) = |tau - 1(u < 0)| u^2`` (elementwise).

    Kostrikov, Nair & Levine, "Offline RL with Implicit Q-Learning", ICLR 2022, eq. (5); ``u = Q - V``.
    """
    weight = jnp.where(u < 0, 1.0 - expectile, expectile)
    return weight * jnp.square(u)


def iql_value_loss(
    value_params: Any,
    batch: Any,
    *,
    value_apply: Callable,
    q_apply: Callable,
    target_q_params: Any,
    expectile: Array | float,
) -> tuple[Array, Metrics]:
    """IQL value loss ``L_V = mean_b L_tau(sg[min_e Qhat_e(s, a)] - V(s))`` (expectile regression)."""
    q_t = sg(jnp.min(ensemble_q(q_apply, target_q_params, batch.obs, batch.action), axis=0))
    v_t = value_apply(value_params, batch.obs)
    loss = jnp.mean(expectile_loss(q_t - v_t, expectile))
    return loss, dict(value_loss=loss, v=jnp.mean(v_t), advantage=jnp.mean(q_t - v_t))


def iql_critic_loss(
    q_params: Any, batch: Any, *, q_apply: Callable, value_apply: Callable, value_params: Any, discount: Array | float
) -> tuple[Array, Metrics]:
    """IQL critic loss ``L_Q = sum_e mean_b (Q_e(s, a) - y)^2``, ``y = r + discount (1 - d) sg[V(s')]``."""
    v_tp1 = value_apply(value_params, batch.next_obs)
    y_t = sg(td_target(batch.reward, discount, batch.terminated, v_tp1))
    q_t = ensemble_q(q_apply, q_params, batch.obs, batch.action)
    loss = ensemble_mse(q_t, y_t)
    return loss, dict(critic_loss=loss, q=jnp.mean(q_t), target=jnp.mean(y_t))


def iql_actor_loss(
    policy_params: Any,
    batch: Any,
    *,
    policy_apply: Callable,
    q_apply: Callable,
    target_q_params: Any,
    value_apply: Callable,
    value_params: Any,
    inverse_temperature: Array | float,
    max_weight: Array | float = 100.0,
) -> tuple[Array, Metrics]:
    """IQL advantage-weighted regression: ``L_pi = -mean_b min(exp(beta A), w_max) log pi(a|s)``,
    ``A = min_e Qhat_e(s, a) - V(s)`` (Kostrikov et al. 2022, eq. 7; ``w_max = 100``)."""
    q_t = jnp.min(ensemble_q(q_apply, target_q_params, batch.obs, batch.action), axis=0)
    adv = q_t - value_apply(value_params, batch.obs)
    weights = exp_advantage_weights(adv, inverse_temperature, max_weight)
    loss, metrics = weighted_bc_loss(policy_params, batch, policy_apply=policy_apply, weights=weights)
    return loss, dict(metrics, advantage=jnp.mean(adv))


# ====================================================================================== AWR / AWAC / CRR


def exp_advantage_weights(adv: Array, inverse_temperature: Array | float, max_weight: Array | float = 100.0) -> Array:
    """``w = min(exp(beta * A), w_max)`` (IQL's / AWAC's exponentiated advantage, elementwise, no gradient)."""
    return sg(jnp.minimum(jnp.exp(inverse_temperature * adv), max_weight))


def awr_weights(adv: Array, temperature: Array | float, max_weight: Array | float = 20.0) -> Array:
    """AWR weights ``w = min(exp(A / beta), w_max)`` (Peng et al. 2019, "Advantage-Weighted Regression";
    ``w_max = 20`` there)."""
    return sg(jnp.minimum(jnp.exp(adv / temperature), max_weight))


def crr_weights(
    adv: Array, *, mode: str = "binary", temperature: Array | float = 1.0, max_weight: Array | float = 20.0
) -> Array:
    """CRR weights (Wang et al. 2020, "Critic Regularized Regression"), elementwise, no gradient.

    ``mode="binary"``: ``f(A) = 1[A > 0]``; ``mode="exp"``: ``f(A) = min(exp(A / beta), w_max)``.
    """
    if mode == "binary":
        return sg((adv > 0).astype(jnp.float32))
    if mode == "exp":
        return awr_weights(adv, temperature, max_weight)
    raise ValueError(f"mode: {mode!r} is not 'binary' or 'exp'")


def awr_value_loss(value_params: Any, batch: Any, *, value_apply: Callable, returns: Array) -> tuple[Array, Metrics]:
    """AWR value regression ``L_V = mean_b (V(s_b) - R_b)^2`` onto Monte-Carlo returns ``R`` (e.g. sampled
    from :func:`jaxrl.data.dataset.monte_carlo_returns`)."""
    v_t = value_apply(value_params, batch.obs)
    loss = jnp.mean(jnp.square(v_t - sg(returns)))
    return loss, dict(value_loss=loss, v=jnp.mean(v_t))


def awr_actor_loss(
    policy_params: Any,
    batch: Any,
    *,
    policy_apply: Callable,
    value_apply: Callable,
    value_params: Any,
    returns: Array,
    temperature: Array | float,
    max_weight: Array | float = 20.0,
) -> tuple[Array, Metrics]:
    """AWR actor ``L = -mean_b min(exp((R_b - V(s_b)) / beta), w_max) log pi(a_b | s_b)``."""
    adv = returns - value_apply(value_params, batch.obs)
    loss, metrics = weighted_bc_loss(
        policy_params, batch, policy_apply=policy_apply, weights=awr_weights(adv, temperature, max_weight)
    )
    return loss, dict(metrics, advantage=jnp.mean(adv))


def advantage_weighted_actor_loss(
    policy_params: Any,
    batch: Any,
    key: Array,
    *,
    policy_apply: Callable,
    q_apply: Callable,
    q_params: Any,
    temperature: Array | float = 1.0,
    max_weight: Array | float = 20.0,
    mode: str = "exp",
    num_samples: int = 4,
) -> tuple[Array, Metrics]:
    """AWAC / CRR actor: ``L = -mean_b f(A(s_b, a_b)) log pi(a_b | s_b)`` with
    ``A(s, a) = Q(s, a) - (1/M) sum_m Q(s, a_m)``, ``a_m ~ pi(.|s)``, ``Q = min_e Q_e``.

    ``mode="exp"``: ``f = min(exp(A / beta), w_max)`` (AWAC, Nair et al. 2020; CRR-exp); ``"binary"``:
    ``f = 1[A > 0]`` (CRR-binary).
    """
    obs = batch.obs
    dist = policy_apply(policy_params, obs)
    a_m = sg(dist.sample(seed=key, sample_shape=(num_samples,)))
    v_t = jnp.mean(jnp.min(ensemble_q_samples(q_apply, q_params, obs, a_m), axis=0), axis=0)
    q_t = jnp.min(ensemble_q(q_apply, q_params, obs, batch.action), axis=0)
    adv = q_t - v_t
    weights = crr_weights(adv, mode=mode, temperature=temperature, max_weight=max_weight)
    log_prob = dist.log_prob(batch.action)
    loss = -jnp.mean(weights * log_prob)
    return loss, dict(actor_loss=loss, advantage=jnp.mean(adv), weight_mean=jnp.mean(weights))


# ================================================================================================= CQL


def cql_logsumexp(q_samples: Array, log_densities: Array, temperature: Array | float = 1.0) -> Array:
    """Importance-sampled soft maximum ``log int exp Q(s, a) da`` over ``M`` sampled actions (CQL(H)).

    ``tau * [logsumexp_m((Q(s, a_m) - tau log p(a_m)) / tau) - log M]`` with ``a_m ~ p`` (a mix of uniform and
    policy samples, each with its own density); reduces over the ``M`` axis (second to last): ``q_samples:
    [..., M, B]``, ``log_densities: [M, B]`` -> ``[..., B]``. Kumar et al., "Conservative Q-Learning for Offline
    RL", NeurIPS 2020, eq. (4) and appendix F. (The reference code omits ``- log M``, a constant: its target
    action gaps equal ours plus ``tau log M``.)
    """
    m = q_samples.shape[-2]
    return temperature * (jax.nn.logsumexp(q_samples / temperature - log_densities, axis=-2) - math.log(m))


def cql_rho_estimate(q_samples: Array, temperature: Array | float = 1.0) -> Array:
    """CQL(rho) pushed-down value ``sum_m sg[softmax_m(Q_m / tau)] Q_m`` over actions sampled from the prior
    ``rho`` (the current policy): the practical form of ``E_{mu}[Q]`` with ``mu ~ rho exp(Q)`` (Kumar et al.
    2020, appendix F). ``q_samples: [..., M, B]`` -> ``[..., B]``."""
    w = sg(jax.nn.softmax(q_samples / temperature, axis=-2))
    return jnp.sum(w * q_samples, axis=-2)


def cql_critic_loss(
    q_params: Any,
    batch: Any,
    key: Array,
    *,
    q_apply: Callable,
    target_q_params: Any,
    policy_apply: Callable,
    policy_params: Any,
    discount: Array | float,
    cql_alpha: Array | float,
    num_samples: int = 10,
    temperature: Array | float = 1.0,
    entropy_coef: Array | float = 0.0,
    variant: str = "H",
    action_low: float = -1.0,
    action_high: float = 1.0,
    policy_q_floor: Array | None = None,
) -> tuple[Array, Metrics]:
    """CQL critic: soft TD error plus the conservative gap, per ensemble member ``e``:

    ``L = sum_e mean_b [(Q_e(s, a) - y)^2 + alpha (P_e(s) - Q_e(s, a))]``,
    ``y = r + discount (1 - d) sg[min_e Qhat_e(s', a') - c_ent log pi(a'|s')]``, ``a' ~ pi(.|s')``.

    ``variant="H"``: ``P_e(s) = cql_logsumexp`` over ``M`` uniform actions in ``[low, high]^A`` (density
    ``(high - low)^-A``) and ``M`` policy actions at ``s`` and at ``s'`` (their own densities), all at ``s``.
    ``variant="rho"``: ``P_e(s) = cql_rho_estimate`` over the ``2M`` policy actions. Metrics give the gap
    ``mean(P - Q_data)`` (``cql_gap``) for :func:`cql_alpha_loss`. ``policy_q_floor [B]`` (Cal-QL,
    :func:`calql_critic_loss`) replaces the policy actions' values by :func:`calql_bound` before ``P``.
    """
    obs, obs_tp1 = batch.obs, batch.next_obs
    k_tp1, k_cur, k_next, k_rand = jax.random.split(key, 4)
    dist_t, dist_tp1 = policy_apply(policy_params, obs), policy_apply(policy_params, obs_tp1)
    a_tp1, logp_tp1 = _sample_and_log_prob(dist_tp1, k_tp1)
    v_tp1 = jnp.min(ensemble_q(q_apply, target_q_params, obs_tp1, a_tp1), axis=0) - entropy_coef * logp_tp1
    y_t = sg(td_target(batch.reward, discount, batch.terminated, v_tp1))
    q_t = ensemble_q(q_apply, q_params, obs, batch.action)  # [E, B]
    td_loss = ensemble_mse(q_t, y_t)

    if variant not in ("H", "rho"):
        raise ValueError(f"variant: {variant!r} is not 'H' or 'rho'")
    a_cur, logp_cur = jax.tree.map(sg, _sample_and_log_prob(dist_t, k_cur, num_samples))
    a_nxt, logp_nxt = jax.tree.map(sg, _sample_and_log_prob(dist_tp1, k_next, num_samples))
    a_all = [a_cur, a_nxt]
    if variant == "H":
        a_all.append(jax.random.uniform(k_rand, a_cur.shape, minval=action_low, maxval=action_high))
    # every sampled action through the ensemble in ONE call: [E, 2M (+ M uniform), B]
    q_all = ensemble_q_samples(q_apply, q_params, obs, jnp.concatenate(a_all, axis=0))
    q_pi, logp_pi = q_all[:, : 2 * num_samples], jnp.concatenate([logp_cur, logp_nxt], axis=0)  # pi(s) and pi(s')
    extra = {}
    if policy_q_floor is not None:
        extra = dict(bound_rate=jnp.mean((q_pi < policy_q_floor).astype(jnp.float32)))
        q_pi = calql_bound(q_pi, policy_q_floor)
    if variant == "H":
        logp_rand = jnp.full(logp_cur.shape, -batch.action.shape[-1] * math.log(action_high - action_low))
        pushed = cql_logsumexp(
            jnp.concatenate([q_pi, q_all[:, 2 * num_samples :]], axis=1),
            jnp.concatenate([logp_pi, logp_rand], axis=0),
            temperature,
        )
    else:
        pushed = cql_rho_estimate(q_pi, temperature)
    gap_e = jnp.mean(pushed - q_t, axis=-1)  # [E]
    loss = td_loss + cql_alpha * jnp.sum(gap_e)
    return loss, dict(
        critic_loss=loss, td_loss=td_loss, cql_gap=jnp.mean(gap_e), target=jnp.mean(y_t), **ensemble_value_stats(q_t),
        **extra,
    )  # fmt: skip


def calql_bound(q_policy: Array, reference_value: Array) -> Array:
    """Cal-QL's calibration ``max(Q(s, a_pi), V_ref(s))`` (elementwise; ``q_policy [..., B]``, ``reference_value
    [B]``): CQL then never pushes a policy action's value below the reference policy's return, so the learned Q
    stays on the scale of real returns and online fine-tuning does not first "unlearn" an over-pessimistic Q.
    Nakamoto et al., "Cal-QL: Calibrated Offline RL Pre-Training for Efficient Online Fine-Tuning", NeurIPS 2023,
    section 5."""
    return jnp.maximum(q_policy, sg(reference_value))


def calql_critic_loss(q_params: Any, batch: Any, key: Array, **kwargs) -> tuple[Array, Metrics]:
    """Cal-QL critic: :func:`cql_critic_loss` whose policy-action values are floored at ``V_ref(s) =
    batch.extras.mc_returns`` (the data's discounted Monte-Carlo return: the behaviour policy as the reference).
    Metrics add ``bound_rate``, the fraction of policy-action values below the floor."""
    return cql_critic_loss(q_params, batch, key, policy_q_floor=batch.extras.mc_returns, **kwargs)


def cql_bc_actor_loss(
    actor_params: Any, batch: Any, key: Array, *, actor_apply: Callable, alpha: Array | float
) -> tuple[Array, Metrics]:
    """CQL's actor warm start (the reference code's first ``policy_eval_start`` updates): SAC's actor loss with the
    data's log-likelihood in place of Q, ``L = mean_b [alpha log pi(a~_b | s_b) - log pi(a_b | s_b)]``,
    ``a~ ~ pi(.|s)`` reparameterised. Metrics as :func:`jaxrl.losses.sac.sac_actor_loss` (``actor_loss``,
    ``entropy``), so the temperature update reads them alike. Dataset actions strictly inside ``(-1, 1)``."""
    dist = actor_apply(actor_params, batch.obs)
    _, log_prob = dist.sample_and_log_prob(seed=key)
    loss = jnp.mean(alpha * log_prob - dist.log_prob(batch.action))
    return loss, {"actor_loss": loss, "entropy": -jnp.mean(log_prob)}


def cql_alpha_loss(log_alpha: Array, cql_gap: Array, target_action_gap: Array | float) -> Array:
    """CQL-Lagrange: ``L(log alpha) = -exp(log alpha) (sg[gap] - tau_gap)`` (Kumar et al. 2020, eq. 30)."""
    return lagrange_loss(log_alpha, cql_gap, target_action_gap)


# ================================================================================================ BEAR


def gaussian_kernel(x: Array, y: Array, sigma: Array | float) -> Array:
    """``k(x, y) = exp(-||x - y||_2^2 / (2 sigma^2))`` over the last axis (broadcasting)."""
    return jnp.exp(-jnp.sum(jnp.square(x - y), axis=-1) / (2.0 * jnp.square(sigma)))


def laplacian_kernel(x: Array, y: Array, sigma: Array | float) -> Array:
    """``k(x, y) = exp(-||x - y||_1 / sigma)`` over the last axis (broadcasting)."""
    return jnp.exp(-jnp.sum(jnp.abs(x - y), axis=-1) / sigma)


_KERNELS = dict(gaussian=gaussian_kernel, laplacian=laplacian_kernel)


def mmd_squared(x: Array, y: Array, *, kernel: str = "laplacian", sigma: Array | float = 20.0) -> Array:
    """Squared maximum mean discrepancy between sample sets ``x: [N, D]`` and ``y: [M, D]`` (V-statistic):

    ``MMD^2 = mean_{i,i'} k(x_i, x_i') - 2 mean_{i,j} k(x_i, y_j) + mean_{j,j'} k(y_j, y_j')``.
    Kumar et al., "Stabilizing Off-Policy Q-Learning via Bootstrapping Error Reduction" (BEAR), NeurIPS 2019.
    (BEAR's code writes the kernels as ``exp(-||.||_1 / (2 s))`` and ``exp(-||.||^2 / (2 s))``: use
    ``sigma = 2 s`` (laplacian) or ``sigma = sqrt(s)`` (gaussian).)
    """
    k = _KERNELS[kernel]
    kxx = jnp.mean(k(x[:, None], x[None], sigma))
    kxy = jnp.mean(k(x[:, None], y[None], sigma))
    kyy = jnp.mean(k(y[:, None], y[None], sigma))
    return kxx - 2.0 * kxy + kyy


def bear_actor_loss(
    policy_params: Any,
    batch: Any,
    key: Array,
    *,
    policy_apply: Callable,
    q_apply: Callable,
    q_params: Any,
    behaviour_apply: Callable,
    behaviour_params: Any,
    log_lagrange: Array,
    epsilon: Array | float,
    num_samples: int = 5,
    kernel: str = "laplacian",
    sigma: Array | float = 20.0,
) -> tuple[Array, Metrics]:
    """BEAR actor: ``L = mean_s [-min_e Q_e(s, a_1) + sg[lambda] (MMD(s) - eps)]``, ``a_m ~ pi(.|s)``
    (reparameterised), ``MMD(s) = sqrt(mmd_squared({a_m}, {b_m}) + 1e-6)`` against ``b_m ~ pi_beta(.|s)``.

    ``lambda = exp(log_lagrange)``; train it with ``lagrange_loss(log_lagrange, metrics["mmd"], eps)``.
    """
    obs = batch.obs
    k_pi, k_b = jax.random.split(key)
    a_pi = policy_apply(policy_params, obs).sample(seed=k_pi, sample_shape=(num_samples,))  # [M, B, A]
    a_b = sg(behaviour_apply(behaviour_params, obs).sample(seed=k_b, sample_shape=(num_samples,)))
    mmd2 = jax.vmap(lambda x, y: mmd_squared(x, y, kernel=kernel, sigma=sigma), in_axes=(1, 1))(a_pi, a_b)
    mmd = jnp.sqrt(jnp.maximum(mmd2, 0.0) + 1e-6)
    q = jnp.min(ensemble_q(q_apply, q_params, obs, a_pi[0]), axis=0)
    lam = sg(jnp.exp(log_lagrange))
    loss = jnp.mean(-q + lam * (mmd - epsilon))
    return loss, dict(actor_loss=loss, mmd=jnp.mean(mmd), q=jnp.mean(q), lagrange=lam)


# ================================================================================================ BRAC


def bear_critic_loss(
    q_params: Any,
    batch: Any,
    key: jax.Array,
    *,
    q_apply: Callable,
    target_q_params: Any,
    policy_apply: Callable,
    policy_params: Any,
    discount: Any,
    lambda_mix: Any,
    num_samples: int = 10,
) -> tuple[jax.Array, dict]:
    """BEAR critic ``L = sum_e mean_b (Q_e(s, a) - y)^2`` with

    ``y = r + discount (1 - d) sg[max_m (lambda min_e Qhat_e(s', a'_m) + (1 - lambda) max_e Qhat_e(s', a'_m))]``,
    ``a'_m ~ pi(.|s')``, ``m = 1..M`` (Kumar et al. 2019, section 5 and appendix: the "soft clipped double-Q"
    target, maximised over sampled actions).
    """
    obs_tp1 = batch.next_obs
    a_tp1 = policy_apply(policy_params, obs_tp1).sample(seed=key, sample_shape=(num_samples,))  # [M, B, A]
    q_tp1 = ensemble_q_samples(q_apply, target_q_params, obs_tp1, a_tp1)  # [E, M, B]
    mixed = lambda_mix * jnp.min(q_tp1, axis=0) + (1.0 - lambda_mix) * jnp.max(q_tp1, axis=0)  # [M, B]
    v_tp1 = jnp.max(mixed, axis=0)
    y_t = jax.lax.stop_gradient(td_target(batch.reward, discount, batch.terminated, v_tp1))
    q_t = ensemble_q(q_apply, q_params, batch.obs, batch.action)
    loss = ensemble_mse(q_t, y_t)
    return loss, dict(critic_loss=loss, q=jnp.mean(q_t), target=jnp.mean(y_t))


def kl_divergence_mc(policy_dist: Any, behaviour_dist: Any, key: Array, num_samples: int = 1) -> Array:
    """Monte-Carlo ``KL(pi || pi_beta)(s) ~= (1/M) sum_m [log pi(a_m|s) - log pi_beta(a_m|s)]``, ``a_m ~ pi``
    (reparameterised; ``[B]``). Wu, Tucker & Nachum, "Behavior Regularized Offline RL" (BRAC), 2019."""
    a, logp = _sample_and_log_prob(policy_dist, key, num_samples)
    return jnp.mean(logp - behaviour_dist.log_prob(a), axis=0)


def brac_critic_loss(
    q_params: Any,
    batch: Any,
    key: Array,
    *,
    q_apply: Callable,
    target_q_params: Any,
    policy_apply: Callable,
    policy_params: Any,
    behaviour_apply: Callable,
    behaviour_params: Any,
    discount: Array | float,
    alpha: Array | float,
    value_penalty: bool = True,
    num_samples: int = 1,
) -> tuple[Array, Metrics]:
    """BRAC critic ``L = sum_e mean_b (Q_e(s, a) - y)^2`` with
    ``y = r + discount (1 - d) sg[min_e Qhat_e(s', a') - alpha D(s')]``, ``a' ~ pi(.|s')``,
    ``D = KL(pi || pi_beta)`` (:func:`kl_divergence_mc`). ``value_penalty=False`` drops ``alpha D`` (BRAC-p:
    the penalty then lives only in :func:`brac_actor_loss`); ``True`` is BRAC-v."""
    obs_tp1 = batch.next_obs
    k_a, k_d = jax.random.split(key)
    dist_tp1 = policy_apply(policy_params, obs_tp1)
    a_tp1 = dist_tp1.sample(seed=k_a)
    v_tp1 = jnp.min(ensemble_q(q_apply, target_q_params, obs_tp1, a_tp1), axis=0)
    div = kl_divergence_mc(dist_tp1, behaviour_apply(behaviour_params, obs_tp1), k_d, num_samples)
    if value_penalty:
        v_tp1 = v_tp1 - alpha * div
    y_t = sg(td_target(batch.reward, discount, batch.terminated, v_tp1))
    q_t = ensemble_q(q_apply, q_params, batch.obs, batch.action)
    loss = ensemble_mse(q_t, y_t)
    return loss, dict(critic_loss=loss, q=jnp.mean(q_t), target=jnp.mean(y_t), kl_tp1=jnp.mean(div))


def brac_actor_loss(
    policy_params: Any,
    batch: Any,
    key: Array,
    *,
    policy_apply: Callable,
    q_apply: Callable,
    q_params: Any,
    behaviour_apply: Callable,
    behaviour_params: Any,
    alpha: Array | float,
    num_samples: int = 1,
) -> tuple[Array, Metrics]:
    """BRAC actor ``L = mean_s [alpha D(s) - min_e Q_e(s, a)]``, ``a ~ pi(.|s)`` reparameterised,
    ``D = KL(pi || pi_beta)`` estimated by :func:`kl_divergence_mc` (behaviour params not trained here)."""
    obs = batch.obs
    k_a, k_d = jax.random.split(key)
    dist = policy_apply(policy_params, obs)
    behaviour = behaviour_apply(sg(behaviour_params), obs)
    div = kl_divergence_mc(dist, behaviour, k_d, num_samples)
    q = jnp.min(ensemble_q(q_apply, q_params, obs, dist.sample(seed=k_a)), axis=0)
    loss = jnp.mean(alpha * div - q)
    return loss, dict(actor_loss=loss, kl=jnp.mean(div), q=jnp.mean(q))


# ======================================================================================= TD3+BC / ReBRAC


def td3_bc_actor_loss(
    actor_params: Any,
    batch: Any,
    *,
    actor_apply: Callable,
    q_apply: Callable,
    q_params: Any,
    alpha: Array | float = 2.5,
) -> tuple[Array, Metrics]:
    """TD3+BC actor (Fujimoto & Gu, "A Minimalist Approach to Offline RL", NeurIPS 2021):

    ``L = -lambda mean_b Q_1(s, pi(s)) + mean_{b,i} (pi(s)_i - a_i)^2``, ``lambda = alpha / sg[mean_b |Q_1|]``,
    ``Q_1`` the first ensemble member.
    """
    pi = actor_apply(actor_params, batch.obs)
    q = first_member_q(q_apply, q_params, batch.obs, pi)
    lam = alpha / sg(jnp.mean(jnp.abs(q)))
    bc = jnp.mean(jnp.square(pi - batch.action))
    loss = -lam * jnp.mean(q) + bc
    return loss, dict(actor_loss=loss, bc_loss=bc, q=jnp.mean(q), lmbda=lam)


def rebrac_actor_loss(
    actor_params: Any, batch: Any, *, actor_apply: Callable, q_apply: Callable, q_params: Any, beta: Array | float
) -> tuple[Array, Metrics]:
    """ReBRAC actor (Tarasov et al., "Revisiting the Minimalist Approach to Offline RL", NeurIPS 2023):

    ``L = mean_b [beta ||pi(s) - a||^2 - lambda min_e Q_e(s, pi(s))]``, ``lambda = 1 / sg[mean_b |min_e Q_e|]``.
    """
    pi = actor_apply(actor_params, batch.obs)
    q = jnp.min(ensemble_q(q_apply, q_params, batch.obs, pi), axis=0)
    lam = 1.0 / sg(jnp.mean(jnp.abs(q)))
    bc = jnp.sum(jnp.square(pi - batch.action), axis=-1)
    loss = jnp.mean(beta * bc - lam * q)
    return loss, dict(actor_loss=loss, bc_penalty=jnp.mean(bc), q=jnp.mean(q), lmbda=lam)


def rebrac_critic_loss(
    q_params: Any,
    batch: Any,
    key: Array,
    *,
    q_apply: Callable,
    target_q_params: Any,
    actor_apply: Callable,
    target_actor_params: Any,
    discount: Array | float,
    beta: Array | float,
    policy_noise: Array | float = 0.2,
    noise_clip: Array | float = 0.5,
    action_low: float = -1.0,
    action_high: float = 1.0,
) -> tuple[Array, Metrics]:
    """ReBRAC critic: ``L = sum_e mean_b (Q_e(s, a) - y)^2`` with
    ``y = r + discount (1 - d) sg[min_e Qhat_e(s', a') - beta ||a' - a'_data||^2]``,
    ``a' = clip(mu_targ(s') + clip(sigma eps, -c, c), low, high)`` (TD3 target smoothing),
    ``a'_data = batch.extras.next_action`` (see :func:`jaxrl.data.dataset.with_next_actions`).
    """
    obs_tp1 = batch.next_obs
    mu = actor_apply(target_actor_params, obs_tp1)
    noise = jnp.clip(policy_noise * jax.random.normal(key, mu.shape), -noise_clip, noise_clip)
    a_tp1 = jnp.clip(mu + noise, action_low, action_high)
    bc = jnp.sum(jnp.square(a_tp1 - batch.extras.next_action), axis=-1)
    v_tp1 = jnp.min(ensemble_q(q_apply, target_q_params, obs_tp1, a_tp1), axis=0) - beta * bc
    y_t = sg(td_target(batch.reward, discount, batch.terminated, v_tp1))
    q_t = ensemble_q(q_apply, q_params, batch.obs, batch.action)
    loss = ensemble_mse(q_t, y_t)
    return loss, dict(critic_loss=loss, q=jnp.mean(q_t), target=jnp.mean(y_t), bc_penalty_tp1=jnp.mean(bc))


# ========================================================================================= model-based


def gaussian_nll(mean: Array, log_var: Array, target: Array) -> Array:
    """Diagonal Gaussian negative log-likelihood, summed over the last axis:
    ``0.5 sum_i [(x_i - mu_i)^2 exp(-log var_i) + log var_i + log 2 pi]``."""
    return 0.5 * jnp.sum(jnp.square(target - mean) * jnp.exp(-log_var) + log_var + math.log(2 * math.pi), axis=-1)


def gaussian_ensemble_dynamics_loss(
    params: Any, batch: Any, *, dynamics_apply: Callable, predict_delta: bool = True, per_member_batch: bool = False
) -> tuple[Array, Metrics]:
    """Ensemble of Gaussian dynamics models (MBPO / MOPO / MOReL): ``L = sum_e mean_b NLL_e``.

    ``dynamics_apply(params_e, obs [B, O], actions) -> (mean, log_var)``, each ``[B, O + 1]``, predicting
    ``x = [s' - s, r]`` (``[s', r]`` if not ``predict_delta``). ``params`` has a leading ``[E]`` axis. With
    ``per_member_batch`` every batch field has a leading ``[E]`` axis too (bootstrapped batches).
    """

    def member(p, obs, act, rew, nxt):
        delta = nxt - obs if predict_delta else nxt
        target = jnp.concatenate([delta, rew[..., None]], axis=-1)
        mean, log_var = dynamics_apply(p, obs, act)
        return jnp.mean(gaussian_nll(mean, log_var, target)), jnp.mean(jnp.square(mean - target))

    fields = (batch.obs, batch.action, batch.reward, batch.next_obs)
    axes = (0,) * 4 if per_member_batch else (None,) * 4
    nll, mse = jax.vmap(member, in_axes=(0,) + axes)(params, *fields)
    loss = jnp.sum(nll)
    return loss, dict(dynamics_loss=loss, nll=jnp.mean(nll), mse=jnp.mean(mse))


def mopo_uncertainty(variances: Array) -> Array:
    """MOPO's uncertainty ``u(s, a) = max_i ||Sigma_i(s, a)||_F`` for diagonal ``Sigma_i = diag(variances_i)``,
    i.e. ``max_i sqrt(sum_d var_{i,d}^2)``; ``variances: [E, B, D]`` -> ``[B]``.

    Yu et al., "MOPO: Model-based Offline Policy Optimization", NeurIPS 2020, section 4.3. (Its code passes
    standard deviations: call with ``stds`` to get that ``max_i ||sigma_i||_2``.)
    """
    return jnp.max(jnp.sqrt(jnp.sum(jnp.square(variances), axis=-1)), axis=0)


def mopo_penalized_reward(r_t: Array, variances: Array, penalty_coef: Array | float) -> Array:
    """MOPO reward ``r~ = r - lambda max_i ||Sigma_i(s, a)||_F`` (:func:`mopo_uncertainty`)."""
    return r_t - penalty_coef * mopo_uncertainty(variances)


def ensemble_disagreement(predictions: Array) -> Array:
    """``max_{i,j} ||f_i - f_j||_2`` over ensemble predictions ``[E, B, D]`` -> ``[B]``."""
    diff = predictions[:, None] - predictions[None]
    return jnp.max(jnp.sqrt(jnp.sum(jnp.square(diff), axis=-1)), axis=(0, 1))


def morel_halting(
    next_obs_predictions: Array, r_t: Array, terminal_t: Array, *, threshold: Array | float, r_max: Array | float
) -> tuple[Array, Array, Array]:
    """MOReL's unknown-state halting (Kidambi et al., "MOReL: Model-Based Offline RL", NeurIPS 2020).

    A state-action is unknown when ``disc(s, a) = max_{i,j} ||f_i(s, a) - f_j(s, a)|| > threshold``; there the
    pessimistic MDP pays ``-R_max`` and halts: ``r~ = -R_max``, ``d~ = 1``; elsewhere ``(r, d)`` unchanged.
    Returns ``(r~ [B], d~ [B], unknown [B])`` as float32.
    """
    unknown = ensemble_disagreement(next_obs_predictions) > threshold
    r = jnp.where(unknown, -r_max, r_t)
    d = jnp.where(unknown, 1.0, terminal_t)
    return r.astype(jnp.float32), d.astype(jnp.float32), unknown.astype(jnp.float32)


# ====================================================================================== SAC-N / EDAC


def gradient_similarity(grads: Array, eps: float = 1e-10) -> Array:
    """EDAC ensemble similarity ``ES(s) = 1/(E-1) sum_{i != j} <g_i, g_j> / (||g_i|| ||g_j||)`` of the action
    gradients ``g_e = grad_a Q_e(s, a)``; ``grads: [E, B, A]`` -> ``[B]``. An, Moon, Kim & Song,
    "Uncertainty-Based Offline RL with Diversified Q-Ensemble", NeurIPS 2021, eq. (5)."""
    e = grads.shape[0]
    # sqrt(|g|^2 + eps^2), not |g| + eps: the norm's own derivative g/|g| is 0/0 at g = 0 (a member whose ReLUs
    # are all off at (s, a) has exactly zero action gradient), and one NaN there poisons every parameter
    unit = grads / jnp.sqrt(jnp.sum(jnp.square(grads), axis=-1, keepdims=True) + eps**2)
    sims = jnp.einsum("iba,jba->bij", unit, unit)
    off = jnp.sum(sims, axis=(1, 2)) - jnp.trace(sims, axis1=1, axis2=2)
    return off / max(e - 1, 1)


def ensemble_q_and_action_grads(q_apply: Callable, q_params: Any, obs: Array, actions: Array) -> tuple[Array, Array]:
    """``(q [E, B], grads [E, B, A])``: each member's values ``Q_e(s, a)`` and action gradients ``grad_a Q_e(s, a)``
    from one forward pass per member (the gradient's backward pass starts from the values' forward pass, so EDAC's
    critic loss needs no second ensemble call for its TD term)."""

    def member(p):  # one member, through the ensemble apply on a one-member ensemble
        q_e, pullback = jax.vjp(lambda a: q_apply(jax.tree.map(lambda x: x[None], p), obs, a)[0], actions)
        return q_e, pullback(jnp.ones_like(q_e))[0]  # Q_e(s_b, a_b) depends on a_b alone: the vjp is per state

    return jax.vmap(member)(q_params)


def edac_diversity_penalty(q_params: Any, obs: Array, actions: Array, *, q_apply: Callable) -> Array:
    """``mean_b ES(s_b)`` (:func:`gradient_similarity`) at the dataset actions; differentiable in ``q_params``."""
    return jnp.mean(gradient_similarity(ensemble_q_and_action_grads(q_apply, q_params, obs, actions)[1]))


def edac_critic_loss(
    q_params: Any,
    batch: Any,
    key: Array,
    *,
    q_apply: Callable,
    target_q_params: Any,
    policy_apply: Callable,
    policy_params: Any,
    discount: Array | float,
    entropy_coef: Array | float,
    eta: Array | float | None = None,
) -> tuple[Array, Metrics]:
    """SAC-N (``eta=None``) / EDAC critic: ``L = sum_e mean_b (Q_e(s, a) - y)^2 + eta mean_b ES(s)`` with
    ``y = r + discount (1 - d) sg[min_e Qhat_e(s', a') - alpha log pi(a'|s')]``, ``a' ~ pi(.|s')``.

    ``eta=None`` is SAC-N's critic: the similarity term is neither computed nor reported. Any ``eta`` (0 included)
    reports it as ``diversity``, and the TD values then come from that term's own forward pass
    (:func:`ensemble_q_and_action_grads`)."""
    a_tp1, logp_tp1 = _sample_and_log_prob(policy_apply(policy_params, batch.next_obs), key)
    q_tp1 = jnp.min(ensemble_q(q_apply, target_q_params, batch.next_obs, a_tp1), axis=0)
    y_t = sg(td_target(batch.reward, discount, batch.terminated, q_tp1 - entropy_coef * logp_tp1))
    if eta is None:
        q_t, extra = ensemble_q(q_apply, q_params, batch.obs, batch.action), {}
    else:
        q_t, grads = ensemble_q_and_action_grads(q_apply, q_params, batch.obs, batch.action)
        extra = dict(diversity=jnp.mean(gradient_similarity(grads)))
    td = ensemble_mse(q_t, y_t)
    loss = td if eta is None else td + eta * extra["diversity"]
    return loss, dict(critic_loss=loss, td_loss=td, **extra, **ensemble_value_stats(q_t))
