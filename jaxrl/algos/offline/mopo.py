"""MOPO: Model-based Offline Policy Optimization (Yu et al., NeurIPS 2020), on
:func:`jaxrl.algos.offline.model_based.make_model_based` (the model phase, rollouts and SAC are there).

MOPO's penalised reward is ``r~(s, a) = r^(s, a) - lambda u(s, a)``, ``u = max_i ||Sigma_i(s, a)||_F`` over the
elites (:func:`jaxrl.losses.offline.mopo_penalized_reward`). ``uncertainty="variance"`` is the paper's equation
(Frobenius norm of the diagonal covariance); the default ``"std"`` uses the standard deviations instead
(``max_i ||sigma_i||_2``), as the authors' code and most reimplementations do. Model rollouts end where the
env's termination rule says the predicted state fell (hopper, walker2d, ant; :mod:`jaxrl.envs.termination`).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxrl.algos.common import Algorithm
from jaxrl.algos.offline import models
from jaxrl.algos.offline.model_based import ModelBasedConfig, State, make_model_based
from jaxrl.config import config, hyper, static
from jaxrl.losses.offline import mopo_penalized_reward, mopo_uncertainty

__all__ = ["Config", "make", "make_model_based", "mopo_penalty", "State", "ModelBasedConfig"]


@config
class Config(ModelBasedConfig):
    penalty_coef: float = hyper(1.0, low=0, help="lambda: weight of the uncertainty penalty")
    uncertainty: str = static(
        "std",
        choices=("std", "variance"),
        help="u(s, a) = max_i ||sigma_i|| (std, the authors' code) or max_i ||Sigma_i||_F "
        "(variance, the paper's equation)",
    )


def mopo_penalty(config: Config, state: State, pred: models.Prediction):
    """``r~ = r^ - lambda max_{i in elites} ||Sigma_i||_F`` (or ``||sigma_i||`` with ``uncertainty="std"``);
    never halts."""
    var = pred.variance[state.model.elites]
    spread = var if config.uncertainty == "variance" else jnp.sqrt(var)
    reward = mopo_penalized_reward(pred.reward, spread, config.penalty_coef)
    return reward, jnp.zeros_like(reward), {"uncertainty": mopo_uncertainty(spread)}


def make(config: Config, env, env_params) -> Algorithm:
    return make_model_based(config, env, env_params, "mopo", mopo_penalty)
