"""CAVIA for RL (Zintgraf et al. 2019, "Fast Context Adaptation via Meta-Learning"): MAML whose inner loop adapts
only a context vector, on :mod:`.maml`'s machinery.

The policy ``pi_theta(a | s, phi)`` is MAML's Gaussian MLP with the context ``phi`` (``num_context_params``
numbers) concatenated to its input, i.e. fed to the first layer, as in the paper. On each of ``num_tasks`` fresh
tasks per iteration, ``phi`` starts at 0 and takes K = ``num_inner_steps`` policy-gradient steps on fresh
trajectories D^k (paper eq. 2, as ascent on the surrogate ``L``), ``theta`` held fixed:

    phi^0 = 0,   phi^{k+1} = phi^k + alpha grad_phi L(theta, phi^k; D^k)

(:func:`jaxrl.losses.meta.context_inner_step`).

The outer step updates ``theta`` alone, on the adapted policies' data D^K, through the inner steps (paper eq. 4:
the meta-gradient carries ``d phi^K / d theta``, second order; ``first_order=True`` drops it): ProMP's clipped
surrogate or MAML-TRPO's trust-region step (the paper's), as in :mod:`.maml`. Reptile is not offered: its
direction ``theta - theta^K`` is 0 when the inner loop leaves ``theta`` unchanged.

Why: the task-specific part is a few numbers instead of the whole network, so the inner gradient and the
second-order term are w.r.t. ``phi`` only, a task's few trajectories cannot overfit the shared weights, and the
inner step can be large (the paper: alpha = 1 with 5 context parameters on 2-D navigation, 10 with 50 on MuJoCo)
because ``theta`` learns how strongly ``phi`` acts. Rollouts, the DiCE / LVC surrogates, the linear baseline and
normalised inner batches, the outer steps, the fused first ProMP meta-gradient and the meta-test curve (returns
after k = 0..``eval_inner_steps`` inner steps) are :mod:`.maml`'s, given the context-only inner loop
(:func:`jaxrl.losses.meta.context_adaptation`).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from jaxrl import nets
from jaxrl.algos.common import Algorithm
from jaxrl.algos.meta import maml
from jaxrl.config import ConfigError, config, config_name, hyper, static
from jaxrl.losses import meta as meta_losses


@config
class Config(maml.Config):
    inner_lr: float = hyper(
        1.0, low=0, low_open=True, help="inner step size alpha of the context (paper, 2-D navigation: 1.0)"
    )
    outer: str = static("promp", choices=("promp", "trpo"), help="outer optimiser (the paper's: 'trpo')")
    num_context_params: int = static(
        5, help="context parameters, appended to the policy's input, 0 at each task (paper: 5 on 2-D nav, 50 MuJoCo)"
    )

    def validate(self):
        if self.num_context_params < 1:
            raise ConfigError(
                f"{config_name(self)}.num_context_params={self.num_context_params}: CAVIA with no context "
                f"parameters has nothing to adapt in its inner loop; use >= 1 (the paper: 5 on 2-D navigation, "
                f"50 on MuJoCo)"
            )
        super().validate()


def with_context(obs: jax.Array, phi: jax.Array) -> jax.Array:
    """The network's input: the observation ``[..., obs_dim]`` with the context ``[C]`` appended (broadcast over the
    leading axes), ``[..., obs_dim + C]``."""
    return jnp.concatenate([obs, jnp.broadcast_to(phi, obs.shape[:-1] + phi.shape).astype(obs.dtype)], axis=-1)


def context_policy(net: nets.Network, num_context_params: int) -> nets.Network:
    """``net`` on (observation, context): ``init(key, obs) -> theta`` (the weights only: the context is not a
    learned parameter), ``apply(ContextParams(theta, phi), obs)``."""
    init = lambda key, obs: net.init(key, with_context(obs, jnp.zeros((num_context_params,), jnp.float32)))
    apply = lambda params, obs: net.apply(params.theta, with_context(obs, params.phi))
    return nets.Network(init, apply)


def setup(cfg: Config, env, env_params) -> maml.Setup:
    """:func:`.maml.setup` with the context appended to the policy's input and the context-only inner loop
    (:func:`jaxrl.losses.meta.context_adaptation`)."""
    wrap = partial(context_policy, num_context_params=cfg.num_context_params)
    adaptation = partial(meta_losses.context_adaptation, num_context_params=cfg.num_context_params)
    return maml.setup(cfg, env, env_params, name="cavia", wrap_policy=wrap, adaptation=adaptation)


def make(config: Config, env, env_params) -> Algorithm:
    return maml.make(config, env, env_params, setup(config, env, env_params))


def make_parts(config: Config, env, env_params) -> maml.Parts:
    """:class:`.maml.Parts`; its ``adapt(theta, batches)`` returns :class:`~jaxrl.losses.meta.ContextParams`."""
    return maml.make_parts(config, env, env_params, setup(config, env, env_params))
