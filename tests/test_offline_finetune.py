"""Offline-to-online fine-tuning (IQL, AWAC, CQL, Cal-QL): one builder, the offline data mixed into the replay
buffer, Cal-QL's loss and its episode staging (returns-to-go of online rows); learning tests on Pendulum."""

import functools
import math

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import algos
from jaxrl.algos.offline import common as oc
from jaxrl.algos.offline import finetune
from jaxrl.data.types import Transition
from jaxrl.losses import offline as L
from jaxrl.run import train

TINY = dict(hidden=(16, 16), batch_size=32, updates_per_iteration=5, total_env_steps=10)
VARIANTS = {"iql": {}, "awac": {}, "cql": {}, "cal_ql": {"calibrated": True}}


def _module(variant):
    return algos.get("cql" if variant == "cal_ql" else variant)


# ------------------------------------------------------------------------------------------------ fast


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.integration
def test_finetune_builds_runs_and_mixes_offline_data(variant, tiny_env):
    env, env_params = tiny_env
    module = _module(variant)
    cfg = module.Config(**TINY, dataset_index=1, **VARIANTS[variant])
    offline = jax.jit(module.make(cfg, env, env_params).init)(jax.random.PRNGKey(0))
    # short episodes so Cal-QL's staged episodes reach the buffer within a few steps
    short = env_params.replace(max_steps_in_episode=4)
    ft = module.make_finetune(cfg, env, short, online_steps=6, num_envs=2, updates_per_step=2)
    state = jax.jit(ft.init)(jax.random.PRNGKey(1), offline)
    assert int(state.buffer.size) == 300 and state.buffer.capacity == 312
    # the offline rows carry their Monte-Carlo returns
    sampler = oc.init_sampler(env, np.int32(1), cfg.discount)
    np.testing.assert_allclose(
        state.buffer.data.extras.mc_returns[:300], sampler.mc_returns[:300], rtol=1e-5, atol=1e-4
    )
    shapes = jax.tree.map(jnp.shape, state)
    step = jax.jit(ft.step)
    for _ in range(6):
        state, metrics = step(state)
    assert jax.tree.map(jnp.shape, state) == shapes
    assert all(np.isfinite(np.asarray(v)).all() for v in metrics.values())
    staged = variant == "cal_ql"
    # step by step: 12 online rows; staged (Cal-QL): the first 4-step episode of each env (8 rows), 2 + 2 staged
    assert int(state.buffer.size) == (308 if staged else 312)
    online = np.asarray(state.buffer.data.obs[300 : int(state.buffer.size)])
    assert not (online == 0).all(axis=1).any()
    if staged:
        assert np.asarray(state.staging.length).tolist() == [2, 2]
        r = np.asarray(state.buffer.data.reward[300:304])  # env 0's first episode
        expect = [sum(cfg.discount ** (k - t) * r[k] for k in range(t, 4)) for t in range(4)]
        np.testing.assert_allclose(state.buffer.data.extras.mc_returns[300:304], expect, rtol=1e-5)
        assert "bound_rate" in metrics


def test_episode_staging_returns_to_go_by_hand():
    """Two envs, horizon 4, discount 0.5: env 0 ends after 3 steps (terminated), env 1 fills its staging (cut)."""
    z = jnp.zeros(())
    example = Transition(jnp.zeros(1), jnp.zeros(1), z, jnp.zeros(1), z, z, oc.Extras(z))
    staging = finetune.init_staging(example, num_envs=2, horizon=4)
    from jaxrl.data import replay

    buffer = replay.init(example, 10)
    rewards = [(1.0, 4.0), (2.0, 4.0), (3.0, 4.0), (5.0, 4.0)]
    dones = [(False, False), (False, False), (True, False), (False, False)]
    stage = jax.jit(finetune.stage_step)
    for t, (r, d) in enumerate(zip(rewards, dones)):
        rows = Transition(
            jnp.full((2, 1), float(t)),
            jnp.zeros((2, 1)),
            jnp.array(r),
            jnp.zeros((2, 1)),
            jnp.array(d, jnp.float32),
            jnp.zeros(2),
            oc.Extras(jnp.zeros(2)),
        )
        staging, buffer = stage(staging, buffer, rows, jnp.array(d), 0.5)
        if t == 2:  # env 0's episode is in; env 1's still staged
            assert int(buffer.size) == 3
            np.testing.assert_allclose(buffer.data.extras.mc_returns[:3], [1 + 1 + 0.75, 2 + 1.5, 3.0])
    # env 1 hit the horizon at t = 3: 4 + 2 + 1 + 0.5, 4 + 2 + 1, 4 + 2, 4 (a lower bound: observed part only)
    assert int(buffer.size) == 7
    np.testing.assert_allclose(buffer.data.extras.mc_returns[3:7], [7.5, 7.0, 6.0, 4.0])
    np.testing.assert_allclose(buffer.data.reward[3:7], [4.0] * 4)
    np.testing.assert_allclose(buffer.data.obs[:7, 0], [0, 1, 2, 0, 1, 2, 3])
    assert np.asarray(staging.length).tolist() == [1, 0]  # env 0 started a new episode at t = 3
    np.testing.assert_allclose(staging.rows.reward[0, 0], 5.0)
    np.testing.assert_allclose(finetune.episode_returns_to_go(jnp.array([1.0, 1.0, 9.0]), 2, 0.5), [1.5, 1.0, 0.0])


# ----------------------------------------------------------------------------------------- Cal-QL loss


def _flat_q(p, obs, act):  # critics independent of the action (params with a leading [E] axis): [E, B]
    return jax.vmap(lambda p: obs @ p["w"] + p["b"])(p)


def _uniform_policy(p, obs):  # density (1/2)^A on [-1, 1]^A
    return distrax.Independent(distrax.Uniform(-jnp.ones((obs.shape[0], 2)), jnp.ones((obs.shape[0], 2))), 1)


def test_calql_bound_known_answer():
    q = jnp.array([[1.0, -3.0], [0.5, -1.0]])  # [M=2, B=2]
    np.testing.assert_array_equal(L.calql_bound(q, jnp.array([0.75, -2.0])), [[1.0, -2.0], [0.75, -1.0]])
    g = jax.grad(lambda q: jnp.sum(L.calql_bound(q, jnp.array([0.75, -2.0]))))(q)
    np.testing.assert_array_equal(g, [[1.0, 0.0], [0.0, 1.0]])  # no gradient where the floor wins


def test_calql_critic_loss_known_answer():
    """Action-independent Q, uniform policy (every sampled action has density 1/4, A = 2). CQL's pushed value is
    ``A log 2 + Q``. Cal-QL floors the 2M policy values at V: with ``V = Q + log 4`` the soft maximum over M uniform
    (at Q) and 2M policy (at Q + log 4) actions is ``A log 2 + log((e^Q + 8 e^Q) / 3) = A log 2 + Q + log 3``; with
    ``V < Q`` nothing changes."""
    obs = jnp.array([[1.0], [2.0]])
    p = dict(w=jnp.array([[0.5], [-1.0]]), b=jnp.array([0.0, 1.0]))  # two members
    batch = Transition(obs, jnp.zeros((2, 2)), jnp.zeros(2), obs, jnp.ones(2), jnp.zeros(2), oc.Extras(jnp.zeros(2)))
    kw = dict(
        q_apply=_flat_q,
        target_q_params=p,
        policy_apply=_uniform_policy,
        policy_params=None,
        discount=0.9,
        cql_alpha=2.0,
        num_samples=3,
    )
    key = jax.random.key(0)
    cql = jax.jit(functools.partial(L.cql_critic_loss, **kw))(p, batch, key)[1]
    np.testing.assert_allclose(cql["cql_gap"], 2 * math.log(2), rtol=1e-5)
    # Q [E, B] = [[0.5, 1.0], [0.0, -1.0]]; floor row 0 at member 0's Q + log 4, row 1 far below both
    mc = jnp.array([0.5 + math.log(4.0), -100.0])
    loss, m = jax.jit(functools.partial(L.calql_critic_loss, **kw))(p, batch._replace(extras=oc.Extras(mc)), key)
    # member 0, row 0: gap A log 2 + log 3. member 1, row 0 (Q = 0): soft max of 3 at e^0 and 6 at e^(0.5 + log 4)
    gap_m1_r0 = 2 * math.log(2) + math.log((1 + 2 * 4 * math.exp(0.5)) / 3)
    gaps = np.array([[2 * math.log(2) + math.log(3), 2 * math.log(2)], [gap_m1_r0, 2 * math.log(2)]])  # [E, B]
    np.testing.assert_allclose(m["cql_gap"], gaps.mean(), rtol=1e-5)
    np.testing.assert_allclose(loss, m["td_loss"] + 2.0 * gaps.mean(1).sum(), rtol=1e-5)
    np.testing.assert_allclose(m["td_loss"], cql["td_loss"], rtol=1e-6)  # the TD part is CQL's
    np.testing.assert_allclose(m["bound_rate"], 0.5)  # row 0's policy values (both members) are below the floor


# -------------------------------------------------------------------------------------------- learning
# Offline training on a generated Pendulum dataset, then fine-tuning with env interaction (offline data mixed in).

LEARN = dict(hidden=(64, 64), updates_per_iteration=100)
LEARN_RUN = dict(num_chunks=10, eval_episodes=10, progress=False)


def _finetune_gain(variant, env_pair, offline_updates, online_steps, **overrides):
    env, env_params = env_pair
    module = _module(variant)
    cfg = module.Config(**LEARN, total_env_steps=offline_updates, **VARIANTS[variant], **overrides)
    offline = train("cql" if variant == "cal_ql" else variant, env_pair, cfg, seeds=1, **LEARN_RUN)
    before = float(offline.summary["normalized_score_last"][0])
    ft = module.make_finetune(cfg, env, env_params, online_steps=online_steps)
    state = jax.jit(ft.init)(jax.random.PRNGKey(1), offline.run_state(0))
    run = jax.jit(lambda s: jax.lax.scan(lambda c, _: (ft.step(c)[0], None), s, None, length=online_steps)[0])
    state = run(state)
    after = float(jax.jit(ft.evaluate, static_argnums=2)(state, jax.random.PRNGKey(2), 10)["normalized_score"])
    print(
        f"{variant} offline ({offline_updates} updates) {before:.1f} -> fine-tuned ({online_steps} env steps) "
        f"{after:.1f}"
    )
    return before, after


@pytest.mark.learning
@pytest.mark.slow
def test_iql_finetuning_improves_on_offline(pendulum_datasets):
    before, after = _finetune_gain("iql", pendulum_datasets["medium-replay"], 5_000, 5_000)
    assert after > before + 10


@pytest.mark.learning
@pytest.mark.slow
@pytest.mark.parametrize("variant", ["awac", "cql", "cal_ql"])
def test_finetuning_improves_on_offline(variant, pendulum_datasets):
    before, after = _finetune_gain(variant, pendulum_datasets["medium-replay"], 5_000, 5_000)
    assert after > before + 10
