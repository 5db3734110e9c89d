"""Known answers for the shared pieces every family is built from: train-state records, base configs, the
off-policy update phase, the on-policy minibatch loop, the multi-task setup checks and PEARL's context rows.
(Each algorithm built on them has its own learning test.)"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrl import envs
from jaxrl.algos import off_policy, on_policy, train_state
from jaxrl.algos.base_config import OffPolicyConfig, OnlineConfig
from jaxrl.algos.meta import task_context
from jaxrl.algos.multitask import mt_sac
from jaxrl.algos.multitask import off_policy as mt_off_policy
from jaxrl.algos.offline import base_config as offline_base
from jaxrl.algos.offline import iql, model_based, mopo
from jaxrl.config import ConfigError, config
from jaxrl.data.types import Transition


def test_apply_gradient_is_one_optax_step_and_soft_update_is_polyak():
    tx = optax.sgd(0.5)
    state = train_state.create(tx, {"w": jnp.array([1.0, 2.0])}, target=True)
    state = train_state.apply_gradient(tx, state, {"w": jnp.array([2.0, -2.0])})
    np.testing.assert_allclose(state.params["w"], [0.0, 3.0])  # w - 0.5 g
    np.testing.assert_allclose(state.target["w"], [1.0, 2.0])  # the target waits for soft_update
    state = train_state.soft_update(state, 0.25)
    np.testing.assert_allclose(state.target["w"], [0.75, 2.25])  # 0.25 w + 0.75 target
    assert train_state.create(tx, {"w": jnp.zeros(2)}).target is None


def test_online_base_config_is_abstract_and_checks_the_run_length():
    with pytest.raises(TypeError, match="env_steps_per_iteration"):
        OnlineConfig()

    @config
    class Config(OffPolicyConfig):
        pass

    cfg = Config(num_envs=4, total_env_steps=10)
    assert cfg.env_steps_per_iteration == 4 and cfg.num_iterations == 2
    with pytest.raises(ConfigError, match=r"Config.total_env_steps=3 is out of range: must be >= num_envs = 4"):
        Config(num_envs=4, total_env_steps=3)
    with pytest.warns(DeprecationWarning, match="is now 'discount'"):
        assert Config(gamma=0.5).discount == 0.5


def test_offline_base_configs_declare_shared_fields_once():
    cfg = iql.Config(total_env_steps=300, updates_per_iteration=100)
    assert isinstance(cfg, offline_base.TargetConfig) and cfg.num_iterations == 3 and cfg.dataset_index == 0
    with pytest.raises(ConfigError, match=r"^iql.Config.total_env_steps=50 is out of range"):
        iql.Config(total_env_steps=50, updates_per_iteration=100)
    assert issubclass(mopo.Config, model_based.ModelBasedConfig)
    with pytest.raises(ConfigError, match=r"discount=1.0 is out of range: must be >= 0 and < 1"):
        mopo.Config(discount=1.0)  # a model rollout needs a discount below 1


def _counting_update(buffer, nets, key):
    return nets + buffer, {"seen": nets}


def test_run_updates_scans_when_ready_and_skips_with_zero_metrics():
    nets, buffer, key = jnp.float32(1.0), jnp.float32(2.0), jax.random.PRNGKey(0)
    new, metrics = off_policy.run_updates(jnp.bool_(True), _counting_update, nets, buffer, key, 3)
    assert float(new) == 7.0 and float(metrics["seen"]) == (1 + 3 + 5) / 3  # 3 updates of +2, mean of inputs
    new, metrics = off_policy.run_updates(jnp.bool_(False), _counting_update, nets, buffer, key, 3)
    assert float(new) == 1.0 and float(metrics["seen"]) == 0.0
    # vmapped runs that disagree get each its own branch's answer
    run = jax.vmap(lambda ready: off_policy.run_updates(ready, _counting_update, nets, buffer, key, 3))
    new, metrics = run(jnp.array([True, False]))
    np.testing.assert_array_equal(new, [7.0, 1.0])
    np.testing.assert_allclose(metrics["seen"], [3.0, 0.0])


def test_minibatch_epochs_visits_every_row_once_per_epoch():
    data = {"x": jnp.arange(8.0)}

    def update(total, batch):
        return total + batch["x"].sum(), {"size": jnp.float32(batch["x"].shape[0])}

    total, metrics = on_policy.minibatch_epochs(update, jnp.float32(0), data, jax.random.PRNGKey(1), 3, 4)
    assert float(total) == 3 * 28.0 and float(metrics["size"]) == 2.0


def test_gae_advantages_known_answer():
    # two steps, lambda 1, next values v_tp1 = (V_1, 9): A_1 = r_1 - V_1 (terminated: the 9 is not used),
    # A_0 = (r_0 + g V_1 - V_0) + g A_1 = r_0 + g r_1 - V_0
    reward, value = jnp.array([1.0, 2.0]), jnp.array([0.5, 1.0])
    adv, target = on_policy.advantages(
        reward, value, jnp.array([1.0, 9.0]), jnp.array([False, True]), jnp.array([False, False]), 0.5, 1.0
    )
    np.testing.assert_allclose(adv, [1.0 + 0.5 * 2.0 - 0.5, 2.0 - 1.0])
    np.testing.assert_allclose(target, adv + value)


def test_multitask_setup_refuses_envs_that_do_not_split_over_tasks():
    env, params = envs.make("point-goal-4")
    with pytest.raises(ConfigError, match=r"mt_sac.Config.num_envs=6 must be a multiple of the suite's 4 tasks"):
        mt_off_policy.task_setup(mt_sac.Config(num_envs=6, total_env_steps=60), env, params, "mt_sac")
    setup = mt_off_policy.task_setup(mt_sac.Config(num_envs=8, total_env_steps=80), env, params, "mt_sac")
    assert setup.num_tasks == 4 and setup.action_dim == 2


def test_context_rows_and_per_task_sampling():
    tr = Transition(jnp.ones((3, 2)), jnp.full((3, 1), 2.0), jnp.arange(3.0), jnp.zeros((3, 2)), (), ())
    np.testing.assert_array_equal(task_context.context_features(tr)[1], [1, 1, 2, 1, 0, 0])
    data = jnp.arange(12.0).reshape(3, 4)  # task t, row r -> 4 t + r
    rows = task_context.sample_rows(jax.random.PRNGKey(0), data, jnp.array([2, 0]), (5,), 2)
    assert rows.shape == (2, 5) and set(np.asarray(rows[0]).tolist()) <= {8.0, 9.0}
    assert set(np.asarray(rows[1]).tolist()) <= {0.0, 1.0}
