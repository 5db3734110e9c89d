"""SAC-N (An, Moon, Kim & Song, "Uncertainty-Based Offline RL with Diversified Q-Ensemble", NeurIPS 2021).

Offline SAC with an ``N``-member Q ensemble (one vmapped parameter axis, :func:`jaxrl.nets.make_ensemble`): the
TD target and the actor use the minimum over all ``N`` members, a pessimistic lower confidence bound that grows
with ``N`` where the members disagree, i.e. away from the data. Critic: ``sum_e mean_b (Q_e(s, a) - y)^2``,
``y = r + gamma (1 - d) [min_e Qhat_e(s', a') - alpha log pi(a'|s')]``, ``a' ~ pi(.|s')``; actor and temperature
are SAC's. :mod:`jaxrl.algos.offline.edac` is this plus the ensemble-gradient diversity penalty (same maker,
:func:`make_ensemble_sac`). Metrics as :mod:`jaxrl.algos.offline.sac_offline`, plus ``q_std`` (the ensemble's
spread at the data's actions). One ``step`` = ``updates_per_iteration`` gradient updates; ``total_env_steps``
counts them.
"""

from __future__ import annotations

from jaxrl import nets
from jaxrl.algos.common import Algorithm
from jaxrl.algos.offline import common as oc
from jaxrl.algos.offline.sac_offline import State, make_sac_like  # noqa: F401  (State re-exported)
from jaxrl.config import config, hyper, static


@config
class Config(oc.CountsUpdates):
    learning_rate: float = hyper(3e-4, low=0, low_open=True, help="Adam step size (actor, critics, temperature)")
    gamma: float = hyper(0.99, low=0, high=1, help="discount")
    tau: float = hyper(0.005, low=0, high=1, low_open=True, help="target-network Polyak rate")
    init_alpha: float = hyper(1.0, low=0, low_open=True, help="initial SAC temperature")
    target_entropy_scale: float = hyper(1.0, help="target entropy = -scale * action_dim")
    dataset_index: float = hyper(0, low=0, help="which of the stacked datasets this run trains on")
    num_critics: int = static(10, low=2, help="Q-ensemble size N (the paper uses 10 to 500 on D4RL MuJoCo)")
    batch_size: int = static(256, low=1, help="minibatch size")
    updates_per_iteration: int = static(100, low=1, help="gradient updates per iteration (per step call)")
    hidden: tuple[int, ...] = static((256, 256), help="hidden layer widths (actor and critics)")
    activation: str = static("relu", choices=tuple(nets.core.ACTIVATIONS), help="hidden activation")
    total_env_steps: int = static(20_000, low=1, help="training length in gradient updates (offline: no env steps)")


def make_ensemble_sac(config, env, env_params, name: str) -> Algorithm:
    """SAC-N, or EDAC when the config has an ``eta`` field (the diversity penalty's weight)."""
    return make_sac_like(
        config, env, env_params, name, num_critics=config.num_critics, diversity=hasattr(config, "eta")
    )


def make(config: Config, env, env_params) -> Algorithm:
    return make_ensemble_sac(config, env, env_params, "sac_n")
