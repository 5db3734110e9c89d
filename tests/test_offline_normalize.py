"""State normalisation and reward scaling of the offline algorithms (``normalize_states``, ``normalize_rewards``): the
dataset's statistics over its valid rows and its return-range scale (known answers), standardised and scaled
batches, a policy that acts on the env's raw observations, fine-tuning that keeps the offline statistics, and a
clear refusal where they are not supported."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl import algos
from jaxrl.algos.offline import common as oc
from jaxrl.algos.offline import sampling
from jaxrl.config import ConfigError

TINY = dict(hidden=(16, 16), batch_size=32, updates_per_iteration=5, total_env_steps=10)

# `tiny_env`: two random-policy Pendulum datasets of 400 and 300 rows, stacked (the second padded), tests/conftest.py


def test_statistics_are_the_valid_rows_mean_and_std_plus_eps(tiny_env):
    env, _ = tiny_env
    member = oc.member(env, np.int32(1))  # 300 valid rows padded to 400
    mean, std = sampling.observation_stats(member)
    rows = np.asarray(member.observations)[: env.valid_rows[1]]
    np.testing.assert_allclose(mean, rows.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, rows.std(0) + 1e-3, rtol=1e-5, atol=1e-6)
    # hand-computed: rows (1, 10) and (3, 30) -> mean (2, 20), std (1, 10) + eps
    stats = (jnp.array([2.0, 20.0]), jnp.array([1.0, 10.0]))
    np.testing.assert_allclose(sampling.standardize(stats, jnp.array([3.0, 0.0])), [1.0, -2.0])
    np.testing.assert_array_equal(sampling.standardize(None, jnp.arange(3.0)), [0.0, 1.0, 2.0])  # off: unchanged


def test_reward_scale_is_horizon_over_the_episode_return_range(tiny_env):
    from jaxrl.data import dataset as ds

    env, _ = tiny_env
    member = oc.member(env, np.int32(1))
    returns = np.asarray(ds.episode_returns(member))[: env.valid_rows[1]]
    scale = float(sampling.return_range_scale(member, 200))
    np.testing.assert_allclose(scale, 200 / (returns.max() - returns.min()), rtol=1e-5)
    # hand-computed: two 2-step episodes with returns 3 and 13 -> 1000 / 10
    data = ds.Dataset(
        observations=jnp.zeros((4, 1)), actions=jnp.zeros((4, 1)), rewards=jnp.array([1.0, 2.0, 6.0, 7.0]),
        next_observations=jnp.zeros((4, 1)), terminals=jnp.array([0.0, 1.0, 0.0, 1.0]), timeouts=jnp.zeros(4),
        mask=jnp.ones(4),
    )  # fmt: skip
    np.testing.assert_allclose(sampling.return_range_scale(data, 1000), 100.0)
    same = data.replace(rewards=jnp.array([1.0, 2.0, 2.0, 1.0]))  # equal returns: no scaling, not a division by 0
    np.testing.assert_allclose(sampling.return_range_scale(same, 1000), 1.0)


def test_sampled_rewards_and_returns_are_scaled(tiny_env):
    env, _ = tiny_env
    raw = oc.init_sampler(env, jnp.int32(0), 0.99)
    scaled = oc.init_sampler(env, jnp.int32(0), 0.99, scale_rewards_by_range=True)
    c = float(scaled.reward_scale)
    assert raw.reward_scale is None and c > 0
    key = jax.random.PRNGKey(1)
    a, b = oc.sample_batch(env, raw, key, 64), oc.sample_batch(env, scaled, key, 64)
    np.testing.assert_allclose(b.reward, c * np.asarray(a.reward), rtol=1e-5)
    np.testing.assert_allclose(b.extras.mc_returns, c * np.asarray(a.extras.mc_returns), rtol=1e-5)
    np.testing.assert_array_equal(b.obs, a.obs)


def test_sampled_batches_are_standardised(tiny_env):
    env, _ = tiny_env
    raw = oc.init_sampler(env, jnp.int32(0), 0.99)
    norm = oc.init_sampler(env, jnp.int32(0), 0.99, normalize=True)
    assert raw.obs_stats is None
    key = jax.random.PRNGKey(0)
    a, b = oc.sample_batch(env, raw, key, 4000), oc.sample_batch(env, norm, key, 4000)
    mean, std = norm.obs_stats
    np.testing.assert_allclose(b.obs, (a.obs - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(b.next_obs, (a.next_obs - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(b.action, a.action)
    assert np.all(np.abs(np.asarray(b.obs).mean(0)) < 0.1) and np.all(np.abs(np.asarray(b.obs).std(0) - 1) < 0.1)


def test_td3_bc_normalises_by_default_as_its_paper():
    assert algos.get("td3_bc").Config().normalize_states and not algos.get("rebrac").Config().normalize_states
    assert not algos.get("iql").Config().normalize_states  # IQL's, CQL's, AWAC's papers do not


@pytest.mark.parametrize("name", ["bc", "td3_bc"])
def test_the_policy_acts_on_raw_observations(name, tiny_env):
    env, env_params = tiny_env
    module = algos.get(name)
    on = module.make(module.Config(**TINY, normalize_states=True), env, env_params)
    off = module.make(module.Config(**TINY, normalize_states=False), env, env_params)
    key = jax.random.PRNGKey(0)
    s_on, s_off = on.init(key), off.init(key)
    jax.tree.map(np.testing.assert_array_equal, s_on.nets, s_off.nets)  # the same networks either way
    obs = jnp.array([[1.0, 0.0, 5.0], [-0.5, 0.8, -7.0]])
    got = on.act(s_on, obs, key, deterministic=True)
    want = off.act(s_off, sampling.standardize(s_on.sampler.obs_stats, obs), key, deterministic=True)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert not np.allclose(got, off.act(s_off, obs, key, deterministic=True))
    state, metrics = jax.jit(on.step)(s_on)
    assert all(np.isfinite(float(v)) for v in jax.tree.leaves(metrics))


@pytest.mark.integration
def test_finetuning_keeps_the_offline_statistics(tiny_env):
    from jaxrl.algos.offline import iql

    env, env_params = tiny_env
    cfg = iql.Config(**TINY, dataset_index=1, normalize_states=True, normalize_rewards=True)
    offline = jax.jit(iql.make(cfg, env, env_params).init)(jax.random.PRNGKey(0))
    ft = iql.make_finetune(cfg, env, env_params, online_steps=3)
    state = ft.init(jax.random.PRNGKey(1), offline)
    stats = offline.sampler.obs_stats
    rows = np.asarray(oc.member(env, 1).observations)[:300]
    np.testing.assert_allclose(state.buffer.data.obs[:300], sampling.standardize(stats, rows), rtol=1e-5, atol=1e-5)
    scale = offline.sampler.reward_scale
    raw_rewards = np.asarray(oc.member(env, 1).rewards)[:300]
    np.testing.assert_allclose(state.buffer.data.reward[:300], scale * raw_rewards, rtol=1e-5, atol=1e-6)
    raw_obs = state.obs
    state, metrics = jax.jit(ft.step)(state)
    np.testing.assert_allclose(
        state.buffer.data.obs[300], sampling.standardize(stats, raw_obs[0]), rtol=1e-5, atol=1e-5
    )
    assert np.isfinite(float(metrics["critic_loss"]))


@pytest.mark.parametrize("name", ["mopo", "morel"])
@pytest.mark.parametrize("field", ["normalize_states", "normalize_rewards"])
def test_model_based_refuses_normalisation(name, field):
    with pytest.raises(ConfigError, match=f"{field}=True is not supported"):
        algos.get(name).Config(**{field: True})


def test_awr_value_targets_use_the_scaled_rewards(tiny_env):
    # AWR reads the whole dataset for its TD(lambda) targets (its default returns), outside the batches
    env, env_params = tiny_env
    module = algos.get("awr")
    off = module.make(module.Config(**TINY), env, env_params)
    on = module.make(module.Config(**TINY, normalize_rewards=True), env, env_params)
    key = jax.random.PRNGKey(0)
    s_off, s_on = off.init(key), on.init(key)  # V starts the same (zero-input init), so targets differ by r only
    scale = float(s_on.sampler.reward_scale)
    assert scale != 1.0
    r_off, r_on = np.asarray(s_off.sampler.mc_returns), np.asarray(s_on.sampler.mc_returns)
    assert not np.allclose(r_on, r_off)
    _, metrics = jax.jit(on.step)(s_on)
    assert all(np.isfinite(float(v)) for v in jax.tree.leaves(metrics))
