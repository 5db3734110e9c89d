"""Environments (protocol, auto-reset, wrappers, brax adapter), networks and the replay buffer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from jaxrl import envs, nets
from jaxrl.data import replay
from jaxrl.data.rollout import evaluate, rollout
from jaxrl.envs.brax_adapter import BraxAdapter
from jaxrl.envs.wrappers import EpisodeStats, NormalizeObservation, RescaleAction, RunningStats, VmapEnv


def test_gymnax_env_follows_protocol_and_keeps_final_observation():
    env, params = envs.make("CartPole-v1")
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    # Push right until the pole falls: the terminal step returns the reset obs but keeps the final one.
    for i in range(200):
        obs2, state, reward, terminated, truncated, info = env.step(jax.random.PRNGKey(i), state, 1, params)
        if terminated:
            break
    assert bool(terminated) and not bool(truncated)
    assert not np.allclose(obs2, info["final_observation"])
    assert abs(float(info["final_observation"][2])) > 0.2  # pole angle past the limit in the final obs


def test_truncation_is_not_termination():
    env, params = envs.make("Pendulum-v1")
    venv = VmapEnv(EpisodeStats(env), 2)
    obs, state = venv.reset(jax.random.PRNGKey(0), params)
    policy = lambda o, k: (jnp.zeros((2, 1)), ())
    _, _, tr, infos = jax.jit(lambda s, o: rollout(venv, params, policy, s, o, jax.random.PRNGKey(1), 201))(state, obs)
    assert not tr.terminated.any()
    np.testing.assert_array_equal(np.argwhere(np.asarray(tr.truncated[:, 0]))[:, 0], [199])
    assert infos["episode_done"][199].all() and (infos["episode_length"][199] == 200).all()
    np.testing.assert_allclose(infos["episode_return"][199], tr.reward[:200].sum(0), rtol=1e-5)


def test_running_stats_match_numpy():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(5, 4, 3)).astype(np.float32)
    stats = RunningStats.create((3,))
    for batch in x:
        stats = stats.update(jnp.asarray(batch))
    flat = x.reshape(-1, 3)
    np.testing.assert_allclose(stats.mean, flat.mean(0), rtol=1e-3)
    np.testing.assert_allclose(stats.var, flat.var(0), rtol=1e-3)


def test_normalize_and_rescale_wrappers():
    env, params = envs.make("Pendulum-v1")
    wrapped = NormalizeObservation(VmapEnv(RescaleAction(env, -2.0, 2.0), 8))
    obs, state = wrapped.reset(jax.random.PRNGKey(0), params)
    assert obs.shape == (8, 3) and float(state.stats.count) > 8
    obs, state, *_ = wrapped.step(jax.random.PRNGKey(1), state, jnp.ones((8, 1)) * 5.0, params)
    frozen = NormalizeObservation(VmapEnv(env, 8), update=False)
    _, fstate = frozen.reset(jax.random.PRNGKey(0), params)
    np.testing.assert_array_equal(fstate.stats.mean, 0.0)
    # RescaleAction maps [-1, 1] onto the env's box (and clips): +5 -> +1 -> max torque 2
    _, s0 = env.reset(jax.random.PRNGKey(0), params)
    direct = env.step(jax.random.PRNGKey(2), s0, jnp.asarray([2.0]), params)[2]
    rescaled = RescaleAction(env, -2.0, 2.0).step(jax.random.PRNGKey(2), s0, jnp.asarray([5.0]), params)[2]
    np.testing.assert_allclose(direct, rescaled)


@struct.dataclass
class _FakeBraxState:
    obs: jax.Array
    reward: jax.Array
    done: jax.Array
    pos: jax.Array


class _FakeBraxEnv:
    """brax's API (reset(key) -> State, step(State, a) -> State): a 1-D walker that "falls" past |x| > 3.5."""

    observation_size = 1
    action_size = 1

    def reset(self, key):
        x = jax.random.uniform(key, (), minval=-0.1, maxval=0.1)
        return _FakeBraxState(jnp.asarray([x]), jnp.zeros(()), jnp.zeros(()), x)

    def step(self, state, action):
        x = state.pos + action[0]
        return _FakeBraxState(jnp.asarray([x]), -jnp.abs(x), (jnp.abs(x) > 3.5).astype(jnp.float32), x)


def test_brax_adapter_protocol_truncation_and_termination():
    env = BraxAdapter(_FakeBraxEnv(), "fake", max_steps_in_episode=5)
    params = env.default_params
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    step = jax.jit(env.step)
    for t in range(5):  # no movement: truncated at t = 5, not terminated
        obs, state, r, term, trunc, info = step(jax.random.PRNGKey(t), state, jnp.zeros(1), params)
    assert bool(trunc) and not bool(term) and int(state.time) == 0
    for t in range(4):  # move 1 per step: |x| > 3.5 terminates at the 4th step; final obs kept, state reset
        obs, state, r, term, trunc, info = step(jax.random.PRNGKey(t), state, jnp.ones(1), params)
    assert bool(term) and not bool(trunc)
    assert float(info["final_observation"][0]) > 3.5 and abs(float(obs[0])) < 0.2
    assert env.action_space(params).shape == (1,) and env.observation_space(params).shape == (1,)


def test_env_registry_imports_tasks_only_on_lookup():
    """No envs <-> tasks cycle: importing jaxrl.envs loads no task module; the first lookup registers them all."""
    import subprocess
    import sys

    code = (
        "import sys, jaxrl.envs as e; assert not any(m.startswith('jaxrl.tasks') for m in sys.modules); "
        "e.make('point-goal-4'); assert 'jaxrl.tasks.locomotion' in sys.modules and 'cheetah-vel-4' in e.list_envs()"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with pytest.raises(ValueError, match="dataset path 'a,b.hdf5'"):
        envs.dataset_name(["a,b.hdf5"])
    assert envs.dataset_name(["a.hdf5", "b.hdf5"], "Pendulum-v1") == "dataset:a.hdf5,b.hdf5?env=Pendulum-v1"


def test_brax_names_resolve():
    env, params = envs.make("brax:inverted_pendulum")
    assert env.action_space(params).shape == (1,) and params.max_steps_in_episode == 1000
    with pytest.raises(ValueError, match="brax:halfcheetah"):
        envs.make("brax:halfcheeta")
    # the backend rides in the name, so a dataset's env name re-creates the same physics
    env, _ = envs.make("brax:hopper:positional")
    assert env.name == "brax:hopper:positional" and env._env.backend == "positional"
    with pytest.raises(ValueError, match="positional"):
        envs.make("brax:hopper:positonal")


def test_evaluate_counts_first_episode_only():
    env, params = envs.make("CartPole-v1")
    returns = jax.jit(lambda k: evaluate(VmapEnv(env, 4), params, lambda o, k: jnp.zeros(4, jnp.int32), k, 4, 500))(
        jax.random.PRNGKey(0)
    )
    assert returns.shape == (4,) and (returns > 5).all() and (returns < 20).all()  # always-left falls quickly


def test_networks_shapes_heads_and_ensemble_axis():
    key = jax.random.PRNGKey(0)
    obs = jnp.ones((5, 3))
    q = nets.make_q_ensemble((16, 16), num_members=4)
    qp = q.init(key, obs[0], jnp.zeros(2))
    assert jax.tree.leaves(qp)[0].shape[0] == 4
    values = q.apply(qp, obs, jnp.zeros((5, 2)))
    assert values.shape == (4, 5) and not np.allclose(values[0], values[1])  # members differ
    pi = nets.make_tanh_gaussian_policy(2, (16,))
    d = pi.apply(pi.init(key, obs[0]), obs * 100)
    a, lp = d.sample_and_log_prob(seed=key)
    assert a.shape == (5, 2) and (jnp.abs(a) <= 1).all() and jnp.isfinite(lp).all()
    cat = nets.make_categorical_policy(3, (8,))
    assert nets.mode(cat.apply(cat.init(key, obs[0]), obs)).shape == (5,)
    g = nets.make_gaussian_policy(2, (8,))
    assert nets.mode(g.apply(g.init(key, obs[0]), obs)).shape == (5, 2)
    v = nets.make_value_network((8,))
    assert v.apply(v.init(key, obs[0]), obs).shape == (5,)


def test_replay_buffer_ring_semantics_and_vmap():
    buf = replay.init({"x": jnp.zeros(2), "i": jnp.zeros((), jnp.int32)}, capacity=5)
    add = jax.jit(replay.add)
    for start in (0, 3):
        buf = add(buf, {"x": jnp.ones((3, 2)) * start, "i": jnp.arange(start, start + 3)})
    assert int(buf.size) == 5 and int(buf.position) == 1
    np.testing.assert_array_equal(buf.data["i"], [5, 1, 2, 3, 4])  # row 0 overwritten by the 6th item
    sample = jax.jit(replay.sample, static_argnums=2)(buf, jax.random.PRNGKey(0), 64)
    assert set(np.asarray(sample["i"]).tolist()) <= {1, 2, 3, 4, 5}
    # One buffer per run: a vmapped buffer state.
    bufs = jax.vmap(lambda _: replay.init({"x": jnp.zeros(())}, 4))(jnp.arange(3))
    bufs = jax.vmap(replay.add)(bufs, {"x": jnp.arange(6.0).reshape(3, 2)})
    np.testing.assert_array_equal(bufs.size, [2, 2, 2])
    np.testing.assert_array_equal(bufs.data["x"][:, :2], [[0, 1], [2, 3], [4, 5]])
    with pytest.raises(ValueError, match="capacity must be > 0"):
        replay.init({"x": jnp.zeros(())}, 0)


def test_fast_permutation_is_a_uniform_permutation():
    from jaxrl.data.shuffle import num_rounds, permutation

    assert num_rounds(4096) == 2 and num_rounds(3) == 1
    perms = np.asarray(jax.jit(jax.vmap(lambda k: permutation(k, 4096)))(jax.random.split(jax.random.PRNGKey(0), 64)))
    assert all(np.array_equal(np.sort(p), np.arange(4096)) for p in perms)
    assert len({p.tobytes() for p in perms}) == 64
    # n = 3: all 6 orders, each ~1/6 of 30k draws (chi-square, 5 dof: 20.5 is the 0.999 quantile)
    small = np.asarray(jax.vmap(lambda k: permutation(k, 3))(jax.random.split(jax.random.PRNGKey(1), 30_000)))
    _, counts = np.unique(small, axis=0, return_counts=True)
    assert len(counts) == 6 and np.sum((counts - 5000.0) ** 2 / 5000.0) < 20.5
    # n = 4096: where element 0 lands is uniform over 8 bins of positions
    first = np.argmax(perms == 0, axis=1)
    many = np.asarray(
        jax.vmap(lambda k: jnp.argmax(permutation(k, 4096) == 0))(jax.random.split(jax.random.PRNGKey(2), 8000))
    )
    _, bins = np.unique(many // 512, return_counts=True)
    assert first.shape == (64,) and len(bins) == 8 and np.sum((bins - 1000.0) ** 2 / 1000.0) < 24.3  # 7 dof, 0.999


def test_add_valid_writes_only_valid_rows():
    buf = replay.init(jnp.zeros(()), 5)
    buf = replay.add_valid(buf, jnp.array([1.0, 2.0, 3.0]), jnp.array([1.0, 0.0, 1.0]))
    assert int(buf.size) == 2 and int(buf.position) == 2
    np.testing.assert_array_equal(buf.data, [1, 3, 0, 0, 0])
    buf = jax.jit(replay.add_valid)(buf, jnp.array([4.0, 5.0, 6.0, 7.0]), jnp.ones(4))
    assert int(buf.size) == 5 and int(buf.position) == 1
    np.testing.assert_array_equal(buf.data, [7, 3, 4, 5, 6])
