"""Known-answer tests for the foundation losses (values computed by hand in the comments)."""

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl.data.types import Transition
from jaxrl.losses.gae import generalized_advantage_estimation
from jaxrl.losses.ppo import PPOBatch, clipped_surrogate_loss, ppo_loss, ppo_objective, value_loss
from jaxrl.losses.sac import sac_actor_loss, sac_critic_loss, sac_temperature_loss, soft_td_target


def gae(r, v, v_tp1, disc, done, lam):
    return generalized_advantage_estimation(*map(jnp.asarray, (r, v, v_tp1, disc, done)), lam)


def test_gae_no_episode_end():
    # delta = 1 + 0.9 * 0.5 - 0.5 = 0.95; A2 = 0.95, A1 = 0.95 + 0.72 * 0.95 = 1.634, A0 = 0.95 + 0.72 * 1.634
    adv, target = gae([1.0] * 3, [0.5] * 3, [0.5] * 3, [0.9] * 3, [0.0] * 3, 0.8)
    np.testing.assert_allclose(adv, [2.12648, 1.634, 0.95], rtol=1e-6)
    np.testing.assert_allclose(target, np.asarray(adv) + 0.5, rtol=1e-6)


def test_gae_termination_does_not_bootstrap():
    # step 1 terminates: delta1 = 1 - 0.5 = 0.5 and the trace is cut; A0 = 0.95 + 0.72 * 0.5 = 1.31
    adv, _ = gae([1.0] * 3, [0.5] * 3, [0.5] * 3, [0.9, 0.0, 0.9], [0.0, 1.0, 0.0], 0.8)
    np.testing.assert_allclose(adv, [1.31, 0.5, 0.95], rtol=1e-6)


def test_gae_truncation_bootstraps_from_final_observation():
    # step 1 is truncated, V(final obs) = 2: delta1 = 1 + 0.9 * 2 - 0.5 = 2.3 (trace cut); A0 = 0.95 + 0.72 * 2.3
    adv, _ = gae([1.0] * 3, [0.5] * 3, [0.5, 2.0, 0.5], [0.9] * 3, [0.0, 1.0, 0.0], 0.8)
    np.testing.assert_allclose(adv, [2.606, 2.3, 0.95], rtol=1e-6)


def test_gae_lambda_one_is_discounted_return_and_jit_vmap():
    r = jnp.asarray([1.0, 2.0, 3.0])
    adv, target = jax.jit(generalized_advantage_estimation)(
        r, jnp.zeros(3), jnp.zeros(3), jnp.full(3, 0.5), jnp.zeros(3), 1.0
    )
    np.testing.assert_allclose(target, [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0], rtol=1e-6)
    batched = jax.vmap(generalized_advantage_estimation, in_axes=(1, 1, 1, 1, 1, None), out_axes=1)(
        jnp.stack([r, 2 * r], 1), jnp.zeros((3, 2)), jnp.zeros((3, 2)), jnp.full((3, 2), 0.5), jnp.zeros((3, 2)), 1.0
    )
    np.testing.assert_allclose(batched[1][:, 1], 2 * np.asarray(target), rtol=1e-6)


def test_clipped_surrogate_known_answer():
    # unclipped [0.5, 1.5, -2], clipped [0.8, 1.2, -2] -> min [0.5, 1.2, -2], mean -0.1 -> loss 0.1
    loss = clipped_surrogate_loss(jnp.asarray([0.5, 1.5, 1.0]), jnp.asarray([1.0, 1.0, -2.0]), 0.2)
    np.testing.assert_allclose(loss, 0.1, rtol=1e-6)


def test_value_loss_known_answer():
    v, old, target = jnp.asarray([1.0, 3.0]), jnp.asarray([0.0, 2.0]), jnp.asarray([2.0, 2.0])
    np.testing.assert_allclose(value_loss(v, old, target), 0.5, rtol=1e-6)  # 0.5 * mean([1, 1])
    # clipped values [0.5, 2.5] -> errors [2.25, 0.25]; max with [1, 1] -> [2.25, 1] -> 0.5 * 1.625
    np.testing.assert_allclose(value_loss(v, old, target, 0.5), 0.8125, rtol=1e-6)


def test_ppo_loss_against_reference():
    logits = jnp.asarray([[0.0, jnp.log(3.0)], [0.0, 0.0]])  # pi = [0.25, 0.75] and [0.5, 0.5]
    batch = PPOBatch(
        obs=jnp.asarray([0, 1]),
        action=jnp.asarray([1, 0]),
        log_prob=jnp.log(jnp.asarray([0.5, 0.5])),
        value=jnp.asarray([0.0, 0.0]),
        advantage=jnp.asarray([1.0, -1.0]),
        target=jnp.asarray([1.0, 0.0]),
    )
    params = {"logits": logits, "v": jnp.asarray([0.5, 0.25])}
    policy_apply = lambda p, obs: distrax.Categorical(logits=p["logits"][obs])
    value_apply = lambda p, obs: p["v"][obs]
    loss, m = jax.jit(
        lambda p: ppo_loss(
            p,
            batch,
            policy_apply=policy_apply,
            value_apply=value_apply,
            clip_eps=0.2,
            vf_coef=0.5,
            ent_coef=0.01,
            clip_value=False,
            normalize_advantages=False,
        )
    )(params)
    # ratios [1.5, 1.0]: surrogate min -> [1.2, -1.0] -> pg = -0.1; value 0.5 * mean([0.25, 0.0625]) = 0.078125
    ent = -(0.25 * np.log(0.25) + 0.75 * np.log(0.75)) / 2 + np.log(2) / 2
    np.testing.assert_allclose(m["policy_loss"], -0.1, rtol=1e-6)
    np.testing.assert_allclose(m["value_loss"], 0.078125, rtol=1e-6)
    np.testing.assert_allclose(m["entropy"], ent, rtol=1e-5)
    np.testing.assert_allclose(loss, -0.1 + 0.5 * 0.078125 - 0.01 * ent, rtol=1e-5)
    np.testing.assert_allclose(m["clip_fraction"], 0.5)
    # the same terms from a distribution and values however produced (RL^2: a recurrent unroll), without the ratio
    # statistics beyond approx_kl
    total, terms, ratio = ppo_objective(
        policy_apply(params, batch.obs),
        value_apply(params, batch.obs),
        batch,
        clip_eps=0.2,
        vf_coef=0.5,
        ent_coef=0.01,
        clip_value=False,
        normalize_advantages=False,
    )
    np.testing.assert_allclose(total, loss, rtol=1e-6)
    np.testing.assert_allclose(ratio, [1.5, 1.0], rtol=1e-6)
    assert set(terms) == set(m) - {"clip_fraction"}


def test_soft_td_target_known_answer():
    # min Q' = [1, 3]; soft V = [1 - 0.2 * 0.5, 3 - 0.2 * 0.1]; y = [1 + 0.9 * 0.9, 0 (terminated)]
    y = soft_td_target(
        jnp.asarray([1.0, 0.0]),
        jnp.asarray([False, True]),
        jnp.asarray([[2.0, 3.0], [1.0, 5.0]]),
        jnp.asarray([0.5, 0.1]),
        0.2,
        0.9,
    )
    np.testing.assert_allclose(y, [1.81, 0.0], rtol=1e-6)


def _linear_q(params, obs, action):  # ensemble [E]: Q_i = w_i * (obs + action)
    return params[:, None] * (obs + action)[None, :, 0]


class _FixedActor:
    """Deterministic 'policy' a = 0.5 * obs with a given log-prob, for hand-computable SAC losses."""

    def __init__(self, log_prob):
        self.log_prob = log_prob

    def __call__(self, params, obs):
        action, lp = params * obs, jnp.full(obs.shape[:1], self.log_prob)
        return type("D", (), {"sample_and_log_prob": lambda self_, seed: (action, lp)})()


def test_sac_critic_and_actor_losses_against_reference():
    batch = Transition(
        obs=jnp.asarray([[1.0], [2.0]]),
        action=jnp.asarray([[0.5], [-1.0]]),
        reward=jnp.asarray([1.0, 2.0]),
        next_obs=jnp.asarray([[0.0], [4.0]]),
        terminated=jnp.asarray([False, True]),
        truncated=jnp.asarray([False, False]),
    )
    actor = _FixedActor(log_prob=-1.0)
    critic, target = jnp.asarray([1.0, 2.0]), jnp.asarray([1.0, 3.0])
    loss, m = sac_critic_loss(
        critic,
        batch,
        critic_apply=_linear_q,
        target_critic_params=target,
        actor_params=jnp.asarray(0.5),
        actor_apply=actor,
        alpha=0.1,
        discount=0.9,
        key=jax.random.PRNGKey(0),
    )
    # next actions 0.5 * s' = [0, 2]; target Q' = [[0, 6], [0, 18]] -> min [0, 6]; soft V = [0.1, 6.1]
    # y = [1 + 0.9 * 0.1, 2 + 0 (terminated)] = [1.09, 2]; Q = [[1.5, 1], [3, 2]]
    y = np.asarray([1.09, 2.0])
    q = np.asarray([[1.5, 1.0], [3.0, 2.0]])
    np.testing.assert_allclose(loss, ((q - y) ** 2).mean(1).sum(), rtol=1e-6)
    a_loss, a_m = sac_actor_loss(
        jnp.asarray(0.5),
        batch,
        actor_apply=actor,
        critic_apply=_linear_q,
        critic_params=critic,
        alpha=0.1,
        key=jax.random.PRNGKey(0),
    )
    # a = [0.5, 1]; Q(s, a) = [[1.5, 3], [3, 6]] -> min [1.5, 3]; loss = mean(0.1 * -1 - [1.5, 3])
    np.testing.assert_allclose(a_loss, -0.1 - 2.25, rtol=1e-6)
    np.testing.assert_allclose(a_m["entropy"], 1.0)


def test_sac_temperature_loss_and_gradient():
    log_alpha = jnp.log(0.5)
    lp = jnp.asarray([-1.0, -3.0])
    (loss, m), grad = jax.value_and_grad(sac_temperature_loss, has_aux=True)(log_alpha, lp, 1.0)
    # -0.5 * mean([0, -2]) = 0.5; d/dlog_alpha = -alpha * mean(logp + H) = 0.5 (entropy 2 > target 1: alpha falls)
    np.testing.assert_allclose(loss, 0.5, rtol=1e-6)
    np.testing.assert_allclose(grad, 0.5, rtol=1e-6)
    np.testing.assert_allclose(m["alpha"], 0.5, rtol=1e-6)


@pytest.mark.parametrize("clip_value", [True, False])
def test_ppo_loss_vmaps_over_hyperparameters(clip_value):
    batch = PPOBatch(
        jnp.asarray([0, 1]),
        jnp.asarray([1, 0]),
        jnp.log(jnp.asarray([0.5, 0.5])),
        jnp.zeros(2),
        jnp.asarray([1.0, -1.0]),
        jnp.asarray([1.0, 0.0]),
    )
    params = {"logits": jnp.zeros((2, 2)), "v": jnp.asarray([0.5, 0.25])}
    fn = lambda eps: ppo_loss(
        params,
        batch,
        policy_apply=lambda p, o: distrax.Categorical(logits=p["logits"][o]),
        value_apply=lambda p, o: p["v"][o],
        clip_eps=eps,
        vf_coef=0.5,
        ent_coef=0.0,
        clip_value=clip_value,
    )[0]
    out = jax.jit(jax.vmap(fn))(jnp.asarray([0.1, 0.2]))
    np.testing.assert_allclose(out, [fn(0.1), fn(0.2)], rtol=1e-6)
