"""Multi-task RL, part A: the multi-task env, point-goal and gridworld suites, MT-SAC (shared and multi-head,
with gradient aggregators), Distral and its losses. Learning tests are marked (``pytest -m learning``)."""

from __future__ import annotations

import json

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import algos, envs
from jaxrl.algos.multitask import common as mt
from jaxrl.algos.multitask import distral, mh_sac, mt_sac
from jaxrl.config import ConfigError
from jaxrl.data.types import Transition
from jaxrl.envs.multitask import (
    MultiTaskEnv,
    append_context,
    blocked_task_ids,
    check_task_ids,
    evaluate_tasks,
    infer_task_id,
    make_multitask_env,
    round_robin_task_ids,
)
from jaxrl.losses import distral as dl
from jaxrl.tasks.gridworld import make_corners_suite
from jaxrl.tasks.point_goal import make_point_goal_suite

TINY = dict(num_envs=4, batch_size=16, learning_starts=8, hidden=(8,), buffer_size=256)


def oracle(params):
    """Heads straight for the goal named by omega (point-goal)."""

    def act(obs, key):
        goal = params.goal[jnp.argmax(obs[:, 2:], -1)]
        return jnp.clip((goal - obs[:, :2]) / 0.1, -1.0, 1.0)

    return act


# ------------------------------------------------------------------------------------------- multi-task env


def test_multitask_env_appends_context_and_carries_task_id():
    suite, params = envs.make("point-goal-4")
    env = make_multitask_env(suite, envs_per_task=2)
    assert env.num_envs == 8 and env.num_tasks == 4 and env.context_dim == 4
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    assert obs.shape == (8, 6) and env.observation_space(params).shape == (6,)
    np.testing.assert_array_equal(obs[:, 2:], np.repeat(np.eye(4), 2, axis=0))
    action = jnp.tile(jnp.array([[1.0, 0.0]]), (8, 1))
    obs, state, reward, term, trunc, info = env.step(jax.random.PRNGKey(1), state, action, params)
    np.testing.assert_array_equal(info["task_id"], [0, 0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_allclose(obs[:, :2], np.tile([[0.1, 0.0]], (8, 1)), atol=1e-6)
    # each env's reward is -distance to ITS task's goal (goals at angles 0, 90, 180, 270 degrees)
    goals = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], np.float32)
    want = -np.linalg.norm(np.array([0.1, 0.0]) - np.repeat(goals, 2, axis=0), axis=-1)
    np.testing.assert_allclose(reward, want, atol=1e-5)
    assert info["final_observation"].shape == (8, 6)
    np.testing.assert_array_equal(info["final_observation"][:, 2:], obs[:, 2:])
    np.testing.assert_array_equal(env.per_task(info["task_id"]), np.repeat(np.arange(4)[:, None], 2, 1))


def test_multitask_env_round_robin_and_custom_contexts():
    suite = make_point_goal_suite(3, contexts=np.arange(6, dtype=np.float32).reshape(3, 2))
    env = make_multitask_env(suite, task_ids=round_robin_task_ids(3, 5))
    obs, _ = env.reset(jax.random.PRNGKey(0), suite.params)
    np.testing.assert_array_equal(obs[:, 2:], np.arange(6).reshape(3, 2)[[0, 1, 2, 0, 1]])
    np.testing.assert_array_equal(infer_task_id(obs, suite.contexts), [0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match="blocked"):
        env.per_task(obs)


def test_multitask_env_errors_are_clear():
    suite, params = envs.make("point-goal-4")
    with pytest.raises(IndexError, match="task index 4 is out of range.*4 tasks"):
        MultiTaskEnv(suite.env, suite.contexts, [0, 4])
    with pytest.raises(IndexError, match="task index -1"):
        check_task_ids([-1], 4)
    with pytest.raises(ValueError, match="contexts"):
        MultiTaskEnv(suite.env, jnp.ones((4,)), [0])
    with pytest.raises(ValueError, match="omega has size 3, expected context_dim=4"):
        append_context(jnp.zeros((2, 2)), jnp.ones((3,)), context_dim=4)
    with pytest.raises(ValueError, match="omega must have shape"):
        suite.with_contexts(jnp.ones((3, 2)))
    env = make_multitask_env(suite)
    with pytest.raises(ValueError, match="stacked task params"):
        env.reset(jax.random.PRNGKey(0), suite.task(0))
    with pytest.raises(ValueError, match="envs_per_task"):
        blocked_task_ids(4, 0)


def test_evaluate_tasks_oracle_succeeds_on_every_task():
    suite, params = envs.make("point-goal-4")
    out = jax.jit(lambda k: evaluate_tasks(suite, params, oracle(params), k, 2))(jax.random.PRNGKey(0))
    assert out["eval_return"].shape == (4,) and out["eval_success"].shape == (4,)
    np.testing.assert_array_equal(out["eval_success"], np.ones(4))
    # 10 steps of 0.1 to the goal (distances 0.9, 0.8, ..., 0.0), then 20 steps at distance 0
    np.testing.assert_allclose(out["eval_return"], -4.5, atol=1e-4)


# --------------------------------------------------------------------------------------------------- suites


def test_point_goal_suites_registered_and_rewards():
    names = envs.list_envs()
    for name in ("point-goal-4", "point-goal-4-sparse", "point-goal-16", "gridworld-corners"):
        assert name in names
    suite, params = envs.make("point-goal-4-sparse")
    assert suite.num_tasks == 4 and suite.metadata()["reward"] == "sparse"
    np.testing.assert_allclose(params.goal, [[1, 0], [0, 1], [-1, 0], [0, -1]], atol=1e-6)
    env = suite.env
    p0 = suite.task(0)
    _, s = env.reset(jax.random.PRNGKey(0), p0)
    s = s.replace(pos=jnp.array([0.95, 0.0]))
    _, s2, r, term, trunc, info = env.step(jax.random.PRNGKey(0), s, jnp.array([1.0, 0.0]), p0)
    assert bool(info["success"]) and float(r) == 1.0 and not bool(term)
    _, _, r, _, _, info = env.step(jax.random.PRNGKey(0), s, jnp.array([-1.0, 0.0]), p0)
    assert not bool(info["success"]) and float(r) == 0.0
    np.testing.assert_allclose(info["dense_reward"], -0.15, atol=1e-6)
    # horizon: truncated after 30 steps
    _, s = env.reset(jax.random.PRNGKey(0), p0)
    for _ in range(30):
        _, s, _, term, trunc, _ = env.step(jax.random.PRNGKey(0), s, jnp.zeros(2), p0)
    assert bool(trunc) and not bool(term)


def test_gridworld_corners_conflict_and_rewards():
    suite, params = envs.make("gridworld-corners")
    assert suite.num_tasks == 4
    env = make_multitask_env(suite)
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    np.testing.assert_allclose(obs[:, :2], 0.0)
    # left, down, left, down reaches (0, 0): task 0 succeeds (+1, terminated); the others pay the step cost
    rewards = []
    for a in (3, 2, 3, 2):
        obs, state, r, term, trunc, info = env.step(jax.random.PRNGKey(1), state, jnp.full((4,), a), params)
        rewards.append(np.asarray(r))
    np.testing.assert_allclose(rewards[-1], [1.0, -0.01, -0.01, -0.01])
    np.testing.assert_array_equal(term, [True, False, False, False])
    np.testing.assert_array_equal(info["episode_success"], [True, False, False, False])
    # genuine conflict: from the centre, task 0's improving moves are exactly task 1's worsening moves
    goals = np.asarray(params.goal)
    moves = np.array([[0, 1], [1, 0], [0, -1], [-1, 0]])
    gain = lambda g: np.abs(np.array([2, 2]) - g).sum() - np.abs(np.array([2, 2]) + moves - g).sum(-1)
    assert set(np.flatnonzero(gain(goals[0]) > 0)) == set(np.flatnonzero(gain(goals[1]) < 0))
    with pytest.raises(ValueError, match="num_corners"):
        make_corners_suite(3)


# ---------------------------------------------------------------------------------------------------- MT-SAC


def _one_step(module, cfg, suite, params, steps=12):
    algo = module.make(cfg, suite, params)
    run = jax.jit(lambda k: jax.lax.scan(lambda s, _: algo.step(s), algo.init(k), None, length=steps))
    state, metrics = run(jax.random.PRNGKey(0))
    return algo, state, metrics


@pytest.mark.integration
def test_mt_sac_summed_gradient_equals_per_task_sum():
    suite, params = envs.make("point-goal-4")
    outs = []
    for monitor in (True, False):
        _, state, _ = _one_step(mt_sac, mt_sac.Config(**TINY, monitor_conflicts=monitor), suite, params, steps=10)
        outs.append([(net.params, net.target) for net in state.nets])  # not the optimiser states
    for a, b in zip(jax.tree.leaves(outs[0]), jax.tree.leaves(outs[1])):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


@pytest.mark.integration
def test_multi_head_sac_has_a_head_per_task():
    suite, params = envs.make("point-goal-4")
    assert mh_sac.Config().multi_head and not mt_sac.Config().multi_head
    algo, state, metrics = _one_step(mh_sac, mh_sac.Config(**TINY, monitor_conflicts=False), suite, params, steps=10)
    heads = [x for p, x in jax.tree_util.tree_leaves_with_path(state.nets.actor.params) if "_Heads" in str(p)]
    assert heads and all(h.shape[0] == 4 for h in heads)
    # the head for task k acts only on task k: the same observation gives different actions per head
    obs = append_context(jnp.zeros((4, 2)), jnp.eye(4))
    a = algo.act(state, obs, jax.random.PRNGKey(0), deterministic=True)
    b = algo.act(state, obs, jax.random.PRNGKey(0), deterministic=True, task_id=jnp.zeros(4, jnp.int32))
    assert not np.allclose(a, b)


def test_multitask_config_errors():
    suite, params = envs.make("point-goal-4")
    with pytest.raises(ConfigError, match="aggregator"):
        mt_sac.Config(aggregator="nope")
    with pytest.raises(ConfigError, match="num_envs=6 must be a multiple of the suite's 4 tasks"):
        mt_sac.make(mt_sac.Config(num_envs=6), suite, params)
    grid, gparams = envs.make("gridworld-corners")
    with pytest.raises(ConfigError, match="continuous"):
        mt_sac.make(mt_sac.Config(), grid, gparams)
    env, env_params = envs.make("Pendulum-v1")
    with pytest.raises(ConfigError, match="multi-task suite"):
        distral.make(distral.Config(), env, env_params)
    with pytest.raises(ConfigError, match="c_kl"):
        distral.Config(c_kl=-1.0)


@pytest.mark.integration
def test_mt_sac_pcgrad_in_run_loop_metrics_summary_and_per_task_temperature(tmp_path):
    for name in ("mt_sac", "mh_sac", "distral"):
        assert algos.default_env(name) == "point-goal-4"
    from jaxrl.run import train

    cfg = mt_sac.Config(**TINY, aggregator="pcgrad", total_env_steps=48)
    result = train(
        "mt_sac",
        "point-goal-4",
        cfg,
        seeds=2,
        num_chunks=2,
        eval_episodes=2,
        progress=False,
        out_dir=tmp_path / "run",
        tensorboard=False,
        checkpoint=False,
    )
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert np.shape(summary["eval_success"]) == (2, 4) and np.shape(summary["eval_return"]) == (2, 4)
    assert np.shape(summary["eval_success_best"]) == (2, 4)
    metrics = result.metrics  # [seeds, chunks, ...]
    assert metrics["train_return_per_task"].shape == (2, 2, 4) and metrics["alpha_per_task"].shape == (2, 2, 4)
    for name in (
        "critic_mean_cosine",
        "critic_num_conflicts",
        "actor_mean_cosine",
        "actor_num_conflicts",
        "return_spread",
        "success_spread",
        "train_success_per_task",
        "entropy_per_task",
    ):
        assert name in metrics, name
    assert np.all(np.isfinite(metrics["actor_mean_cosine"]))
    state = result.state
    log_alpha = state.nets.temperature.params
    assert log_alpha.shape == (2, 4)  # one temperature per task (per run)
    assert not np.allclose(log_alpha, 0.0)  # updates ran after the warm-up
    assert state.buffer.size.shape == (2, 4) and int(state.buffer.size[0, 0]) == 12


# --------------------------------------------------------------------------------------------------- Distral


def _gauss(mu, sigma):
    return distrax.MultivariateNormalDiag(jnp.asarray(mu, jnp.float32), jnp.asarray(sigma, jnp.float32))


def test_distral_regularised_reward_known_answer():
    r = dl.distral_regularised_reward(
        jnp.array([1.0, -2.0]), jnp.array([-1.0, 0.5]), jnp.array([-3.0, 0.5]), c_kl=0.5, c_ent=0.1
    )
    # 1 - 0.5 * (-1 + 3) - 0.1 * (-1) = 0.1 ; -2 - 0 - 0.05 = -2.05
    np.testing.assert_allclose(r, [0.1, -2.05], atol=1e-6)


def test_sample_with_prior_tanh_matches_distrax_and_cancels():
    mu, s = jnp.array([[0.3, -0.2]]), jnp.array([[0.5, 2.0]])
    dist_i = mt.tanh_gaussian(mu, jnp.log(s))
    dist_0 = mt.tanh_gaussian(jnp.zeros_like(mu), jnp.zeros_like(mu))
    a, lp_i, lp_0 = dl.sample_with_prior(dist_i, dist_0, jax.random.PRNGKey(0))
    np.testing.assert_allclose(lp_i, dist_i.log_prob(a), rtol=1e-4)
    np.testing.assert_allclose(lp_0, dist_0.log_prob(a), rtol=1e-4)
    a2, lp_a, lp_b = dl.sample_with_prior(dist_i, dist_i, jax.random.PRNGKey(0))
    np.testing.assert_allclose(lp_a, lp_b)
    # saturated actions: still finite
    big = mt.tanh_gaussian(jnp.full((1, 2), 30.0), jnp.full((1, 2), -5.0))
    _, x, y = dl.sample_with_prior(big, dist_0, jax.random.PRNGKey(1))
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(y))


def test_distral_distill_loss_known_answer_and_gradients():
    # pi_i = N(1, 0.5^2), pi_0 = N(mu0, 2^2) (1-d, untransformed):
    # E_{a~pi_i}[-log pi_0(a)] = log 2 + 0.5 log(2 pi) + (0.25 + (1 - mu0)^2) / 8
    batch = Transition(jnp.zeros((20000, 1)), None, None, None, None, None)
    policy_apply = lambda p, obs: _gauss(jnp.broadcast_to(p, obs.shape), 0.5 * jnp.ones_like(obs))
    shared_apply = lambda p, obs: _gauss(jnp.broadcast_to(p, obs.shape), 2.0 * jnp.ones_like(obs))
    mu0 = jnp.array([0.0])
    loss, m = dl.distral_distill_loss(
        mu0,
        batch,
        shared_apply=shared_apply,
        policy_params=jnp.array([1.0]),
        policy_apply=policy_apply,
        key=jax.random.PRNGKey(0),
    )
    want = np.log(2.0) + 0.5 * np.log(2 * np.pi) + (0.25 + 1.0) / 8
    np.testing.assert_allclose(loss, want, rtol=5e-3)
    g_shared = jax.grad(
        lambda p: dl.distral_distill_loss(
            p,
            batch,
            shared_apply=shared_apply,
            policy_params=jnp.array([1.0]),
            policy_apply=policy_apply,
            key=jax.random.PRNGKey(0),
        )[0]
    )(mu0)
    np.testing.assert_allclose(g_shared, [-(1.0 - 0.0) / 4.0], rtol=2e-2)  # d/dmu0 = -(mu_i - mu0) / s0^2
    g_policy = jax.grad(
        lambda p: dl.distral_distill_loss(
            mu0, batch, shared_apply=shared_apply, policy_params=p, policy_apply=policy_apply, key=jax.random.PRNGKey(0)
        )[0]
    )(jnp.array([1.0]))
    np.testing.assert_allclose(g_policy, 0.0)  # pi_i is fixed in distillation


def test_distral_actor_and_critic_losses_known_answer():
    obs = jnp.zeros((3, 1))
    batch = Transition(
        obs, jnp.zeros((3, 1)), jnp.array([1.0, 0.0, -1.0]), obs, jnp.array([False, False, True]), jnp.zeros(3, bool)
    )
    policy_apply = lambda p, o: _gauss(jnp.broadcast_to(p, o.shape), jnp.ones_like(o))
    shared_apply = lambda p, o: _gauss(jnp.broadcast_to(p, o.shape), 2.0 * jnp.ones_like(o))
    critic_apply = lambda p, o, a: jnp.stack([p[0] + 0 * a[..., 0], p[1] + 0 * a[..., 0]])  # [E=2, B]
    key = jax.random.PRNGKey(3)
    c_kl, c_ent, gamma = 0.3, 0.1, 0.9
    loss, _ = dl.distral_critic_loss(
        jnp.array([0.5, 1.0]),
        batch,
        critic_apply=critic_apply,
        target_critic_params=jnp.array([2.0, 3.0]),
        policy_params=jnp.array([0.0]),
        policy_apply=policy_apply,
        shared_params=jnp.array([0.0]),
        shared_apply=shared_apply,
        c_kl=c_kl,
        c_ent=c_ent,
        discount=gamma,
        key=key,
    )
    a, lp_i = _gauss(jnp.zeros((3, 1)), jnp.ones((3, 1))).sample_and_log_prob(seed=key)
    lp_0 = _gauss(jnp.zeros((3, 1)), 2 * jnp.ones((3, 1))).log_prob(a)
    y = np.array([1.0, 0.0, -1.0]) + gamma * np.array([1, 1, 0]) * (2.0 + c_kl * lp_0 - (c_kl + c_ent) * lp_i)
    want = np.mean((0.5 - y) ** 2) + np.mean((1.0 - y) ** 2)
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    aloss, m = dl.distral_actor_loss(
        jnp.array([0.0]),
        batch,
        policy_apply=policy_apply,
        critic_apply=critic_apply,
        critic_params=jnp.array([2.0, 3.0]),
        shared_params=jnp.array([0.0]),
        shared_apply=shared_apply,
        c_kl=c_kl,
        c_ent=c_ent,
        key=key,
    )
    a, lp_i = _gauss(jnp.zeros((3, 1)), jnp.ones((3, 1))).sample_and_log_prob(seed=key)
    lp_0 = _gauss(jnp.zeros((3, 1)), 2 * jnp.ones((3, 1))).log_prob(a)
    np.testing.assert_allclose(aloss, np.mean((c_kl + c_ent) * lp_i - c_kl * lp_0 - 2.0), rtol=1e-5)
    g_shared = jax.grad(
        lambda s: dl.distral_actor_loss(
            jnp.array([0.0]),
            batch,
            policy_apply=policy_apply,
            critic_apply=critic_apply,
            critic_params=jnp.array([2.0, 3.0]),
            shared_params=s,
            shared_apply=shared_apply,
            c_kl=c_kl,
            c_ent=c_ent,
            key=key,
        )[0]
    )(jnp.array([0.5]))
    np.testing.assert_allclose(g_shared, 0.0)  # pi_0 is trained by distillation only
    # jit + vmap over a task axis
    vm = jax.jit(
        jax.vmap(
            lambda p: dl.distral_actor_loss(
                p,
                batch,
                policy_apply=policy_apply,
                critic_apply=critic_apply,
                critic_params=jnp.array([2.0, 3.0]),
                shared_params=jnp.array([0.0]),
                shared_apply=shared_apply,
                c_kl=c_kl,
                c_ent=c_ent,
                key=key,
            )[0]
        )
    )
    assert vm(jnp.zeros((4, 1))).shape == (4,)


@pytest.mark.integration
def test_distral_step_and_evaluate():
    suite, params = envs.make("point-goal-4")
    algo, state, metrics = _one_step(distral, distral.Config(**TINY), suite, params, steps=10)
    assert jax.tree.leaves(state.nets.policies.params)[0].shape[0] == 4
    for name in ("distill_loss", "kl_to_shared", "kl_to_shared_per_task", "train_success_per_task"):
        assert name in metrics
    out = jax.jit(algo.evaluate, static_argnums=2)(state, jax.random.PRNGKey(1), 2)
    for name in ("eval_return", "eval_success", "eval_return_shared", "eval_success_shared"):
        assert out[name].shape == (4,)


AGGREGATOR_PAIRS = [(name, agg) for name in ("mt_sac", "mh_sac", "distral") for agg in mt.AGGREGATORS]
# the networks whose per-task gradients each algorithm aggregates (and reports the conflicts of)
AGGREGATED = {"mt_sac": ("critic_", "actor_"), "mh_sac": ("critic_", "actor_"), "distral": ("shared_",)}


@pytest.mark.integration
@pytest.mark.parametrize("name,aggregator", AGGREGATOR_PAIRS)
def test_every_multitask_off_policy_algorithm_accepts_every_aggregator(name, aggregator):
    """2 iterations (both update: one transition per task is enough) on the smallest nets; finite metrics and the
    per-task conflict metrics of every aggregated network."""
    suite, params = envs.make("point-goal-4")
    module = algos.get(name)
    small = dict(num_envs=4, batch_size=4, buffer_size=8, learning_starts=1, hidden=(4,), total_env_steps=8)
    algo = module.make(module.Config(**small, aggregator=aggregator, monitor_conflicts=True), suite, params)
    step = jax.jit(algo.step)
    state = algo.init(jax.random.PRNGKey(0))
    for _ in range(2):
        state, metrics = step(state)
    for prefix in AGGREGATED[name]:
        assert {f"{prefix}num_conflicts", f"{prefix}mean_cosine"} <= set(metrics), sorted(metrics)
    for key, value in metrics.items():
        assert np.all(np.isfinite(np.asarray(value))), key
    assert float(metrics["critic_loss"]) > 0.0  # the updates ran


# -------------------------------------------------------------------------------------------- learning tests


def _train(name, cfg, seeds=2, **kw):
    from jaxrl.run import train

    return train(
        name,
        kw.pop("env", "point-goal-4"),
        cfg,
        seeds=seeds,
        num_chunks=4,
        progress=False,
        tensorboard=False,
        checkpoint=False,
        **kw,
    )


LEARN = dict(num_envs=4, batch_size=64, hidden=(64, 64), init_alpha=0.1, learning_starts=250, total_env_steps=12_000)


@pytest.mark.learning
def test_mt_sac_point_goal_4_reaches_90_percent_success():
    result = _train("mt_sac", mt_sac.Config(**LEARN))
    success = np.asarray(result.summary["eval_success"])  # [runs, tasks]
    print("mt_sac eval_success per seed/task", success.tolist())
    assert success.mean() >= 0.9


@pytest.mark.learning
def test_mt_sac_pcgrad_point_goal_4_reaches_90_percent_success():
    result = _train("mt_sac", mt_sac.Config(**LEARN, aggregator="pcgrad"))
    success = np.asarray(result.summary["eval_success"])
    print("mt_sac+pcgrad eval_success per seed/task", success.tolist())
    assert success.mean() >= 0.9


@pytest.mark.learning
def test_distral_shared_policy_within_10_percent_of_task_policies():
    cfg = distral.Config(num_envs=4, batch_size=64, hidden=(64, 64), learning_starts=250, total_env_steps=16_000)
    result = _train("distral", cfg)
    own = np.asarray(result.summary["eval_return"]).mean(-1)  # [runs]
    shared = np.asarray(result.summary["eval_return_shared"]).mean(-1)
    print("distral per-task policies", own.tolist(), "pi_0", shared.tolist())
    assert np.all(np.abs(shared - own) <= 0.1 * np.abs(own))
