"""Known-answer tests for the TRPO pieces in jaxrl.losses.trpo."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from jaxrl.losses import trpo


def _spd(n, seed=0):
    m = np.random.RandomState(seed).randn(n, n).astype(np.float32)
    return m @ m.T + n * np.eye(n, dtype=np.float32)


def test_conjugate_gradient_solves_small_spd_system_exactly():
    a = _spd(5)
    b = np.arange(1.0, 6.0, dtype=np.float32)
    x = trpo.conjugate_gradient(lambda v: jnp.asarray(a) @ v, jnp.asarray(b), num_iters=5)
    np.testing.assert_allclose(np.asarray(x), np.linalg.solve(a, b), rtol=1e-4, atol=1e-5)
    # extra iterations after convergence keep the solution (frozen iterate, no NaN)
    x10 = trpo.conjugate_gradient(lambda v: jnp.asarray(a) @ v, jnp.asarray(b), num_iters=20)
    np.testing.assert_allclose(np.asarray(x10), np.linalg.solve(a, b), rtol=1e-4, atol=1e-5)


def test_conjugate_gradient_hand_computed_2x2():
    # A = [[4, 1], [1, 3]], b = [1, 2]  ->  x = [1/11, 7/11]
    a = jnp.array([[4.0, 1.0], [1.0, 3.0]])
    x = jax.jit(lambda b: trpo.conjugate_gradient(lambda v: a @ v, b, num_iters=2))(jnp.array([1.0, 2.0]))
    np.testing.assert_allclose(np.asarray(x), [1 / 11, 7 / 11], rtol=1e-5)


def _linear_policy_setup():
    key = jax.random.PRNGKey(0)
    states = jax.random.normal(key, (6, 3))  # [B, S]
    w_old = 0.5 * jax.random.normal(jax.random.PRNGKey(1), (3, 4))  # logits = s @ W, 4 actions
    return states, w_old


def test_fisher_vector_product_matches_analytic_categorical_fisher():
    states, w_old = _linear_policy_setup()
    old_logits = states @ w_old
    kl_fn = lambda w: trpo.categorical_kl(old_logits, states @ w)

    # analytic Fisher of a softmax-linear policy: mean_s (s s^T) kron (diag(p_s) - p_s p_s^T), W flattened row-major
    p = np.asarray(jax.nn.softmax(old_logits))
    s = np.asarray(states)
    fisher = np.mean(
        [np.kron(np.outer(s[i], s[i]), np.diag(p[i]) - np.outer(p[i], p[i])) for i in range(len(s))], axis=0
    )

    # the same matrix as E_s E_{a~pi}[grad log pi grad log pi^T]
    def score(w, st, a):
        return jax.grad(lambda ww: jax.nn.log_softmax(st @ ww)[a])(w).reshape(-1)

    outer = np.zeros_like(fisher)
    for i in range(len(s)):
        for a in range(4):
            g = np.asarray(score(w_old, states[i], a))
            outer += p[i, a] * np.outer(g, g) / len(s)
    np.testing.assert_allclose(fisher, outer, atol=1e-5)

    v = jax.random.normal(jax.random.PRNGKey(2), w_old.shape)
    fvp = trpo.fisher_vector_product(kl_fn, w_old, damping=0.0)
    np.testing.assert_allclose(np.asarray(fvp(v)).reshape(-1), fisher @ np.asarray(v).reshape(-1), atol=1e-5)
    damped = trpo.fisher_vector_product(kl_fn, w_old, damping=0.1)(v)
    np.testing.assert_allclose(
        np.asarray(damped).reshape(-1), (fisher + 0.1 * np.eye(12)) @ np.asarray(v).reshape(-1), atol=1e-5
    )
    # pytree params: a dict with two leaves gives the same product
    tree_kl = lambda prm: trpo.categorical_kl(old_logits, states @ prm["w"] + prm["b"])
    prm = {"w": w_old, "b": jnp.zeros((4,))}
    out = trpo.fisher_vector_product(tree_kl, prm)({"w": v, "b": jnp.zeros((4,))})
    np.testing.assert_allclose(np.asarray(out["w"]).reshape(-1), fisher @ np.asarray(v).reshape(-1), atol=1e-5)


def test_natural_gradient_step_quadratic_known_answer():
    # linear surrogate g^T x and quadratic KL 0.5 x^T A x: the full step is sqrt(2 delta / g^T A^-1 g) A^-1 g
    a = jnp.asarray(_spd(4, seed=3))
    g = jnp.array([1.0, -2.0, 0.5, 1.0])
    x0 = {"x": jnp.zeros(4)}
    delta = 0.01
    new, m = trpo.natural_gradient_step(
        x0,
        lambda p: g @ p["x"],
        lambda p: 0.5 * p["x"] @ a @ p["x"],
        delta,
        cg_iters=4,
        damping=0.0,
        backtrack_ratio=0.8,
    )
    ainv_g = np.linalg.solve(np.asarray(a), np.asarray(g))
    full = np.sqrt(2 * delta / (np.asarray(g) @ ainv_g)) * ainv_g
    assert float(m["accepted"]) == 1.0
    frac = float(m["step_fraction"])
    assert frac in (pytest.approx(1.0), pytest.approx(0.8))  # the boundary step may lose to float rounding
    np.testing.assert_allclose(np.asarray(new["x"]), frac * full, rtol=1e-4, atol=1e-6)
    assert float(m["kl"]) <= delta
    np.testing.assert_allclose(float(m["expected_improvement"]), np.asarray(g) @ full, rtol=1e-4)


def test_natural_gradient_step_preconditions_a_given_gradient():
    # `gradient` (e.g. aggregated per-task gradients) replaces the surrogate's own: the step is along A^-1 h
    a = jnp.asarray(_spd(4, seed=3))
    g, h = jnp.array([1.0, -2.0, 0.5, 1.0]), jnp.array([1.0, -1.0, 0.0, 1.0])
    x0, delta = {"x": jnp.zeros(4)}, 0.01
    surr, kl = lambda p: g @ p["x"], lambda p: 0.5 * p["x"] @ a @ p["x"]
    kw = dict(cg_iters=4, damping=0.0, backtrack_ratio=0.8)
    new, m = trpo.natural_gradient_step(x0, surr, kl, delta, gradient={"x": h}, **kw)
    ainv_h = np.linalg.solve(np.asarray(a), np.asarray(h))
    full = np.sqrt(2 * delta / (np.asarray(h) @ ainv_h)) * ainv_h
    assert float(m["accepted"]) == 1.0 and float(np.asarray(g) @ full) > 0  # the surrogate still improves
    np.testing.assert_allclose(np.asarray(new["x"]), float(m["step_fraction"]) * full, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(m["expected_improvement"]), np.asarray(h) @ full, rtol=1e-4)
    # the surrogate's own gradient given explicitly is the default step
    own, _ = trpo.natural_gradient_step(x0, surr, kl, delta, gradient={"x": g}, **kw)
    default, _ = trpo.natural_gradient_step(x0, surr, kl, delta, **kw)
    np.testing.assert_allclose(np.asarray(own["x"]), np.asarray(default["x"]), rtol=1e-6)


def _categorical_problem():
    states, w_old = _linear_policy_setup()
    key = jax.random.PRNGKey(5)
    actions = jax.random.categorical(key, states @ w_old)
    adv = jax.random.normal(jax.random.PRNGKey(6), (states.shape[0],))
    old_logits = states @ w_old
    old_logp = jnp.take_along_axis(jax.nn.log_softmax(old_logits), actions[:, None], 1)[:, 0]

    def surrogate(w):
        logp = jnp.take_along_axis(jax.nn.log_softmax(states @ w), actions[:, None], 1)[:, 0]
        return trpo.surrogate_objective(logp, old_logp, adv)

    kl = lambda w: trpo.categorical_kl(old_logits, states @ w)
    return w_old, surrogate, kl


@pytest.mark.parametrize("max_kl", [1e-3, 1e-2, 0.1])
def test_line_search_respects_kl_and_improves_surrogate(max_kl):
    w_old, surrogate, kl = _categorical_problem()
    new, m = jax.jit(lambda w: trpo.natural_gradient_step(w, surrogate, kl, max_kl, cg_iters=12))(w_old)
    assert float(m["accepted"]) == 1.0
    assert float(kl(new)) <= max_kl + 1e-7
    np.testing.assert_allclose(float(m["kl"]), float(kl(new)), rtol=1e-4, atol=1e-8)
    assert float(surrogate(new)) > float(surrogate(w_old))
    np.testing.assert_allclose(float(m["surrogate_after"]), float(surrogate(new)), rtol=1e-5)


def test_line_search_backtracks_when_kl_model_is_too_optimistic():
    # the KL is quartic away from 0 while its Hessian at 0 is tiny: the full step overshoots and must be shrunk
    kl = lambda p: 0.5 * 1e-3 * jnp.sum(p**2) + 10.0 * jnp.sum(p**4)
    surr = lambda p: jnp.sum(p)
    new, m = trpo.natural_gradient_step(jnp.zeros(3), surr, kl, 0.01, damping=0.0, max_backtracks=40)
    assert float(m["accepted"]) == 1.0 and float(m["backtracks"]) > 0 and float(m["step_fraction"]) < 1.0
    assert float(kl(new)) <= 0.01


def test_step_rejected_keeps_params():
    # a surrogate with zero gradient cannot improve: params stay, metrics say so
    w_old, _, kl = _categorical_problem()
    new, m = trpo.natural_gradient_step(w_old, lambda w: jnp.zeros(()), kl, 0.01)
    np.testing.assert_array_equal(np.asarray(new), np.asarray(w_old))
    assert float(m["accepted"]) == 0.0 and float(m["kl"]) == 0.0
    # a surrogate that only gets worse along the natural gradient (non-finite beyond the old params)
    bad = lambda w: jnp.where(jnp.sum(jnp.abs(w - w_old)) > 0, jnp.nan, 0.0) + jnp.sum(w) * 0.0 + jnp.sum(w - w_old)
    new, m = trpo.natural_gradient_step(w_old, bad, kl, 0.01, max_backtracks=3)
    np.testing.assert_array_equal(np.asarray(new), np.asarray(w_old))
    assert float(m["accepted"]) == 0.0


def test_natural_gradient_step_vmaps_over_trust_regions():
    w_old, surrogate, kl = _categorical_problem()
    deltas = jnp.array([1e-3, 1e-2])
    new, m = jax.jit(jax.vmap(lambda d: trpo.natural_gradient_step(w_old, surrogate, kl, d)))(deltas)
    assert new.shape == (2, *w_old.shape)
    kls = [float(kl(new[i])) for i in range(2)]
    assert kls[0] <= 1e-3 + 1e-7 and kls[1] <= 1e-2 + 1e-7 and kls[1] > kls[0]
    flat = ravel_pytree(m)[0]
    assert np.all(np.isfinite(np.asarray(flat)))
