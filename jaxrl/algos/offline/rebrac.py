"""ReBRAC (Tarasov, Kurenkov, Nikulin & Kolesnikov, "Revisiting the Minimalist Approach to Offline Reinforcement
Learning", NeurIPS 2023): TD3+BC with the behaviour-cloning penalty in both the actor and the critic, a
LayerNorm critic and a large batch.

Actor (:func:`jaxrl.losses.offline.rebrac_actor_loss`):
``L_pi = mean_b [beta_1 ||pi(s) - a||^2 - lambda min_e Q_e(s, pi(s))]``, ``lambda = 1 / sg[mean_b |min_e Q_e|]``.
Critic (:func:`jaxrl.losses.offline.rebrac_critic_loss`): ``sum_e mean_b (Q_e(s, a) - y)^2``,
``y = r + discount (1 - d) [min_e Qhat_e(s', a~') - beta_2 ||a~' - a'||^2]``, ``a~' = clip(mu_targ(s') +
clip(sigma eps, -c, c), -1, 1)``, ``a'`` the dataset's next action. Twin critics with LayerNorm after every hidden
layer; delayed actor and target updates (TD3). The machinery is :func:`jaxrl.algos.offline.td3_bc.make_td3_like`.

Defaults follow the paper's D4RL MuJoCo settings: Adam 1e-3, batch 1024, discount 0.99, tau 5e-3, noise 0.2
clipped at 0.5, policy delay 2, three hidden layers of 256 for the actor and the critic. The paper tunes
``beta_1`` / ``beta_2`` per dataset (beta_1 from 1e-3 to 0.1, beta_2 from 0 to 0.5; e.g. halfcheetah-medium 1e-3 /
1e-2, halfcheetah-medium-replay 1e-2 / 1e-3, hopper-medium-replay 5e-2 / 0.5); the defaults are ``beta_1 = 0.05``
(the paper's value for hopper-medium-replay and walker2d-medium / -medium-replay, and the best single value
measured on brax halfcheetah medium and medium-replay, both above TD3+BC; 0.01 and 1e-3 fail on the small medium
dataset, 0.1 and 1 on medium-replay) and ``beta_2 = 0.01`` (the median of the paper's values). The reference
implementation's config defaults of ``beta_1 = beta_2 = 1`` are placeholders its per-dataset configs override;
taken as defaults they make ReBRAC behaviour cloning: the BC term is summed over the ``A`` action dimensions and
the Q term is normalised to ``|lambda Q| = 1``, so ``beta_1 = 1`` weighs BC ``2.5 A`` times more than TD3+BC's
default (which ``beta_1 = 1 / (2.5 A)`` reproduces, 0.067 for ``A = 6``), and ``beta_2 = 1`` (reward units per
step) swamps brax's small rewards. The critic's LayerNorm comes before the activation here (the authors' code:
Dense -> ReLU -> LayerNorm, with their init: ``critic_layout="authors"``). See
``experiments/results/offline_rebrac_edac_diagnosis.md``. One ``step`` = ``updates_per_iteration`` gradient updates;
``total_env_steps`` counts them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl import nets
from jaxrl.algos.common import Algorithm
from jaxrl.algos.offline import common as oc
from jaxrl.algos.offline.td3_bc import TD3Config, make_td3_like
from jaxrl.config import config, hyper, static
from jaxrl.data import dataset as ds
from jaxrl.losses.offline import rebrac_actor_loss, rebrac_critic_loss

State = oc.State


@config
class Config(TD3Config):
    learning_rate: float = hyper(1e-3, low=0, low_open=True, help="Adam step size (actor and critic)")
    actor_beta: float = hyper(
        0.05,
        low=0,
        help="beta_1: weight of the BC penalty ||pi(s) - a||^2 (summed over action dims) against lambda Q = +-1 in the "
        "actor; the paper tunes it per dataset from 1e-3 to 0.1 (0.05: hopper-medium-replay, walker2d-medium); "
        "1 / (2.5 A) is TD3+BC's default weight; narrow (expert) data needs more",
    )
    critic_beta: float = hyper(
        0.01,
        low=0,
        help="beta_2: weight of the BC penalty ||a~' - a'||^2 in the TD target, in reward units per step, so it scales "
        "with the reward; 0.01 is the median of the paper's tuned D4RL MuJoCo values (0 to 0.5; halfcheetah-medium "
        "1e-2)",
    )
    batch_size: int = static(1024, low=1, help="minibatch size (ReBRAC uses a large one)")
    hidden: tuple[int, ...] = static(
        (256, 256, 256), help="hidden layer widths of the actor and the critic (the paper's deeper networks)"
    )
    critic_layer_norm: bool = static(True, choices=(True, False), help="LayerNorm after each hidden critic layer")
    critic_layout: str = static(
        "jaxrl",
        choices=("jaxrl", "authors"),
        help="the LayerNorm critic's layers: 'jaxrl' Dense -> LayerNorm -> activation, orthogonal init, zero bias; "
        "'authors' as the ReBRAC authors' code: Dense -> activation -> LayerNorm, PyTorch's uniform init "
        "(+-1/sqrt(fan_in)) with bias 0.1, output layer uniform in +-3e-3",
    )


# PyTorch's default Linear kernel init, uniform in +-1/sqrt(fan_in) (variance 1/(3 fan_in)).
_TORCH_KERNEL_INIT = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


def _uniform(bound: float):
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


class _LayerNormQ(nn.Module):
    """``Q(s, a)`` with LayerNorm on every hidden layer, then a linear unit output. ``layout`` "jaxrl": Dense ->
    LayerNorm -> activation, orthogonal init, zero bias; "authors" (the ReBRAC authors' critic): Dense -> activation
    -> LayerNorm, PyTorch's default kernel init (uniform in +-1/sqrt(fan_in)), bias 0.1, the output layer uniform in
    +-3e-3 (Q starts at ~0)."""

    hidden: Sequence[int]
    activation: str
    layout: str = "jaxrl"

    @nn.compact
    def __call__(self, obs, action):
        act, authors = nets.core.ACTIVATIONS[self.activation], self.layout == "authors"
        x = jnp.concatenate([obs, action], axis=-1)
        for width in self.hidden:
            if authors:
                dense = nn.Dense(width, kernel_init=_TORCH_KERNEL_INIT, bias_init=nn.initializers.constant(0.1))
                x = nn.LayerNorm()(act(dense(x)))
            else:
                x = nn.Dense(width, kernel_init=nn.initializers.orthogonal(np.sqrt(2.0)))(x)
                x = act(nn.LayerNorm()(x))
        out = (
            nn.Dense(1, kernel_init=_uniform(3e-3), bias_init=_uniform(3e-3))
            if authors
            else nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0))
        )
        return out(x)[..., 0]


def make_layer_norm_q(hidden: Sequence[int], activation: str, layout: str = "jaxrl") -> nets.Network:
    """ONE critic ``apply(params, obs [B, O], action [B, A]) -> [B]`` with LayerNorm on its hidden layers
    (``layout``: :class:`Config`'s ``critic_layout``)."""
    module = _LayerNormQ(tuple(hidden), activation, layout)
    return nets.Network(
        lambda key, o, a: module.init(key, o, a)["params"], lambda params, o, a: module.apply({"params": params}, o, a)
    )


class _NextActions(NamedTuple):
    data: Any  # the stacked datasets with ``actions`` replaced by the next actions


def _with_next_actions(env: oc.OfflineEnv) -> _NextActions:
    """The stacked datasets with each row's action replaced by the data's next action (``a_{t+1}`` inside an
    episode, ``a_t`` on its last row, where the target's next-state term is cut or the row is a timeout)."""
    data = dataclasses.replace(env.data, info=ds.DatasetInfo())
    next_actions = jax.vmap(lambda d: ds.with_next_actions(d).next_actions)(data)
    if next_actions is None:  # with_next_actions always fills it
        raise ds.DatasetError("next_actions: not filled")
    return _NextActions(dataclasses.replace(env.data, actions=next_actions))


def make(config: Config, env, env_params) -> Algorithm:
    env = oc.check_offline_env(env, "rebrac")
    shifted = _with_next_actions(env)

    def sample(state, key):
        # The same key and sampler pick the same rows in both stacks; XLA drops the unused gathers.
        b = oc.sample_batch(env, state.sampler, key, config.batch_size)
        next_a = oc.sample_batch(shifted, state.sampler, key, config.batch_size).action
        return b._replace(extras=b.extras._replace(next_action=next_a))

    def critic_loss(q_params, batch, key, **nets_kw):
        loss, m = rebrac_critic_loss(
            q_params,
            batch,
            key,
            **nets_kw,
            discount=config.discount,
            beta=config.critic_beta,
            policy_noise=config.policy_noise,
            noise_clip=config.noise_clip,
        )
        return loss, {
            "critic_loss": loss,
            "q_data": m["q"],
            "target": m["target"],
            "critic_bc_penalty": m["bc_penalty_tp1"],
        }

    def actor_loss(actor_params, batch, **nets_kw):
        loss, m = rebrac_actor_loss(actor_params, batch, **nets_kw, beta=config.actor_beta)
        return loss, {"actor_loss": loss, "bc_penalty": m["bc_penalty"], "q_policy": m["q"], "lmbda": m["lmbda"]}

    q_network = (
        make_layer_norm_q(config.hidden, config.activation, config.critic_layout) if config.critic_layer_norm else None
    )
    return make_td3_like(
        config,
        env,
        env_params,
        "rebrac",
        critic_loss=critic_loss,
        actor_loss=actor_loss,
        q_network=q_network,
        sample=sample,
    )
