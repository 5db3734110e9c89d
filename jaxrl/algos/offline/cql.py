"""Conservative Q-learning (Kumar et al., NeurIPS 2020) on SAC: CQL(H) and CQL(rho), with a fixed penalty weight
or the Lagrange variant; and Cal-QL.

The critic minimises the soft TD error plus ``alpha * (P(s) - Q(s, a_data))`` (:func:`jaxrl.losses.offline.
cql_critic_loss`), which pushes Q down at actions the data does not support and keeps it below the data's return;
``P`` is the soft maximum ``logsumexp_a Q(s, a)`` estimated from uniform and policy actions (``cql_variant="H"``)
or the ``softmax(Q)``-weighted mean over policy actions (``"rho"``). ``lagrange=True`` learns ``alpha`` (starting
at ``cql_alpha``) by dual ascent so the gap ``P - Q_data`` holds ``target_action_gap`` (the paper's eq. 30). The
actor and temperature are SAC's (one update builder, :func:`jaxrl.algos.offline.sac_offline.make_update`). Metrics
add ``cql_gap`` (and ``cql_alpha`` with Lagrange) to those of :mod:`jaxrl.algos.offline.sac_offline`
(``q_policy``, ``q_data``, ``mc_return``). ``bc_steps > 0``: for its first updates the actor imitates the data
(:func:`jaxrl.losses.offline.cql_bc_actor_loss`, the reference code's ``policy_eval_start``) while the critic
already learns. One ``step`` = ``updates_per_iteration`` gradient updates;
``total_env_steps`` counts them.

``calibrated=True`` is Cal-QL (Nakamoto et al., NeurIPS 2023): the pushed-down policy-action values are floored
at the data's Monte-Carlo return (:func:`jaxrl.losses.offline.calql_critic_loss`), so pre-training leaves Q on
the scale of real returns and :func:`make_finetune` (offline-to-online) does not first unlearn an over-pessimistic
Q; online rows get their returns-to-go when their episode ends. Metrics add ``bound_rate``.
"""

from __future__ import annotations

import optax

from jaxrl.algos.common import Algorithm
from jaxrl.algos.offline import common as oc
from jaxrl.algos.offline import finetune, sac_offline
from jaxrl.algos.offline.sac_offline import State
from jaxrl.config import config, hyper, static
from jaxrl.envs.wrappers import action_dim

__all__ = ["Config", "State", "make", "make_finetune"]


@config
class Config(oc.EntropyConfig):
    cql_alpha: float = hyper(
        5.0,
        low=0,
        help="weight of the conservative penalty (5: the CQL authors' D4RL MuJoCo setting, and d3rlpy's default)",
    )
    cql_temperature: float = hyper(1.0, low=0, low_open=True, help="temperature of the logsumexp")
    target_action_gap: float = hyper(10.0, help="CQL-Lagrange (lagrange=True): the gap the learned weight holds")
    cql_alpha_learning_rate: float = hyper(3e-4, low=0, low_open=True, help="CQL-Lagrange: Adam step of log alpha")
    cql_variant: str = static("H", choices=("H", "rho"), help="pushed-down value: logsumexp (H) or rho-weighted")
    lagrange: bool = static(
        False, choices=(True, False), help="learn the penalty weight (from cql_alpha) by dual ascent on the target gap"
    )
    calibrated: bool = static(
        False, choices=(True, False), help="Cal-QL: floor the pushed-down values at the data's Monte-Carlo return"
    )
    bc_steps: int = static(
        0,
        low=0,
        help="first updates in which the actor imitates the data instead of "
        "maximising Q (the reference code's policy_eval_start; whole iterations)",
    )
    num_samples: int = static(10, low=1, help="sampled actions per state (each of uniform / pi(s) / pi(s'))")
    backup_entropy: bool = static(
        True,
        choices=(True, False),
        help="subtract alpha log pi(a'|s') in the TD target (SAC's soft backup, as d3rlpy); the CQL authors' D4RL "
        "script and CORL leave it out (deterministic_backup / backup_entropy=False, the paper's eq. 3)",
    )


def make(config: Config, env, env_params) -> Algorithm:
    return sac_offline.make_sac_like(config, env, env_params, "cql", conservative=True)


def make_finetune(config: Config, env, env_params, **kw) -> Algorithm:
    """Offline-to-online CQL / Cal-QL: continue a trained state with env interaction, offline data mixed into the
    replay buffer (:func:`jaxrl.algos.offline.finetune.make_finetune`). Cal-QL stages each episode so its rows
    enter the buffer with their returns-to-go (its Q floor).
    ``init(key, offline_state)``; ``kw``: ``online_steps``, ``num_envs``, ``updates_per_step``."""
    n_act = action_dim(env, env_params)
    networks = sac_offline.make_networks(config, n_act)
    update = sac_offline.make_update(config, networks, optax.adam(config.learning_rate), n_act, conservative=True)
    return finetune.make_finetune(
        config,
        env,
        env_params,
        name="cql",
        act=oc.stochastic_act(networks.actor),
        update=update,
        stage_episodes=config.calibrated,
        **kw,
    )
