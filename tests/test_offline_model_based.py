"""Offline model-based RL (MOPO, MOReL): the dynamics ensemble, model rollouts, the phase switch, the penalties,
both algorithms through the run loop, bad input; learning tests on a generated Pendulum medium dataset."""

import math
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrl import algos
from jaxrl.algos.common import phase_cond
from jaxrl.algos.offline import common as oc
from jaxrl.algos.offline import models, mopo, morel
from jaxrl.config import ConfigError
from jaxrl.data import dataset as ds
from jaxrl.data.types import Transition
from jaxrl.losses.offline import gaussian_ensemble_dynamics_loss
from jaxrl.run import generate, train

REFS = dict(random_return=-1200.0, expert_return=-150.0)
TINY = dict(
    hidden=(16, 16),
    model_hidden=(16, 16),
    num_members=3,
    num_elites=2,
    batch_size=32,
    updates_per_iteration=5,
    total_env_steps=20,
    model_train_updates=10,
    rollout_batch_size=8,
    rollout_horizon=3,
    model_retain_iterations=2,
)
RUN = dict(num_chunks=2, eval_episodes=2, progress=False)


@pytest.fixture(scope="module")
def tiny_env():
    import jaxrl.envs

    env, params = jaxrl.envs.make("Pendulum-v1")
    d = generate.rollout_dataset(
        env,
        params,
        None,
        jax.random.PRNGKey(0),
        400,
        info=ds.DatasetInfo(name="a", kind="random", env_name="Pendulum-v1", **REFS),
    )
    return oc.make_offline_env(d)


# ------------------------------------------------------------------------------------------ the ensemble


def _linear_system(key, n):
    """s' = A s + B a, r = c.s + d.a on random (s, a): the ensemble's mean should recover it."""
    A = jnp.array([[0.9, 0.1], [-0.2, 0.8]])
    Bm = jnp.array([[0.0], [0.5]])
    c, d = jnp.array([1.0, -0.5]), jnp.array([0.3])
    ks, ka = jax.random.split(key)
    s = jax.random.normal(ks, (n, 2))
    a = jax.random.uniform(ka, (n, 1), minval=-1, maxval=1)
    return Transition(s, a, s @ c + a @ d, s @ A.T + a @ Bm.T, jnp.zeros(n), jnp.zeros(n), oc.Extras(jnp.zeros(n)))


def test_normalizer_known_answer():
    obs = jnp.array([[0.0, 5.0], [2.0, 5.0], [100.0, 100.0]])
    act = jnp.array([[1.0], [3.0], [50.0]])
    rew = jnp.array([1.0, 3.0, 7.0])
    nxt = obs + jnp.array([[1.0, 0.0], [3.0, 0.0], [0.0, 0.0]])
    n = models.fit_normalizer(obs, act, rew, nxt, mask=jnp.array([1.0, 1.0, 0.0]))  # last row is padding
    np.testing.assert_allclose(n.in_mean, [1.0, 5.0, 2.0])
    np.testing.assert_allclose(n.in_std, [1.0, 1.0, 1.0])  # the constant obs dim keeps scale 1
    np.testing.assert_allclose(n.out_mean, [2.0, 0.0, 2.0])
    np.testing.assert_allclose(n.out_std, [1.0, 1.0, 1.0])


def test_predict_units_and_loss_bound_term():
    """predict() maps the normalised Gaussian to data units (mean * std + mean, log var + 2 log std); the model
    loss is the ensemble NLL plus coef * sum_e (sum max_lv - sum min_lv), 10.5 per output at init."""
    dyn = models.make_dynamics(2, 1, hidden=(8,), num_members=3)
    params = dyn.init(jax.random.PRNGKey(0))
    batch = _linear_system(jax.random.PRNGKey(1), 16)
    norm = models.Normalizer(
        jnp.array([0.5, -1.0, 0.0]), jnp.array([2.0, 1.0, 0.5]), jnp.array([0.1, 0.2, 0.3]), jnp.array([2.0, 3.0, 4.0])
    )
    mean, log_var = dyn.predict(params, norm, batch.obs, batch.action)
    assert mean.shape == log_var.shape == (3, 16, 3)
    mean_n = dyn.normalized_mean(params, norm, batch.obs, batch.action)
    np.testing.assert_allclose(mean, mean_n * norm.out_std + norm.out_mean, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(log_var - 2 * jnp.log(norm.out_std)) <= models.INIT_MAX_LOG_VAR + 1e-6)
    assert np.all(np.asarray(log_var - 2 * jnp.log(norm.out_std)) >= models.INIT_MIN_LOG_VAR - 1e-6)
    loss0, _ = models.model_loss(params, norm, batch, ensemble=dyn, logvar_bound_coef=0.0)
    loss1, _ = models.model_loss(params, norm, batch, ensemble=dyn, logvar_bound_coef=0.01)
    np.testing.assert_allclose(loss1 - loss0, 0.01 * 3 * 3 * (0.5 + 10.0), rtol=1e-4)
    ref, _ = gaussian_ensemble_dynamics_loss(
        params, batch, dynamics_apply=lambda p, o, a: dyn.predict_member(p, norm, o, a)
    )
    np.testing.assert_allclose(loss0, ref, rtol=1e-6)


def test_ensemble_fits_linear_system():
    """A small ensemble learns a 2-D linear system's next state and reward to RMSE < 0.05 (data std ~1) in 800
    Adam steps, with a small learned variance, under jit."""
    data = _linear_system(jax.random.PRNGKey(0), 2048)
    test = _linear_system(jax.random.PRNGKey(1), 512)
    dyn = models.make_dynamics(2, 1, hidden=(32, 32), num_members=3)
    tx = optax.adam(3e-3)
    norm = models.fit_normalizer(data.obs, data.action, data.reward, data.next_obs)
    model = models.init_model(dyn, tx, jax.random.PRNGKey(2), norm, num_elites=2)

    @jax.jit
    def fit(model, key):
        def update(m, k):
            idx = jax.random.randint(k, (128,), 0, 2048)
            batch = jax.tree.map(lambda x: x[idx], data)
            return models.fit_step(dyn, tx, m, batch, logvar_bound_coef=0.01)

        return jax.lax.scan(update, model, jax.random.split(key, 800))

    model, metrics = fit(model, jax.random.PRNGKey(3))
    assert metrics["model_loss"][-1] < metrics["model_loss"][0]
    mean, log_var = dyn.predict(model.params, model.norm, test.obs, test.action)
    next_obs = test.obs + mean[..., :2]
    rmse_s = float(jnp.sqrt(jnp.mean(jnp.square(next_obs - test.next_obs))))
    rmse_r = float(jnp.sqrt(jnp.mean(jnp.square(mean[..., 2] - test.reward))))
    print(
        f"linear system: next-state RMSE {rmse_s:.4f}, reward RMSE {rmse_r:.4f}, "
        f"mean std {float(jnp.mean(jnp.exp(0.5 * log_var))):.4f}"
    )
    assert rmse_s < 0.05 and rmse_r < 0.05
    assert float(jnp.mean(jnp.exp(0.5 * log_var))) < 0.1  # the noise-free system is learned as near-deterministic
    mse = models.member_mse(dyn, model.params, model.norm, test.obs, test.action, test.reward, test.next_obs)
    assert mse.shape == (3,) and float(jnp.max(mse)) < 0.01
    elites = models.select_elites(mse, 2)
    assert set(np.asarray(elites).tolist()) == set(np.argsort(np.asarray(mse))[:2].tolist())


def test_select_elites_known_answer():
    np.testing.assert_array_equal(models.select_elites(jnp.array([0.3, 0.1, 0.5, 0.2]), 2), [1, 3])


# ------------------------------------------------------------------------------------------------ rollouts


def _counting_step(limit):
    """obs + 1 each step, reward = obs[0], halts once obs[0] >= limit."""

    def step(key, obs, action):
        nxt = obs + 1.0
        return nxt, obs[:, 0] + 0 * action[:, 0], (nxt[:, 0] >= limit).astype(jnp.float32), {"x": obs[:, 0]}

    return step


def test_rollout_halting_known_answer_under_jit_and_vmap():
    policy = lambda obs, key: jnp.zeros((obs.shape[0], 1))
    start = jnp.array([[0.0], [1.0], [5.0]])
    run = jax.jit(lambda k, s: models.rollout(k, policy, s, 4, step=_counting_step(2.0)))
    out = run(jax.random.PRNGKey(0), start)
    assert out.obs.shape == (4, 3, 1) and out.action.shape == (4, 3, 1) and out.reward.shape == (4, 3)
    # row 0: 0 -> 1 -> 2 (halts at t=1) ; row 1: 1 -> 2 halts at t=0 ; row 2 starts past the limit: halts at t=0
    np.testing.assert_array_equal(out.terminated[:, 0], [0, 1, 1, 1])
    np.testing.assert_array_equal(out.valid, [[1, 1, 1], [1, 0, 0], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(out.reward[:, 0], [0, 1, 2, 3])
    batched = jax.jit(jax.vmap(lambda k, s: models.rollout(k, policy, s, 4, step=_counting_step(2.0))))(
        jax.random.split(jax.random.PRNGKey(0), 2), jnp.stack([start, start + 10.0])
    )
    np.testing.assert_array_equal(batched.valid[0], out.valid)
    np.testing.assert_array_equal(batched.valid[1], [[1, 1, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0]])


def test_model_rollout_samples_elites_under_vmap():
    dyn = models.make_dynamics(3, 1, hidden=(8,), num_members=4)
    tx = optax.adam(1e-3)
    norm = models.Normalizer(jnp.zeros(4), jnp.ones(4), jnp.zeros(4), jnp.ones(4))
    model = models.init_model(dyn, tx, jax.random.PRNGKey(0), norm, num_elites=2).replace(
        elites=jnp.array([1, 3], jnp.int32)
    )
    policy = lambda obs, key: jax.random.uniform(key, (obs.shape[0], 1), minval=-1, maxval=1)

    def go(key):
        def step(k, obs, act):
            pred = models.sample_step(dyn, model, k, obs, act)
            return pred.next_obs, pred.reward, jnp.zeros_like(pred.reward), {"member": pred.member}

        return models.rollout(key, policy, jnp.zeros((5, 3)), 6, step=step)

    out = jax.jit(jax.vmap(go))(jax.random.split(jax.random.PRNGKey(1), 2))
    assert out.obs.shape == (2, 6, 5, 3) and out.next_obs.shape == (2, 6, 5, 3) and out.reward.shape == (2, 6, 5)
    assert set(np.unique(np.asarray(out.info["member"])).tolist()) <= {1, 3}
    np.testing.assert_array_equal(out.obs[:, 1:], out.next_obs[:, :-1])
    assert np.isfinite(np.asarray(out.next_obs)).all()
    pred = models.sample_step(
        dyn, model, jax.random.PRNGKey(2), jnp.ones((5, 3)), jnp.zeros((5, 1)), deterministic=True
    )
    mean, _ = dyn.predict(model.params, norm, jnp.ones((5, 3)), jnp.zeros((5, 1)))
    np.testing.assert_allclose(pred.next_obs, 1.0 + mean[pred.member, jnp.arange(5), :3], rtol=1e-6)


# ------------------------------------------------------------------------------------------- phase switch


def test_phase_cond_exact_and_runs_one_branch_when_runs_agree():
    calls = []

    def branch(tag, sign):
        def fn(x):
            jax.debug.callback(lambda: calls.append(tag))
            return x + sign

        return fn

    f = jax.jit(jax.vmap(lambda p, x: phase_cond(p, branch("t", 1.0), branch("f", -1.0), x)))
    np.testing.assert_array_equal(f(jnp.array([True, True]), jnp.zeros(2)), [1, 1])
    jax.effects_barrier()
    assert calls == ["t"]
    calls.clear()
    np.testing.assert_array_equal(f(jnp.array([False, False]), jnp.zeros(2)), [-1, -1])
    jax.effects_barrier()
    assert calls == ["f"]
    calls.clear()
    np.testing.assert_array_equal(f(jnp.array([True, False]), jnp.zeros(2)), [1, -1])  # mixed: both, selected
    jax.effects_barrier()
    assert sorted(calls) == ["f", "t"]
    g = jax.jit(jax.vmap(jax.vmap(lambda p, x: phase_cond(p, lambda y: y + 1, lambda y: y - 1, x))))
    np.testing.assert_array_equal(g(jnp.array([[True, False], [False, False]]), jnp.zeros((2, 2))), [[1, -1], [-1, -1]])
    np.testing.assert_array_equal(jax.jit(lambda p: phase_cond(p, lambda: 1, lambda: 2))(False), 2)


# -------------------------------------------------------------------------------------------- penalties


def _pred():
    # E = 3 members, B = 2 rows, D = O + 1 = 3 (2 obs dims + reward)
    mean = jnp.array(
        [[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]], [[3.0, 4.0, 1.0], [0.1, 0.0, 1.0]], [[0.0, 0.0, 1.0], [0.0, 0.2, 1.0]]]
    )
    variance = jnp.array(
        [[[1.0, 0.0, 0.0], [4.0, 0.0, 0.0]], [[9.0, 16.0, 0.0], [0.0, 0.0, 0.0]], [[100.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]
    )
    return models.Prediction(jnp.zeros((2, 2)), jnp.array([-1.0, -2.0]), mean, variance, jnp.zeros(2, jnp.int32))


def test_mopo_penalty_known_answer():
    elites = jnp.array([0, 1], jnp.int32)  # member 2 (huge variance) is not an elite
    state = SimpleNamespace(model=SimpleNamespace(elites=elites))
    # variance: ||Sigma_0|| = [1, 4], ||Sigma_1|| = [sqrt(81 + 256), 0] -> u = [sqrt(337), 4]
    cfg = mopo.Config(penalty_coef=0.5, uncertainty="variance")
    r, halt, info = mopo.mopo_penalty(cfg, state, _pred())
    np.testing.assert_allclose(r, [-1.0 - 0.5 * math.sqrt(337.0), -2.0 - 0.5 * 4.0], rtol=1e-6)
    np.testing.assert_array_equal(halt, [0, 0])
    # std: ||sigma_0|| = [1, 2], ||sigma_1|| = [5, 0] -> u = [5, 2]
    r, _, info = mopo.mopo_penalty(mopo.Config(penalty_coef=0.5), state, _pred())
    np.testing.assert_allclose(r, [-1.0 - 2.5, -2.0 - 1.0], rtol=1e-6)
    np.testing.assert_allclose(info["uncertainty"], [5.0, 2.0], rtol=1e-6)


def test_morel_penalty_known_answer():
    # next-state disagreement: row 0: max ||f_i - f_j|| = 5 (members 0/1 and 1/2); row 1: sqrt(0.01 + 0.04)
    state = SimpleNamespace(model=SimpleNamespace(max_disagreement=jnp.array(2.0)), reward_max=jnp.array(16.0))
    cfg = morel.Config(threshold_scale=1.5, kappa_scale=0.5, discount=0.9)
    r, halt, info = morel.morel_penalty(cfg, state, _pred())
    # threshold 3: row 0 unknown -> -kappa / (1 - gamma) = -(0.5 * 16) / 0.1 = -80 and halt; row 1 known
    np.testing.assert_allclose(r, [-80.0, -2.0], rtol=1e-5)
    np.testing.assert_array_equal(halt, [1, 0])
    np.testing.assert_array_equal(info["halted"], [1, 0])
    np.testing.assert_allclose(info["threshold"], [3.0, 3.0])


# ------------------------------------------------------------------------------------------ run loop


@pytest.mark.integration
@pytest.mark.parametrize("name", ("mopo", "morel"))
def test_each_algorithm_runs_through_the_run_loop(name, tiny_env):
    """Two seeds through jaxrl.run.train; MOReL without a held-out set (its elites are picked on the training
    rows)."""
    module = algos.get(name)
    cfg = module.Config(**TINY, **({"holdout_fraction": 0.0} if name == "morel" else {}))
    assert cfg.model_iterations == 2 and cfg.num_iterations == 4 and cfg.model_buffer_size == 48
    result = train(name, tiny_env, cfg, seeds=2, **RUN)
    s = result.summary
    for key in ("eval_return", "normalized_score", "normalized_score_best", "normalized_score_last"):
        assert key in s and np.isfinite(s[key]).all(), key
    m = result.metrics
    # chunk 0 = the model phase (2 iterations), chunk 1 = the policy phase
    assert (m["model_loss"][:, 0] != 0).all() and (m["model_loss"][:, 1] == 0).all()
    assert (m["critic_loss"][:, 0] == 0).all() and (m["critic_loss"][:, 1] != 0).all()
    assert (m["model_val_mse"][:, 1] > 0).all()
    assert (m["model_buffer_size"][:, 1] > 0).all()
    state = result.run_state(0)
    assert sorted(set(np.asarray(state.model.elites).tolist())) == sorted(np.asarray(state.model.elites).tolist())
    assert float(state.model.max_disagreement) > 0
    if name == "morel":
        assert float(state.holdout.sum()) == 0 and 0.0 <= float(m["halted"][0, 1]) <= 1.0
        assert (m["threshold"][:, 1] > 0).all()
    else:
        assert float(state.holdout.sum()) > 0 and (m["uncertainty"][:, 1] > 0).all()


# ----------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("module", (mopo, morel))
def test_bad_config_names_the_field(module):
    with pytest.raises(ConfigError, match="num_elites=8 is out of range: must be <= num_members = 7"):
        module.Config(num_elites=8)
    with pytest.raises(ConfigError, match=r"model_train_updates=20 is out of range"):
        module.Config(**dict(TINY, model_train_updates=20))
    with pytest.raises(ConfigError, match=r"real_ratio=1.5"):
        module.Config(real_ratio=1.5)
    with pytest.raises(ConfigError, match=r"holdout_fraction=0.7"):
        module.Config(holdout_fraction=0.7)
    with pytest.raises(ConfigError, match=r"discount=1.0"):
        module.Config(discount=1.0)
    from jaxrl.config import from_dict, to_dict

    cfg = module.Config(**TINY)
    assert from_dict(module.Config, to_dict(cfg)) == cfg  # config.json round trip (resume)


def test_bad_input_fails_before_compiling(tiny_env):
    with pytest.raises(ConfigError, match="mopo.Config.batch_size=512 is larger than the data"):
        train("mopo", tiny_env, mopo.Config(**dict(TINY, batch_size=512)), **RUN)
    with pytest.raises(ConfigError, match=r"morel.Config.dataset_index=1 is out of range"):
        train("morel", tiny_env, morel.Config(**TINY, dataset_index=1), **RUN)
    with pytest.raises(ConfigError, match="offline algorithm"):
        train("mopo", "Pendulum-v1", mopo.Config(**TINY), **RUN)
    with pytest.raises(ConfigError, match="num_members=1 is out of range: must be >= 2"):
        morel.Config(num_members=1, num_elites=1)
    mopo.Config(num_members=1, num_elites=1)  # MOPO's penalty needs no second member
    with pytest.raises(ConfigError, match="threshold_scale=0"):
        morel.Config(threshold_scale=0.0)
    with pytest.raises(ConfigError, match="uncertainty='cov'"):
        mopo.Config(uncertainty="cov")


# ------------------------------------------------------------------------------------------- learning tests
# The session's shared Pendulum-v1 datasets (tests/conftest.py `pendulum_datasets`: one SAC behaviour run, hidden
# (64, 64), 20k env steps); "medium" is its medium policy (normalised score ~33) rolled out for 5000 rows.

LEARN = dict(hidden=(64, 64), model_hidden=(64, 64), updates_per_iteration=100, rollout_batch_size=500)
LEARN_RUN = dict(num_chunks=10, eval_episodes=10, progress=False)


@pytest.fixture(scope="module")
def pendulum_medium(pendulum_datasets):
    return pendulum_datasets["medium"]


def _behaviour_score(env) -> float:
    info = env[0].infos[0]
    return float(ds.normalized_score(dict(info.extra)["medium_return"], info.random_return, info.expert_return))


@pytest.mark.learning
def test_mopo_beats_the_behaviour_policy_on_medium(pendulum_medium):
    """Measured (3 seeds, 2k model + 6k SAC updates): last normalised score 78.2 / 23.8 / 91.8 (mean 64.6)
    against the behaviour ("medium") policy's 37.7; 84 s on 2 shared CPU cores (210 s under heavy load), plus the
    session's shared dataset."""
    cfg = mopo.Config(**LEARN, total_env_steps=8_000, model_train_updates=2_000)
    result = train("mopo", pendulum_medium, cfg, seeds=3, **LEARN_RUN)
    last = np.asarray(result.summary["normalized_score_last"])
    behaviour = _behaviour_score(pendulum_medium)
    print(f"MOPO medium: last {np.round(last, 1)} (mean {last.mean():.1f}), behaviour {behaviour:.1f}")
    assert last.mean() >= behaviour + 10


@pytest.mark.learning
def test_morel_beats_the_behaviour_policy_on_medium(pendulum_medium):
    """Measured (3 seeds, 2k model + 6k SAC updates): with kappa_scale=0.1 (the default; HALT reward
    -kappa / (1 - gamma) = -163 here) last normalised score 77.5 / 52.1 / 101.1 (mean 76.9) against the
    behaviour policy's 37.7. The former default kappa_scale=1 (HALT reward -1630, ~100x a typical step) made the
    critic far more pessimistic (Q(s, pi(s)) -127 vs -87 at the end) and scored 26.1 / -10.2 / -0.3 (mean 5.2;
    15.8 with 10k SAC updates)."""
    cfg = morel.Config(**LEARN, total_env_steps=8_000, model_train_updates=2_000)
    result = train("morel", pendulum_medium, cfg, seeds=3, **LEARN_RUN)
    last = np.asarray(result.summary["normalized_score_last"])
    behaviour = _behaviour_score(pendulum_medium)
    print(
        f"MOReL medium: last {np.round(last, 1)} (mean {last.mean():.1f}), behaviour {behaviour:.1f}, "
        f"halted {np.asarray(result.metrics['halted'])[:, -1]}"
    )
    assert last.mean() >= behaviour + 10
