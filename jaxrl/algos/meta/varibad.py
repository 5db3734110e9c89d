"""VariBAD (Zintgraf et al. 2020, "VariBAD: A Very Good Method for Bayes-Adaptive Deep RL via Meta-Learning").

A BAMDP rollout (a *trial*, as in RL²: ``episodes_per_trial`` episodes on one hidden task) is encoded step by step
by a GRU over ``x_t = (phi(a_t), r_t, s'_t)`` into a diagonal Gaussian posterior over a task embedding,

    q(m | tau_{:t}) = N(mu_t, diag exp(logvar_t)),     q(m | tau_{:0}) = p(m) = N(0, I),

whose hidden state persists over the whole trial. The action features are ``phi(a) = one_hot(a)`` for a Discrete
action space and ``phi(a) = clip(a, -1, 1)`` for a Box one: there the agent acts in ``[-1, 1]^d`` and the action is
clipped and mapped affinely onto the task's action box (:class:`jaxrl.algos.meta.common.TaskBoxActions`, as MAML
does), so the encoder reads the executed action. A decoder ``p(r | s', m)``, or ``p(r | s', phi(a), m)`` with
``decoder_action=True`` (an MLP; Gaussian with unit variance, i.e. the reward MSE, or Bernoulli over ``r > 0`` as
the paper's gridworld decoder) is trained with the encoder as a VAE over whole trials: for every prefix ``t`` it
decodes the rewards of *all* steps of the trial (past and future) from one reparameterised ``m_t ~ q(m |
tau_{:t})`` (optionally a random subset of the prefixes), and the posterior is pulled towards the previous one
(:mod:`jaxrl.losses.varibad`):

    max sum_t E_{q(m | tau_{:t})}[sum_j log p(r_j | s'_j [, phi(a_j)], m)] - beta KL(q(m|tau_{:t}) || q(m|tau_{:t-1})).

The decoder needs the action wherever the reward depends on it beyond ``s'``: cheetah-vel's ``r = -|v_x - v_goal|
- 0.05 ||a||^2`` has a control cost that ``(s', m)`` cannot predict, so its config sets ``decoder_action=True`` (as
the authors' released cheetah-vel config feeds the action to the reward decoder); the point robot's and the
gridworld's rewards are functions of ``s'`` and the goal only.

The policy and value MLPs read ``(s_t, mu_t, logvar_t)``: the belief is part of the (BAMDP) state, so a
feed-forward policy can be Bayes-adaptive. The policy is categorical on Discrete actions and a diagonal Gaussian
(state-independent log-std, initial std 1, as :func:`jaxrl.nets.make_gaussian_policy`) on Box actions. Their loss
is PPO's (:func:`jaxrl.losses.ppo.ppo_loss`) with GAE over the trial (discounting throughout it, the trial end
terminal, as RL²'s); the RL loss does not reach the encoder (the posterior is computed during the rollout and
stored as the policy's input), as in the paper.

Defaults are the gridworld's (horizon 15, 4 episodes, KL weight 0.1). For MuJoCo-like tasks the paper's settings
(the authors' released cheetah-vel config) are: latent 5, GRU 128 after action/state/reward embeddings of 16/32/16
(here one joint ``encoder_embed`` MLP, e.g. ``(64,)``: this library has no per-part embeddings), reward decoder
MLP (64, 32), KL weight 1.0, 2 episodes per trial, PPO with a (128, 128) tanh policy, 2 epochs x 4 minibatches, clip
0.1, learning rate 7e-4, entropy 0.01, discount 0.97, GAE lambda 0.9; VAE Adam 1e-3
(experiments/meta_locomotion.py's "varibad" row).

One ``step`` = ``num_tasks`` trials on fresh tasks, GAE, PPO's ``num_epochs`` x ``num_minibatches`` on the flat
steps, then ``vae_epochs`` full-batch Adam steps on the negative ELBO of the same trials. ``evaluate`` runs
``num_episodes`` trials on each held-out task and reports ``eval_return`` (mean total per trial) and
``adaptation`` (mean return of episode k = 0, 1, ... of the trial), as RL² does. The agent (networks, trials, the
VAE loss) is :mod:`jaxrl.algos.meta.varibad_agent`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxrl import nets
from jaxrl.algos import on_policy, train_state
from jaxrl.algos.common import Algorithm
from jaxrl.algos.meta.common import make_trial_evaluate, trial_advantages
from jaxrl.algos.meta.varibad_agent import Agent, Trial, make_agent, make_vae_loss, run_trial
from jaxrl.algos.on_policy import ActorCritic, PPOLearnerConfig
from jaxrl.algos.train_state import TrainState
from jaxrl.config import ConfigError, config, config_name, hyper, static
from jaxrl.losses.ppo import PPOBatch, ppo_loss


@config
class Config(PPOLearnerConfig):
    learning_rate: float = hyper(7e-4, low=0, low_open=True, help="policy Adam step size")
    gae_lambda: float = hyper(0.95, low=0, high=1, help="GAE lambda")
    anneal_lr: bool = static(False, choices=(True, False), help="decay the policy learning rate linearly to 0")
    vae_learning_rate: float = hyper(1e-3, low=0, low_open=True, help="encoder/decoder Adam step size")
    kl_weight: float = hyper(0.1, low=0, help="beta: weight of KL(q_t || q_{t-1}) in the negative ELBO")
    vae_epochs: int = static(2, low=1, help="full-batch VAE steps per iteration")
    reward_likelihood: str = static(
        "gaussian", choices=("gaussian", "bernoulli"), help="decoder: Gaussian r (MSE) or Bernoulli [r > 0]"
    )
    elbo_prefixes: int = static(0, low=0, help="prefixes decoded per trial (0: all T+1; else a random subset)")
    decoder_action: bool = static(
        False, choices=(True, False), help="the reward decoder also reads the action (rewards with a control cost)"
    )
    latent_dim: int = static(5, low=1, help="size of the task embedding m (the paper: 5 for the gridworld)")
    encoder_hidden: int = static(64, low=1, help="encoder GRU width")
    encoder_embed: tuple[int, ...] = static((32,), help="MLP widths before the encoder GRU")
    decoder_hidden: tuple[int, ...] = static((32, 32), help="reward decoder MLP widths")
    hidden: tuple[int, ...] = static((32, 32), help="policy and value MLP widths")
    activation: str = static("tanh", choices=tuple(nets.core.ACTIVATIONS), help="policy/value activation")
    num_tasks: int = static(16, low=1, help="task batch: trials (one fresh task each) per iteration")
    episodes_per_trial: int = static(4, low=1, help="episodes per BAMDP rollout")
    horizon: int = static(15, low=1, help="episode length; must match the tasks' (the gridworld's: 15)")
    eval_deterministic: bool = static(True, choices=(True, False), help="meta-test with the policy's mode")
    total_env_steps: int = static(2_000_000, low=1, help="training length in environment steps")

    def validate(self) -> None:
        if self.env_steps_per_iteration % self.num_minibatches:
            raise ConfigError(
                f"{config_name(self)}: the steps of one iteration (num_tasks * episodes_per_trial * horizon = "
                f"{self.env_steps_per_iteration}) must be divisible by num_minibatches = {self.num_minibatches}"
            )
        super().validate()

    @property
    def env_steps_per_iteration(self) -> int:
        return self.num_tasks * self.episodes_per_trial * self.horizon


__all__ = ["Config", "State", "Params", "Agent", "Trial", "make", "make_agent", "make_vae_loss", "run_trial"]


class Params(NamedTuple):
    policy: ActorCritic  # policy and value MLPs on (s, mu, logvar)
    vae: Any  # {"encoder": GRU params, "decoder": MLP params}


@struct.dataclass
class State:
    policy: TrainState
    vae: TrainState
    key: jax.Array
    iteration: jax.Array

    @property
    def params(self) -> Params:
        return Params(self.policy.params, self.vae.params)


def make_step(agent: Agent, config: Config, family, tx, vae_tx):
    """``step(state)``: trials on ``num_tasks`` fresh tasks, GAE, PPO on flat steps, VAE steps on the trials."""
    trials_fn = jax.vmap(lambda p, task, k: run_trial(agent, config, p, task, k), in_axes=(None, 0, 0), out_axes=1)

    ppo_kw = {k: getattr(config, k) for k in ("clip_eps", "vf_coef", "ent_coef", "clip_value", "normalize_advantages")}
    policy_apply, value_apply = (
        (lambda p, x: agent.policy.apply(p.policy, x)),
        (lambda p, x: agent.value.apply(p.value, x)),
    )
    policy_loss = lambda params, batch: ppo_loss(
        params, batch, policy_apply=policy_apply, value_apply=value_apply, **ppo_kw
    )

    learn = on_policy.make_ppo_learn(policy_loss, tx, config)
    vae_grad = jax.grad(make_vae_loss(agent, config), has_aux=True)

    def vae_epoch(vae_state, k, trials):
        grads, metrics = vae_grad(vae_state.params, trials, k)
        return train_state.apply_gradient(vae_tx, vae_state, grads), metrics

    def step(state: State):
        key, task_key, trial_key, ppo_key, vae_key = jax.random.split(state.key, 5)
        tasks = family.sample(task_key, config.num_tasks)
        trials = trials_fn(state.params, tasks, jax.random.split(trial_key, config.num_tasks))  # [T, B]
        adv, target = trial_advantages(trials.reward, trials.value, config.discount, config.gae_lambda)
        data = PPOBatch(trials.policy_in, trials.action, trials.log_prob, trials.value, adv, target)
        policy, metrics = learn(state.policy, data, ppo_key)
        vae, vae_metrics = jax.lax.scan(
            lambda s, k: vae_epoch(s, k, trials), state.vae, jax.random.split(vae_key, config.vae_epochs)
        )
        metrics = {**metrics, **jax.tree.map(jnp.mean, vae_metrics)}
        metrics["trial_return"] = jnp.mean(jnp.sum(trials.reward, axis=0))
        return State(policy, vae, key, state.iteration + 1), metrics

    return step


def make(config: Config, env, env_params) -> Algorithm:
    agent = make_agent(config, env, env_params)
    tx = on_policy.make_ppo_optimizer(config)
    vae_tx = optax.adam(config.vae_learning_rate)

    def init(key: jax.Array) -> State:
        key, pk, vk, ek, dk = jax.random.split(key, 5)
        x = jnp.zeros((agent.n_obs + 2 * agent.latent_dim,), jnp.float32)
        policy = ActorCritic(agent.policy.init(pk, x), agent.value.init(vk, x))
        enc_x = jnp.zeros((agent.n_act + 1 + agent.n_obs,), jnp.float32)
        vae = {
            "encoder": agent.encoder.init(ek, agent.encoder.initial_hidden(), enc_x),
            "decoder": agent.decoder.init(dk, jnp.zeros((agent.latent_dim,)), jnp.zeros((agent.decoder_input_dim(),))),
        }
        return State(train_state.create(tx, policy), train_state.create(vae_tx, vae), key, jnp.zeros((), jnp.int32))

    def act(state: State, obs, key, deterministic: bool = False, belief=None):
        """The deployed policy on ``belief = (mu, logvar)`` (None: the prior); update the belief after each env step
        with ``agent.observe`` (:func:`make_agent`), from a zero encoder state at the start of a trial. Box actions
        are in the agent's ``[-1, 1]^d`` units: step ``agent.env`` (which maps them onto the task's box) or map
        them yourself."""
        belief = belief or (jnp.zeros((agent.latent_dim,)), jnp.zeros((agent.latent_dim,)))
        x = agent.policy_input(jnp.asarray(obs, jnp.float32).reshape(agent.n_obs), *belief)
        dist = agent.policy.apply(state.params.policy.policy, x)
        return nets.core.mode(dist) if deterministic else dist.sample(seed=key)

    return Algorithm(
        init=init,
        step=make_step(agent, config, env, tx, vae_tx),
        act=act,
        evaluate=make_trial_evaluate(run_trial, agent, config, env_params),
        config=config,
        env_steps_per_iteration=config.num_tasks * agent.trial_len,
    )
