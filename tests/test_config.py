"""Configs: validation at construction, pytree behaviour, grids refused before compiling."""

import dataclasses

import jax
import numpy as np
import pytest

from jaxrl import algos, envs
from jaxrl.algos.single import ppo, sac
from jaxrl.config import ConfigError, from_dict, hyper_fields, replace, static_fields, to_dict
from jaxrl.run import grid as grid_lib


def test_invalid_value_names_field_and_range():
    with pytest.raises(ConfigError, match=r"Config.learning_rate=-0.1 is out of range: must be > 0"):
        ppo.Config(learning_rate=-0.1)
    with pytest.raises(ConfigError, match=r"^sac.Config.discount=1.5 is out of range: must be >= 0 and <= 1"):
        sac.Config(discount=1.5)
    with pytest.warns(DeprecationWarning, match="sac.Config.gamma is now 'discount'"):
        assert sac.Config(gamma=0.9).discount == 0.9  # the old name, for one release
    with pytest.raises(ConfigError, match=r"num_envs=0 is out of range: must be >= 1"):
        ppo.Config(num_envs=0)
    with pytest.raises(ConfigError, match=r"activation='swish' is not allowed: choose one of"):
        ppo.Config(activation="swish")
    with pytest.raises(ConfigError, match=r"learning_rate='fast' must be a real number"):
        ppo.Config(learning_rate="fast")
    with pytest.raises(ConfigError, match="divisible by num_minibatches"):
        ppo.Config(num_envs=3, num_steps=5, num_minibatches=4)
    with pytest.raises(ConfigError, match=r"num_steps=2.5 must be an integer"):
        ppo.Config(num_steps=2.5)


def test_config_is_frozen_pytree_with_static_shape_fields():
    cfg = ppo.Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.learning_rate = 1.0
    leaves, treedef = jax.tree.flatten(cfg)
    assert len(leaves) == len(hyper_fields(cfg))
    assert "num_envs" in static_fields(cfg) and "learning_rate" in hyper_fields(cfg)
    # Rebuilding from arbitrary leaves (vmap axis specs, tracers) skips validation.
    axes = jax.tree.map(lambda _: 0, cfg)
    assert axes.learning_rate == 0 and axes.num_envs == cfg.num_envs
    batched = jax.tree.map(lambda x: np.full(3, x, np.float32), cfg)
    lrs = jax.vmap(lambda c: c.learning_rate * 2)(batched)
    np.testing.assert_allclose(lrs, 2 * cfg.learning_rate)


def test_replace_unknown_field_suggests_and_round_trip():
    cfg = ppo.Config()
    with pytest.raises(ConfigError, match="did you mean 'learning_rate'"):
        replace(cfg, learnin_rate=1e-3)
    assert from_dict(ppo.Config, to_dict(replace(cfg, hidden=(8, 8)))) == replace(cfg, hidden=(8, 8))


def test_unknown_names_list_close_matches():
    with pytest.raises(ValueError, match="did you mean 'CartPole-v1'"):
        envs.make("Cartpole-v1")
    with pytest.raises(ValueError, match="did you mean 'Pendulum-v1'"):
        envs.make("pendulum")
    with pytest.raises(ValueError, match="did you mean 'ppo'"):
        algos.get("ppp")


def test_grid_refusals_before_compiling():
    cfg = ppo.Config()
    with pytest.raises(ConfigError, match="cannot grid over ppo.Config.num_envs: it is a static field"):
        grid_lib.expand(cfg, [0], {"num_envs": [4, 8]})
    with pytest.raises(ConfigError, match="grid value 'a' for ppo.Config.learning_rate must be a real number"):
        grid_lib.expand(cfg, [0], {"learning_rate": ["a"]})
    with pytest.raises(ConfigError, match="learning_rate=-1.0 is out of range"):
        grid_lib.expand(cfg, [0], {"learning_rate": [1e-3, -1.0]})
    with pytest.raises(ConfigError, match="value 'x' is not a number"):
        grid_lib.parse_grid(["learning-rate=1e-3,x"])
    assert grid_lib.parse_grid(["learning-rate=1e-3,3e-4"]) == {"learning_rate": [1e-3, 3e-4]}


def test_grid_expansion_is_seed_major():
    batched, runs = grid_lib.expand(
        ppo.Config(), [0, 1], {"learning_rate": [1e-3, 3e-4, 1e-4], "discount": [0.9, 0.99]}
    )
    assert len(runs) == 12 and runs[7] == {"seed": 1, "point": {"learning_rate": 1e-3, "discount": 0.99}}
    assert batched.learning_rate.shape == (12,) and batched.learning_rate.dtype == np.float32
    np.testing.assert_allclose(batched.discount.reshape(2, 3, 2)[1, 2], [0.9, 0.99], rtol=1e-6)


def test_grid_over_an_index_field_stays_integer_and_an_old_name_still_grids():
    from jaxrl.algos.offline import iql

    batched, _ = grid_lib.expand(iql.Config(), [0], {"dataset_index": [0, 1, 2]})
    assert batched.dataset_index.dtype == np.int32 and batched.dataset_index.tolist() == [0, 1, 2]
    with pytest.warns(DeprecationWarning, match="ppo.Config.gamma is now 'discount'"):
        batched, runs = grid_lib.expand(ppo.Config(), [0], {"gamma": [0.9, 0.99]})
    assert runs[1]["point"] == {"discount": 0.99}
    np.testing.assert_allclose(batched.discount, [0.9, 0.99], rtol=1e-6)


def test_inf_is_a_value_only_where_a_field_allows_it():
    """PPO's ``max_grad_norm = inf`` is no clipping (as a plain float no norm is computed); NaN, -inf, and inf where a
    field does not allow it stay errors that name the field."""
    import math

    from jaxrl.algos import on_policy
    from jaxrl.algos.single import ppo

    assert math.isinf(ppo.Config(max_grad_norm=float("inf")).max_grad_norm)
    g = {"w": np.full((3,), 1e6, np.float32)}

    def norm_reductions(max_grad_norm):  # the global norm is the only reduction in clip + Adam's update
        tx = on_policy.make_ppo_optimizer(ppo.Config(max_grad_norm=max_grad_norm, anneal_lr=False))
        return str(jax.make_jaxpr(tx.update)(g, tx.init(g))).count("reduce_sum")

    assert norm_reductions(0.5) >= 1 and norm_reductions(float("inf")) == 0
    for field, value in (
        ("max_grad_norm", float("nan")),
        ("max_grad_norm", -float("inf")),
        ("learning_rate", float("inf")),
    ):
        with pytest.raises(ConfigError, match=f"ppo.Config.{field}=.* must be finite"):
            ppo.Config(**{field: value})
