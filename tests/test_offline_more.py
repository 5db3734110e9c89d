"""AWR, CRR, ReBRAC, SAC-N and EDAC: each through the run loop on a tiny random Pendulum dataset, their pieces
(TD(lambda) returns of a dataset, next actions, the ensemble and LayerNorm critics), bad input, and learning tests
on generated Pendulum datasets (tests/conftest.py's `pendulum_datasets`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_offline_algos import LEARN, LEARN_RUN, RUN, TINY

from jaxrl import algos, nets
from jaxrl.algos.offline import awr, rebrac
from jaxrl.algos.offline import common as oc
from jaxrl.config import ConfigError
from jaxrl.data import dataset as ds
from jaxrl.run import train

NEW = ("awr", "crr", "rebrac", "sac_n", "edac")
SMALL = dict(sac_n=dict(num_critics=3), edac=dict(num_critics=3))


def _cfg(name, **kw):
    return algos.get(name).Config(**{**TINY, **SMALL.get(name, {}), **kw})


EXPECTED_METRICS = {
    "awr": ("value_loss", "actor_loss", "weight_mean", "value_target"),
    "crr": ("critic_loss", "actor_loss", "weight_mean", "advantage"),
    "rebrac": ("critic_loss", "actor_loss", "bc_penalty", "critic_bc_penalty", "q_policy", "mc_return"),
    "sac_n": ("critic_loss", "q_policy", "q_data", "q_std", "mc_return", "alpha"),
    "edac": ("critic_loss", "diversity", "q_std", "q_policy"),
}


def _check_result(name, result, runs):
    s = result.summary
    assert np.isfinite(s["normalized_score_last"]).all() and len(s["normalized_score_last"]) == runs
    for metric, values in result.metrics.items():
        assert np.isfinite(values).all(), metric
    for metric in EXPECTED_METRICS[name]:
        assert metric in result.metrics, metric


@pytest.mark.integration
@pytest.mark.parametrize("name", ("awr", "crr", "rebrac", "sac_n"))
def test_each_algorithm_runs_through_the_run_loop(name, tiny_env):
    assert algos.is_offline(name)
    _check_result(name, train(name, tiny_env, _cfg(name), seeds=2, **RUN), 2)


@pytest.mark.integration
def test_edac_grid_over_eta_and_datasets_is_one_program(tiny_env):
    """EDAC through the run loop, its eta (0 = SAC-N) and the dataset as grid axes of one batched program."""
    assert algos.is_offline("edac")
    result = train("edac", tiny_env, _cfg("edac"), seeds=1, grid={"eta": [0.0, 1.0], "dataset_index": [0, 1]}, **RUN)
    assert result.axes == ("seed", "eta", "dataset_index", "chunk")
    _check_result("edac", result, 4)


ONE_UPDATE = dict(updates_per_iteration=1, total_env_steps=1)


def _first_update(tiny_env, name, **kw):
    env, params = tiny_env
    algo = algos.get(name).make(_cfg(name, **ONE_UPDATE, **kw), env, params)
    state = jax.jit(algo.init)(jax.random.PRNGKey(3))
    return state, jax.jit(algo.step)(state)[1]


@pytest.mark.integration
def test_crr_modes_and_awac_share_one_maker(tiny_env):
    """CRR-exp with AWAC's hyperparameters is AWAC; CRR-binary differs from it only in the actor's weights (the
    first update's critic loss is the same)."""
    _, awac_m = _first_update(tiny_env, "awac")
    _, exp_m = _first_update(tiny_env, "crr", mode="exp")
    _, bin_m = _first_update(tiny_env, "crr", mode="binary")
    for k in awac_m:
        np.testing.assert_array_equal(awac_m[k], exp_m[k], err_msg=k)
    np.testing.assert_array_equal(bin_m["critic_loss"], exp_m["critic_loss"])
    assert 0.0 <= float(bin_m["weight_mean"]) <= 1.0
    assert float(bin_m["weight_mean"]) != pytest.approx(float(exp_m["weight_mean"]))


@pytest.mark.integration
def test_sac_n_and_edac_share_the_maker(tiny_env):
    """EDAC with eta = 0 makes SAC-N's update (the penalty is only added); the ensemble is a parameter axis."""
    state, sac_n_m = _first_update(tiny_env, "sac_n")
    _, edac_m = _first_update(tiny_env, "edac", eta=0.0)
    assert jax.tree.leaves(state.nets.critic.params)[0].shape[0] == 3
    for k in ("critic_loss", "actor_loss", "q_data", "q_std"):
        np.testing.assert_allclose(sac_n_m[k], edac_m[k], rtol=1e-6, err_msg=k)
    assert float(edac_m["diversity"]) != 0.0


def test_dataset_lambda_returns_known_answer():
    """Two episodes: [r=1, 2 (timeout)] and [r=3 (terminal)], gamma = 0.5, lambda = 0.5, V(s') = [4, 6, 8], a
    padding row at the end."""
    d = ds.make_dataset(
        np.zeros((4, 1)),
        np.zeros((4, 1)),
        [1.0, 2.0, 3.0, 0.0],
        np.zeros((4, 1)),
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        mask=[1.0, 1.0, 1.0, 0.0],
    )
    v_tp1 = jnp.array([4.0, 6.0, 8.0, 9.0])
    got = jax.jit(awr.dataset_lambda_returns)(d, v_tp1, 0.5, 0.5)
    # row 1 (timeout: bootstraps, trace cut): 2 + 0.5 * 6 = 5
    # row 0: 1 + 0.5 * (4 + 0.5 * (5 - 4)) = 3.25
    # row 2 (terminal): 3; row 3 (padding): 0
    np.testing.assert_allclose(got, [3.25, 5.0, 3.0, 0.0], rtol=1e-6)
    # lambda = 1 is the Monte-Carlo return except at the timeout, where it bootstraps
    got = jax.jit(awr.dataset_lambda_returns)(d, v_tp1, 0.5, 1.0)
    np.testing.assert_allclose(got, [1 + 0.5 * 5.0, 5.0, 3.0, 0.0], rtol=1e-6)


@pytest.mark.integration
def test_awr_value_targets_modes(tiny_env):
    """``returns="mc"`` keeps the data's Monte-Carlo returns; ``"td_lambda"`` holds the TD(lambda) returns of the
    run's dataset under the current value function."""
    env, params = tiny_env
    mc = oc.init_sampler(env, jnp.int32(1), 0.99).mc_returns
    state = jax.jit(awr.make(_cfg("awr", returns="mc", dataset_index=1), env, params).init)(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(state.sampler.mc_returns, mc)
    state = jax.jit(awr.make(_cfg("awr", dataset_index=1), env, params).init)(jax.random.PRNGKey(0))
    member = oc.member(env, jnp.int32(1))
    v_tp1 = nets.make_value_network(TINY["hidden"], "relu").apply(state.nets.value.params, member.next_observations)
    want = awr.dataset_lambda_returns(member, v_tp1, 0.99, 0.95)
    np.testing.assert_allclose(state.sampler.mc_returns, want, rtol=1e-5, atol=1e-4)
    assert np.all(np.asarray(want)[300:] == 0) and not np.allclose(want[:300], mc[:300])


def test_rebrac_next_actions_follow_the_data(tiny_env):
    env, params = tiny_env
    shifted = rebrac._with_next_actions(env)
    sampler = oc.init_sampler(env, jnp.int32(0), 0.99)
    key = jax.random.PRNGKey(7)
    b = oc.sample_batch(env, sampler, key, 64)
    next_a = oc.sample_batch(shifted, sampler, key, 64).action
    member = oc.member(env, jnp.int32(0))
    obs, act = np.asarray(member.observations), np.asarray(member.actions)
    ends = np.asarray(ds.episode_ends(member)) > 0
    for o, a, na in zip(np.asarray(b.obs), np.asarray(b.action), np.asarray(next_a)):
        row = int(np.flatnonzero(np.all(obs == o, axis=1) & np.all(act == a, axis=1))[0])
        np.testing.assert_array_equal(na, act[row] if ends[row] else act[row + 1])


def test_layer_norm_critic():
    q = rebrac.make_layer_norm_q((16, 16), "relu")
    p = q.init(jax.random.PRNGKey(0), jnp.zeros((3,)), jnp.zeros((1,)))
    assert "LayerNorm_0" in p and "LayerNorm_1" in p
    out = q.apply(p, jnp.ones((5, 3)), jnp.ones((5, 1)))
    assert out.shape == (5,)
    # LayerNorm: scaling all hidden pre-activations' input by a constant barely changes the output
    big = q.apply(p, 100 * jnp.ones((5, 3)), 100 * jnp.ones((5, 1)))
    np.testing.assert_allclose(out, big, rtol=1e-2, atol=1e-2)


def test_authors_layout_critic_matches_a_hand_computation():
    """critic_layout='authors': Dense -> ReLU -> LayerNorm, PyTorch's uniform kernel init, bias 0.1, output ~0."""
    q = rebrac.make_layer_norm_q((8, 8), "relu", layout="authors")
    p = q.init(jax.random.PRNGKey(0), jnp.zeros((3,)), jnp.zeros((1,)))
    assert np.abs(np.asarray(p["Dense_0"]["kernel"])).max() <= 4**-0.5  # fan_in 3 + 1
    assert np.abs(np.asarray(p["Dense_1"]["kernel"])).max() <= 8**-0.5
    np.testing.assert_array_equal(p["Dense_0"]["bias"], np.full(8, 0.1, np.float32))
    assert np.abs(np.asarray(p["Dense_2"]["kernel"])).max() <= 3e-3 and np.abs(np.asarray(p["Dense_2"]["bias"])) <= 3e-3
    obs, act = np.array([[0.5, -1.0, 2.0]], np.float32), np.array([[0.3]], np.float32)

    def layer_norm(x, scale, bias):
        return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-6) * scale + bias

    x = np.concatenate([obs, act], axis=-1)
    for i in range(2):
        d, ln = p[f"Dense_{i}"], p[f"LayerNorm_{i}"]
        x = layer_norm(np.maximum(x @ d["kernel"] + d["bias"], 0.0), ln["scale"], ln["bias"])
    expected = (x @ p["Dense_2"]["kernel"] + p["Dense_2"]["bias"])[:, 0]
    np.testing.assert_allclose(q.apply(p, obs, act), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.integration
def test_rebrac_layer_norm_switch(tiny_env):
    env, params = tiny_env
    for flag in (True, False):
        state = jax.jit(rebrac.make(_cfg("rebrac", critic_layer_norm=flag), env, params).init)(jax.random.PRNGKey(0))
        assert ("LayerNorm_0" in state.nets.critic.params) == flag


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "name, field, value, match",
    [
        ("awr", "temperature", 0.0, r"temperature=0.0 is out of range: must be > 0"),
        ("awr", "td_lambda", 1.5, r"td_lambda=1.5 is out of range: must be >= 0 and <= 1"),
        ("awr", "returns", "gae", r"returns='gae' is not allowed: choose one of \['td_lambda', 'mc'\]"),
        ("crr", "mode", "max", r"mode='max' is not allowed: choose one of \['binary', 'exp'\]"),
        ("crr", "max_weight", -1.0, r"max_weight=-1.0 is out of range"),
        ("rebrac", "actor_beta", -0.1, r"actor_beta=-0.1 is out of range: must be >= 0"),
        ("rebrac", "critic_beta", -1.0, r"critic_beta=-1.0 is out of range: must be >= 0"),
        ("sac_n", "num_critics", 1, r"num_critics=1 is out of range: must be >= 2"),
        ("edac", "eta", -1.0, r"eta=-1.0 is out of range: must be >= 0"),
        ("edac", "num_critics", 1, r"num_critics=1 is out of range: must be >= 2"),
    ],
)
def test_bad_config_names_the_field(name, field, value, match):
    with pytest.raises(ConfigError, match=match):
        algos.get(name).Config(**{field: value})


@pytest.mark.parametrize("name", NEW)
def test_bad_input_before_compiling(name, tiny_env):
    with pytest.raises(ConfigError, match=rf"{name}.Config.batch_size=512 is larger than the data"):
        train(name, tiny_env, _cfg(name, batch_size=512), **RUN)
    with pytest.raises(ConfigError, match=rf"{name}.Config.dataset_index=2 is out of range"):
        train(name, tiny_env, _cfg(name, dataset_index=2), **RUN)
    with pytest.raises(ConfigError, match=f"{name} is an offline algorithm"):
        train(name, "Pendulum-v1", _cfg(name), **RUN)
    with pytest.raises(ConfigError, match=rf"{name}.Config.total_env_steps=3 is out of range"):
        _cfg(name, total_env_steps=3)


def test_edac_penalty_is_inert_for_one_dimensional_actions():
    """With one action dimension the cosine of two action gradients is their signs' product, so the penalty is
    piecewise constant in the critic's parameters: its gradient is zero and EDAC is SAC-N (as on Pendulum)."""
    from jaxrl.losses.offline import edac_diversity_penalty

    member = lambda p, obs, act: jnp.tanh(obs @ p["wo"] + act @ p["wa"]) @ p["out"]
    q_apply = jax.vmap(member, in_axes=(0, None, None))  # the ensemble's apply: [E, B]
    key = jax.random.PRNGKey(0)
    params = {
        k: jax.random.normal(k2, (5,) + s)
        for (k, s), k2 in zip({"wo": (3, 8), "wa": (1, 8), "out": (8,)}.items(), jax.random.split(key, 3))
    }
    obs, act = jax.random.normal(key, (16, 3)), jax.random.uniform(key, (16, 1), minval=-1, maxval=1)
    grads = jax.jit(jax.grad(lambda p: edac_diversity_penalty(p, obs, act, q_apply=q_apply)))(params)
    assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads)) < 1e-6
    params2 = dict(params, wa=jnp.concatenate([params["wa"], params["wa"][:, :, ::-1]], axis=1))
    act2 = jnp.concatenate([act, -act], axis=1)  # two action dimensions: the penalty has a gradient
    grads = jax.jit(jax.grad(lambda p: edac_diversity_penalty(p, obs, act2, q_apply=q_apply)))(params2)
    assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads)) > 1e-3


# ------------------------------------------------------------------------------------------- learning tests
# Expert Pendulum-v1 data from the session fixture `pendulum_datasets` (tests/conftest.py: one SAC behaviour run,
# 5k rows); 3 seeds in one program; hidden (64, 64); the normalised score of the last evaluation (10 episodes).


def _learn(name, env, updates, seeds=3, **overrides):
    cfg = algos.get(name).Config(**{**LEARN, "total_env_steps": updates, **overrides})
    result = train(name, env, cfg, seeds=seeds, **LEARN_RUN)
    last = np.asarray(result.summary["normalized_score_last"])
    print(
        f"{name} {overrides}: normalised score (last) per seed {np.round(last, 1)}, "
        f"per chunk {np.round(np.asarray(result.metrics['normalized_score']).mean(0), 1)}"
    )
    return result, last


@pytest.mark.learning
def test_rebrac_on_expert(pendulum_datasets):
    # ReBRAC tunes its BC weight per dataset; narrow expert data wants a large one (actor_beta 1: 100.4, 99.4, 100.8
    # over 3 seeds; at the default 0.05, made for mixed data, ~52-86: experiments/results/
    # offline_rebrac_edac_diagnosis.md)
    _, last = _learn("rebrac", pendulum_datasets["expert"], 6_000, batch_size=256, actor_beta=1.0)
    assert last.mean() >= 90


@pytest.mark.learning
def test_awr_on_expert(pendulum_datasets):
    # 10k updates, as CRR's test: at 4k one seed of three had not settled (82.2 on an AVX-512 Intel Xeon, 74.4 on an
    # AVX2-only AMD EPYC: mean 89.2). At 10k, seeds 0-7 end at 97.4-103.7 and every evaluation from 5k updates on is
    # >= 96.2 (Intel Xeon, family 6 model 167).
    _, last = _learn("awr", pendulum_datasets["expert"], 10_000)
    assert last.mean() >= 90


@pytest.mark.learning
def test_crr_exp_on_expert(pendulum_datasets):
    # measured (10k updates, 3 seeds): 101.6, 99.5, 100.8
    _, last = _learn("crr", pendulum_datasets["expert"], 10_000, mode="exp")
    assert last.mean() >= 90


@pytest.mark.learning
@pytest.mark.slow
@pytest.mark.xfail(
    reason="measured again 2026-12-04 on the session's datasets (3 seeds, expert data, 10k updates): -22.7, -25.4, "
    "-26.5 (best chunk 24.0 at 3k); Q(s, a_data) climbs -2.5 -> +76.8 against the data's return of -16 while the "
    "mean advantage falls to -7.6 and 7% of rows keep weight 1: the policy's own actions, rated above the data's, "
    "feed the TD target unchecked (CRR-exp with the same critic reaches 100). Earlier: "
    "binary weights -21.3, 37.0, -15.7 at 10k updates (mean "
    "0.0; earlier random keys gave -15.8; the critic diverges: "
    "Q(s, a_data) climbs to +48 against a Monte-Carlo return of -16 while only ~6% of rows keep a "
    "positive weight), 24.0 at 3k updates, 7.1 at 5k updates with learning_rate 1e-4",
    strict=False,
)
def test_crr_binary_on_expert(pendulum_datasets):
    _, last = _learn("crr", pendulum_datasets["expert"], 10_000, mode="binary")
    assert last.mean() >= 90


@pytest.mark.learning
@pytest.mark.slow
@pytest.mark.xfail(
    reason="measured again 2026-12-04 on the session's datasets (3 seeds, N = 10, expert data, 10k updates): "
    "-21.4, -24.7, -22.4 (best chunk -6.2 at 2k); Q(s, pi(s)) climbs -1.4 -> +121.5 against the data's return of "
    "-16.3 while the ensemble's spread at the data's actions stays 0.1-0.35: the members agree, so their minimum "
    "penalises nothing. Earlier: -23.4 at 10k updates (Q(s, pi(s)) climbs to +34 "
    "against a Monte-Carlo return of -16: ten members are too few on data this narrow; the paper "
    "needs N up to 500 on D4RL expert data), -25.4 at 6k updates with init_alpha 0.01; -25.1 on "
    "medium-replay at 10k updates (Q still converging)",
    strict=False,
)
def test_sac_n_on_expert(pendulum_datasets):
    _, last = _learn("sac_n", pendulum_datasets["expert"], 10_000)
    assert last.mean() >= 70


@pytest.mark.learning
@pytest.mark.slow
@pytest.mark.xfail(
    reason="measured (3 seeds, N = 10, eta = 1, expert data): -23.7 at 10k updates, as SAC-N: "
    "Pendulum has ONE action dimension, where the diversity penalty has no gradient "
    "(test_edac_penalty_is_inert_for_one_dimensional_actions), so EDAC is SAC-N there; a test "
    "needs data of an env with >= 2 action dimensions",
    strict=False,
)
def test_edac_on_expert(pendulum_datasets):
    result, last = _learn("edac", pendulum_datasets["expert"], 10_000)
    assert last.mean() >= 70


@pytest.fixture(scope="module")
def reacher_expert():
    """Expert data of brax:reacher (TWO action dimensions, where EDAC's penalty acts): one SAC behaviour run of 20k
    env steps, 5k rows (3 to 9 minutes to generate on a shared 2-core CPU)."""
    from jaxrl.run import generate

    made = generate.make_datasets(
        "brax:reacher", ("expert",), size=5_000, seed=0, total_env_steps=20_000, num_chunks=10
    )
    return oc.make_offline_env(made["expert"])


@pytest.mark.learning
@pytest.mark.slow
def test_edac_on_reacher_expert(reacher_expert):
    # Measured 2026-12-06 (Intel Xeon, jax 0.11.2; N = 10, eta = 1, 3 seeds), per chunk of a 10k run in 20 chunks:
    # 92.9 or more on every seed up to 3k updates; then a dip while the temperature falls (alpha 0.43 -> 0.25, Q at
    # the data's actions turning from rising to falling), down to 52.1, 96.5, 70.8 at 5k; 93 or more on every seed
    # from 6.5k on; 103.9, 99.8, 98.0 at 10k (this test, in 10 chunks: 99.4, 97.9, 98.0). It ran at 5k until then
    # (97.8, 97.5, 99.7 on another CPU), inside the dip on this one. Diversity falls from -1.04 to -1.11, near the
    # minimum -N/(N-1) of the mean pairwise cosine sum (the members' action gradients spread out).
    result, last = _learn("edac", reacher_expert, 10_000)
    assert last.mean() >= 90
    diversity = np.asarray(result.metrics["diversity"]).mean(axis=0)
    assert diversity[-1] < -1.0
