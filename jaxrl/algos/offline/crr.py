"""Critic Regularized Regression (Wang et al., "Critic Regularized Regression", NeurIPS 2020), without the
distributional critic.

Critic: twin Q, ``sum_e mean (Q_e(s, a) - y)^2``, ``y = r + discount (1 - d) min_e Qhat_e(s', a')``, ``a' ~ pi(.|s')``.
Actor: ``-mean_b f(A(s_b, a_b)) log pi(a_b | s_b)`` with ``A(s, a) = Q(s, a) - (1/m) sum_j Q(s, a_j)``,
``a_j ~ pi(.|s)`` (CRR's "mean" estimator, ``m = num_samples``), and ``f = 1[A > 0]`` (``mode="binary"``) or
``f = min(exp(A / beta), w_max)`` (``mode="exp"``) (:func:`jaxrl.losses.offline.advantage_weighted_actor_loss`).
This is AWAC's machinery (:func:`jaxrl.algos.offline.awac.make_advantage_weighted`) with the weight function
selectable; ``mode="exp"`` with the same hyperparameters is AWAC. Policy: tanh-Gaussian. One ``step`` =
``updates_per_iteration`` gradient updates; ``total_env_steps`` counts them.
"""

from __future__ import annotations

from jaxrl.algos.common import Algorithm
from jaxrl.algos.offline import awac
from jaxrl.config import config, static

State = awac.State


@config
class Config(awac.Config):
    mode: str = static(
        "binary",
        choices=("binary", "exp"),
        help="advantage weights: 1[A > 0] (binary) or min(exp(A / temperature), max_weight) (exp)",
    )


def make(config: Config, env, env_params) -> Algorithm:
    return awac.make_advantage_weighted(config, env, env_params, "crr", mode=config.mode)
