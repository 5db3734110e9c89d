"""Policy-gradient surrogates for meta-RL: DiCE, ProMP's LVC, the naive surrogate, a pure MAML inner step and
adaptation, the linear-feature baseline and ProMP's outer advantage.

All functions are pure. Time is the last axis: ``log_probs``, ``rewards``, ``baseline`` and ``mask`` are ``[T]``
or ``[B, T]`` (any leading batch axes are averaged over). ``discount`` may be a traced scalar.

Notation (one trajectory): ``w_t = sum_{t' <= t} log pi(a_t'|s_t')`` the cumulative log-probability of the
stochastic nodes that reward ``r_t`` depends on (causality); ``box(x) = exp(x - stop_gradient(x))`` the DiCE
"magic box" (value 1, derivative ``box(x) * x'``).

- DiCE (Foerster et al. 2018, "DiCE: The Infinitely Differentiable Monte Carlo Estimator"), with the
  baseline term of Mao et al. 2019 ("A Baseline for Any Order Gradient Estimators in Stochastic Computation
  Graphs"):

      L_DiCE = sum_t gamma^t [ r_t box(w_t) + b_t (box(w_{t-1}) - box(w_t)) ],   box(w_{-1}) = 1.

  Its value is the discounted return sum_t gamma^t r_t (the baseline term has value 0); its n-th derivative
  is an unbiased estimator of the n-th derivative of the expected discounted return, for every n (the
  baseline term has expectation 0 in every order and, with b_t ~ V(s_t), reduces variance).
- LVC (Rothfuss et al. 2019, "ProMP: Proximal Meta-Policy Search", eq. for J^LVC):

      L_LVC = sum_t box(log pi(a_t|s_t)) (R_t - gamma^t b_t),   R_t = sum_{t' >= t} gamma^t' r_t'.

  Same first derivative as DiCE (unbiased policy gradient); its Hessian drops the cross terms between
  different time steps (biased but low-variance curvature). Its value is sum_t (R_t - gamma^t b_t), not the
  return. For one-step episodes (T = 1) LVC and DiCE coincide.
- naive: ``sum_t log pi(a_t|s_t) * stop_gradient(R_t - gamma^t b_t)``. Same first derivative; its second
  derivative lacks the score-function term ``E[R grad log pi grad log pi^T]``, so MAML built on it has a
  wrong (biased) meta-gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxrl.losses.ppo import clipped_surrogate_loss

SURROGATES = ("dice", "lvc", "naive")


def magic_box(x: jax.Array) -> jax.Array:
    """DiCE magic box ``exp(x - stop_gradient(x))``: evaluates to 1, ``d box(x) = box(x) dx``."""
    return jnp.exp(x - jax.lax.stop_gradient(x))


def _prep(log_probs, rewards, discount, baseline, mask):
    log_probs = jnp.asarray(log_probs)
    rewards = jnp.asarray(rewards, log_probs.dtype)
    if mask is not None:
        mask = jnp.asarray(mask, log_probs.dtype)
        log_probs = log_probs * mask
        rewards = rewards * mask
    num_steps = rewards.shape[-1]
    discounts = jnp.asarray(discount, rewards.dtype) ** jnp.arange(num_steps, dtype=rewards.dtype)  # [T]
    if baseline is None:
        baseline = jnp.zeros_like(rewards)
    else:
        baseline = jax.lax.stop_gradient(jnp.asarray(baseline, rewards.dtype))
        if mask is not None:
            baseline = baseline * mask
    return log_probs, rewards, discounts, baseline


def discounted_reward_to_go(rewards: jax.Array, discount) -> jax.Array:
    """``R_t = sum_{t' >= t} gamma^{t'} r_t'`` along the last axis (discounted from time 0, as in the DiCE/LVC
    surrogates; divide by ``gamma^t`` for the usual return-to-go)."""
    rewards = jnp.asarray(rewards)
    discounts = jnp.asarray(discount, rewards.dtype) ** jnp.arange(rewards.shape[-1], dtype=rewards.dtype)
    return jnp.flip(jnp.cumsum(jnp.flip(rewards * discounts, -1), -1), -1)


def dice_objective(
    log_probs: jax.Array,
    rewards: jax.Array,
    discount=1.0,
    baseline: jax.Array | None = None,
    mask: jax.Array | None = None,
) -> jax.Array:
    """DiCE surrogate ``sum_t gamma^t [r_t box(w_t) + b_t (box(w_{t-1}) - box(w_t))]``, mean over batch axes.

    Args:
      log_probs: ``[..., T]`` log pi(a_t|s_t), differentiable w.r.t. the policy parameters.
      rewards: ``[..., T]`` rewards (gradients are not taken through them).
      discount: gamma.
      baseline: optional ``[..., T]`` state values b_t ~ V(s_t) (stop-gradient applied); Mao et al. 2019.
      mask: optional ``[..., T]`` 1 for valid steps, 0 for padding after an episode ended.
    Returns:
      scalar whose value is the mean discounted return and whose derivatives of any order are unbiased
      estimators of the derivatives of the expected discounted return.
    """
    log_probs, rewards, discounts, baseline = _prep(log_probs, rewards, discount, baseline, mask)
    rewards = jax.lax.stop_gradient(rewards)
    w = jnp.cumsum(log_probs, axis=-1)  # w_t
    w_prev = w - log_probs  # w_{t-1}, 0 at t = 0
    box_w, box_prev = magic_box(w), magic_box(w_prev)
    per_step = discounts * (rewards * box_w + baseline * (box_prev - box_w))
    return jnp.mean(jnp.sum(per_step, axis=-1))


def lvc_objective(
    log_probs: jax.Array,
    rewards: jax.Array,
    discount=1.0,
    baseline: jax.Array | None = None,
    mask: jax.Array | None = None,
) -> jax.Array:
    """ProMP low-variance-curvature surrogate ``sum_t box(log pi_t) (R_t - gamma^t b_t)``, mean over batch."""
    log_probs, rewards, discounts, baseline = _prep(log_probs, rewards, discount, baseline, mask)
    advantages = jax.lax.stop_gradient(discounted_reward_to_go(rewards, discount) - discounts * baseline)
    return jnp.mean(jnp.sum(magic_box(log_probs) * advantages, axis=-1))


def naive_pg_objective(
    log_probs: jax.Array,
    rewards: jax.Array,
    discount=1.0,
    baseline: jax.Array | None = None,
    mask: jax.Array | None = None,
) -> jax.Array:
    """REINFORCE surrogate ``sum_t log pi_t * stop_gradient(R_t - gamma^t b_t)``, mean over batch axes."""
    log_probs, rewards, discounts, baseline = _prep(log_probs, rewards, discount, baseline, mask)
    advantages = jax.lax.stop_gradient(discounted_reward_to_go(rewards, discount) - discounts * baseline)
    return jnp.mean(jnp.sum(log_probs * advantages, axis=-1))


def surrogate_objective(
    log_probs: jax.Array,
    rewards: jax.Array,
    *,
    surrogate: str = "dice",
    discount=1.0,
    baseline: jax.Array | None = None,
    mask: jax.Array | None = None,
) -> jax.Array:
    """Dispatch on ``surrogate`` in ``('dice', 'lvc', 'naive')`` (a static Python string)."""
    fns = {"dice": dice_objective, "lvc": lvc_objective, "naive": naive_pg_objective}
    if surrogate not in fns:
        raise ValueError(f"surrogate must be one of {SURROGATES}, got {surrogate!r}")
    return fns[surrogate](log_probs, rewards, discount, baseline, mask)


class PGBatch(NamedTuple):
    """Trajectories for a policy-gradient step; every field ``[T]`` or ``[B, T]`` leading axes (+ feature dims).

    ``obs`` and ``action`` are handed to ``log_prob_fn``; ``baseline`` and ``mask`` are optional.
    """

    obs: Any
    action: Any
    reward: jax.Array
    baseline: jax.Array | None = None
    mask: jax.Array | None = None


def inner_gradient(
    params: Any,
    batch: PGBatch,
    *,
    log_prob_fn: Callable[[Any, Any, Any], jax.Array],
    surrogate: str = "dice",
    discount=1.0,
) -> Any:
    """``grad_params L(params)``, ``L`` the chosen surrogate of ``log_prob_fn(params, batch.obs, batch.action)``."""

    def objective(p):
        return surrogate_objective(
            log_prob_fn(p, batch.obs, batch.action),
            batch.reward,
            surrogate=surrogate,
            discount=discount,
            baseline=batch.baseline,
            mask=batch.mask,
        )

    return jax.grad(objective)(params)


def vpg_inner_step(
    params: Any,
    trajectories: PGBatch,
    *,
    log_prob_fn: Callable[[Any, Any, Any], jax.Array],
    alpha,
    surrogate: str = "dice",
    first_order: bool = False,
    discount=1.0,
) -> Any:
    """One policy-gradient ascent step ``params' = params + alpha * grad_params L(params)`` (MAML inner loop).

    ``L`` is the chosen surrogate of ``log_prob_fn(params, trajectories.obs, trajectories.action)``
    (``[T]`` or ``[B, T]`` log-probabilities). Differentiating ``params'`` w.r.t. ``params`` gives
    ``I + alpha * hess L``: with ``surrogate='dice'`` that Hessian is unbiased (Finn et al. 2017 MAML with the
    correct score-function term), ``'lvc'`` is ProMP's low-variance version, ``'naive'`` drops the
    score-function term. ``first_order=True`` stops gradients through the inner gradient (FO-MAML).
    ``alpha`` is a scalar or a pytree like ``params`` (per-parameter step sizes, as in Meta-SGD).
    """
    grads = inner_gradient(params, trajectories, log_prob_fn=log_prob_fn, surrogate=surrogate, discount=discount)
    if first_order:
        grads = jax.lax.stop_gradient(grads)
    if jax.tree.structure(alpha) == jax.tree.structure(params):  # type: ignore[operator]  # PyTreeDef: untyped C extension
        return jax.tree.map(lambda p, a, g: p + a * g, params, alpha, grads)
    return jax.tree.map(lambda p, g: p + alpha * g, params, grads)


def adapt(params: Any, batches: list[PGBatch], **inner_step_kwargs) -> Any:
    """MAML's adaptation ``theta^K``: one :func:`vpg_inner_step` per batch ``D^0..D^{K-1}``, in order (a pure
    function: ``jax.grad`` of a loss of ``adapt(params, ...)`` is the second-order meta-gradient)."""
    for batch in batches:
        params = vpg_inner_step(params, batch, **inner_step_kwargs)
    return params


def linearized_step(grad_fn: Callable, params: Any, lr: Any, first_order: bool):
    """``params + lr * grad_fn(params)`` and, unless ``first_order``, the Hessian-vector product of the inner
    objective at ``params`` from the same ``jax.linearize`` (forward-over-reverse) pass (else ``None``)."""
    if first_order:
        g, hvp = grad_fn(params), None
    else:
        g, hvp = jax.linearize(grad_fn, params)
    return jax.tree.map(lambda x, d: x + lr * d, params, g), hvp


def backprop_inner_steps(grad: Any, hvps: list, lr: Any) -> Any:
    """The meta-gradient from the adapted parameters' gradient ``g_K``: ``g_k = g_{k+1} + lr H_k g_{k+1}`` for the
    saved ``hvps`` (``theta_{k+1} = theta_k + lr grad J_k(theta_k)``; a ``None`` Hessian is first order: 0)."""
    for hvp in reversed(hvps):
        if hvp is not None:
            grad = jax.tree.map(lambda a, h: a + lr * h, grad, hvp(grad))
    return grad


BASELINE_RIDGE_RETRIES = 5


def linear_baseline(obs: jax.Array, returns: jax.Array, mask: jax.Array, reg) -> jax.Array:
    """Least-squares fit of ``returns [N, T]`` on features ``(o, o^2, t, t^2, t^3, 1)`` (Duan et al. 2016's
    benchmark baseline), evaluated on the same states; ``[N, T]``, no gradient.

    The ridge is ``reg + 1e-6``; when that solve is not finite, the fit is retried with the ridge times 10, 100, ...
    (``BASELINE_RIDGE_RETRIES`` tries in all; garage's ``LinearFeatureBaseline`` does the same). In float32 an
    observation entry that is constant and non-zero (Meta-World's are) makes ``o``, ``o^2`` and ``1`` collinear, and
    a ridge far below the float32 resolution of ``F^T F`` leaves the system singular: the solve gives NaN."""
    n, t = returns.shape
    time = jnp.broadcast_to(jnp.arange(t, dtype=jnp.float32)[None, :, None] / 100.0, (n, t, 1))
    o = jnp.clip(obs, -10.0, 10.0)
    feats = jnp.concatenate([o, o**2, time, time**2, time**3, jnp.ones_like(time)], axis=-1) * mask[..., None]
    f = feats.reshape(-1, feats.shape[-1])
    y = (returns * mask).reshape(-1)
    gram, eye, rhs = f.T @ f, jnp.eye(f.shape[1]), f.T @ y
    tries = [jnp.linalg.solve(gram + (reg + 1e-6) * 10.0**k * eye, rhs) for k in range(BASELINE_RIDGE_RETRIES)]
    w = tries[-1]
    for earlier in reversed(tries[:-1]):  # the first finite solve, in ridge order
        w = jnp.where(jnp.all(jnp.isfinite(earlier)), earlier, w)
    return jax.lax.stop_gradient((feats @ w) * mask)


def reward_to_go(rewards: jax.Array, discount) -> jax.Array:
    """The usual return-to-go ``sum_{t' >= t} gamma^{t' - t} r_t'`` along the last axis."""
    discounts = discount ** jnp.arange(rewards.shape[-1], dtype=jnp.float32)
    return discounted_reward_to_go(rewards, discount) / discounts


def standardized_advantage(rewards: jax.Array, baseline: jax.Array, mask: jax.Array, discount) -> jax.Array:
    """``reward_to_go - baseline``, centred and scaled to unit variance over the valid (``mask``) steps, 0
    elsewhere: ProMP's outer advantage."""
    adv = reward_to_go(rewards, discount) - baseline
    adv = (adv - jnp.sum(adv * mask) / jnp.sum(mask)) * mask
    return adv / (jnp.sqrt(jnp.sum(adv**2) / jnp.sum(mask)) + 1e-8)


class Trajectories(NamedTuple):
    """``[N, T, ...]`` trajectories of one task, as collected (``log_prob`` of the collecting policy)."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    mask: jax.Array  # 1 until (and including) the step that ends the episode
    log_prob: jax.Array


def normalized_pg_batch(tr: Trajectories, *, discount, baseline_reg) -> PGBatch:
    """The inner step's data: rewards and the linear baseline divided by ``T * std`` of the advantages over valid
    steps, a constant (no gradient) so that the inner step size is in normalised units, as MAML's and ProMP's
    implementations normalise advantages."""
    horizon = tr.reward.shape[-1]
    rtg = reward_to_go(tr.reward, discount)
    base = linear_baseline(tr.obs, rtg, tr.mask, baseline_reg)
    valid = jnp.maximum(jnp.sum(tr.mask), 1.0)
    adv = (rtg - base) * tr.mask
    std = jnp.sqrt(jnp.sum((adv - jnp.sum(adv) / valid) ** 2 * tr.mask) / valid)
    scale = jax.lax.stop_gradient(1.0 / (horizon * (std + 1e-6)))
    return PGBatch(tr.obs, tr.action, tr.reward * scale, base * scale, tr.mask)


def outer_ratio_and_advantage(
    adapted: Any, post: Trajectories, *, log_prob_fn: Callable, discount, baseline_reg
) -> tuple[jax.Array, jax.Array]:
    """The adapted policy's likelihood ratio on the post-adaptation data and that data's standardised advantages
    (:func:`standardized_advantage` against the normalised baseline of :func:`normalized_pg_batch`), ``[N, T]``."""
    ratio = jnp.exp(log_prob_fn(adapted, post.obs, post.action) - post.log_prob)
    baseline = normalized_pg_batch(post, discount=discount, baseline_reg=baseline_reg).baseline
    if baseline is None:  # normalized_pg_batch always fills it
        raise AssertionError("normalized_pg_batch returned no baseline")
    return ratio, standardized_advantage(post.reward, baseline, post.mask, discount)


def promp_outer_loss(adapted: Any, post: Trajectories, *, clip_eps, **ratio_kwargs) -> jax.Array:
    """ProMP's clipped surrogate of the adapted parameters on one task's post-adaptation data, negated (a loss),
    averaged over valid steps (``ratio_kwargs``: those of :func:`outer_ratio_and_advantage`)."""
    ratio, adv = outer_ratio_and_advantage(adapted, post, **ratio_kwargs)
    # clipped_surrogate_loss averages over all [N, T] entries; rescale to an average over valid steps
    return clipped_surrogate_loss(ratio, adv, clip_eps) * post.mask.size / jnp.sum(post.mask)


def outer_surrogate_gain(adapted: Any, post: Trajectories, **ratio_kwargs) -> jax.Array:
    """MAML-TRPO's unclipped surrogate ``E[pi_adapted(a|s) / pi_old(a|s) A]`` over one task's valid steps."""
    ratio, adv = outer_ratio_and_advantage(adapted, post, **ratio_kwargs)
    return jnp.sum(ratio * adv) / jnp.sum(post.mask)


def promp_meta_loss(params: Any, batches: Any, post: Trajectories, *, adapt_fn: Callable, clip_eps, **ratio_kwargs):
    """ProMP's outer loss: the mean over tasks (the leading axis of ``batches`` and ``post``) of
    :func:`promp_outer_loss` at ``adapt_fn(params, batches_i)``, differentiable through the adaptation."""
    one = lambda b, tr: promp_outer_loss(adapt_fn(params, b), tr, clip_eps=clip_eps, **ratio_kwargs)
    return jnp.mean(jax.vmap(one)(batches, post))


def meta_surrogate_gain(params: Any, batches: Any, post: Trajectories, *, adapt_fn: Callable, **ratio_kwargs):
    """MAML-TRPO's objective: the mean over tasks of :func:`outer_surrogate_gain` at ``adapt_fn(params, batches_i)``."""
    one = lambda b, tr: outer_surrogate_gain(adapt_fn(params, b), tr, **ratio_kwargs)
    return jnp.mean(jax.vmap(one)(batches, post))


def meta_kl(params: Any, batches: Any, post: Trajectories, old: Any, *, adapt_fn: Callable, dist_fn: Callable):
    """MAML-TRPO's trust region: the mean over tasks of ``KL(pi_{old_i} || pi_{adapt_fn(params, batches_i)})`` over
    the valid post-adaptation states (``dist_fn(params, obs)`` a distribution)."""

    def one(b, tr, old_i):
        kl = dist_fn(old_i, tr.obs).kl_divergence(dist_fn(adapt_fn(params, b), tr.obs))
        return jnp.sum(kl * tr.mask) / jnp.sum(tr.mask)

    return jnp.mean(jax.vmap(one)(batches, post, old))


# ------------------------------------------------------------------------------------------------------ CAVIA


class ContextParams(NamedTuple):
    """CAVIA's parameters (Zintgraf et al. 2019, "Fast Context Adaptation via Meta-Learning"): the network weights
    ``theta``, shared by all tasks and learned only in the outer loop, and the task's context ``phi`` (a vector fed
    to the network beside its input), set to 0 at the start of every task and the only thing the inner loop adapts."""

    theta: Any
    phi: jax.Array


def context_inner_step(
    params: ContextParams,
    batch: PGBatch,
    *,
    log_prob_fn: Callable[[ContextParams, Any, Any], jax.Array],
    alpha,
    surrogate: str = "dice",
    first_order: bool = False,
    discount=1.0,
) -> ContextParams:
    """CAVIA's inner step (Zintgraf et al. 2019, eq. 2 as gradient ascent on the surrogate ``L``):

        phi' = phi + alpha * grad_phi L(theta, phi),   theta' = theta.

    :func:`vpg_inner_step` on ``phi`` alone, ``theta`` held fixed inside ``log_prob_fn``. Differentiating ``phi'``
    w.r.t. ``theta`` gives the mixed second derivative ``alpha * d/dtheta grad_phi L`` that CAVIA's meta-gradient
    (eq. 4) needs; with ``surrogate='dice'`` its expectation is exact. ``first_order=True`` stops it: ``theta`` then
    gets only the outer loss's direct gradient at ``(theta, phi')``.
    """
    phi_log_prob = lambda phi, obs, action: log_prob_fn(params._replace(phi=phi), obs, action)
    phi = vpg_inner_step(
        params.phi,
        batch,
        log_prob_fn=phi_log_prob,
        alpha=alpha,
        surrogate=surrogate,
        first_order=first_order,
        discount=discount,
    )
    return params._replace(phi=phi)


def context_adapt(params: ContextParams, batches: list[PGBatch], **inner_step_kwargs) -> ContextParams:
    """CAVIA's adaptation: one :func:`context_inner_step` per batch ``D^0..D^{K-1}``, in order (pure: ``jax.grad``
    of a loss of the result w.r.t. ``params.theta`` is the second-order meta-gradient)."""
    for batch in batches:
        params = context_inner_step(params, batch, **inner_step_kwargs)
    return params


def context_inner_gradient(params: ContextParams, batch: PGBatch, *, log_prob_fn: Callable, **surrogate_kwargs):
    """``grad_phi L(theta, phi)``: :func:`inner_gradient` w.r.t. the context only, a function of both."""
    phi_log_prob = lambda phi, obs, action: log_prob_fn(params._replace(phi=phi), obs, action)
    return inner_gradient(params.phi, batch, log_prob_fn=phi_log_prob, **surrogate_kwargs)


def context_linearized_step(grad_fn: Callable, params: ContextParams, lr: Any, first_order: bool):
    """CAVIA's counterpart of :func:`linearized_step`: ``phi + lr * grad_fn(params)`` (``grad_fn`` the context
    gradient, a function of ``(theta, phi)``) and, unless ``first_order``, the pull-back ``back(g) = J^T g.phi`` with
    ``J = d grad_fn / d(theta, phi)`` from one ``jax.vjp``, so that :func:`backprop_inner_steps`'s
    ``g + lr * back(g)`` is the step's vector-Jacobian product. Unlike MAML's, this Jacobian is not symmetric
    (``[[0, 0], [H_phi,theta, H_phi,phi]]``), hence a VJP rather than ``jax.linearize``'s JVP."""
    if first_order:
        return params._replace(phi=params.phi + lr * grad_fn(params)), None
    g, vjp = jax.vjp(grad_fn, params)
    return params._replace(phi=params.phi + lr * g), lambda cot: vjp(cot.phi)[0]


# ------------------------------------------------------------------------- what a gradient-based inner loop adapts


class Adaptation(NamedTuple):
    """A gradient-based meta-learner's inner loop as pure functions; ``p`` is what the policy network applies,
    ``params`` what the outer step updates.

    - ``start(params) -> p``: where every task starts (MAML: ``params``; CAVIA: ``(theta, phi = 0)``).
    - ``steps(p, batches, first_order) -> p``: one inner step per batch, in order (differentiable).
    - ``linearized_step(p, batch) -> (p', back)``: one inner step and the linear map ``back`` with which
      :func:`backprop_inner_steps` pulls a gradient at ``p'`` back to ``p`` (``g + lr * back(g)``; ``None``: first
      order).
    - ``meta_grad(g) -> g``: a gradient w.r.t. ``start(params)`` as one w.r.t. ``params``.
    """

    start: Callable
    steps: Callable
    linearized_step: Callable
    meta_grad: Callable


def maml_adaptation(inner: dict, alpha, first_order: bool) -> Adaptation:
    """MAML (Finn et al. 2017): every parameter takes ``theta' = theta + alpha grad L(theta)`` (:func:`adapt`);
    the fused pull-back is the Hessian-vector product of one ``jax.linearize`` (:func:`linearized_step`), since the
    step's Jacobian ``I + alpha H`` is symmetric. ``inner``: ``log_prob_fn``, ``surrogate``, ``discount``."""

    def steps(params, batches, first_order_now):
        return adapt(params, batches, alpha=alpha, first_order=first_order_now, **inner)

    def linearized(params, batch):
        return linearized_step(partial(inner_gradient, batch=batch, **inner), params, alpha, first_order)

    identity = lambda tree: tree
    return Adaptation(identity, steps, linearized, identity)


def context_adaptation(inner: dict, alpha, first_order: bool, num_context_params: int) -> Adaptation:
    """CAVIA (Zintgraf et al. 2019): every task starts from ``(theta, phi = 0)``; the steps move ``phi`` only
    (:func:`context_adapt`); the fused pull-back is a VJP (:func:`context_linearized_step`); the meta-gradient is
    the ``theta`` part (``phi``'s start is fixed at 0, not learned)."""
    start = lambda theta: ContextParams(theta, jnp.zeros((num_context_params,), jnp.float32))

    def steps(params, batches, first_order_now):
        return context_adapt(params, batches, alpha=alpha, first_order=first_order_now, **inner)

    def linearized(params, batch):
        grad_fn = partial(context_inner_gradient, batch=batch, **inner)
        return context_linearized_step(grad_fn, params, alpha, first_order)

    return Adaptation(start, steps, linearized, lambda grad: grad.theta)
