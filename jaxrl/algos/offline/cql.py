"""Conservative Q-learning (Kumar et al., NeurIPS 2020), CQL(H) with a fixed penalty weight, on SAC.

The critic minimises the soft TD error plus ``alpha * (logsumexp_a Q(s, a) - Q(s, a_data))`` (the soft maximum
estimated from uniform and policy actions; :func:`jaxrl.losses.offline.cql_critic_loss`), which pushes Q down at
actions the data does not support and keeps it below the data's return; the actor and temperature are SAC's.
Metrics add ``cql_gap`` to those of :mod:`jaxrl.algos.offline.sac_offline` (``q_policy``, ``q_data``,
``mc_return``). One ``step`` = ``updates_per_iteration`` gradient updates; ``total_env_steps`` counts them.
"""

from __future__ import annotations

from jaxrl import nets
from jaxrl.algos.common import Algorithm
from jaxrl.algos.offline import common as oc
from jaxrl.algos.offline.sac_offline import State, make_sac_like  # noqa: F401  (State re-exported)
from jaxrl.config import config, hyper, static

OFFLINE = True


@config
class Config(oc.CountsUpdates):
    learning_rate: float = hyper(3e-4, low=0, low_open=True, help="Adam step size (actor, critic, temperature)")
    gamma: float = hyper(0.99, low=0, high=1, help="discount")
    tau: float = hyper(0.005, low=0, high=1, low_open=True, help="target-network Polyak rate")
    init_alpha: float = hyper(1.0, low=0, low_open=True, help="initial SAC temperature")
    target_entropy_scale: float = hyper(1.0, help="target entropy = -scale * action_dim")
    cql_alpha: float = hyper(1.0, low=0, help="weight of the conservative penalty")
    cql_temperature: float = hyper(1.0, low=0, low_open=True, help="temperature of the logsumexp")
    dataset_index: float = hyper(0, low=0, help="which of the stacked datasets this run trains on")
    num_samples: int = static(10, low=1, help="sampled actions per state (each of uniform / pi(s) / pi(s'))")
    batch_size: int = static(256, low=1, help="minibatch size")
    updates_per_iteration: int = static(100, low=1, help="gradient updates per iteration (per step call)")
    hidden: tuple[int, ...] = static((256, 256), help="hidden layer widths (actor and critic)")
    activation: str = static("relu", choices=tuple(nets.core.ACTIVATIONS), help="hidden activation")
    total_env_steps: int = static(20_000, low=1, help="training length in gradient updates (offline: no env steps)")


def make(config: Config, env, env_params) -> Algorithm:
    return make_sac_like(config, env, env_params, "cql", conservative=True)
