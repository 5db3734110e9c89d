"""SAC-N (An, Moon, Kim & Song, "Uncertainty-Based Offline RL with Diversified Q-Ensemble", NeurIPS 2021).

Offline SAC with an ``N``-member Q ensemble (one vmapped parameter axis, :func:`jaxrl.nets.make_ensemble`): the
TD target and the actor use the minimum over all ``N`` members, a pessimistic lower confidence bound that grows
with ``N`` where the members disagree, i.e. away from the data. Critic: ``sum_e mean_b (Q_e(s, a) - y)^2``,
``y = r + discount (1 - d) [min_e Qhat_e(s', a') - alpha log pi(a'|s')]``, ``a' ~ pi(.|s')``; actor and temperature
are SAC's. :mod:`jaxrl.algos.offline.edac` is this plus the ensemble-gradient diversity penalty (same maker,
:func:`make_ensemble_sac`). Metrics as :mod:`jaxrl.algos.offline.sac_offline`, plus ``q_std`` (the ensemble's
spread at the data's actions). Defaults are the paper's: 3 x 256 networks, Adam 3e-4, batch 256, tau 5e-3, and
N = 10, its halfcheetah setting (hopper and walker2d need N = 50 to 500). One ``step`` = ``updates_per_iteration``
gradient updates; ``total_env_steps`` counts them.
"""

from __future__ import annotations

from jaxrl.algos.common import Algorithm
from jaxrl.algos.offline import common as oc
from jaxrl.algos.offline.sac_offline import make_sac_like
from jaxrl.config import config, static

State = oc.State


@config
class Config(oc.EntropyConfig):
    num_critics: int = static(10, low=2, help="Q-ensemble size N (the paper uses 10 to 500 on D4RL MuJoCo)")
    hidden: tuple[int, ...] = static(
        (256, 256, 256), help="hidden layer widths of the actor and of each critic (the paper's 3 x 256)"
    )


def make_ensemble_sac(config, env, env_params, name: str) -> Algorithm:
    """SAC-N, or EDAC when the config has an ``eta`` field (the diversity penalty's weight)."""
    return make_sac_like(
        config, env, env_params, name, num_critics=config.num_critics, diversity=hasattr(config, "eta")
    )


def make(config: Config, env, env_params) -> Algorithm:
    return make_ensemble_sac(config, env, env_params, "sac_n")
