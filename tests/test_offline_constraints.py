"""Explicit policy constraints: BRAC-p, BRAC-v (KL to a maximum-likelihood behaviour policy) and BEAR (MMD support
constraint), and the lecture's 1D line world where the two kinds of constraint part ways."""

import functools
import math

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import algos, envs
from jaxrl.algos.offline import bear, brac, brac_p, brac_v
from jaxrl.algos.offline import common as oc
from jaxrl.config import ConfigError
from jaxrl.data import dataset as ds
from jaxrl.data import rollout as rollout_lib
from jaxrl.data.types import Transition
from jaxrl.envs.wrappers import VmapEnv
from jaxrl.losses.offline import bear_critic_loss
from jaxrl.nets.mixture import TanhGaussianMixture, make_tanh_gaussian_mixture
from jaxrl.run import generate, train
from jaxrl.tasks.line_world import LineParams, LineWorld, scripted_behaviour

CONSTRAINED = ("brac_p", "brac_v", "bear")
TINY = dict(
    hidden=(16, 16),
    batch_size=32,
    updates_per_iteration=5,
    total_env_steps=10,
    behaviour_pretrain_updates=5,
    behaviour_components=2,
)
RUN = dict(num_chunks=2, eval_episodes=2, progress=False)


# ------------------------------------------------------------------------------------------- known answers


def _q_apply(p, obs, act):  # twin linear critics (params with a leading [E] axis): [E, B]
    return jax.vmap(lambda p: obs @ p["wo"] + act @ p["wa"] + p["b"])(p)


class _FixedSamples:
    """A 'policy' whose samples are given: ``sample(sample_shape=(M,))`` returns ``actions [M, B, A]``."""

    def __init__(self, actions):
        self.actions = actions

    def sample(self, *, seed, sample_shape=()):
        assert tuple(sample_shape) == self.actions.shape[:1]
        return self.actions


def test_bear_critic_loss_known_answer():
    # E = 2 linear critics, B = 2 states (obs dim 1), A = 1, M = 2 sampled next actions.
    q = {"wo": jnp.array([[1.0], [0.0]]), "wa": jnp.array([[1.0], [2.0]]), "b": jnp.array([0.0, 0.5])}  # s + a; 2a + .5
    tq = {"wo": jnp.array([[2.0], [1.0]]), "wa": jnp.array([[-1.0], [1.0]]), "b": jnp.zeros(2)}  # 2s - a; s + a
    batch = Transition(
        obs=jnp.array([[1.0], [2.0]]),
        action=jnp.array([[0.5], [-1.0]]),
        reward=jnp.array([1.0, 0.0]),
        next_obs=jnp.array([[1.0], [0.0]]),
        terminated=jnp.array([0.0, 1.0]),
        truncated=jnp.zeros(2),
        extras=oc.Extras(jnp.zeros(2)),
    )
    a_next = jnp.array([[[0.0], [1.0]], [[1.0], [-1.0]]])  # [M, B, A]
    loss, m = jax.jit(
        functools.partial(
            bear_critic_loss,
            q_apply=_q_apply,
            policy_apply=lambda p, o: _FixedSamples(a_next),
            num_samples=2,
            discount=0.9,
            lambda_mix=0.75,
        )
    )(q, batch, jax.random.PRNGKey(0), target_q_params=tq, policy_params=None)
    # state 0 (s' = 1): sample 0 (a' = 0): Qhat = (2, 1) -> 0.75*1 + 0.25*2 = 1.25;
    #                   sample 1 (a' = 1): Qhat = (1, 2) -> 0.75*1 + 0.25*2 = 1.25; max = 1.25; y = 1 + 0.9 * 1.25
    # state 1 terminal: y = 0
    y = np.array([1.0 + 0.9 * 1.25, 0.0])
    q_sa = np.array([[1.5, 1.0], [1.5, -1.5]])  # [E, B]: member 0: s + a; member 1: 2a + 0.5
    want = np.sum(np.mean((q_sa - y) ** 2, axis=1))
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    np.testing.assert_allclose(m["target"], y.mean(), rtol=1e-6)
    # the max over samples matters: state 0 with samples (0, 1) under lambda_mix = 0 (pure max):
    # max_e per sample = (2, 2) -> 2; with lambda_mix = 1 (pure min) = (1, 1) -> 1
    for lam, v in ((0.0, 2.0), (1.0, 1.0)):
        _, m = bear_critic_loss(
            q,
            batch,
            jax.random.PRNGKey(0),
            q_apply=_q_apply,
            target_q_params=tq,
            policy_apply=lambda p, o: _FixedSamples(a_next),
            policy_params=None,
            discount=0.9,
            lambda_mix=lam,
            num_samples=2,
        )
        np.testing.assert_allclose(m["target"], (1.0 + 0.9 * v) / 2, rtol=1e-6)


def _normal_logpdf(x, mu, sd):
    return -0.5 * ((x - mu) / sd) ** 2 - math.log(sd) - 0.5 * math.log(2 * math.pi)


def test_tanh_gaussian_mixture_log_prob_known_answer():
    # two components in 1-D, weights (0.25, 0.75) via logits (0, log 3), pre-tanh N(-1, 0.5^2) and N(1, 1)
    logits = jnp.array([[0.0, math.log(3.0)]])
    loc = jnp.array([[[-1.0], [1.0]]])
    log_scale = jnp.log(jnp.array([[[0.5], [1.0]]]))
    log_prob = jax.jit(lambda a: TanhGaussianMixture(logits, loc, log_scale).log_prob(a))
    for a in (-0.5, 0.0, 0.9):
        u, jac = math.atanh(a), math.log(1 - a * a)
        want = math.log(
            0.25 * math.exp(_normal_logpdf(u, -1, 0.5) - jac) + 0.75 * math.exp(_normal_logpdf(u, 1, 1) - jac)
        )
        np.testing.assert_allclose(log_prob(jnp.array([[a]])), [want], rtol=1e-5)
    # one component = distrax's tanh-Gaussian
    one = TanhGaussianMixture(
        jnp.zeros((3, 1)), jnp.array([[[0.3]], [[-0.2]], [[1.0]]]), jnp.log(jnp.full((3, 1, 1), 0.7))
    )
    ref = distrax.Transformed(
        distrax.MultivariateNormalDiag(jnp.array([[0.3], [-0.2], [1.0]]), jnp.full((3, 1), 0.7)),
        distrax.Block(distrax.Tanh(), ndims=1),
    )
    a = jnp.array([[0.1], [-0.7], [0.95]])
    np.testing.assert_allclose(jax.jit(lambda a: one.log_prob(a))(a), jax.jit(lambda a: ref.log_prob(a))(a), rtol=1e-5)
    # actions on the bounds stay finite; samples broadcast over a leading sample axis
    assert np.all(np.isfinite(np.asarray(log_prob(jnp.array([[1.0], [-1.0]])))))
    s = jax.jit(lambda k: TanhGaussianMixture(logits, loc, log_scale).sample(seed=k, sample_shape=(4000,)))(
        jax.random.PRNGKey(1)
    )
    assert s.shape == (4000, 1, 1) and log_prob(s).shape == (4000, 1)
    # P(a < -0.2) = 0.25 Phi((atanh(-0.2) + 1) / 0.5) + 0.75 Phi(atanh(-0.2) - 1)
    phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))
    want = 0.25 * phi((math.atanh(-0.2) + 1) / 0.5) + 0.75 * phi(math.atanh(-0.2) - 1)
    frac = float(np.mean(np.asarray(s) < -0.2))
    assert abs(frac - want) < 0.03, (frac, want)


# ------------------------------------------------------------------------------------------------ line world


def test_line_world_dynamics_and_rewards():
    env, params = envs.make("line-world")
    assert isinstance(env, LineWorld) and env.action_space(params).shape == (1,)
    key = jax.random.PRNGKey(0)
    obs, state = env.reset(key, params)
    np.testing.assert_allclose(obs, [0.2])
    step = jax.jit(env.step_env)
    # right at full speed: 0.2 -> 0.45 -> 0.7 -> 0.95 (zone) -> 1.0 goal (+1, terminated); 4 steps
    rewards = []
    for _ in range(4):
        obs, state, r, term, info = step(key, state, jnp.array([1.0]), params)
        rewards.append(float(r))
    np.testing.assert_allclose(rewards, [0, 0, 0, 1])
    assert bool(term) and bool(info["success"])
    # moving left inside the goal zone costs min(a, 0); outside it is free; actions are clipped to [-1, 1]
    zone = state.replace(pos=jnp.float32(0.9))
    obs, _, r, term, _ = step(key, zone, jnp.array([-5.0]), params)
    np.testing.assert_allclose([obs[0], r], [0.65, -1.0], rtol=1e-6)
    assert not bool(term)
    _, _, r, _, _ = step(key, state.replace(pos=jnp.float32(0.3)), jnp.array([-0.5]), params)
    assert float(r) == 0.0
    # truncation at the horizon through the gymnax step
    _, _, _, term, trunc, _ = env.step(
        key, state.replace(pos=jnp.float32(0.0), time=jnp.int32(19)), jnp.array([-1.0]), params
    )
    assert bool(trunc) and not bool(term)
    with pytest.raises(ValueError, match="unknown parameter"):
        envs.make("line-world", goal=3)


def test_line_world_under_jit_and_vmap():
    env, _ = envs.make("line-world", start_low=0.0, start_high=0.9)
    params = LineParams(
        start_low=jnp.zeros(8),
        start_high=jnp.linspace(0.0, 0.9, 8),
        step_size=jnp.full(8, 0.25),
        zone_width=jnp.full(8, 0.25),
        max_steps_in_episode=jnp.full(8, 20, jnp.int32),
    )
    keys = jax.random.split(jax.random.PRNGKey(1), 8)
    obs, state = jax.jit(jax.vmap(env.reset))(keys, params)
    assert obs.shape == (8, 1) and float(obs[0, 0]) == 0.0
    assert np.all(np.asarray(obs[:, 0]) <= np.asarray(params.start_high) + 1e-6)
    actions = jnp.ones((8, 1))
    obs2, _, r, term, trunc, info = jax.jit(jax.vmap(env.step))(keys, state, actions, params)
    np.testing.assert_allclose(
        np.asarray(info["final_observation"]), np.minimum(np.asarray(obs) + 0.25, 1.0), rtol=1e-6
    )
    assert r.shape == term.shape == (8,)
    # the scripted behaviour policy: mostly left (a ~ -0.8), right with probability 0.2
    a = scripted_behaviour()(jnp.zeros((4000, 1)), jax.random.PRNGKey(2))
    frac_right = float(np.mean(np.asarray(a) > 0))
    assert a.shape == (4000, 1) and 0.17 < frac_right < 0.23 and float(jnp.abs(a).max()) <= 1.0


# --------------------------------------------------------------------------- through the run loop, bad input


@pytest.fixture(scope="module")
def tiny_env():
    env, params = envs.make("Pendulum-v1")
    d = generate.rollout_dataset(
        env,
        params,
        None,
        jax.random.PRNGKey(0),
        300,
        info=ds.DatasetInfo(
            name="a", kind="random", env_name="Pendulum-v1", random_return=-1200.0, expert_return=-150.0
        ),
    )
    return oc.make_offline_env(d)


@pytest.mark.integration
@pytest.mark.parametrize("name", CONSTRAINED)
def test_each_algorithm_runs_through_the_run_loop(name, tiny_env):
    module = algos.get(name)
    result = train(name, tiny_env, module.Config(**TINY), seeds=2, **RUN)
    s = result.summary
    assert np.isfinite(s["normalized_score"]).all() and len(s["normalized_score"]) == 2
    keys = ("mmd", "lagrange") if name == "bear" else ("kl", "kl_tp1", "alpha")
    for k in keys + ("critic_loss", "actor_loss", "q_policy", "behaviour_nll"):
        assert np.isfinite(result.metrics[k]).all(), k
    if name != "bear":  # a fixed penalty weight by default
        np.testing.assert_array_equal(result.metrics["alpha"], 1.0)


def test_registry_names_and_variants():
    assert algos.get("brac_p") is brac_p and algos.get("brac_v") is brac_v and algos.get("bear") is bear
    assert brac_p.Config().variant == "p" and brac_v.Config().variant == "v" and brac.Config().variant == "p"
    assert algos.name_of(brac_v) == "brac_v"
    with pytest.raises(ConfigError, match=r"variant='v' is not allowed: choose one of \['p'\]"):
        brac_p.Config(variant="v")


@pytest.mark.parametrize(
    "cls, field, value, match",
    [
        (brac_p.Config, "alpha", -1.0, r"alpha=-1.0 is out of range: must be >= 0"),
        (brac_v.Config, "alpha", -0.5, r"alpha=-0.5 is out of range: must be >= 0"),
        (brac_p.Config, "alpha_learning_rate", 0.0, r"alpha_learning_rate=0.0 is out of range: must be > 0"),
        (brac_p.Config, "num_kl_samples", 0, r"num_kl_samples=0 is out of range: must be >= 1"),
        (bear.Config, "epsilon", -0.1, r"epsilon=-0.1 is out of range: must be >= 0"),
        (bear.Config, "sigma", 0.0, r"sigma=0.0 is out of range: must be > 0"),
        (bear.Config, "lambda_mix", 1.5, r"lambda_mix=1.5 is out of range: must be >= 0 and <= 1"),
        (bear.Config, "kernel", "rbf", r"kernel='rbf' is not allowed"),
        (bear.Config, "behaviour_components", 0, r"behaviour_components=0 is out of range: must be >= 1"),
    ],
)
def test_bad_input_names_the_field(cls, field, value, match):
    with pytest.raises(ConfigError, match=match):
        cls(**{field: value})


def test_bad_input_before_compiling(tiny_env):
    with pytest.raises(ConfigError, match="bear.Config.batch_size=512 is larger than the data"):
        train("bear", tiny_env, bear.Config(**dict(TINY, batch_size=512)), **RUN)
    with pytest.raises(ConfigError, match="brac_v is an offline algorithm"):
        train("brac_v", "Pendulum-v1", brac_v.Config(**TINY), **RUN)


@pytest.mark.integration
def test_brac_alpha_tuned_by_dual_ascent(tiny_env):
    env, env_params = tiny_env
    cfg = brac_v.Config(**TINY, alpha=0.5, tune_alpha=True, target_kl=-100.0, alpha_learning_rate=0.1)
    algo = brac_v.make(cfg, env, env_params)
    state, m = jax.jit(lambda k: algo.step(algo.init(k)))(jax.random.PRNGKey(0))
    # KL far above its target: dual ascent raises alpha (5 Adam steps of about 0.1 in log space)
    alpha = float(jnp.exp(state.nets.multiplier.params))
    assert 0.5 * math.exp(0.4) < alpha < 0.5 * math.exp(0.51), alpha
    assert 0.5 < float(m["alpha"]) < alpha  # the mean of the alphas used during the step


# ------------------------------------------------------------------------------------------- learning test
# The lecture's point: a behaviour policy that goes left (its mode, a ~ -0.8, probability 0.8) and sometimes right
# (a ~ +0.8, probability 0.2). Distribution matching (BRAC's KL) keeps the mode: a unimodal actor pays
# alpha * log(0.8 / 0.2) = 1.39 alpha more KL on the right mode, more than right gains in Q away from the goal.
# The support constraint (BEAR's MMD <= epsilon) accepts any action the behaviour takes often enough: with a
# gaussian kernel sigma = 0.2 and 5 samples, MMD is about 0.4 at the left mode, 1.10 at the right mode, 1.16 at
# a = 1 and 1.26 in the gap between the modes (measured), so epsilon = 1.2 admits both modes but not the gap.


@pytest.fixture(scope="module")
def line_world_data():
    env, params = envs.make("line-world")
    n = 100
    venv = VmapEnv(env, n)
    ret = lambda policy, key: float(jnp.mean(rollout_lib.evaluate(venv, params, policy, key, n, 20)))
    random_return = ret(lambda o, k: jax.random.uniform(k, (n, 1), minval=-1.0, maxval=1.0), jax.random.PRNGKey(1))
    expert_return = ret(lambda o, k: jnp.ones((n, 1)), jax.random.PRNGKey(2))
    assert expert_return == 1.0 and abs(random_return) < 0.1
    # uniform starts over the line and short episodes, so every state is covered
    collect = LineParams(start_low=0.0, start_high=1.0, max_steps_in_episode=4)
    data = generate.rollout_dataset(
        env,
        collect,
        scripted_behaviour(),
        jax.random.PRNGKey(0),
        10_000,
        info=ds.DatasetInfo(
            name="line-world-behaviour",
            kind="behaviour",
            env_name="line-world",
            random_return=random_return,
            expert_return=expert_return,
        ),
    )
    return oc.make_offline_env(data, (env, params))


LINE = dict(
    hidden=(64, 64),
    updates_per_iteration=100,
    total_env_steps=1_000,
    behaviour_pretrain_updates=1_000,
    discount=0.9,
    tau=0.02,
)
BEAR_LINE = dict(kernel="gaussian", sigma=0.2, epsilon=1.2, lagrange_learning_rate=1e-2)


@pytest.mark.learning
def test_line_world_support_constraint_beats_distribution_matching(line_world_data):
    env, env_params = line_world_data
    start = jnp.array([[0.2]])
    scores, first_action = {}, {}
    for name, extra in (("bear", BEAR_LINE), ("brac_p", {}), ("brac_v", {})):
        module = algos.get(name)
        cfg = module.Config(**LINE, **extra)
        result = train(name, line_world_data, cfg, seeds=3, num_chunks=2, eval_episodes=5, progress=False)
        scores[name] = np.asarray(result.summary["normalized_score_last"])
        algo = module.make(cfg, env, env_params)
        first_action[name] = np.array([float(algo.act(result.run_state(i), start, None, True)[0, 0]) for i in range(3)])
        print(name, "normalised score (last) per seed:", scores[name], "action at S:", first_action[name])
        if name == "bear":  # the behaviour model kept both modes: about 20% of its samples go right
            state = result.run_state(0)
            beh = make_tanh_gaussian_mixture(1, cfg.hidden, cfg.activation, cfg.behaviour_components)
            samples = beh.apply(state.nets.behaviour, jnp.linspace(0, 0.95, 20)[:, None]).sample(
                seed=jax.random.PRNGKey(0), sample_shape=(500,)
            )
            frac_right = float(np.mean(np.asarray(samples) > 0))
            print("behaviour model: fraction of right actions", frac_right)
            assert 0.1 < frac_right < 0.3
    # BEAR takes the behaviour's minor mode (right) and reaches the goal; BRAC keeps the mode (left)
    assert np.all(first_action["bear"] > 0.5) and scores["bear"].mean() >= 90
    for name in ("brac_p", "brac_v"):
        assert np.all(first_action[name] < 0), name
        assert scores["bear"].mean() >= scores[name].mean() + 50, name
