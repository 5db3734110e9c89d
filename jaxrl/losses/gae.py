"""Generalised advantage estimation (Schulman et al., 2016)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def generalized_advantage_estimation(
    r_t: jax.Array,
    v_t: jax.Array,
    v_tp1: jax.Array,
    discount_t: jax.Array,
    done_t: jax.Array,
    lambda_: float | jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """GAE(discount, lambda) by a reverse scan over time-major ``[T, ...]`` inputs.

        delta_t = r_t + discount_t * V(s_{t+1}) - V(s_t)
        A_t     = delta_t + discount_t * lambda * (1 - done_t) * A_{t+1}        (A_T = 0)

    ``discount_t`` is ``discount * (1 - terminated_t)``: a terminated step does not bootstrap, a truncated one does
    (``v_tp1`` is then the value of the final, pre-reset observation). ``done_t`` (terminated or truncated) cuts
    the trace so advantages never leak across episodes. For ``done_t = terminated_t`` this is exactly rlax's
    ``truncated_generalized_advantage_estimation``.

    Returns ``(advantages, value_targets)`` with ``value_targets = advantages + v_t``.
    """
    continue_t = discount_t * (1.0 - done_t.astype(v_t.dtype))
    delta_t = r_t + discount_t * v_tp1 - v_t

    def backward(a_tp1, xs):
        delta, cont = xs
        a = delta + lambda_ * cont * a_tp1
        return a, a

    _, adv = jax.lax.scan(backward, jnp.zeros_like(delta_t[0]), (delta_t, continue_t), reverse=True)
    return adv, adv + v_t
