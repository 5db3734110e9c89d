"""BCQ and AlgaeDICE losses (jaxrl.losses.generative): hand-computed known answers and tiny numpy references with
linear networks; jit and vmap over traced hyperparameters."""

import functools
import math
from typing import NamedTuple

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl.losses import generative as G


class _Jitted:
    """``J.name(*args, **kw)`` = ``jax.jit(partial(G.name, **kw))(*args)`` (one compile per call)."""

    def __getattr__(self, name):
        f = getattr(G, name)
        return lambda *args, **kw: jax.jit(functools.partial(f, **kw))(*args)


J = _Jitted()


class Batch(NamedTuple):  # the Transition fields the losses read
    obs: jax.Array
    action: jax.Array
    reward: jax.Array = None
    next_obs: jax.Array = None
    terminated: jax.Array = None


def q_member(p, obs, act):  # one linear critic: [B]
    return obs @ p["wo"] + act @ p["wa"] + p["b"]


def q_apply(p, obs, act):  # the ensemble (params with a leading [E] axis): [E, B]
    return jax.vmap(q_member, in_axes=(0, None, None))(p, obs, act)


def twin_q(wo, wa, b):
    return {"wo": jnp.asarray(wo, jnp.float32), "wa": jnp.asarray(wa, jnp.float32), "b": jnp.asarray(b, jnp.float32)}


OBS = np.array([[1.0, 0.0], [0.0, 2.0]], np.float32)
NEXT_OBS = np.array([[0.5, 1.0], [1.0, -1.0]], np.float32)
ACTIONS = np.array([[0.2], [-0.4]], np.float32)
BATCH = Batch(
    jnp.asarray(OBS), jnp.asarray(ACTIONS), jnp.asarray([1.0, -0.5]), jnp.asarray(NEXT_OBS), jnp.asarray([0.0, 1.0])
)
# twin linear critics: Q_e(s, a) = s . wo_e + a . wa_e + b_e
Q = twin_q([[1.0, 0.5], [-1.0, 2.0]], [[2.0], [-1.0]], [0.1, 0.3])


def q_np(e, obs, act, q=Q):
    return obs @ np.asarray(q["wo"][e]) + act @ np.asarray(q["wa"][e]) + float(q["b"][e])


# ================================================================================================= BCQ


def test_gaussian_kl_known_answer():
    kl = G.gaussian_kl_to_standard(jnp.array([0.0, 1.0, 0.0]), jnp.array([0.0, 0.0, math.log(2.0)]))
    # -1/2 (1 + log s^2 - m^2 - s^2): 0; -1/2 (1 + 0 - 1 - 1) = 1/2; -1/2 (1 + 2 ln 2 - 4) = 3/2 - ln 2
    np.testing.assert_allclose(np.asarray(kl), [0.0, 0.5, 1.5 - math.log(2.0)], rtol=1e-6)


def _vae_fns():
    """Encoder ignores its inputs (mean m, log-std ls per latent); decoder D(s, z) = tanh(s . u + z . v)."""
    encode = lambda p, obs, a: (
        jnp.broadcast_to(p["m"], obs.shape[:-1] + p["m"].shape),
        jnp.broadcast_to(p["ls"], obs.shape[:-1] + p["ls"].shape),
    )
    decode = lambda p, obs, z: jnp.tanh(obs @ p["u"] + z @ p["v"])
    return encode, decode


def test_vae_loss_reference():
    encode, decode = _vae_fns()
    params = {
        "m": jnp.array([0.3, -0.2]),
        "ls": jnp.array([-10.0, 0.5]),  # -10 is clipped to -4
        "u": jnp.array([[0.5], [-0.25]]),
        "v": jnp.array([[1.0], [2.0]]),
    }
    key = jax.random.PRNGKey(3)
    loss, m = J.vae_loss(params, BATCH, key, encode_apply=encode, decode_apply=decode, kl_weight=0.5)
    eps = np.asarray(jax.random.normal(key, (2, 2)))
    ls = np.array([-4.0, 0.5])
    z = np.array([0.3, -0.2]) + np.exp(ls) * eps
    recon = np.tanh(OBS @ np.array([[0.5], [-0.25]]) + z @ np.array([[1.0], [2.0]]))
    recon_loss = np.mean((recon - ACTIONS) ** 2)
    kl = np.mean(-0.5 * (1 + 2 * ls - np.array([0.3, -0.2]) ** 2 - np.exp(2 * ls)))  # same for both rows
    np.testing.assert_allclose(float(m["recon_loss"]), recon_loss, rtol=1e-5)
    np.testing.assert_allclose(float(m["kl"]), kl, rtol=1e-5)
    np.testing.assert_allclose(float(loss), recon_loss + 0.5 * kl, rtol=1e-5)
    # the latent is reparameterised: the reconstruction term has a gradient w.r.t. the encoder's mean
    g = jax.grad(lambda p: G.vae_loss(p, BATCH, key, encode_apply=encode, decode_apply=decode, kl_weight=0.0)[0])(
        params
    )
    assert np.all(np.abs(np.asarray(g["m"])) > 0)


def test_clipped_latent_and_perturbation_known_answer():
    key = jax.random.PRNGKey(0)
    z = G.clipped_latent(key, (1000, 2), 0.5)
    np.testing.assert_array_equal(np.asarray(z), np.clip(np.asarray(jax.random.normal(key, (1000, 2))), -0.5, 0.5))
    assert float(jnp.max(jnp.abs(z))) == pytest.approx(0.5)
    a = jnp.array([0.5, 0.99, -0.2])
    raw = jnp.array([0.0, 10.0, math.atanh(0.5)])
    # 0.5 + 0; 0.99 + 0.05 tanh(10) -> clipped to 1; -0.2 + 0.05 * 0.5
    np.testing.assert_allclose(np.asarray(G.perturb_actions(a, raw, 0.05)), [0.5, 1.0, -0.175], rtol=1e-6)


def test_soft_clipped_value_known_answer():
    q = jnp.array(
        [
            [[1.0, 0.0], [3.0, -1.0], [2.0, 5.0]],  # critic 1: [N=3, B=2]
            [[2.0, 4.0], [0.0, -3.0], [2.5, 1.0]],
        ]
    )  # critic 2
    # lambda = 0.75: per candidate 0.75 min + 0.25 max
    # b=0: n0 0.75*1 + 0.25*2 = 1.25, n1 0.75*0 + 0.25*3 = 0.75, n2 0.75*2 + 0.25*2.5 = 2.125 -> 2.125
    # b=1: n0 0.75*0 + 0.25*4 = 1.0, n1 0.75*-3 + 0.25*-1 = -2.5, n2 0.75*1 + 0.25*5 = 2.0 -> 2.0
    np.testing.assert_allclose(np.asarray(G.bcq_soft_clipped_value(q, 0.75)), [2.125, 2.0], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(G.bcq_soft_clipped_value(q, 1.0)), [2.0, 4.0 * 0 + 1.0], rtol=1e-6)


def _const_decoder(p, obs, z):  # ignores z: G(s) = s . d
    return obs @ p["d"]


def test_bcq_critic_loss_reference():
    vae = {"d": jnp.array([[0.5], [-0.5]])}
    perturb = lambda p, obs, a: jnp.broadcast_to(p["x"], a.shape)  # xi_raw constant
    target_pert = {"x": jnp.array([math.atanh(0.4)])}  # Phi tanh = 0.1 * 0.4 = 0.04
    target_q = twin_q([[0.5, 0.5], [1.0, -1.0]], [[1.0], [3.0]], [0.0, 0.2])
    loss, m = J.bcq_critic_loss(
        Q,
        BATCH,
        jax.random.PRNGKey(0),
        q_apply=q_apply,
        target_q_params=target_q,
        perturb_apply=perturb,
        target_perturb_params=target_pert,
        vae_params=vae,
        decode_apply=_const_decoder,
        latent_dim=3,
        discount=0.9,
        lam=0.75,
        max_perturbation=0.1,
        num_samples=4,
    )
    a_next = np.clip(NEXT_OBS @ np.array([[0.5], [-0.5]]) + 0.04, -1, 1)  # [[-0.21], [1.0 -> 1.0]]
    q1, q2 = q_np(0, NEXT_OBS, a_next, target_q), q_np(1, NEXT_OBS, a_next, target_q)
    v = 0.75 * np.minimum(q1, q2) + 0.25 * np.maximum(q1, q2)  # all N candidates equal
    y = np.array([1.0, -0.5]) + 0.9 * np.array([1.0, 0.0]) * v
    expected = sum(np.mean((q_np(e, OBS, ACTIONS) - y) ** 2) for e in range(2))
    np.testing.assert_allclose(float(m["target"]), y.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_bcq_target_maximises_over_candidates():
    """With z-dependent candidates the target is the max over N of the soft-clipped value (N=1 <= N=16)."""
    decode = lambda p, obs, z: jnp.tanh(z[..., :1] * 4.0)
    perturb = lambda p, obs, a: jnp.zeros_like(a)
    kw = dict(
        q_apply=q_apply,
        target_q_params=Q,
        perturb_apply=perturb,
        target_perturb_params={},
        vae_params={},
        decode_apply=decode,
        latent_dim=1,
        discount=0.9,
        lam=0.75,
        max_perturbation=0.05,
    )
    key = jax.random.PRNGKey(1)
    y1 = J.bcq_critic_loss(Q, BATCH, key, num_samples=1, **kw)[1]["target"]
    y16 = J.bcq_critic_loss(Q, BATCH, key, num_samples=16, **kw)[1]["target"]
    assert float(y16) > float(y1)
    # the largest Q over a in tanh(4 [-0.5, 0.5]) = [-0.964, 0.964] (Q is linear in a): a bound on the target
    a_best = np.tanh(2.0) * np.sign(np.asarray(Q["wa"])[:, 0])
    bound = max(q_np(e, NEXT_OBS, np.full((2, 1), a_best[e])).max() for e in range(2))
    assert float(y16) <= 1.0 + 0.9 * bound


def test_bcq_actor_loss_known_answer_and_gradient():
    vae = {"d": jnp.array([[0.0], [0.0]])}  # G(s) = 0
    perturb = lambda p, obs, a: jnp.broadcast_to(p["w"], a.shape)
    params = {"w": jnp.array([0.3])}
    kw = dict(
        perturb_apply=perturb,
        q_apply=q_apply,
        q_params=Q,
        vae_params=vae,
        decode_apply=_const_decoder,
        latent_dim=2,
        max_perturbation=0.1,
    )
    loss, m = J.bcq_actor_loss(params, BATCH, jax.random.PRNGKey(0), **kw)
    a = 0.1 * math.tanh(0.3)
    expected = -np.mean(q_np(0, OBS, np.full((2, 1), a)))  # Q_1 only
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    g = jax.jit(jax.grad(lambda p: G.bcq_actor_loss(p, BATCH, jax.random.PRNGKey(0), **kw)[0]))(params)
    # dL/dw = -wa_1 * Phi * (1 - tanh^2 w)
    np.testing.assert_allclose(float(g["w"][0]), -2.0 * 0.1 * (1 - math.tanh(0.3) ** 2), rtol=1e-5)


# =========================================================================================== AlgaeDICE


def test_algae_f_and_grad_known_answer():
    x = jnp.array([-2.0, 0.0, 1.0, 4.0])
    np.testing.assert_allclose(np.asarray(G.algae_f(x, 2.0)), [2.0, 0.0, 0.5, 8.0], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(G.algae_f(x, 1.5)), [2**1.5 / 1.5, 0.0, 1 / 1.5, 8 / 1.5], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(G.algae_f_grad(x, 2.0)), [0.0, 0.0, 1.0, 4.0], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(G.algae_f_grad(x, 1.5)), [0.0, 0.0, 1.0, 2.0], rtol=1e-6)
    # f_grad is f's derivative for x > 0
    np.testing.assert_allclose(float(jax.grad(G.algae_f)(3.0, 1.5)), float(G.algae_f_grad(3.0, 1.5)), rtol=1e-6)


def test_algae_objectives_known_answer():
    nu_t, y_t, nu_0 = jnp.array([1.0, 2.0]), jnp.array([2.0, 0.0]), jnp.array([3.0, 5.0])
    kw = dict(discount=0.9, alpha=0.5, p=2.0)
    # alpha (1 - gamma) mean nu0 = 0.5 * 0.1 * 4 = 0.2; mean f(y - nu) = mean(1/2, 2) = 1.25
    assert float(G.algae_dual_objective(nu_t, y_t, nu_0, **kw)) == pytest.approx(1.45, rel=1e-6)
    # -mean[max(r, 0) r + 0.05 nu0]: residuals (1, -2) -> (1, 0): -(0.5 + 0.2) = -0.7
    assert float(G.algae_policy_objective(nu_t, y_t, nu_0, **kw)) == pytest.approx(-0.7, rel=1e-6)
    # the policy gradient w.r.t. y is -f'_+(r) / B (the weight is frozen), w.r.t. nu0 -alpha (1 - gamma) / B
    gy, g0 = jax.grad(lambda y, n0: G.algae_policy_objective(nu_t, y, n0, **kw), argnums=(0, 1))(y_t, nu_0)
    np.testing.assert_allclose(np.asarray(gy), [-0.5, 0.0], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(g0), [-0.025, -0.025], rtol=1e-6)
    # nu's minimiser for p = 2 with a fixed backup target and no s0 term is nu = y
    g_nu = jax.grad(lambda n: G.algae_dual_objective(n, y_t, nu_0, discount=0.9, alpha=0.0, p=2.0))(y_t)
    np.testing.assert_allclose(np.asarray(g_nu), [0.0, 0.0], atol=1e-7)


def test_algae_backup_known_answer():
    y = G.algae_backup(
        jnp.array([1.0, 1.0]),
        jnp.array([0.0, 1.0]),
        jnp.array([2.0, 2.0]),
        jnp.array([4.0, 4.0]),
        jnp.array([-1.0, -1.0]),
        discount=0.9,
        entropy_coef=0.2,
        online_mix=0.05,
    )
    # 1 + 0.9 (0.05 * 2 + 0.95 * 4 + 0.2) = 4.69; terminal: 1
    np.testing.assert_allclose(np.asarray(y), [4.69, 1.0], rtol=1e-6)


def det_policy(p, obs):  # deterministic "distribution": a = obs . w, log pi = 0
    return distrax.Independent(distrax.Deterministic(obs @ p["w"]), 1)


INIT_OBS = jnp.array([[0.0, 1.0], [2.0, 1.0]])
POLICY = {"w": jnp.array([[0.5], [-0.25]])}
TARGET_NU = twin_q([[0.5, 0.5], [1.0, -1.0]], [[1.0], [3.0]], [0.0, 0.2])


def _algae_reference(pol_w, discount=0.9, alpha=0.1, p=1.5, mix=0.05):
    a_tp1, a_0 = NEXT_OBS @ pol_w, np.asarray(INIT_OBS) @ pol_w
    target = np.minimum(q_np(0, NEXT_OBS, a_tp1, TARGET_NU), q_np(1, NEXT_OBS, a_tp1, TARGET_NU))
    dual, policy = 0.0, 0.0
    for e in range(2):
        y = np.array([1.0, -0.5]) + discount * np.array([1.0, 0.0]) * (
            mix * q_np(e, NEXT_OBS, a_tp1) + (1 - mix) * target
        )
        r = y - q_np(e, OBS, ACTIONS)
        nu0 = q_np(e, np.asarray(INIT_OBS), a_0)
        dual += alpha * (1 - discount) * nu0.mean() + np.mean(np.abs(r) ** p / p)
        policy += -np.mean(np.maximum(r, 0) ** (p - 1) * r + alpha * (1 - discount) * nu0) / 2
    return dual, policy


def test_algaedice_losses_reference():
    kw = dict(init_obs=INIT_OBS, discount=0.9, alpha=0.1, p=1.5, entropy_coef=0.3, online_mix=0.05)
    nu_loss, m = J.algaedice_nu_loss(
        Q,
        BATCH,
        jax.random.PRNGKey(0),
        nu_apply=q_apply,
        target_nu_params=TARGET_NU,
        policy_apply=det_policy,
        policy_params=POLICY,
        **kw,
    )
    actor_loss, am = J.algaedice_actor_loss(
        POLICY,
        BATCH,
        jax.random.PRNGKey(0),
        policy_apply=det_policy,
        nu_apply=q_apply,
        nu_params=Q,
        target_nu_params=TARGET_NU,
        **kw,
    )
    dual, policy = _algae_reference(np.asarray(POLICY["w"]))
    np.testing.assert_allclose(float(nu_loss), dual, rtol=1e-5)
    np.testing.assert_allclose(float(actor_loss), policy, rtol=1e-5)
    assert float(am["entropy"]) == 0.0  # deterministic policy: log pi = 0, the entropy term vanishes
    # policy gradient: finite differences of the reference with the f' weight frozen
    g = jax.jit(
        jax.grad(
            lambda pp: G.algaedice_actor_loss(
                pp,
                BATCH,
                jax.random.PRNGKey(0),
                policy_apply=det_policy,
                nu_apply=q_apply,
                nu_params=Q,
                target_nu_params=TARGET_NU,
                **kw,
            )[0]
        )
    )(POLICY)
    h = 1e-3
    w = np.asarray(POLICY["w"], np.float64)
    for i in range(2):
        dw = np.zeros_like(w)
        dw[i, 0] = h
        # the weight f'(r) is frozen, so differentiate the objective  -mean[sg(f'(r)) r + ...] with r's
        # weight evaluated at w (the residual r is linear in the policy's action here)
        fd = (_frozen_policy(w + dw, w) - _frozen_policy(w - dw, w)) / (2 * h)
        np.testing.assert_allclose(float(g["w"][i, 0]), fd, rtol=1e-3, atol=1e-5)
    # nu's gradient flows through nu(s', a') only via the online mix
    grad_nu = lambda mix: jax.jit(
        jax.grad(
            lambda q: G.algaedice_nu_loss(
                q,
                BATCH,
                jax.random.PRNGKey(0),
                nu_apply=q_apply,
                target_nu_params=TARGET_NU,
                policy_apply=det_policy,
                policy_params=POLICY,
                **dict(kw, online_mix=mix),
            )[0]
        )
    )(Q)
    assert not np.allclose(np.asarray(grad_nu(0.05)["wo"]), np.asarray(grad_nu(0.0)["wo"]))


def _frozen_policy(w, w_weight, discount=0.9, alpha=0.1, p=1.5, mix=0.05):
    def residuals(pw):
        a_tp1, a_0 = NEXT_OBS @ pw, np.asarray(INIT_OBS) @ pw
        target = np.minimum(q_np(0, NEXT_OBS, a_tp1, TARGET_NU), q_np(1, NEXT_OBS, a_tp1, TARGET_NU))
        out = []
        for e in range(2):
            y = np.array([1.0, -0.5]) + discount * np.array([1.0, 0.0]) * (
                mix * q_np(e, NEXT_OBS, a_tp1) + (1 - mix) * target
            )
            out.append((y - q_np(e, OBS, ACTIONS), q_np(e, np.asarray(INIT_OBS), a_0)))
        return out

    total = 0.0
    for (r, nu0), (r_w, _) in zip(residuals(w), residuals(w_weight)):
        total += -np.mean(np.maximum(r_w, 0) ** (p - 1) * r + alpha * (1 - discount) * nu0) / 2
    return total


def test_losses_jit_and_vmap_over_hyperparameters():
    kw = dict(
        nu_apply=q_apply,
        target_nu_params=TARGET_NU,
        policy_apply=det_policy,
        policy_params=POLICY,
        init_obs=INIT_OBS,
        discount=0.9,
        p=1.5,
    )
    alphas = jnp.array([0.0, 0.1, 1.0])
    losses = jax.jit(jax.vmap(lambda a: G.algaedice_nu_loss(Q, BATCH, jax.random.PRNGKey(0), alpha=a, **kw)[0]))(alphas)
    for a, l in zip([0.0, 0.1, 1.0], np.asarray(losses)):
        np.testing.assert_allclose(l, _algae_reference(np.asarray(POLICY["w"]), alpha=a)[0], rtol=1e-5)
    lams = jnp.array([0.0, 0.75, 1.0])
    q = jnp.arange(12.0).reshape(2, 3, 2) * jnp.array([1.0, -1.0])
    vals = jax.jit(jax.vmap(G.bcq_soft_clipped_value, in_axes=(None, 0)))(q, lams)
    for lam, v in zip([0.0, 0.75, 1.0], np.asarray(vals)):
        np.testing.assert_allclose(v, np.asarray(G.bcq_soft_clipped_value(q, lam)), rtol=1e-6)
