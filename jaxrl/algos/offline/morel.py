"""MOReL: Model-Based Offline Reinforcement Learning (Kidambi et al., NeurIPS 2020).

The same dynamics ensemble, model phase and SAC-on-model-rollouts as :mod:`jaxrl.algos.offline.mopo` (one maker,
:func:`~jaxrl.algos.offline.mopo.make_model_based`), with MOReL's pessimistic MDP instead of MOPO's reward
penalty: a state-action is *unknown* when the ensemble's next-state disagreement
``disc(s, a) = max_{i,j} ||f_i(s, a) - f_j(s, a)||`` (means of all members) exceeds the threshold

    threshold = threshold_scale * max_{(s, a) in D} disc(s, a)

(a multiple of the largest disagreement the ensemble shows on its own training data, fixed at the end of the
model phase; the authors' code sets the threshold from the dataset's disagreement in the same way). An unknown
step moves to the absorbing HALT state, which pays ``-kappa`` at every step: the rollout ends there
(``terminated = 1``) with reward ``-kappa / (1 - discount)``, the discounted value of staying in HALT, where
``kappa = kappa_scale * R_max`` and ``R_max = max |r|`` over the dataset
(:func:`jaxrl.losses.offline.morel_halting`). Known steps keep the model's reward.

``kappa_scale`` defaults to 0.1: the halting reward is then ``-10 R_max`` at discount 0.99, the order of the
constant halting penalty a public reimplementation (J-MOReL) uses on D4RL HalfCheetah (-200, where good
steps pay ~10). ``kappa_scale=1`` (``-100 R_max``, 1626 on Pendulum) let the rare halts (1e-4 of model
steps) dominate the critic's loss (313-753 against ~10) and scored -33.1 against 7.9 on Pendulum medium-replay
(3 seeds, 2k model + 8k SAC updates; ``experiments/results/offline_model_based_diagnosis.md``), and 5.2 against
76.9 on Pendulum medium.

Policy learning: the paper optimises the pessimistic MDP with natural policy gradient (NPG); here SAC learns on
model rollouts mixed with dataset transitions, the usual choice of JAX / PyTorch reimplementations (it reuses
the off-policy machinery MOPO needs and learns faster per model sample). Model rollouts end by halting, or where
the env's termination rule says the predicted state fell (hopper, walker2d, ant; :mod:`jaxrl.envs.termination`).

Metrics add ``halted`` (fraction of model steps that halted) and ``threshold`` to the shared ones.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxrl.algos.common import Algorithm
from jaxrl.algos.offline import models
from jaxrl.algos.offline.model_based import ModelBasedConfig, State, make_model_based
from jaxrl.config import ConfigError, config, config_name, hyper
from jaxrl.losses.offline import morel_halting


@config
class Config(ModelBasedConfig):
    threshold_scale: float = hyper(
        1.0, low=0, low_open=True, help="unknown when disagreement > threshold_scale * max disagreement on the data"
    )
    kappa_scale: float = hyper(
        0.1,
        low=0,
        help="HALT pays -kappa per step, kappa = kappa_scale * max |r| in the data (halting reward "
        "-kappa / (1 - discount) = -10 max |r| at discount 0.99)",
    )

    def __post_init__(self):
        super().__post_init__()
        if self.num_members < 2:
            raise ConfigError(
                f"{config_name(self)}.num_members={self.num_members} is out of range: must be >= 2 (MOReL's "
                f"unknown-state test is the disagreement between ensemble members)"
            )


def morel_penalty(config: Config, state: State, pred: models.Prediction):
    """MOReL's HALT rule on a model step: unknown -> reward ``-kappa / (1 - discount)`` and halt."""
    threshold = config.threshold_scale * state.model.max_disagreement
    kappa = config.kappa_scale * state.reward_max
    halt_reward = kappa / (1.0 - config.discount)
    reward, halt, unknown = morel_halting(
        pred.mean[..., :-1], pred.reward, jnp.zeros_like(pred.reward), threshold=threshold, r_max=halt_reward
    )
    return reward, halt, {"halted": unknown, "threshold": jnp.broadcast_to(threshold, reward.shape)}


def make(config: Config, env, env_params) -> Algorithm:
    return make_model_based(config, env, env_params, "morel", morel_penalty)
