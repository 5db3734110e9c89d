"""Offline-RL losses: hand-computed known answers, tiny reference computations with linear networks, jit/vmap."""

import functools
import math
from typing import NamedTuple

import distrax
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.data import dataset as ds
from jaxrl.losses import offline as L


class _Jitted:
    """``J.name(*args, **kw)`` = ``jax.jit(partial(L.name, **kw))(*args)``: one compile per call instead of
    one per eager op (much faster on a small, shared CPU)."""

    def __getattr__(self, name):
        f = getattr(L, name)
        return lambda *args, **kw: jax.jit(functools.partial(f, **kw))(*args)


J = _Jitted()

# --------------------------------------------------------------------------------------- linear networks


def q_member(p, obs, act):  # one critic: [B]
    return obs @ p["wo"] + act @ p["wa"] + p["b"]


def q_apply(p, obs, act):  # the ensemble (params with a leading [E] axis): [E, B]
    return jax.vmap(q_member, in_axes=(0, None, None))(p, obs, act)


def v_apply(p, obs):
    return obs @ p["w"] + p["b"]


def policy_apply(p, obs):
    loc = obs @ p["w"]
    return distrax.MultivariateNormalDiag(loc, jnp.exp(p["log_std"]) * jnp.ones_like(loc))


def actor_apply(p, obs):
    return obs @ p["w"]


def uniform_policy(p, obs):  # constant density (1/2)^A on [-1, 1]^A
    a = p["w"].shape[1]
    return distrax.Independent(distrax.Uniform(-jnp.ones((obs.shape[0], a)), jnp.ones((obs.shape[0], a))), 1)


class Extras(NamedTuple):
    mc_returns: jax.Array = None
    next_action: jax.Array = None


class Batch(NamedTuple):  # the Transition fields the losses read
    obs: jax.Array
    action: jax.Array
    reward: jax.Array = None
    next_obs: jax.Array = None
    terminated: jax.Array = None
    extras: Extras = Extras()


B, O, A, E = 3, 2, 2, 2
OBS = jnp.array([[1.0, 0.0], [0.0, 2.0], [1.0, -1.0]])
NXT = jnp.array([[0.5, 0.5], [1.0, 1.0], [-1.0, 0.0]])
ACT = jnp.array([[0.5, -0.5], [0.0, 0.25], [-0.75, 0.5]])
BATCH = Batch(
    obs=OBS,
    action=ACT,
    reward=jnp.array([1.0, 0.0, -1.0]),
    next_obs=NXT,
    terminated=jnp.array([0.0, 1.0, 0.0]),
    extras=Extras(next_action=jnp.array([[0.25, 0.25], [0.0, 0.0], [0.5, -0.5]])),
)
QP = dict(wo=jnp.array([[1.0, -1.0], [0.5, 2.0]]), wa=jnp.array([[1.0, 0.0], [2.0, -1.0]]), b=jnp.array([0.0, 0.5]))
QT = dict(wo=jnp.array([[0.5, -1.0], [1.0, 1.0]]), wa=jnp.array([[0.5, 1.0], [1.0, 0.5]]), b=jnp.array([0.1, 0.0]))
VP = dict(w=jnp.array([1.0, -0.5]), b=jnp.array(0.2))
PP = dict(w=jnp.array([[0.1, 0.2], [-0.3, 0.1]]), log_std=jnp.array([-0.5, 0.0]))
NP = lambda x: np.asarray(x, np.float64)


def q_ref(p, obs, act):  # numpy [E, B]
    return np.stack([NP(obs) @ NP(p["wo"][e]) + NP(act) @ NP(p["wa"][e]) + float(p["b"][e]) for e in range(E)])


def normal_logp(a, loc, log_std):
    a, loc, log_std = NP(a), NP(loc), NP(log_std)
    return np.sum(-0.5 * ((a - loc) / np.exp(log_std)) ** 2 - log_std - 0.5 * math.log(2 * math.pi), -1)


# ------------------------------------------------------------------------------------------- pieces


def test_expectile_known_answer():
    np.testing.assert_allclose(J.expectile_loss(jnp.array([-2.0, 1.0]), 0.7), [0.3 * 4, 0.7 * 1], rtol=1e-6)
    np.testing.assert_allclose(J.expectile_loss(jnp.array([-2.0, 1.0]), 0.5), [2.0, 0.5])


def test_weights_known_answer():
    np.testing.assert_allclose(
        J.exp_advantage_weights(jnp.array([0.0, 1.0, 10.0]), 1.0, 100.0), [1.0, math.e, 100.0], rtol=1e-6
    )
    np.testing.assert_allclose(
        J.awr_weights(jnp.array([-1.0, 2.0, 100.0]), 2.0, 20.0), [math.exp(-0.5), math.e, 20.0], rtol=1e-6
    )
    np.testing.assert_array_equal(J.crr_weights(jnp.array([-1.0, 0.0, 2.0]), mode="binary"), [0, 0, 1])
    np.testing.assert_allclose(J.crr_weights(jnp.array([1.0]), mode="exp", temperature=0.5), [math.e**2], rtol=1e-6)


def test_cql_pieces_known_answer():
    q = jnp.array([[0.0], [math.log(3.0)]])  # [M=2, B=1]
    np.testing.assert_allclose(J.cql_logsumexp(q, jnp.zeros((2, 1))), [math.log(2.0)], rtol=1e-6)
    # densities 1/2: log((2 + 6) / 2) = log 4
    np.testing.assert_allclose(J.cql_logsumexp(q, jnp.full((2, 1), math.log(0.5))), [math.log(4.0)], rtol=1e-6)
    np.testing.assert_allclose(J.cql_rho_estimate(q), [0.75 * math.log(3.0)], rtol=1e-6)
    assert J.cql_logsumexp(jnp.zeros((E, 2, 1)), jnp.zeros((2, 1))).shape == (E, 1)
    loss, grad = jax.value_and_grad(L.cql_alpha_loss)(jnp.log(2.0), jnp.array([4.0, 6.0]), 3.0)
    np.testing.assert_allclose([loss, grad], [-4.0, -4.0], rtol=1e-6)  # -2 * (5 - 3)


def test_mmd_known_answer():
    x, y = jnp.zeros((2, 1)), jnp.ones((2, 1))
    np.testing.assert_allclose(J.mmd_squared(x, y, kernel="gaussian", sigma=1.0), 2 - 2 * math.exp(-0.5), rtol=1e-6)
    np.testing.assert_allclose(
        J.mmd_squared(jnp.zeros((1, 1)), jnp.full((1, 1), 2.0), kernel="laplacian", sigma=1.0),
        2 - 2 * math.exp(-2.0),
        rtol=1e-6,
    )
    np.testing.assert_allclose(J.mmd_squared(x, x), 0.0, atol=1e-7)
    # x = {0, 2}, y = {0}, laplacian sigma = 1: kxx = (2 + 2e^-2)/4, kxy = (1 + e^-2)/2, kyy = 1
    xx = jnp.array([[0.0], [2.0]])
    want = (2 + 2 * math.exp(-2)) / 4 - (1 + math.exp(-2)) + 1
    np.testing.assert_allclose(J.mmd_squared(xx, jnp.zeros((1, 1)), sigma=1.0), want, rtol=1e-6)


def test_kl_mc_known_answer():
    pi = distrax.MultivariateNormalDiag(jnp.zeros((4, 1)), jnp.ones((4, 1)))
    beta = distrax.MultivariateNormalDiag(jnp.ones((4, 1)), jnp.ones((4, 1)))
    key = jax.random.key(0)
    np.testing.assert_allclose(L.kl_divergence_mc(pi, pi, key, 3), np.zeros(4), atol=1e-6)
    # log N(a; 0, 1) - log N(a; 1, 1) = 0.5 - a
    a, _ = pi.sample_and_log_prob(seed=key, sample_shape=(3,))
    np.testing.assert_allclose(L.kl_divergence_mc(pi, beta, key, 3), np.mean(0.5 - NP(a)[..., 0], 0), rtol=1e-5)


def test_model_based_pieces_known_answer():
    var = jnp.array([[[3.0, 4.0]], [[0.0, 1.0]]])  # [E=2, B=1, D=2]: norms 5 and 1
    np.testing.assert_allclose(J.mopo_uncertainty(var), [5.0])
    np.testing.assert_allclose(J.mopo_penalized_reward(jnp.array([10.0]), var, 0.5), [7.5])
    preds = jnp.array([[[0.0], [0.0]], [[0.1], [1.0]], [[0.2], [3.0]]])  # [E=3, B=2, D=1]
    np.testing.assert_allclose(J.ensemble_disagreement(preds), [0.2, 3.0], rtol=1e-6)
    r, d, u = J.morel_halting(preds, jnp.array([1.0, 2.0]), jnp.array([0.0, 0.0]), threshold=1.0, r_max=10.0)
    np.testing.assert_allclose(r, [1.0, -10.0])
    np.testing.assert_array_equal(d, [0, 1])
    np.testing.assert_array_equal(u, [0, 1])
    np.testing.assert_allclose(
        J.gaussian_nll(jnp.zeros(1), jnp.zeros(1), jnp.ones(1)), 0.5 * (1 + math.log(2 * math.pi)), rtol=1e-6
    )
    np.testing.assert_allclose(
        J.gaussian_nll(jnp.zeros(1), jnp.log(jnp.full(1, 4.0)), jnp.full(1, 2.0)),
        0.5 * (1 + math.log(4) + math.log(2 * math.pi)),
        rtol=1e-6,
    )


def test_gradient_similarity_known_answer():
    g = jnp.array([[[1.0, 0.0]], [[0.0, 2.0]]])
    np.testing.assert_allclose(J.gradient_similarity(g), [0.0], atol=1e-7)
    g = jnp.array([[[1.0, 0.0]], [[3.0, 0.0]]])
    np.testing.assert_allclose(J.gradient_similarity(g), [2.0], rtol=1e-6)  # both orders, / (E-1)
    g = jnp.array([[[1.0, 0.0]], [[2.0, 0.0]], [[-1.0, 0.0]]])
    np.testing.assert_allclose(J.gradient_similarity(g), [-1.0], rtol=1e-6)  # 2 (1 - 1 - 1) / 2
    # linear critics: grad_a Q_e = wa_e = [1, 0] and [2, -1]: cos = 2 / sqrt(5), both orders
    pen = J.edac_diversity_penalty(QP, OBS, ACT, q_apply=q_apply)
    np.testing.assert_allclose(pen, 2 * (2 / math.sqrt(5)), rtol=1e-5)
    g = jax.grad(lambda p: J.edac_diversity_penalty(p, OBS, ACT, q_apply=q_apply))(QP)  # grad of grad
    assert np.isfinite(NP(g["wa"])).all() and np.abs(NP(g["wa"])).sum() > 0
    # a member with exactly zero action gradient (all its ReLUs off at (s, a)) counts as orthogonal, and the
    # penalty's gradient stays finite there (a plain |g| + eps had 0/0 in the norm's derivative: EDAC went NaN)
    g = jnp.array([[[0.0, 0.0]], [[1.0, 2.0]]])
    np.testing.assert_allclose(J.gradient_similarity(g), [0.0], atol=1e-7)
    assert np.isfinite(NP(jax.grad(lambda x: J.gradient_similarity(x)[0])(g))).all()


# ------------------------------------------------------------------------------------------ BC family


def test_bc_losses_reference():
    loss, _ = J.bc_nll_loss(PP, BATCH, policy_apply=policy_apply)
    want = -np.mean(normal_logp(ACT, NP(OBS) @ NP(PP["w"]), PP["log_std"]))
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    loss, _ = J.bc_mse_loss(PP, BATCH, actor_apply=actor_apply)
    np.testing.assert_allclose(loss, np.mean((NP(OBS) @ NP(PP["w"]) - NP(ACT)) ** 2), rtol=1e-5)
    w = jnp.array([1.0, 0.0, 2.0])
    loss, m = J.weighted_bc_loss(PP, BATCH, policy_apply=policy_apply, weights=w)
    want = -np.mean(NP(w) * normal_logp(ACT, NP(OBS) @ NP(PP["w"]), PP["log_std"]))
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    d = ds.make_dataset(np.zeros((4, 1)), np.zeros((4, 1)), [1, 1, 5, 0], np.zeros((4, 1)), [0, 1, 0, 1])
    np.testing.assert_array_equal(ds.top_episodes_mask(d, 0.5), [0, 0, 1, 1])


def test_td3_bc_and_rebrac_actor_known_answer():
    batch = Batch(obs=jnp.array([[1.0], [2.0]]), action=jnp.array([[0.0], [1.0]]))
    actor = dict(w=jnp.array([[0.5]]))  # pi = [0.5, 1.0]
    q = dict(wo=jnp.array([[1.0], [1.0]]), wa=jnp.array([[2.0], [1.0]]), b=jnp.zeros(2))
    # Q_1 = [2, 4]; lambda = 2.5 / 3; bc = mean([0.25, 0]) = 0.125
    loss, m = J.td3_bc_actor_loss(actor, batch, actor_apply=actor_apply, q_apply=q_apply, q_params=q, alpha=2.5)
    np.testing.assert_allclose(loss, -2.5 + 0.125, rtol=1e-6)
    # min_e Q = [1.5, 3]; lambda = 1 / 2.25; bc = [0.25, 0]: mean([0.25 - 1.5/2.25, -3/2.25]) = -0.875
    loss, m = J.rebrac_actor_loss(actor, batch, actor_apply=actor_apply, q_apply=q_apply, q_params=q, beta=1.0)
    np.testing.assert_allclose(loss, -0.875, rtol=1e-6)
    g = jax.grad(lambda p: J.td3_bc_actor_loss(p, batch, actor_apply=actor_apply, q_apply=q_apply, q_params=q)[0])(
        actor
    )
    # d/dw [-lambda mean(o + 2 w o) + mean((w o - a)^2)] at w = .5 (lambda fixed):
    # -lambda mean(2 o) + mean(2 (w o - a) o) = -(2.5 / 3) 3 + mean([1, 0]) = -2.5 + 0.5
    np.testing.assert_allclose(g["w"], [[-2.0]], rtol=1e-6)


# ------------------------------------------------------------------------------------------------- IQL


def test_iql_losses_reference():
    q_data = q_ref(QT, OBS, ACT).min(0)
    v = NP(OBS) @ NP(VP["w"]) + 0.2
    u = q_data - v
    want = np.mean(np.where(u < 0, 0.3, 0.7) * u**2)
    loss, _ = J.iql_value_loss(VP, BATCH, value_apply=v_apply, q_apply=q_apply, target_q_params=QT, expectile=0.7)
    np.testing.assert_allclose(loss, want, rtol=1e-5)

    y = NP(BATCH.reward) + 0.9 * (1 - NP(BATCH.terminated)) * (NP(NXT) @ NP(VP["w"]) + 0.2)
    want = np.sum(np.mean((q_ref(QP, OBS, ACT) - y) ** 2, -1))
    loss, _ = J.iql_critic_loss(QP, BATCH, q_apply=q_apply, value_apply=v_apply, value_params=VP, discount=0.9)
    np.testing.assert_allclose(loss, want, rtol=1e-5)

    w = np.minimum(np.exp(3.0 * u), 100.0)
    want = -np.mean(w * normal_logp(ACT, NP(OBS) @ NP(PP["w"]), PP["log_std"]))
    loss, _ = J.iql_actor_loss(
        PP,
        BATCH,
        policy_apply=policy_apply,
        q_apply=q_apply,
        target_q_params=QT,
        value_apply=v_apply,
        value_params=VP,
        inverse_temperature=3.0,
    )
    np.testing.assert_allclose(loss, want, rtol=1e-5)


def test_iql_jit_vmap_over_expectile_grid():
    f = jax.jit(
        jax.vmap(
            lambda tau: J.iql_value_loss(
                VP, BATCH, value_apply=v_apply, q_apply=q_apply, target_q_params=QT, expectile=tau
            )[0]
        )
    )
    out = f(jnp.array([0.5, 0.7, 0.9]))
    single = J.iql_value_loss(VP, BATCH, value_apply=v_apply, q_apply=q_apply, target_q_params=QT, expectile=0.7)[0]
    np.testing.assert_allclose(out[1], single, rtol=1e-6)
    assert out[0] < out[2] or out[0] > out[2]  # the grid entries differ


def test_awr_awac_crr():
    returns = jnp.array([2.0, 0.0, 1.0])
    v = NP(OBS) @ NP(VP["w"]) + 0.2
    loss, _ = J.awr_value_loss(VP, BATCH, value_apply=v_apply, returns=returns)
    np.testing.assert_allclose(loss, np.mean((v - NP(returns)) ** 2), rtol=1e-5)
    loss, _ = J.awr_actor_loss(
        PP, BATCH, policy_apply=policy_apply, value_apply=v_apply, value_params=VP, returns=returns, temperature=0.5
    )
    w = np.minimum(np.exp((NP(returns) - v) / 0.5), 20.0)
    np.testing.assert_allclose(loss, -np.mean(w * normal_logp(ACT, NP(OBS) @ NP(PP["w"]), PP["log_std"])), rtol=1e-5)
    # action-independent critic: A = 0 -> binary weights 0, exp weights 1 (plain BC)
    flat_q = dict(QP, wa=jnp.zeros_like(QP["wa"]))
    key = jax.random.key(0)
    kw = dict(policy_apply=policy_apply, q_apply=q_apply, q_params=flat_q)
    loss_bin, _ = J.advantage_weighted_actor_loss(PP, BATCH, key, mode="binary", **kw)
    loss_exp, m = J.advantage_weighted_actor_loss(PP, BATCH, key, mode="exp", **kw)
    np.testing.assert_allclose(loss_bin, 0.0, atol=1e-7)
    np.testing.assert_allclose(loss_exp, J.bc_nll_loss(PP, BATCH, policy_apply=policy_apply)[0], rtol=1e-5)
    np.testing.assert_allclose(m["advantage"], 0.0, atol=1e-5)


# ------------------------------------------------------------------------------------------------- CQL


def _cql(q_params, key, **kw):
    args = dict(
        q_apply=q_apply,
        target_q_params=QT,
        policy_apply=uniform_policy,
        policy_params=PP,
        discount=0.9,
        cql_alpha=5.0,
        num_samples=4,
    )
    args.update(kw)
    return jax.jit(functools.partial(L.cql_critic_loss, **args))(q_params, BATCH, key)


def test_cql_known_answer_action_independent_q():
    flat_q, flat_t = dict(QP, wa=jnp.zeros_like(QP["wa"])), dict(QT, wa=jnp.zeros_like(QT["wa"]))
    q = q_ref(flat_q, OBS, ACT)
    y = NP(BATCH.reward) + 0.9 * (1 - NP(BATCH.terminated)) * q_ref(flat_t, NXT, ACT).min(0)
    td = np.sum(np.mean((q - y) ** 2, -1))
    key = jax.random.key(1)
    # every sampled action has density (1/2)^A and the same Q: the gap is A log 2 per member
    loss, m = _cql(flat_q, key, target_q_params=flat_t)
    np.testing.assert_allclose(m["td_loss"], td, rtol=1e-5)
    np.testing.assert_allclose(m["cql_gap"], A * math.log(2), rtol=1e-5)
    np.testing.assert_allclose(loss, td + 5.0 * E * A * math.log(2), rtol=1e-5)
    loss, m = _cql(flat_q, key, target_q_params=flat_t, variant="rho")
    np.testing.assert_allclose(m["cql_gap"], 0.0, atol=1e-5)


def test_cql_jit_vmap_grad():
    key = jax.random.key(2)

    def loss(p, alpha, k):
        return J.cql_critic_loss(
            p,
            BATCH,
            k,
            q_apply=q_apply,
            target_q_params=QT,
            policy_apply=policy_apply,
            policy_params=PP,
            discount=0.9,
            cql_alpha=alpha,
            num_samples=4,
        )[0]

    # a grid of alphas x seeds compiles once; a gradient step lowers the loss
    f = jax.jit(jax.vmap(jax.value_and_grad(loss), in_axes=(None, 0, 0)))
    alphas, keys = jnp.array([0.0, 1.0]), jax.random.split(key, 2)
    vals, grads = f(QP, alphas, keys)
    assert vals.shape == (2,) and all(np.isfinite(NP(x)).all() for x in jax.tree.leaves(grads))
    stepped = jax.tree.map(lambda p, d: p - 1e-3 * d[1], QP, grads)
    assert f(stepped, alphas, keys)[0][1] < vals[1]  # same shapes: no recompile


# ---------------------------------------------------------------------------------------- BEAR / BRAC


def test_bear_actor_near_deterministic():
    tight = dict(PP, log_std=jnp.full((A,), -20.0))
    behaviour = dict(w=jnp.zeros((O, A)), log_std=jnp.full((A,), -20.0))
    key = jax.random.key(3)
    loss, m = J.bear_actor_loss(
        tight,
        BATCH,
        key,
        policy_apply=policy_apply,
        q_apply=q_apply,
        q_params=QP,
        behaviour_apply=policy_apply,
        behaviour_params=behaviour,
        log_lagrange=jnp.log(2.0),
        epsilon=0.05,
        kernel="gaussian",
        sigma=1.0,
        num_samples=3,
    )
    loc = NP(OBS) @ NP(PP["w"])
    mmd = np.sqrt(2 - 2 * np.exp(-np.sum(loc**2, -1) / 2) + 1e-6)
    q = q_ref(QP, OBS, loc).min(0)
    np.testing.assert_allclose(loss, np.mean(-q + 2.0 * (mmd - 0.05)), rtol=1e-4)
    np.testing.assert_allclose(m["mmd"], mmd.mean(), rtol=1e-4)
    lag = jax.grad(L.lagrange_loss)(jnp.log(2.0), m["mmd"], 0.05)
    assert lag < 0  # constraint violated -> multiplier grows


def test_brac():
    key = jax.random.key(4)
    kw = dict(
        q_apply=q_apply,
        target_q_params=QT,
        policy_apply=policy_apply,
        policy_params=PP,
        behaviour_apply=policy_apply,
        discount=0.9,
        alpha=0.5,
    )
    # BRAC-v with a shifted behaviour policy: reference with the same samples
    beh = dict(PP, w=PP["w"] + 0.5)
    lv, mv = J.brac_critic_loss(QP, BATCH, key, behaviour_params=beh, num_samples=2, **kw)
    k_a, k_d = jax.random.split(key)
    dist = policy_apply(PP, NXT)
    a_tp1 = dist.sample(seed=k_a)
    s, logp = dist.sample_and_log_prob(seed=k_d, sample_shape=(2,))
    kl = np.mean(NP(logp) - normal_logp(s, NP(NXT) @ NP(beh["w"]), beh["log_std"]), 0)
    y = NP(BATCH.reward) + 0.9 * (1 - NP(BATCH.terminated)) * (q_ref(QT, NXT, a_tp1).min(0) - 0.5 * kl)
    np.testing.assert_allclose(lv, np.sum(np.mean((q_ref(QP, OBS, ACT) - y) ** 2, -1)), rtol=1e-4)
    np.testing.assert_allclose(mv["kl_tp1"], kl.mean(), rtol=1e-4)
    # actor: with an action-independent critic and identical behaviour, L = -mean min_e Q(s)
    flat_q = dict(QP, wa=jnp.zeros_like(QP["wa"]))
    la, ma = J.brac_actor_loss(
        PP,
        BATCH,
        key,
        policy_apply=policy_apply,
        q_apply=q_apply,
        q_params=flat_q,
        behaviour_apply=policy_apply,
        behaviour_params=PP,
        alpha=1.0,
    )
    np.testing.assert_allclose(la, -np.mean(q_ref(flat_q, OBS, ACT).min(0)), rtol=1e-5)


# --------------------------------------------------------------------------------------------- ReBRAC


def test_rebrac_critic_reference():
    actor = dict(w=jnp.array([[0.5, -0.5], [0.25, 0.5]]))
    loss, m = J.rebrac_critic_loss(
        QP,
        BATCH,
        jax.random.key(5),
        q_apply=q_apply,
        target_q_params=QT,
        actor_apply=actor_apply,
        target_actor_params=actor,
        discount=0.9,
        beta=0.1,
        policy_noise=0.0,
    )
    a = np.clip(NP(NXT) @ NP(actor["w"]), -1, 1)
    bc = np.sum((a - NP(BATCH.extras.next_action)) ** 2, -1)
    y = NP(BATCH.reward) + 0.9 * (1 - NP(BATCH.terminated)) * (q_ref(QT, NXT, a).min(0) - 0.1 * bc)
    np.testing.assert_allclose(loss, np.sum(np.mean((q_ref(QP, OBS, ACT) - y) ** 2, -1)), rtol=1e-5)


# --------------------------------------------------------------------------------- model-based / EDAC


def test_dynamics_loss_reference():
    def dyn_apply(p, obs, act):  # mean = [obs, act] @ w, log_var = p["lv"]
        mean = jnp.concatenate([obs, act], -1) @ p["w"]
        return mean, jnp.broadcast_to(p["lv"], mean.shape)

    params = dict(
        w=jnp.stack([jnp.zeros((O + A, O + 1)), 0.1 * jnp.ones((O + A, O + 1))]),
        lv=jnp.array([[0.0] * (O + 1), [math.log(2.0)] * (O + 1)]),
    )
    loss, m = J.gaussian_ensemble_dynamics_loss(params, BATCH, dynamics_apply=dyn_apply)
    target = np.concatenate([NP(NXT) - NP(OBS), NP(BATCH.reward)[:, None]], -1)
    want = 0.0
    for e in range(E):
        mean = np.concatenate([NP(OBS), NP(ACT)], -1) @ NP(params["w"][e])
        lv = NP(params["lv"][e])
        want += np.mean(0.5 * np.sum((target - mean) ** 2 / np.exp(lv) + lv + math.log(2 * math.pi), -1))
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    boot = jax.tree.map(lambda x: jnp.stack([x, x]), BATCH)
    loss2, _ = J.gaussian_ensemble_dynamics_loss(params, boot, dynamics_apply=dyn_apply, per_member_batch=True)
    np.testing.assert_allclose(loss2, loss, rtol=1e-6)


def test_edac_critic():
    key = jax.random.key(6)

    def loss(p, eta):
        return L.edac_critic_loss(
            p,
            BATCH,
            key,
            q_apply=q_apply,
            target_q_params=QT,
            policy_apply=policy_apply,
            policy_params=PP,
            discount=0.9,
            entropy_coef=0.2,
            eta=eta,
        )

    (ls, ms), g = jax.jit(jax.vmap(jax.value_and_grad(loss, has_aux=True), in_axes=(None, 0)))(
        QP, jnp.array([0.0, 1.0])
    )  # SAC-N and EDAC in one compile; grad of grad for the penalty
    np.testing.assert_allclose(ms["diversity"][0], 2 * (2 / math.sqrt(5)), rtol=1e-5)
    np.testing.assert_allclose(ls[1] - ls[0], ms["diversity"][0], rtol=1e-5)
    a, logp = policy_apply(PP, NXT).sample_and_log_prob(seed=key)
    y = NP(BATCH.reward) + 0.9 * (1 - NP(BATCH.terminated)) * (q_ref(QT, NXT, a).min(0) - 0.2 * NP(logp))
    np.testing.assert_allclose(ms["td_loss"][0], np.sum(np.mean((q_ref(QP, OBS, ACT) - y) ** 2, -1)), rtol=1e-5)
    assert all(np.isfinite(NP(x)).all() for x in jax.tree.leaves(g))
    assert not np.allclose(NP(g["wa"][0]), NP(g["wa"][1]))  # the penalty has a gradient
    q = q_ref(QP, OBS, ACT)  # the values' statistics come from the loss's own forward pass
    np.testing.assert_allclose(ms["q_min"][1], q.min(0).mean(), rtol=1e-5)
    np.testing.assert_allclose(ms["q_std"][1], q.std(0).mean(), rtol=1e-5)
    # eta=None is SAC-N's critic: eta = 0's loss and gradient, no similarity term computed or reported
    (l0, m0), g0 = jax.jit(jax.value_and_grad(lambda p: loss(p, None), has_aux=True))(QP)
    assert "diversity" not in m0
    np.testing.assert_allclose(l0, ls[0], rtol=1e-6)
    for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(jax.tree.map(lambda x: x[0], g)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_ensemble_q_and_action_grads_known_answer():
    """Linear critics: the values are ``ensemble_q``'s and each member's action gradient is its ``wa`` at every
    state (one forward pass per member gives both)."""
    q, grads = jax.jit(functools.partial(L.ensemble_q_and_action_grads, q_apply))(QP, OBS, ACT)
    np.testing.assert_allclose(q, q_ref(QP, OBS, ACT), rtol=1e-6)
    want = np.broadcast_to(NP(QP["wa"])[:, None, :], (QP["wa"].shape[0], OBS.shape[0], ACT.shape[-1]))
    np.testing.assert_allclose(grads, want, rtol=1e-6)


def test_losses_on_sampled_dataset_batch():
    """The Dataset pytree is a valid batch: sample under jit, then a loss (IQL critic)."""
    d = ds.make_dataset(np.ones((8, O)), np.zeros((8, A)), np.arange(8.0), np.ones((8, O)), np.zeros(8))
    step = jax.jit(
        lambda k: J.iql_critic_loss(
            QP,
            ds.to_transition(ds.sample(k, d, 4)),
            q_apply=q_apply,
            value_apply=v_apply,
            value_params=VP,
            discount=0.99,
        )[0]
    )
    assert np.isfinite(float(step(jax.random.key(0))))


def test_cql_bc_actor_loss_known_answer():
    # pi(.|s) = N(mu = s, 1): log pi(a|s) = -(a - s)^2 / 2 - log(2 pi) / 2
    apply = lambda p, obs: distrax.MultivariateNormalDiag(obs * p, jnp.ones_like(obs))
    batch = Batch(obs=jnp.array([[0.0], [1.0]]), action=jnp.array([[1.0], [1.0]]))
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    # alpha = 0: the negative log-likelihood of the data, ((1 - 0)^2 / 2 + (1 - 1)^2 / 2) / 2 + log(2 pi) / 2
    loss, m = L.cql_bc_actor_loss(1.0, batch, actor_apply=apply, alpha=0.0, key=jax.random.PRNGKey(0))
    np.testing.assert_allclose(loss, 0.25 + half_log_2pi, rtol=1e-6)
    # alpha = 1: plus the mean log-density of the policy's own samples (the same key draws them)
    d = apply(1.0, batch.obs)
    _, lp = d.sample_and_log_prob(seed=jax.random.PRNGKey(0))
    loss1, m1 = L.cql_bc_actor_loss(1.0, batch, actor_apply=apply, alpha=1.0, key=jax.random.PRNGKey(0))
    np.testing.assert_allclose(loss1, float(jnp.mean(lp)) + 0.25 + half_log_2pi, rtol=1e-6)
    np.testing.assert_allclose(m1["entropy"], -float(jnp.mean(lp)), rtol=1e-6)
    # its gradient pulls the mean toward the data: d/dp mean_b (a_b - s_b p)^2 / 2 = mean_b -(a_b - s_b p) s_b,
    # at p = 0.5: (0 + -(1 - 0.5)) / 2 = -0.25
    g = jax.grad(lambda p: L.cql_bc_actor_loss(p, batch, actor_apply=apply, alpha=0.0, key=jax.random.PRNGKey(0))[0])(
        0.5
    )
    np.testing.assert_allclose(g, -0.25, rtol=1e-6)


def test_one_member_q_apply_is_refused_with_a_clear_error():
    """The losses take a Q ENSEMBLE's apply ([E, B], as nets.make_q_ensemble builds it); one member's apply is a
    clear error at trace time, not an opaque shape error deep inside."""
    import pytest

    from jaxrl import nets

    with pytest.raises(ValueError, match="Q ENSEMBLE"):
        L.iql_critic_loss(QP, BATCH, q_apply=q_member, value_apply=v_apply, value_params=VP, discount=0.9)
    ensemble = nets.make_q_ensemble((8,), "relu", num_members=2)
    params = ensemble.init(jax.random.PRNGKey(0), OBS[0], ACT[0])
    kw = dict(value_apply=v_apply, value_params=VP, discount=0.9)
    loss, _ = L.iql_critic_loss(params, BATCH, q_apply=ensemble.apply, **kw)  # the ensemble apply just works
    assert np.isfinite(float(loss))
    with pytest.raises(ValueError, match="Q ENSEMBLE"):
        L.iql_critic_loss(params, BATCH, q_apply=nets.make_value_network((8,), "relu").apply, **kw)


def test_ensemble_q_samples_is_each_sample_through_the_ensemble():
    """``[E, M, B]``: entry (e, m, b) is member e's value at state b and its m-th sampled action, the same as one
    ensemble call per sample (the flat M x B layout must not mix samples, members or states up)."""
    from jaxrl import nets

    ensemble = nets.make_q_ensemble((8,), "relu", num_members=3)
    params = ensemble.init(jax.random.PRNGKey(0), OBS[0], ACT[0])
    samples = jax.random.uniform(jax.random.PRNGKey(1), (4, *ACT.shape), minval=-1, maxval=1)  # [M, B, A]
    q = L.ensemble_q_samples(ensemble.apply, params, OBS, samples)
    per_sample = jnp.stack([ensemble.apply(params, OBS, a) for a in samples], axis=1)  # [E, M, B]
    assert q.shape == (3, 4, OBS.shape[0])
    np.testing.assert_allclose(q, per_sample, rtol=1e-5, atol=1e-6)
    assert float(jnp.std(q, axis=(0, 1)).min()) > 0  # the states, samples and members differ: a mix-up would show
