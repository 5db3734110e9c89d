"""brax locomotion task families and suites (jaxrl/tasks/locomotion.py): CPU smoke tests.

The rewards are checked by hand-computed values (pure functions) and, on the real brax robots, against brax's own
metrics and reward for the same steps. brax compiles slowly on CPU: one compiled program per robot (a module
fixture) serves every brax assertion, and the suite checks use shapes (``jax.eval_shape``) where values are not
needed. Learning runs on these tasks are GPU runs: ``experiments/meta_locomotion.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrl.envs as envs
from jaxrl.config import ConfigError
from jaxrl.envs.multitask import make_multitask_env
from jaxrl.tasks import locomotion as L

STEPS = 4  # steps per rollout; the horizon (3) ends the first episode inside, so auto-reset is exercised
HORIZON = 3


# ---------------------------------------------------------------- pure rewards: hand-computed values


def test_cheetah_rewards_known_answer():
    a = jnp.array([0.5, -1.0, 0.0, 0.0, 0.0, 1.0])  # ||a||^2 = 2.25, 0.05 * 2.25 = 0.1125
    assert float(L.cheetah_velocity_reward(1.2, a, 2.0)) == pytest.approx(-0.8 - 0.1125, abs=1e-6)
    assert float(L.cheetah_velocity_reward(2.5, a, 2.0)) == pytest.approx(-0.5 - 0.1125, abs=1e-6)
    assert float(L.cheetah_direction_reward(1.2, a, -1.0)) == pytest.approx(-1.2 - 0.1125, abs=1e-6)
    assert float(L.cheetah_direction_reward(1.2, a, 1.0, ctrl_cost_weight=0.0)) == pytest.approx(1.2)
    # batched over tasks (vmap) as a family's task axis uses it
    r = jax.vmap(L.cheetah_velocity_reward, in_axes=(None, None, 0))(1.0, a, jnp.array([0.0, 1.0, 3.0]))
    np.testing.assert_allclose(r, [-1.1125, -0.1125, -2.1125], atol=1e-6)


def test_ant_rewards_known_answer():
    a = jnp.array([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0])  # ||a||^2 = 2, 0.5 * 2 = 1
    v = jnp.array([3.0, 4.0])
    # th = 0: v_x; th = pi/2: v_y; th = pi: -v_x.  r = forward + survive(1) - 1 + contact(-0.25)
    for th, forward in ((0.0, 3.0), (np.pi / 2, 4.0), (np.pi, -3.0), (np.pi / 4, 7.0 / np.sqrt(2.0))):
        assert float(L.ant_direction_reward(v, a, th, 1.0, -0.25)) == pytest.approx(forward - 0.25, abs=1e-5)
    xy, g = jnp.array([1.0, 1.0]), jnp.array([4.0, -3.0])  # delta (-3, 4): L2 5, L1 7
    assert float(L.ant_goal_reward(xy, a, g, 1.0, 0.0)) == pytest.approx(-5.0 + 1.0 - 1.0, abs=1e-6)
    assert float(L.ant_goal_reward(xy, a, g, 0.0, 0.0, distance="l1")) == pytest.approx(-7.0 - 1.0, abs=1e-6)
    with pytest.raises(ConfigError, match="distance"):
        L.ant_goal_reward(xy, a, g, 0.0, 0.0, distance="linf")


# ---------------------------------------------------------------- families: sampling, registry, algorithms


@pytest.fixture(scope="module")
def cheetah_vel():
    return L.CheetahVel(horizon=HORIZON)


@pytest.fixture(scope="module")
def ant_dir():
    return L.AntDir(horizon=HORIZON)


def test_sample_shapes_and_ranges(cheetah_vel, ant_dir):
    key = jax.random.PRNGKey(0)
    p = cheetah_vel.sample(key, 2000)
    assert p.task.shape == (2000, 1) and p.max_steps_in_episode.shape == (2000,)
    assert int(p.max_steps_in_episode[0]) == HORIZON and float(p.ctrl_cost_weight[0]) == pytest.approx(0.05)
    v = np.asarray(p.task[:, 0])
    assert v.min() >= 0.0 and v.max() <= 3.0 and abs(v.mean() - 1.5) < 0.1
    th = np.asarray(ant_dir.sample(key, 2000).task[:, 0])
    assert th.min() >= 0.0 and th.max() <= 2 * np.pi and abs(th.mean() - np.pi) < 0.15
    assert float(ant_dir.sample(key, 1).ctrl_cost_weight[0]) == pytest.approx(0.5)
    # the other kinds share the sampler (constructing their brax env is cheap: nothing compiles)
    d = np.asarray(L.CheetahDir(horizon=HORIZON).sample(key, 1000).task)
    assert set(np.unique(d).tolist()) == {-1.0, 1.0} and abs(d.mean()) < 0.1
    fb = np.asarray(L.AntDir(horizon=HORIZON, forward_backward=True).sample(key, 1000).task)
    np.testing.assert_allclose(np.unique(fb), [0.0, np.pi], rtol=1e-6)
    g = np.asarray(L.AntGoal(horizon=HORIZON).sample(key, 4000).task)
    r2 = np.sum(g**2, axis=-1)
    assert g.shape == (4000, 2) and r2.max() <= 9.0 + 1e-4
    assert abs(r2.mean() - 4.5) < 0.2  # uniform in the disc of radius 3: E[r^2] = R^2 / 2
    assert abs(np.arctan2(g[:, 1], g[:, 0]).mean()) < 0.15
    # jit and vmap over keys (a task axis per key)
    many = jax.jit(jax.vmap(lambda k: cheetah_vel.sample(k, 3).task))(jax.random.split(key, 4))
    assert many.shape == (4, 3, 1)


def test_registry_families_and_suites():
    names = envs.list_envs()
    for n in (
        "cheetah-vel",
        "cheetah-dir",
        "ant-dir",
        "ant-goal",
        "cheetah-vel-4",
        "ant-dir-2",
        "ant-goal-8",
        "cheetah-dir-2",
    ):
        assert n in names
    family, test_tasks = envs.make("cheetah-vel", num_test_tasks=5)
    assert isinstance(family, L.LocomotionFamily) and family.horizon == L.DEFAULT_HORIZON == 200
    assert test_tasks.task.shape == (5, 1) and int(test_tasks.max_steps_in_episode[0]) == 200
    again = envs.make("cheetah-vel", num_test_tasks=5)[1]  # held-out tasks are fixed
    np.testing.assert_array_equal(test_tasks.task, again.task)
    suite, params = envs.make("ant-dir-4", contexts="task")
    np.testing.assert_allclose(params.task[:, 0], [0, np.pi / 2, np.pi, 3 * np.pi / 2], atol=1e-6)
    np.testing.assert_allclose(suite.contexts, [[1, 0], [0, 1], [-1, 0], [0, -1]], atol=1e-6)
    assert suite.task_names == ("dir0deg", "dir90deg", "dir180deg", "dir270deg")
    suite, params = envs.make("cheetah-vel-4")
    np.testing.assert_allclose(params.task[:, 0], [0.375, 1.125, 1.875, 2.625])
    np.testing.assert_array_equal(suite.contexts, np.eye(4))


def test_bad_input_raises_config_error():
    with pytest.raises(ConfigError, match="kind='cheetah-run'.*cheetah-vel"):
        L.LocomotionFamily("cheetah-run")
    with pytest.raises(ConfigError, match="horizon=0"):
        L.CheetahVel(horizon=0)
    with pytest.raises(ConfigError, match="velocity_range"):
        L.CheetahVel(velocity_range=(3.0, 0.0))
    with pytest.raises(ConfigError, match="goal_radius"):
        L.AntGoal(goal_radius=0.0)
    with pytest.raises(ConfigError, match=r"cheetah-dir tasks are directions"):
        L.make_locomotion_suite("cheetah-dir", [1.0, 0.5])
    with pytest.raises(ConfigError, match=r"shape \[K >= 1, 2\]"):
        L.make_locomotion_suite("ant-goal", [1.0, 2.0, 3.0])
    with pytest.raises(ConfigError, match="contexts='names'"):
        L.make_locomotion_suite("cheetah-vel", contexts="names")
    with pytest.raises(ConfigError, match="num_test_tasks=0"):
        envs.make("ant-dir", num_test_tasks=0)


def test_meta_algorithms_accept_the_families(cheetah_vel):
    """rl2, maml and pearl build on a locomotion family (nothing compiles); a wrong horizon is refused."""
    from jaxrl.algos.meta import maml, pearl, rl2

    tasks = cheetah_vel.sample(jax.random.PRNGKey(1), 2)
    rl2.make(rl2.Config(num_tasks=2, num_minibatches=1, episodes_per_trial=2, horizon=HORIZON), cheetah_vel, tasks)
    maml.make(maml.Config(num_tasks=2, num_trajectories=2, horizon=HORIZON, hidden=(16, 16)), cheetah_vel, tasks)
    pearl.make(
        pearl.Config(num_train_tasks=2, tasks_per_iteration=2, horizon=HORIZON, buffer_size=64, total_env_steps=10_000),
        cheetah_vel,
        tasks,
    )
    with pytest.raises(ConfigError, match="horizon"):
        maml.make(maml.Config(horizon=200), cheetah_vel, tasks)
    with pytest.raises(ConfigError, match="horizon"):
        pearl.make(pearl.Config(horizon=200), cheetah_vel, tasks)


# ---------------------------------------------------------------- brax: one compiled program per robot


def _rollout(env, params, others=()):
    """``jit(vmap over tasks)`` of a reset and ``STEPS`` steps, with the same keys and actions for every task (the
    dynamics agree across tasks; only the reward may differ), and each ``(other_env, other_params)``'s
    ``task_reward`` on the same steps' brax metrics. Returns numpy arrays and the clipped actions."""
    n_act = env.action_space().shape[0]
    actions = jax.random.uniform(jax.random.PRNGKey(3), (STEPS, n_act), minval=-1.3, maxval=1.3)

    def one_task(params, other_params):
        obs0, state = env.reset(jax.random.PRNGKey(0), params)

        def body(state, a):
            obs, state, r, term, trunc, info = env.step(jax.random.PRNGKey(1), state, a, params)
            other = tuple(e.task_reward(info, jnp.clip(a, -1.0, 1.0), p)[0] for (e, _), p in zip(others, other_params))
            return state, (obs, r, term, trunc, info, other)

        return obs0, jax.lax.scan(body, state, actions)[1]

    obs0, (obs, r, term, trunc, info, other) = jax.jit(jax.vmap(one_task))(params, tuple(p for _, p in others))
    out = jax.tree.map(np.asarray, (obs0, obs, r, term, trunc, info, other))
    return (*out, np.clip(np.asarray(actions), -1.0, 1.0))


def _check_episode_mechanics(env, obs0, obs, term, trunc, info):
    n = obs.shape[0]
    assert obs0.shape == (n, env.observation_space().shape[0]) and obs.shape[:2] == (n, STEPS)
    # the task is not in the observation: every task sees the same observations under the same keys and actions
    np.testing.assert_array_equal(obs0, np.broadcast_to(obs0[:1], obs0.shape))
    np.testing.assert_array_equal(obs, np.broadcast_to(obs[:1], obs.shape))
    assert not term.any()  # no early termination (the ant's is off by default)
    np.testing.assert_array_equal(trunc, np.broadcast_to(np.arange(1, STEPS + 1) % HORIZON == 0, trunc.shape))
    # before the time limit the observation is the stepped one; at it, the auto-reset one (final kept in info)
    np.testing.assert_array_equal(info["final_observation"][:, : HORIZON - 1], obs[:, : HORIZON - 1])
    assert not np.allclose(info["final_observation"][:, HORIZON - 1], obs[:, HORIZON - 1])


@pytest.fixture(scope="module")
def cheetah_run(cheetah_vel):
    vel = cheetah_vel.params_for(jnp.array([[0.5], [2.0]]))
    dir_env = L.LocomotionEnv("cheetah-dir", horizon=HORIZON)
    dirs = L.CheetahDir(horizon=HORIZON).params_for(jnp.array([[1.0], [-1.0]]))
    return cheetah_vel.env, vel, dirs, _rollout(cheetah_vel.env, vel, [(dir_env, dirs)])


@pytest.mark.integration
def test_cheetah_reward_recomputed_from_brax(cheetah_run):
    env, vel, dirs, (obs0, obs, r, term, trunc, info, (r_dir,), actions) = cheetah_run
    _check_episode_mechanics(env, obs0, obs, term, trunc, info)
    assert obs0.shape[1] == 17
    sq = np.sum(actions**2, axis=-1)  # [T]
    vx = info["x_velocity"]  # [K, T]: brax's metric of each stepped state
    # brax's own halfcheetah reward is v_x - 0.1 ||a||^2: the metric and the (clipped) action are what brax used
    np.testing.assert_allclose(info["brax_reward"], vx - 0.1 * sq, atol=1e-5)
    goal = np.asarray(vel.task)  # [K, 1]
    np.testing.assert_allclose(r, -np.abs(vx - goal) - 0.05 * sq, atol=1e-5)
    np.testing.assert_allclose(info["task_reward"], -np.abs(vx - goal), atol=1e-5)
    np.testing.assert_allclose(info["ctrl_cost"], np.broadcast_to(0.05 * sq, r.shape), atol=1e-6)
    d = np.asarray(dirs.task)
    np.testing.assert_allclose(r_dir, d * vx - 0.05 * sq, atol=1e-5)
    np.testing.assert_allclose(r_dir[0], info["brax_reward"][0] + 0.05 * sq, atol=1e-5)  # d = +1
    assert np.abs(vx).max() > 1e-3 and not np.allclose(r[0], r[1])


@pytest.fixture(scope="module")
def ant_run(ant_dir):
    angles = ant_dir.params_for(jnp.array([[0.0], [np.pi / 2]]))
    goal_env = L.LocomotionEnv("ant-goal", horizon=HORIZON)
    goals = L.AntGoal(horizon=HORIZON).params_for(jnp.array([[1.0, 0.0], [0.0, -2.0]]))
    return ant_dir.env, angles, goals, _rollout(ant_dir.env, angles, [(goal_env, goals)])


@pytest.mark.integration
def test_ant_reward_recomputed_from_brax(ant_run):
    env, angles, goals, (obs0, obs, r, term, trunc, info, (r_goal,), actions) = ant_run
    _check_episode_mechanics(env, obs0, obs, term, trunc, info)
    assert obs0.shape[1] == 27 and L.LocomotionEnv("ant-goal").observation_space().shape == (29,)
    sq = np.sum(actions**2, axis=-1)
    survive, contact = info["reward_survive"], info["reward_contact"]
    assert set(np.unique(survive).tolist()) <= {0.0, 1.0} and np.all(contact == 0.0)  # brax: no contact forces
    th = np.asarray(angles.task)  # [K, 1]
    forward = info["x_velocity"] * np.cos(th) + info["y_velocity"] * np.sin(th)
    np.testing.assert_allclose(r, forward + survive - 0.5 * sq + contact, atol=1e-5)
    np.testing.assert_allclose(r[0], info["brax_reward"][0], atol=1e-5)  # th = 0 is brax's own ant reward
    np.testing.assert_allclose(r[1] - r[0], info["y_velocity"][1] - info["x_velocity"][0], atol=1e-5)
    g = np.asarray(goals.task)[:, None, :]  # [K, 1, 2]
    xy = np.stack([info["x_position"], info["y_position"]], axis=-1)
    np.testing.assert_allclose(r_goal, -np.linalg.norm(xy - g, axis=-1) + survive - 0.5 * sq + contact, atol=1e-5)


# ---------------------------------------------------------------- suites: the task is in the observation


def test_suites_append_omega_to_the_observation():
    for name, obs_dim, k, kwargs in (
        ("cheetah-vel-4", 17, 4, {}),
        ("cheetah-vel-4", 17, 4, {"contexts": "task"}),
        ("ant-goal-2", 29, 2, {"contexts": "task"}),
        ("cheetah-dir-2", 17, 2, {}),
    ):
        suite, params = envs.make(name, horizon=HORIZON, **kwargs)
        env = make_multitask_env(suite, envs_per_task=1)
        obs, _ = jax.eval_shape(env.reset, jax.random.PRNGKey(0), params)
        assert obs.shape == (k, obs_dim + suite.context_dim), name
        assert suite.metadata()["kind"] == name.rsplit("-", 1)[0] and suite.num_tasks == k
    suite, _ = envs.make("cheetah-vel-4", contexts="task")
    np.testing.assert_allclose(suite.contexts[:, 0], [0.375, 1.125, 1.875, 2.625])
    suite, _ = envs.make("ant-goal-2", contexts="task")
    np.testing.assert_allclose(suite.contexts, [[2.0, 0.0], [-2.0, 0.0]], atol=1e-6)
