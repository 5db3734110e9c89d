"""Multi-task network architectures (jaxrl.nets.multitask): Soft Modularization, CARE, MOORE, PaCo.

Known answers per architecture (fast): routing weights are distributions per layer; MOORE's expert representations
are orthonormal for any input; PaCo's task parameters are the shared set times the task's vector, its network is
the plain MLP with those parameters, a reset task gets a fresh vector and the others are untouched; CARE's
attention is a function of the context alone. Bad input through the CLI. Every architecture with MT-SAC, MH-SAC and
MT-PPO and every aggregator: integration. MT-SAC with each architecture on point-goal-4: learning tests.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import envs
from jaxrl.algos.multitask import mt_sac
from jaxrl.algos.multitask.architecture import arch_spec
from jaxrl.algos.multitask.common import AGGREGATORS
from jaxrl.nets import multitask as mtn
from jaxrl.run.cli import main
from jaxrl.run.contexts import inline_context_file

K = 4  # tasks
X = jax.random.normal(jax.random.PRNGKey(1), (32, 6))  # a batch of inputs
X = X.at[1].set(X[0])  # rows 0 and 1: one state, tasks 0 and 1
TASKS = jnp.arange(32) % K


def spec(name, hidden=(16, 16), **kw):
    return mtn.ArchSpec(name, hidden, "relu", K, **kw)


def build(s, features=3, probe=True, seed=0):
    net = mtn.make_task_network(s, features, probe=probe)
    return net, jax.jit(net.init)(jax.random.PRNGKey(seed), X, TASKS)


# ---------------------------------------------------------------------------------------- Soft Modularization


def test_soft_modularization_routing_weights_are_distributions_per_layer():
    s = spec("soft_modularization", hidden=(16, 16, 16), num_modules=3)
    net, params = build(s)
    y, inside = jax.jit(net.apply)(params, X, TASKS)
    routing = np.asarray(inside["routing"])
    assert y.shape == (32, 3) and routing.shape == (32, 2, 3, 3)  # [B, L-1 layers, m targets, m sources]
    assert np.all(routing >= 0)
    np.testing.assert_allclose(routing.sum(-1), 1.0, atol=1e-6)
    assert not np.allclose(routing[0], routing[1])  # one state, two tasks: two routings
    assert not np.allclose(routing[0], routing[4])  # one task, two states: two routings


# ---------------------------------------------------------------------------------------------------- MOORE


def test_moore_expert_representations_are_orthonormal_for_any_input():
    s = spec("moore", hidden=(16, 8), num_experts=5)
    net, params = build(s)
    apply = jax.jit(net.apply)
    tasks = jnp.arange(64) % K
    for i, scale in enumerate((1e-3, 1.0, 1e3)):
        x = scale * jax.random.normal(jax.random.PRNGKey(i), (64, 6))
        y, inside = apply(params, x, tasks)
        u, w = np.asarray(inside["experts"], np.float64), np.asarray(inside["weights"], np.float64)
        assert u.shape == (64, 5, 8)
        gram = np.einsum("bid,bjd->bij", u, u)
        np.testing.assert_allclose(gram, np.broadcast_to(np.eye(5), gram.shape), atol=2e-5)
        assert np.isfinite(np.asarray(y)).all()
        # the task's weights are rows of one table, and the representation is U^T w_tau
        table = np.asarray(params["_MOORE_0"]["Embed_0"]["embedding"])
        np.testing.assert_array_equal(w, table[np.asarray(tasks)])
        head = params["Dense_0"]
        v = np.einsum("bk,bkd->bd", w, u)
        np.testing.assert_allclose(y, v @ np.asarray(head["kernel"]) + np.asarray(head["bias"]), rtol=1e-4, atol=1e-4)


def test_gram_schmidt_on_nearly_dependent_vectors_matches_qr():
    base = jax.random.normal(jax.random.PRNGKey(0), (1, 6))
    v = jnp.concatenate([base + 1e-3 * jax.random.normal(jax.random.PRNGKey(i), (1, 6)) for i in range(4)])
    u = np.asarray(mtn.gram_schmidt(v), np.float64)
    np.testing.assert_allclose(u @ u.T, np.eye(4), atol=1e-5)
    q, r = np.linalg.qr(np.asarray(v, np.float64).T)  # the same basis up to signs
    np.testing.assert_allclose(np.abs(u[:2]), np.abs((q * np.sign(np.diag(r))).T[:2]), atol=1e-3)


# ----------------------------------------------------------------------------------------------------- PaCo


def _relu_mlp(layers, x):
    names = sorted(layers, key=lambda n: int(n.split("_")[1]))
    for i, n in enumerate(names):
        x = x @ layers[n]["kernel"] + layers[n]["bias"]
        if i < len(names) - 1:
            x = np.maximum(x, 0.0)
    return x


@pytest.fixture(scope="module")
def paco():
    return build(spec("paco", hidden=(16, 16), num_experts=3))


def test_paco_task_parameters_are_the_shared_set_times_the_task_vector(paco):
    net, params = paco
    paco = params["_PaCo_0"]
    w = np.asarray(paco["paco_w"])
    assert w.shape == (K, 3)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)  # initial vectors: convex combinations
    y = np.asarray(jax.jit(net.apply)(params, X, TASKS)[0])
    for tau in range(K):
        theta = mtn.paco_task_params(params, tau)
        assert sorted(theta) == ["layer_0", "layer_1", "layer_2"]
        for name, layer in theta.items():
            for leaf in ("kernel", "bias"):
                phi = np.asarray(paco[name][leaf], np.float64)  # [k, ...]
                expected = np.tensordot(w[tau], phi, axes=1)  # Phi w_tau
                np.testing.assert_allclose(np.asarray(layer[leaf]), expected, rtol=1e-5, atol=1e-6)
        rows = np.asarray(TASKS) == tau
        theta_np = jax.tree.map(lambda a: np.asarray(a, np.float64), theta)
        np.testing.assert_allclose(y[rows], _relu_mlp(theta_np, np.asarray(X, np.float64)[rows]), atol=1e-5)


def test_paco_reset_gives_the_diverged_task_a_fresh_vector_and_leaves_the_others_untouched(paco):
    _, params = paco
    ensemble = {"critic": jax.tree.map(lambda a: np.stack([a, 2 * a]), params), "other": np.ones((K, 3))}
    diverged = jnp.array([False, True, False, False])
    out = mtn.paco_reset(ensemble, diverged, jax.random.PRNGKey(3))
    old_w, new_w = ensemble["critic"]["_PaCo_0"]["paco_w"], out["critic"]["_PaCo_0"]["paco_w"]  # [E, K, k]
    np.testing.assert_array_equal(new_w[:, [0, 2, 3]], old_w[:, [0, 2, 3]])  # the others: bit for bit
    assert not np.allclose(new_w[:, 1], old_w[:, 1])
    for e in range(2):  # the fresh vector is a convex combination of the healthy tasks' vectors
        healthy = np.asarray(old_w[e, [0, 2, 3]], np.float64)  # [3, k]
        c, *_ = np.linalg.lstsq(healthy.T, np.asarray(new_w[e, 1], np.float64), rcond=None)
        np.testing.assert_allclose(healthy.T @ c, new_w[e, 1], atol=1e-5)
        assert np.all(c >= -1e-4) and abs(c.sum() - 1.0) < 1e-4
    same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), ensemble, out)
    same["critic"]["_PaCo_0"]["paco_w"] = True
    assert all(jax.tree.leaves(same))  # every other parameter untouched
    every = mtn.paco_reset(params, jnp.ones((K,), bool), jax.random.PRNGKey(4))["_PaCo_0"]["paco_w"]
    np.testing.assert_allclose(np.asarray(every).sum(-1), 1.0, rtol=1e-6)  # all diverged: fresh draws
    assert not np.allclose(every, params["_PaCo_0"]["paco_w"])


# ----------------------------------------------------------------------------------------------------- CARE


def _care_attention(params, contexts):
    care = params["_CARE_0"]
    z = np.maximum(contexts @ np.asarray(care["Dense_0"]["kernel"]) + np.asarray(care["Dense_0"]["bias"]), 0.0)
    logits = z @ np.asarray(care["Dense_1"]["kernel"]) + np.asarray(care["Dense_1"]["bias"])
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_care_attention_follows_the_context():
    rng = np.random.default_rng(0)
    c = rng.normal(size=(K, 3)).astype(np.float32)
    c[1] = c[0]  # tasks 0 and 1 share a context
    net, params = build(spec("care", contexts=mtn.context_rows(c), num_experts=3))
    _, inside = jax.jit(net.apply)(params, X, TASKS)
    alpha = np.asarray(inside["attention"])  # [B, k]
    np.testing.assert_allclose(alpha.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(alpha, _care_attention(params, c[np.asarray(TASKS)]), atol=1e-5)
    by_task = alpha[:K]
    np.testing.assert_array_equal(by_task[0], by_task[1])  # equal contexts, equal weights (whatever the state)
    np.testing.assert_array_equal(alpha[0], alpha[4])
    assert not np.allclose(by_task[2], by_task[3])
    # change the context (same parameters): the weights move with it
    c2 = c.copy()
    c2[2], c2[3] = c[3], 5.0 * c[2]
    net2 = mtn.make_task_network(spec("care", contexts=mtn.context_rows(c2), num_experts=3), 3, probe=True)
    alpha2 = np.asarray(net2.apply(params, X, TASKS)[1]["attention"])[:K]
    np.testing.assert_allclose(alpha2[2], by_task[3], atol=1e-6)
    np.testing.assert_allclose(alpha2[3], _care_attention(params, 5.0 * c[2:3])[0], atol=1e-5)
    np.testing.assert_allclose(alpha2[:2], by_task[:2], atol=1e-6)


def test_context_of_the_wrong_shape_is_refused():
    for bad in (np.ones((K - 1, 2)), np.ones((K, 0)), np.ones((K,))):
        with pytest.raises(ValueError, match=r"must be \[K=4, C\]"):
            mtn.check_contexts(bad, K, "ctx")
    with pytest.raises(ValueError, match="missing"):
        mtn.make_task_network(spec("care"), 3)


def test_care_context_embedding_sources(tmp_path):
    """``suite`` (the suite's omega), ``one_hot``, a ``.npy`` / ``.csv`` file of K rows; ``descriptor`` where the
    suite ships none is a clear error."""
    suite, _ = envs.make("point-goal-4")
    rows = np.arange(K * 3, dtype=np.float32).reshape(K, 3)
    np.save(tmp_path / "c.npy", rows)
    np.savetxt(tmp_path / "c.csv", rows, delimiter=",")
    for value, expected in [
        ("suite", np.asarray(suite.contexts)),
        ("one_hot", np.eye(K)),
        (str(tmp_path / "c.npy"), rows),
        (str(tmp_path / "c.csv"), rows),
    ]:
        cfg = inline_context_file(mt_sac.Config(network="care", context_embedding=value))  # the run layer reads
        spec_ = arch_spec(cfg, K, suite.contexts)
        assert spec_ is not None
        np.testing.assert_array_equal(np.asarray(spec_.contexts), expected)
    with pytest.raises(ValueError, match="ships no task descriptors"):
        arch_spec(mt_sac.Config(network="care", context_embedding="descriptor"), K, suite.contexts)
    assert arch_spec(mt_sac.Config(), K) is None  # the default builds today's MLPs
    with pytest.raises(ValueError, match="a file is read by the run layer"):  # no I/O below jaxrl.run
        arch_spec(mt_sac.Config(network="care", context_embedding=str(tmp_path / "c.npy")), K)


# ------------------------------------------------------------------------------------- MT-SAC with PaCo reset


@pytest.mark.integration
def test_mt_sac_paco_masks_diverged_tasks_out_and_resets_their_vectors():
    """Threshold below every loss: every task diverges, so the shared parameter set gets no gradient (Adam's first
    step on a zero gradient is zero) and only the compositional vectors change, by reset."""
    suite, params = envs.make("point-goal-4")
    cfg = mt_sac.Config(
        num_envs=4,
        batch_size=4,
        buffer_size=16,
        learning_starts=1,
        hidden=(8,),
        total_env_steps=8,
        network="paco",
        num_experts=2,
        paco_reset_threshold=1e-12,
        monitor_conflicts=False,
    )
    algo = mt_sac.make(cfg, suite, params)
    state = algo.init(jax.random.PRNGKey(0))
    step = jax.jit(algo.step)
    state, _ = step(state)  # warm-up transition per task
    before = state.nets.critic.params
    state, metrics = step(state)
    after = state.nets.critic.params
    assert float(metrics["paco_resets"]) == K and float(metrics["critic_loss"]) > 0
    phi_b = {k: v for k, v in before["_PaCo_0"].items() if k != "paco_w"}
    phi_a = {k: v for k, v in after["_PaCo_0"].items() if k != "paco_w"}
    assert all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), phi_b, phi_a)))
    w_b, w_a = before["_PaCo_0"]["paco_w"], after["_PaCo_0"]["paco_w"]
    assert not np.allclose(w_b, w_a)


# ------------------------------------------------------------------------------------------ bad input (CLI)

CLI_ERRORS = {
    "unknown network": (["mt_sac", "--network", "soft_modulariztion"], ["did you mean 'soft_modularization'"]),
    "context of the wrong width": (
        ["mt_sac", "--network", "care", "--context-embedding", "{bad}"],
        ["context_embedding", "has shape [3, 2]", "[K=4, C]"],
    ),
    "context file missing": (
        ["mt_sac", "--network", "care", "--context-embedding", "nowhere.npy"],
        ["context_embedding='nowhere.npy'", "no such file"],
    ),
    "paco size 0": (["mt_sac", "--network", "paco", "--num-experts", "0"], ["num_experts=0", ">= 1"]),
    "moore size 0": (["mt_ppo", "--network", "moore", "--num-experts", "0"], ["num_experts=0", ">= 1"]),
    "care size 0": (["mh_sac", "--network", "care", "--num-experts", "0"], ["num_experts=0", ">= 1"]),
    "moore wider than hidden": (
        ["mt_sac", "--network", "moore", "--hidden", "8", "--num-experts", "9"],
        ["hidden[-1] >= num_experts"],
    ),
    "single-task algorithm": (["sac", "--network", "care"], ["--network", "sac has none", "mt_sac"]),
    "multi-task algorithm with its own networks": (["te_ppo", "--network", "moore"], ["builds its own networks"]),
    "context without care": (["mt_sac", "--context-embedding", "one_hot"], ["needs --network care"]),
}


@pytest.mark.parametrize("case", CLI_ERRORS)
def test_bad_architecture_input_is_one_error_line(case, tmp_path, capsys):
    args, fragments = CLI_ERRORS[case]
    bad = tmp_path / "bad.npy"
    np.save(bad, np.ones((3, 2), np.float32))
    args = [a.format(bad=bad) for a in args]
    assert main(["train", *args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error:"), err
    assert all(f in err[-1] for f in fragments), err[-1]
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------- every algorithm x aggregator (integration)

ARCHS = ("soft_modularization", "care", "moore", "paco")
SMALL = dict(num_envs=4, batch_size=4, buffer_size=8, learning_starts=1, hidden=(8, 8), total_env_steps=8)


# every aggregator once and every architecture twice with MT-SAC; the second round also with MH-SAC (per-task heads)
COVER = [(agg, ARCHS[i % len(ARCHS)], i >= len(ARCHS)) for i, agg in enumerate(AGGREGATORS)]


@pytest.mark.integration
@pytest.mark.parametrize("aggregator,network,with_mh_sac", COVER)
def test_mt_sac_architectures_with_every_aggregator(aggregator, network, with_mh_sac):
    from jaxrl import algos

    suite, params = envs.make("point-goal-4")
    for name in ("mt_sac", "mh_sac") if with_mh_sac else ("mt_sac",):
        module = algos.get(name)
        cfg = module.Config(**SMALL, network=network, num_experts=2, aggregator=aggregator, monitor_conflicts=True)
        algo = module.make(cfg, suite, params)
        step = jax.jit(algo.step)
        state = algo.init(jax.random.PRNGKey(0))
        for _ in range(3):
            state, metrics = step(state)
        assert {"critic_num_conflicts", "actor_mean_cosine"} <= set(metrics)
        for key, value in metrics.items():
            assert np.all(np.isfinite(np.asarray(value))), key
        out = jax.jit(algo.evaluate, static_argnums=2)(state, jax.random.PRNGKey(1), 1)
        assert out["eval_success"].shape == (K,)
        assert out["critic_grad_norm_per_task"].shape == (K,) and "actor_grad_cos_min" in out  # the monitor
        assert all(np.all(np.isfinite(np.asarray(v))) for v in out.values()), out


@pytest.mark.integration
@pytest.mark.parametrize("network,aggregator", [(n, "pcgrad" if i % 2 else "sum") for i, n in enumerate(ARCHS)])
def test_mt_ppo_every_architecture(network, aggregator):
    from jaxrl.algos.multitask import mt_ppo

    suite, params = envs.make("point-goal-4")
    cfg = mt_ppo.Config(
        num_envs=4, num_steps=8, num_minibatches=2, num_epochs=1, hidden=(8, 8), total_env_steps=32,
        network=network, num_experts=2, aggregator=aggregator,
    )  # fmt: skip
    algo = mt_ppo.make(cfg, suite, params)
    state, metrics = jax.jit(algo.step)(algo.init(jax.random.PRNGKey(0)))
    for key, value in metrics.items():
        assert np.all(np.isfinite(np.asarray(value))), key
    assert metrics["grad_norm_per_task"].shape == (K,) and "grad_conflict_frac" in metrics  # the monitor
    out = jax.jit(algo.evaluate, static_argnums=2)(state, jax.random.PRNGKey(1), 1)
    assert out["eval_return"].shape == (K,)


# ------------------------------------------------------------------------------------------- learning tests

LEARN: dict[str, Any] = dict(
    num_envs=4, batch_size=64, hidden=(64, 64), init_alpha=0.1, learning_starts=250, total_env_steps=12_000
)


def _learn(network, **kw):
    from jaxrl.run import train

    result = train(
        "mt_sac",
        "point-goal-4",
        mt_sac.Config(**LEARN, network=network, **kw),
        seeds=2,
        num_chunks=4,
        progress=False,
        tensorboard=False,
        checkpoint=False,
    )
    success = np.asarray(result.summary["eval_success"])  # [runs, tasks]
    print(f"mt_sac network={network} eval_success per seed/task", success.tolist())
    return success


# MOORE and PaCo are the slowest two (180 s and 126 s on CI's 2 cores): run by hand (`-m slow`)
@pytest.mark.learning
@pytest.mark.parametrize(
    "network", [pytest.param(a, marks=pytest.mark.slow) if a in ("moore", "paco") else a for a in ARCHS]
)
def test_mt_sac_architecture_point_goal_4_reaches_90_percent_success(network):
    assert _learn(network).mean() >= 0.9
