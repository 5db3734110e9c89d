"""EDAC: Ensemble-Diversified Actor-Critic (An, Moon, Kim & Song, NeurIPS 2021).

SAC-N (:mod:`jaxrl.algos.offline.sac_n`, same maker) whose critic loss adds ``eta`` times the ensemble similarity
of the action gradients at the data's actions,

``L_Q = sum_e mean_b (Q_e(s, a) - y)^2 + eta mean_b 1/(N-1) sum_{i != j} <g_i, g_j> / (||g_i|| ||g_j||)``,
``g_e = grad_a Q_e(s, a)`` (:func:`jaxrl.losses.offline.edac_critic_loss`). Diversifying the gradients makes the
members disagree quickly off the data, so a small ensemble (``N = 10`` instead of SAC-N's up to 500) gives the
same pessimism. Metrics add ``diversity`` (the similarity term) to SAC-N's.

With ONE action dimension (Pendulum) the cosine of two action gradients is the product of their signs, so the
penalty is piecewise constant in the critics' parameters and has no gradient: EDAC is then SAC-N.
"""

from __future__ import annotations

from jaxrl.algos.common import Algorithm
from jaxrl.algos.offline import sac_n
from jaxrl.config import config, hyper

State = sac_n.State


@config
class Config(sac_n.Config):
    eta: float = hyper(1.0, low=0, help="weight of the ensemble-gradient diversity penalty (0 = SAC-N)")


def make(config: Config, env, env_params) -> Algorithm:
    return sac_n.make_ensemble_sac(config, env, env_params, "edac")
