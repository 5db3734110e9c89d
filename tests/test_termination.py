"""Termination rules on observations (:mod:`jaxrl.envs.termination`): known answers per rule, the name lookup, brax
hopper's own done flags reproduced, and MOPO's model rollouts ending where the rule says the hopper fell."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl.envs import termination as T


def _obs(n: int, **at) -> np.ndarray:
    o = np.zeros(n, np.float32)
    for i, v in at.items():
        o[int(i[1:])] = v
    return o


def test_hopper_rule():
    ok = _obs(11, i0=1.25)
    cases = [ok, _obs(11, i0=0.69), _obs(11, i0=1.25, i1=0.21), _obs(11, i0=1.25, i1=-0.21),
             _obs(11, i0=1.25, i7=101.0), _obs(11, i0=1.25, i3=np.nan)]  # fmt: skip
    np.testing.assert_array_equal(T.hopper_done(jnp.stack(cases)), [0, 1, 1, 1, 1, 1])
    # height is not bounded above, and the height itself is not in the +-100 state check
    np.testing.assert_array_equal(T.hopper_done(jnp.asarray(_obs(11, i0=150.0))), 0.0)


def test_walker2d_and_ant_rules():
    walker = [_obs(17, i0=1.2), _obs(17, i0=0.79), _obs(17, i0=2.01), _obs(17, i0=1.2, i1=1.01),
              _obs(17, i0=1.2, i1=-0.99), _obs(17, i0=1.2, i9=500.0)]  # fmt: skip
    np.testing.assert_array_equal(T.walker2d_done(jnp.stack(walker)), [0, 1, 1, 1, 0, 0])
    ant = [_obs(27, i0=0.55), _obs(27, i0=0.19), _obs(27, i0=1.01), _obs(27, i0=0.2), _obs(27, i0=np.inf)]
    np.testing.assert_array_equal(T.ant_done(jnp.stack(ant)), [0, 1, 1, 0, 1])


@pytest.mark.parametrize(
    "name, rule",
    [
        ("brax:hopper:positional", T.hopper_done),
        ("brax:hopper", T.hopper_done),
        ("Hopper-v4", T.hopper_done),
        ("hopper-medium-replay-v2", T.hopper_done),
        ("mujoco/walker2d/medium-v0", T.walker2d_done),
        ("brax:ant", T.ant_done),
        ("brax:halfcheetah:positional", None),
        ("Pendulum-v1", None),
        ("antmaze-umaze-v2", None),
        (None, None),
    ],
)
def test_lookup_by_env_name(name, rule):
    assert T.termination_fn(name) is rule


@pytest.fixture(scope="module")
def hopper_random():
    """800 rows (8 envs x 100 steps) of uniformly random actions in brax hopper (positional): it falls now and then."""
    import jaxrl.envs
    from jaxrl.data import dataset as ds
    from jaxrl.run import generate

    env, params = jaxrl.envs.make("brax:hopper:positional")
    info = ds.DatasetInfo(name="hopper-random", kind="random", env_name="brax:hopper:positional")
    return generate.rollout_dataset(env, params, None, jax.random.PRNGKey(0), 800, num_envs=8, info=info)


@pytest.mark.integration
def test_the_hopper_rule_reproduces_brax_done_flags(hopper_random):
    d = hopper_random
    terminals = np.asarray(d.terminals)
    assert 5 <= terminals.sum() < len(terminals)  # falls happen, and not everywhere
    np.testing.assert_array_equal(T.hopper_done(d.next_observations), terminals)


@pytest.mark.integration
def test_mopo_rollouts_end_where_the_hopper_falls(hopper_random):
    from jaxrl.algos.offline import common as oc
    from jaxrl.algos.offline import mopo

    env, env_params = oc.make_offline_env([hopper_random])
    cfg = mopo.Config(hidden=(16, 16), model_hidden=(16, 16), batch_size=32, updates_per_iteration=10,
                      model_train_updates=20, total_env_steps=40, rollout_batch_size=200, rollout_horizon=10,
                      num_members=3, num_elites=2)  # fmt: skip
    algo = mopo.make(cfg, env, env_params)
    state, step = jax.jit(algo.init)(jax.random.PRNGKey(0)), jax.jit(algo.step)
    for _ in range(3):
        state, metrics = step(state)
    fell = float(metrics["model_terminated"])
    assert 0 < fell < 1  # some model steps fell (terminal rows), not all
    assert float(jnp.sum(state.buffer.data.terminated)) > 0
