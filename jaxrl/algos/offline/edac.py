"""EDAC: Ensemble-Diversified Actor-Critic (An, Moon, Kim & Song, NeurIPS 2021).

SAC-N (:mod:`jaxrl.algos.offline.sac_n`, same maker) whose critic loss adds ``eta`` times the ensemble similarity
of the action gradients at the data's actions,

``L_Q = sum_e mean_b (Q_e(s, a) - y)^2 + eta mean_b 1/(N-1) sum_{i != j} <g_i, g_j> / (||g_i|| ||g_j||)``,
``g_e = grad_a Q_e(s, a)`` (:func:`jaxrl.losses.offline.edac_critic_loss`). Diversifying the gradients makes the
members disagree quickly off the data, so a small ensemble (``N = 10`` instead of SAC-N's up to 500) gives the
same pessimism. Metrics add ``diversity`` (the similarity term) to SAC-N's.

Defaults are the paper's halfcheetah setting (``N = 10``, ``eta = 1``; SAC-N's 3 x 256 networks, Adam 3e-4, batch
256). ``eta`` weighs a scale-free term (cosines) against the TD loss, which grows with the reward's scale: on brax
halfcheetah, whose rewards are ~7x smaller than D4RL's (expert ~1.8 vs ~12 per step), ``eta = 1`` spends a third
of the critic's gradient norm on diversity and scored 32.9 against SAC-N's 53.8 and 56.6 at ``eta = 0.1`` (10k
updates, medium-replay; ``experiments/results/offline_rebrac_edac_diagnosis.md``).

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
    eta: float = hyper(
        1.0,
        low=0,
        help="weight of the ensemble-gradient diversity penalty (0 = SAC-N); 1 is the paper's halfcheetah value. The "
        "penalty is a sum of cosines while the TD loss grows with the reward's scale: on rewards several times "
        "smaller than D4RL's (brax) scale it down (0.1 on brax halfcheetah medium-replay)",
    )


def make(config: Config, env, env_params) -> Algorithm:
    return sac_n.make_ensemble_sac(config, env, env_params, "edac")
