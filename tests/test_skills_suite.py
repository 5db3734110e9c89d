"""The ``skills-10`` suite (:mod:`jaxrl.tasks.skills`): shapes, jit, per-task rewards and dynamics, success rules on
hand-made states, contexts and descriptors; every task solvable by a hand-written controller (integration)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import envs
from jaxrl.algos.multitask import common as mt
from jaxrl.algos.multitask import mt_sac
from jaxrl.config import ConfigError
from jaxrl.tasks import skills as S

K = len(S.TASKS)
IDX = {name: i for i, name in enumerate(S.TASK_NAMES)}


@pytest.fixture(scope="module")
def suite():
    return envs.make("skills-10")[0]


@pytest.fixture(scope="module")
def step_all(suite):
    """One compiled step of all ten tasks: ``(states [K], actions [K, 2]) -> (obs, states, reward, info)``."""
    step = jax.jit(jax.vmap(suite.env.step_env, in_axes=(None, 0, 0, 0)))

    def run(states, actions):
        obs, states, reward, _, info = step(
            jax.random.PRNGKey(0), states, jnp.asarray(actions, jnp.float32), suite.params
        )
        return obs, states, np.asarray(reward), jax.tree.map(np.asarray, info)

    return run


@pytest.fixture(scope="module")
def reset_all(suite):
    """One compiled reset of all ten tasks: ``keys [K] -> (obs, states)``."""
    return jax.jit(jax.vmap(suite.env.reset_env))


def make_states(reset_all, suite, **rows):
    """A batch of K states: reset states (fixed key) with ``rows[field] = {task name: value}`` written in."""
    _, states = reset_all(jax.random.split(jax.random.PRNGKey(3), K), suite.params)
    for field, values in rows.items():
        arr = np.array(getattr(states, field))
        for name, value in values.items():
            arr[IDX[name]] = value
        states = states.replace(**{field: jnp.asarray(arr)})
    return states


def test_suite_shapes_and_jit(suite, reset_all):
    assert suite.name == "skills-10" and suite.num_tasks == K == 10 and suite.task_names == S.TASK_NAMES
    assert suite.contexts.shape == (K, K)
    obs, states = reset_all(jax.random.split(jax.random.PRNGKey(0), K), suite.params)
    assert obs.shape == (K, S.OBS_DIM) and suite.env.observation_space().shape == (S.OBS_DIM,)
    assert suite.env.action_space().shape == (2,)
    # the layout is the same in every task: robot, object and goal are where the observation says
    np.testing.assert_allclose(obs[:, 0:2], states.robot_pos)
    np.testing.assert_allclose(obs[:, 4:6], states.object_pos)
    np.testing.assert_allclose(obs[:, 8:10], states.goal)
    assert np.all(np.abs(np.asarray(obs)) <= 1.0)


def test_contexts_and_descriptors(suite):
    desc = np.asarray(dict(suite.extra_metadata)["descriptors"], np.float32)
    assert desc.shape == (K, len(S.DESCRIPTOR_FIELDS)) and len(np.unique(desc, axis=0)) == K
    assert S.make_skills_suite("descriptor").contexts.shape == (K, len(S.DESCRIPTOR_FIELDS))
    spec = mt.arch_spec(mt_sac.Config(network="care", context_embedding="descriptor"), K, suite)
    assert spec is not None and np.asarray(spec.contexts).shape == desc.shape  # CARE finds the descriptors
    with pytest.raises(ConfigError, match="contexts='words' is not allowed"):
        S.make_skills_suite("words")
    with pytest.raises(ConfigError, match=r"shape \[10, D\]"):
        S.make_skills_suite(np.zeros((3, 4)))


def test_rewards_and_dynamics_differ_per_task(suite, reset_all, step_all):
    same = dict(
        robot_pos={n: (0.0, -0.6) for n in S.TASK_NAMES},
        robot_vel={n: (0.0, 0.0) for n in S.TASK_NAMES},
        goal={n: (0.0, 0.2) for n in S.TASK_NAMES},
        object_pos={n: (0.75, 0.75) for n in S.TASK_NAMES},
        anchor={n: (0.75, 0.75) for n in S.TASK_NAMES},
    )
    _, new, reward, _ = step_all(make_states(reset_all, suite, **same), np.tile([1.0, 0.0], (K, 1)))
    moved = np.asarray(new.robot_pos) - np.array([0.0, -0.6])
    assert len(np.unique(np.round(moved[:, 0], 6))) >= 7  # masses, dampings, gains differ
    assert moved[IDX["flee"], 0] == pytest.approx(0.0, abs=1e-6) and moved[IDX["flee"], 1] > 0  # actuators at 90 deg
    assert moved[IDX["reach"], 1] == pytest.approx(0.0, abs=1e-6) and moved[IDX["reach"], 0] > 0
    assert len(np.unique(np.round(reward, 5))) >= 8
    weights = np.asarray(suite.params.reward_weights)
    assert len(np.unique(weights, axis=0)) == 7  # reach / reach-wall and push / pull share weights, not dynamics


def test_success_rules_on_hand_made_states(suite, reset_all, step_all):
    g = {n: (0.1, 0.1) for n in ("reach", "hold-still", "circle", "reach-wall", "flee")}
    goal = {**g, "push": (0.0, 0.35), "pull": (0.0, -0.75), "drawer-close": (-0.5, 0.3), "window-open": (-0.45, 0.25)}
    at = {
        "reach": (0.1, 0.1), "hold-still": (0.1, 0.1), "circle": (0.35, 0.1), "reach-wall": (0.1, 0.1),
        "flee": (0.1, -0.6), "button-press": (0.4, -S.CONTACT),
    }  # fmt: skip
    obj = {"push": (0.0, 0.35), "pull": (0.0, -0.75), "drawer-close": (-0.5, 0.3), "window-open": (-0.45, 0.25)}
    good = make_states(
        reset_all,
        suite,
        goal=goal,
        robot_pos=at,
        robot_vel={**{n: (0.0, 0.0) for n in S.TASK_NAMES}, "circle": (0.0, 1.0)},
        object_pos={**obj, "button-press": (0.4, 0.0)},
        hold_count={"hold-still": S.HOLD_STEPS - 1},
        orbit={"circle": 2 * math.pi - 0.05},
    )
    actions = np.zeros((K, 2))
    actions[IDX["button-press"]] = (0.0, 1.0)  # keep pressing against the spring
    actions[IDX["circle"]] = (0.0, 1.0)
    _, _, _, info = step_all(good, actions)
    assert info["success"].all(), dict(zip(S.TASK_NAMES, info["success"], strict=True))
    assert np.array_equal(suite.success_fn(info), info["success"])
    # the same states, each just outside its rule
    bad = make_states(
        reset_all,
        suite,
        goal=goal,
        robot_pos={**at, "reach": (0.3, 0.1), "reach-wall": (0.1, 0.2), "flee": (0.1, 0.0)},
        robot_vel={**{n: (0.0, 0.0) for n in S.TASK_NAMES}, "hold-still": (0.5, 0.0), "circle": (0.0, -1.0)},
        object_pos={**obj, "push": (0.0, 0.25), "pull": (0.1, -0.75), "button-press": (0.4, -0.1)},
        hold_count={"hold-still": S.HOLD_STEPS - 1},
        orbit={"circle": 2 * math.pi - 0.05},
    )
    actions[IDX["button-press"]] = 0.0
    _, _, _, info = step_all(bad, actions)
    for name in ("reach", "push", "pull", "button-press", "hold-still", "circle", "reach-wall", "flee"):
        assert not info["success"][IDX[name]], name


def test_wall_rail_and_magnet(suite, reset_all, step_all):
    states = make_states(
        reset_all,
        suite,
        robot_pos={"reach-wall": (0.0, -0.31), "drawer-close": (-0.5 + S.CONTACT - 0.01, -0.1), "pull": (0.0, -0.1)},
        robot_vel={"reach-wall": (0.0, 1.0), "drawer-close": (0.0, 0.0), "pull": (0.0, 0.0)},
        object_pos={"drawer-close": (-0.5, -0.1), "pull": (0.0, 0.02)},
        anchor={"drawer-close": (-0.5, -0.1), "pull": (0.0, 0.02)},
    )
    actions = np.zeros((K, 2))
    actions[IDX["reach-wall"]] = (0.0, 1.0)
    actions[IDX["drawer-close"]] = (-1.0, 0.0)  # pushes the drawer sideways: the rail holds it
    _, states, _, _ = step_all(states, actions)
    assert float(states.robot_pos[IDX["reach-wall"], 1]) <= -0.3 + 1e-6  # wall (-0.25) + robot radius: blocked
    assert float(states.object_pos[IDX["drawer-close"], 0]) == pytest.approx(-0.5)
    assert bool(states.grasped[IDX["pull"]]) and not bool(states.grasped[IDX["push"]])
    actions[IDX["pull"]] = (0.0, -1.0)
    before = np.asarray(states.object_pos[IDX["pull"]])
    _, states, _, _ = step_all(states, actions)
    assert float(states.object_pos[IDX["pull"], 1]) < before[1]  # the magnet carries the object backwards
    actions[IDX["pull"]] = (0.0, 1.0)
    _, after, _, _ = step_all(states, actions)  # and forwards: no contact between the robot and what it holds
    held = np.asarray(after.object_pos[IDX["pull"]]) - np.asarray(after.robot_pos[IDX["pull"]])
    assert float(after.object_pos[IDX["pull"], 1]) > float(states.object_pos[IDX["pull"], 1])
    np.testing.assert_allclose(held, np.asarray(states.grasp_offset[IDX["pull"]]), atol=1e-5)


# ---------------------------------------------------------------------------------- hand-written controllers


def _unit(x):
    return x / jnp.sqrt(jnp.sum(x**2) + 1e-12)


def _goto(p, v, target, kp=15.0, kd=2.0):
    return kp * (target - p) - kd * v


def _push(p, v, o, g):
    """Get behind the object (detouring round it), then push it along the object-goal line."""
    u = _unit(g - o)
    side = jnp.array([-u[1], u[0]])
    side = side * jnp.sign(jnp.dot(p - o, side) + 1e-6)
    blocked = jnp.dot(p - o, u) > -S.CONTACT * 0.5
    approach = jnp.where(blocked, o + side * (S.CONTACT + 0.08) - u * (S.CONTACT + 0.04), o - u * (S.CONTACT + 0.04))
    aligned = (jnp.dot(_unit(o - p), u) > 0.8) & (jnp.sqrt(jnp.sum((o - p) ** 2)) < S.CONTACT + 0.06)
    return jnp.where(aligned, _goto(p, v, o - u * S.CONTACT) + 2.0 * u, _goto(p, v, approach))


def controller(k, obs):
    p, v, o, g = obs[0:2], obs[2:4], obs[4:6], obs[8:10]

    def pull():
        near = jnp.sqrt(jnp.sum((o - p) ** 2)) < S.GRASP_DISTANCE + 0.005
        return jnp.where(near, _goto(p, v, p + (g - o)), _goto(p, v, o))

    def circle():
        d = p - g
        th = jnp.arctan2(d[1], d[0]) + 0.7
        return _goto(p, v, g + S.ORBIT_RADIUS * jnp.array([jnp.cos(th), jnp.sin(th)]))

    def wall():
        sx = jnp.where(g[0] >= 0, 1.0, -1.0)
        side = jnp.where(jnp.abs(p[0]) < 0.58, jnp.array([sx * 0.62, -0.25]), jnp.array([sx * 0.62, 0.0]))
        return jnp.where(p[1] < -0.06, _goto(p, v, side), _goto(p, v, g))

    def flee():
        d = _unit(p - g) * 5.0
        return jnp.array([d[1], -d[0]])  # R(-90 deg): the actuators are rotated by +90 deg

    branches = [
        lambda: _goto(p, v, g),  # reach
        lambda: _push(p, v, o, g),  # push
        pull,
        lambda: _push(p, v, o, g),  # drawer-close
        lambda: _push(p, v, o, g),  # window-open
        lambda: _push(p, v, o, g + jnp.array([0.0, 0.2])),  # button-press: push through the stop
        lambda: 6.0 * (g - p) - 5.0 * v,  # hold-still: a critically damped PD
        circle,
        wall,
        flee,
    ]
    return jnp.clip(jax.lax.switch(k, branches), -1.0, 1.0)


def rollout_success(suite, policy, key, episodes: int):
    """Success rate per task of ``policy(k, obs)`` over ``episodes`` episodes of ``HORIZON`` steps."""
    env, params = suite.env, suite.params

    def one(k, key):
        p = jax.tree.map(lambda x: x[k], params)
        obs, st = env.reset_env(key, p)

        def body(c, _):
            obs, st, succ = c
            obs, st, _, _, info = env.step_env(key, st, policy(k, obs), p)
            return (obs, st, succ | info["success"]), None

        (_, _, succ), _ = jax.lax.scan(body, (obs, st, jnp.zeros((), bool)), None, S.HORIZON)
        return succ

    ks = jnp.repeat(jnp.arange(K), episodes)
    succ = jax.jit(jax.vmap(one))(ks, jax.random.split(key, K * episodes))
    return np.asarray(succ).reshape(K, episodes).mean(1)


@pytest.mark.integration
def test_every_task_is_solvable_and_none_is_trivial(suite):
    """Hand-written controllers succeed on every task (>= 90% of 32 episodes): the thresholds are reachable
    within the horizon; doing nothing succeeds on none."""
    solved = rollout_success(suite, controller, jax.random.PRNGKey(1), 32)
    assert np.all(solved >= 0.9), dict(zip(S.TASK_NAMES, solved, strict=True))
    idle = rollout_success(suite, lambda k, obs: jnp.zeros((2,)), jax.random.PRNGKey(2), 8)
    assert np.all(idle == 0.0), dict(zip(S.TASK_NAMES, idle, strict=True))
