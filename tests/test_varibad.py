"""VariBAD (issue 17): the ELBO terms by hand, the gridworld and its Bayes-optimal return on grids small enough to
solve by hand, bad input through the CLI, a run through ``jaxrl train``, and the learning test on the 5x5 grid;
continuous (Box) actions on the point robot: the encoder input by hand, a step, and a learning test."""

import dataclasses
import json
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxrl.envs as envs
from jaxrl.algos.meta import varibad, varibad_agent
from jaxrl.config import ConfigError
from jaxrl.losses import varibad as elbo
from jaxrl.tasks import goal_grid

TINY: dict[str, Any] = dict(
    num_tasks=2,
    num_minibatches=2,
    num_epochs=1,
    vae_epochs=1,
    latent_dim=2,
    encoder_hidden=8,
    encoder_embed=(),
    decoder_hidden=(8,),
    hidden=(8,),
    total_env_steps=120,
)


def test_gaussian_kl_known_answers():
    # 1-D: KL(N(1, 1) || N(0, 1)) = 1/2 (0 + (1 + 1) / 1 - 1) = 1/2
    kl = elbo.gaussian_kl(jnp.array([1.0]), jnp.array([0.0]), jnp.array([0.0]), jnp.array([0.0]))
    np.testing.assert_allclose(kl, 0.5, rtol=1e-6)
    # 2-D, by hand: dim 1 (mu 1, var 1 || mu 0, var 2): 1/2 (log 2 + 2/2 - 1) = log(2)/2;
    # dim 2 (mu 0, var 2 || mu 1, var 1): 1/2 (-log 2 + 3 - 1) = 1 - log(2)/2; sum = 1
    log2 = math.log(2.0)
    kl = elbo.gaussian_kl(jnp.array([1.0, 0.0]), jnp.array([0.0, log2]), jnp.array([0.0, 1.0]), jnp.array([log2, 0.0]))
    np.testing.assert_allclose(kl, 1.0, rtol=1e-6)
    # to the previous posterior, the prior N(0, I) first: [KL(q0||N(0,1)), KL(q1||q0)] = [1/2, 1/2]
    mean, logvar = jnp.array([[1.0], [2.0]]), jnp.zeros((2, 1))
    np.testing.assert_allclose(elbo.kl_to_previous(mean, logvar), [0.5, 0.5], rtol=1e-6)


def test_reward_log_likelihoods_known_answers():
    # Gaussian, unit variance: log N(1; 0, 1) = -1/2 (1 + log 2 pi)
    np.testing.assert_allclose(elbo.gaussian_log_likelihood(1.0, 0.0), -0.5 * (1 + math.log(2 * math.pi)), rtol=1e-6)
    np.testing.assert_allclose(elbo.gaussian_log_likelihood(1.0, 0.0, 4.0), -0.5 * (0.25 + math.log(8 * math.pi)))
    # Bernoulli: p = sigmoid(0) = 1/2 -> log 1/2; p = sigmoid(log 3) = 3/4 and y = 0 -> log 1/4
    np.testing.assert_allclose(elbo.bernoulli_log_likelihood(1.0, 0.0), math.log(0.5), rtol=1e-6)
    np.testing.assert_allclose(elbo.bernoulli_log_likelihood(0.0, math.log(3.0)), math.log(0.25), rtol=1e-6)
    # the ELBO over prefixes: T = 2 steps, 3 prefixes; the second step masked out
    log_lik = jnp.array([[-1.0, -5.0], [-2.0, -5.0], [-3.0, -5.0]])
    loss, metrics = elbo.elbo_over_prefixes(log_lik, jnp.array([0.0, 1.0, 2.0]), jnp.array([1.0, 0.0]), 0.5)
    np.testing.assert_allclose(loss, ((1 + 0) + (2 + 0.5) + (3 + 1)) / 3, rtol=1e-6)
    np.testing.assert_allclose(metrics["reconstruction"], 2.0, rtol=1e-6)
    # the reparameterised sample carries gradients to mu and logvar
    g = jax.grad(lambda m, lv: elbo.reparameterize(jax.random.PRNGKey(0), m, lv).sum(), argnums=(0, 1))
    gm, glv = g(jnp.zeros(3), jnp.zeros(3))
    np.testing.assert_allclose(gm, 1.0) and np.testing.assert_array_less(0.0, np.abs(glv))


def test_bayes_optimal_return_on_hand_solvable_grids():
    # 1x3 line, start 0, goal 1 or 2, horizon 2. Optimal: step right (found w.p. 1/2: +1 +1 = 2), else step right
    # again (-0.1 + 1 = 0.9): (2 + 0.9) / 2 = 1.45. A second episode walks to the known goal: +2 or +0.9 again.
    line: dict[str, Any] = dict(shape=(3, 1), goals=[(1, 0), (2, 0)], horizon=2)
    assert goal_grid.bayes_optimal_return(**line, num_episodes=1) == pytest.approx(1.45, abs=1e-12)
    assert goal_grid.bayes_optimal_return(**line, num_episodes=2) == pytest.approx(2.9, abs=1e-12)
    # 2x2, start (0,0), three goals, horizon 2: right (w.p. 1/3: 2), then up (w.p. 1/3: 0.9), else -0.2
    square: dict[str, Any] = dict(shape=(2, 2), goals=[(1, 0), (0, 1), (1, 1)], horizon=2, num_episodes=1)
    assert goal_grid.bayes_optimal_return(**square) == pytest.approx((2 + 0.9 - 0.2) / 3, abs=1e-12)
    with pytest.raises(ValueError, match="exclude the start"):
        goal_grid.bayes_optimal_return((2, 2), [(0, 0)], 2, 1)


def test_gridworld_env_and_family():
    family, tasks = envs.make("varibad-grid")
    assert tasks.goal.shape == (21, 2) and len({tuple(g) for g in np.asarray(tasks.goal)}) == 21
    assert not any(x <= 1 and y <= 1 for x, y in np.asarray(tasks.goal))  # not the start's 2x2 corner
    sampled = family.sample(jax.random.PRNGKey(0), 64)
    assert sampled.goal.shape == (64, 2) and int(sampled.max_steps_in_episode[0]) == 15
    env, task = family.env, jax.tree.map(lambda x: x[0], family.params(np.array([[2, 0]])))
    obs, state = env.reset(jax.random.PRNGKey(0), task)
    np.testing.assert_allclose(obs, [-1.0, -1.0])
    rewards = []
    for a in (2, 2, 0, 1):  # right, right (goal), stay, up
        obs, state, r, term, trunc, _ = env.step(jax.random.PRNGKey(1), state, a, task)
        rewards.append(float(r))
        assert not bool(term)
    np.testing.assert_allclose(rewards, [-0.1, 1.0, 1.0, -0.1], rtol=1e-6)


def test_bad_input_latent_dim_zero_through_the_cli(capsys, tmp_path):
    from jaxrl.run.cli import main

    code = main(["train", "varibad", "--latent-dim", "0", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and "latent_dim" in err and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="latent_dim"):
        varibad.Config(latent_dim=0)
    with pytest.raises(ValueError, match="task family"):
        varibad.make(varibad.Config(**TINY), *envs.make("CartPole-v1"))
    with pytest.raises(ConfigError, match="horizon=10 does not match"):
        varibad.make(varibad.Config(**{**TINY, "horizon": 10, "total_env_steps": 80}), *envs.make("varibad-grid"))
    # the point robot's episodes last 20 steps, the config's default horizon is the gridworld's 15
    with pytest.raises(ConfigError, match=r"horizon=15 does not match the tasks' episode length 20: .*horizon=20"):
        varibad.make(varibad.Config(**TINY), *envs.make("point-robot", num_test_tasks=2))


POINT_TINY: dict[str, Any] = {**TINY, "horizon": 20, "episodes_per_trial": 2, "total_env_steps": 80}


def test_continuous_encoder_input_is_action_reward_next_state():
    """Box actions: x_t = (a_t, r_t, s'_t) with the agent's action clipped to its [-1, 1] box; the decoder reads
    (s'_t, a_t) with decoder_action=True and s'_t without."""
    family, tasks = envs.make("point-robot", num_test_tasks=2)
    agent = varibad_agent.make_agent(varibad.Config(**POINT_TINY), family, tasks)
    assert not agent.discrete and agent.n_act == 2 and agent.n_obs == 2
    x = agent.enc_input(jnp.array([0.5, -0.25]), jnp.float32(-0.75), jnp.array([0.1, 0.2]))
    np.testing.assert_allclose(x, [0.5, -0.25, -0.75, 0.1, 0.2], rtol=1e-6)
    x = agent.enc_input(jnp.array([3.0, -2.0]), jnp.float32(0.5), jnp.array([0.0, -0.3]))  # outside the box
    np.testing.assert_allclose(x, [1.0, -1.0, 0.5, 0.0, -0.3], rtol=1e-6)
    np.testing.assert_allclose(agent.decoder_inputs(jnp.array([0.0, -0.3]), x), [0.0, -0.3])
    with_a = varibad_agent.make_agent(varibad.Config(**POINT_TINY, decoder_action=True), family, tasks)
    np.testing.assert_allclose(with_a.decoder_inputs(jnp.array([0.0, -0.3]), x), [0.0, -0.3, 1.0, -1.0])
    # the discrete path is unchanged: one_hot(a)
    grid_agent = varibad_agent.make_agent(varibad.Config(**TINY), *envs.make("varibad-grid"))
    np.testing.assert_allclose(grid_agent.enc_input(3, 1.0, jnp.array([0.5, -1.0])), [0, 0, 0, 1, 0, 1, 0.5, -1])


@pytest.mark.integration  # compiles a step and a trial (the fast suite is at its time limit)
def test_point_robot_step_with_gaussian_policy():
    """A tiny VariBAD step on point-robot (Box actions): finite metrics; in a trial the log-probabilities are the
    diagonal Gaussian's (checked by hand from the policy's mean and std), the encoder sees (clip(a), r, s'), the
    env executes 0.1 * clip(a, -1, 1)."""
    family, tasks = envs.make("point-robot", num_test_tasks=2)
    cfg = varibad.Config(**POINT_TINY, decoder_action=True)
    algo = varibad.make(cfg, family, tasks)
    state = algo.init(jax.random.PRNGKey(0))
    new, metrics = jax.jit(algo.step)(state)
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    assert int(new.iteration) == 1
    agent = varibad_agent.make_agent(cfg, family, tasks)
    task = jax.tree.map(lambda x: x[0], tasks)
    trial = jax.jit(lambda p, k: varibad_agent.run_trial(agent, cfg, p, task, k))(new.params, jax.random.PRNGKey(1))
    assert trial.action.shape == (40, 2) and trial.log_prob.shape == (40,)
    dist = agent.policy.apply(new.params.policy.policy, trial.policy_in)
    mean, std = np.asarray(dist.mean()), np.asarray(dist.stddev())
    a = np.asarray(trial.action)
    by_hand = np.sum(-0.5 * ((a - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi), axis=-1)
    np.testing.assert_allclose(np.asarray(trial.log_prob), by_hand, rtol=1e-4, atol=1e-4)
    assert np.all(np.isfinite(np.asarray(trial.log_prob)))
    clipped = np.clip(a, -1.0, 1.0)
    expected = np.concatenate([clipped, np.asarray(trial.reward)[:, None], np.asarray(trial.next_obs)], axis=1)
    np.testing.assert_allclose(np.asarray(trial.enc_in), expected, rtol=1e-6)
    # the first episode's positions are the running sum of 0.1 * clip(a) from the origin
    np.testing.assert_allclose(np.asarray(trial.next_obs)[:20], np.cumsum(0.1 * clipped[:20], axis=0), atol=1e-5)
    # act() on both belief kinds: the prior, and a belief from agent.observe
    action = algo.act(new, np.zeros(2), jax.random.PRNGKey(2), deterministic=True)
    assert action.shape == (2,)
    h, mu, logvar, _ = agent.observe(new.params.vae["encoder"], agent.encoder.initial_hidden(), action, -1.0, task.goal)
    assert algo.act(new, task.goal, jax.random.PRNGKey(3), belief=(mu, logvar)).shape == (2,)


@pytest.mark.integration  # compiles a whole trial (the fast suite is at its time limit)
def test_a_trial_starts_from_the_prior_and_spans_every_episode():
    """varibad_agent.run_trial: the policy's first input holds the prior (mean 0, log-variance 0), the trial is
    episodes_per_trial x 15 steps with each step's episode index, and the encoder sees (one_hot(a), r, s')."""
    family, tasks = envs.make("varibad-grid")
    cfg = varibad.Config(**TINY)
    algo = varibad.make(cfg, family, tasks)
    agent = varibad_agent.make_agent(cfg, family, tasks)
    params = algo.init(jax.random.PRNGKey(0)).params
    trial = varibad_agent.run_trial(agent, cfg, params, jax.tree.map(lambda x: x[0], tasks), jax.random.PRNGKey(1))
    steps = cfg.episodes_per_trial * 15
    assert trial.reward.shape == (steps,)
    np.testing.assert_array_equal(np.asarray(trial.episode), np.repeat(np.arange(cfg.episodes_per_trial), 15))
    np.testing.assert_array_equal(np.asarray(trial.policy_in[0, -2 * cfg.latent_dim :]), 0.0)
    enc = np.asarray(trial.enc_in)
    np.testing.assert_array_equal(enc[:, :5], np.eye(5)[np.asarray(trial.action)])  # one_hot(a_t) of 5 actions
    np.testing.assert_allclose(enc[:, 5], np.asarray(trial.reward))


@pytest.mark.integration
def test_cli_run_reports_return_per_episode(tmp_path):
    """``jaxrl train varibad`` end to end (tiny): the run directory, and the per-episode meta-test return."""
    from jaxrl.run.cli import main

    flags = ["--num-tasks", "2", "--num-minibatches", "2", "--num-epochs", "1", "--vae-epochs", "1"]
    flags += ["--latent-dim", "2", "--encoder-hidden", "8", "--decoder-hidden", "8", "--hidden", "8"]
    flags += ["--total-env-steps", "120", "--num-chunks", "1", "--eval-episodes", "1"]
    out = tmp_path / "run"
    assert main(["train", "varibad", *flags, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert np.shape(summary["adaptation"])[-1] == 4  # episodes 1..4 of the BAMDP rollout
    assert np.isfinite(summary["eval_return"]).all() and (out / "config.json").exists()


@pytest.mark.integration
def test_vae_step_lowers_the_negative_elbo():
    """One batch of trials, repeated VAE steps: the negative ELBO falls (the encoder/decoder learn)."""
    family, tasks = envs.make("varibad-grid")
    cfg = varibad.Config(**{**TINY, "vae_epochs": 30, "vae_learning_rate": 1e-2})
    algo = varibad.make(cfg, family, tasks)
    state = algo.init(jax.random.PRNGKey(0))
    agent = varibad_agent.make_agent(cfg, family, tasks)
    trials = jax.vmap(lambda t, k: varibad_agent.run_trial(agent, cfg, state.params, t, k), out_axes=1)(
        jax.tree.map(lambda x: x[:4], tasks), jax.random.split(jax.random.PRNGKey(1), 4)
    )
    loss = jax.jit(varibad_agent.make_vae_loss(agent, cfg))
    before = float(loss(state.params.vae, trials, jax.random.PRNGKey(2))[0])
    new, metrics = jax.jit(algo.step)(state)
    assert np.isfinite(float(metrics["reconstruction"]))
    after = float(loss(new.params.vae, trials, jax.random.PRNGKey(2))[0])
    assert after < before


def _bootstrap_ci(x, reps=2000, seed=0):
    rng = np.random.default_rng(seed)
    means = rng.choice(x, size=(reps, len(x)), replace=True).mean(axis=1)
    return np.percentile(means, [2.5, 97.5])


@pytest.fixture(scope="module")
def grid_finals():
    """VariBAD and RL² with experiments/varibad_gridworld.py's configs, 4.8M env steps each, 5 seeds vmapped per
    method: the final greedy meta-test return over the 4 episodes per seed (~1 h per method on 2 CPU cores)."""
    import sys
    from pathlib import Path

    from jaxrl.run import train

    sys.path.insert(0, str(Path(__file__).parents[1] / "experiments"))
    from varibad_gridworld import CONFIGS

    finals = {}
    for name in ("varibad", "rl2"):
        cfg = dataclasses.replace(CONFIGS[name], total_env_steps=4_800_000)
        result = train(name, envs.make("varibad-grid"), cfg, seeds=5, num_chunks=4, eval_episodes=1,
                       progress=False, checkpoint=False, tensorboard=False)  # fmt: skip
        finals[name] = np.asarray(result.metrics["eval_return"])[..., -1].reshape(-1)
    print("final eval_return per seed:", finals)
    return finals


@pytest.mark.slow
@pytest.mark.learning
def test_varibad_within_10_percent_of_bayes_optimal_on_the_5x5_grid(grid_finals):
    """Issue 17: the meta-test return over the 4 episodes of a BAMDP rollout is within 10% of the exact
    Bayes-optimal 37.214 (>= 33.49) on average over 5 seeds. Measured with these configs and budget through
    ``experiments/varibad_gridworld.py --seeds 5`` (10 chunks; experiments/results/varibad_gridworld.md): 36.03
    [95% CI 35.71, 36.36], 96.8% of the Bayes-optimal return (episodes 4.00, 10.01, 10.95, 11.07)."""
    assert np.mean(grid_finals["varibad"]) >= 0.9 * goal_grid.BAYES_OPTIMAL_5X5[4], grid_finals


@pytest.mark.slow
@pytest.mark.learning
def test_varibad_above_rl2_at_the_same_budget(grid_finals):
    """Issue 17: VariBAD's mean meta-test return over 5 seeds above RL²'s at the same env-step budget. Measured
    through ``experiments/varibad_gridworld.py --seeds 5`` (same configs and budget): VariBAD 36.03 [95% CI 35.71,
    36.36] vs RL² 33.80 [30.76, 36.29]; IQM 35.99 vs 34.40; P(VariBAD > RL²) 0.72 [0.36, 1]."""
    assert np.mean(grid_finals["varibad"]) > np.mean(grid_finals["rl2"]), grid_finals


@pytest.mark.slow
@pytest.mark.learning
@pytest.mark.xfail(
    reason="measured with 5 seeds each at 4.8M env steps (experiments/results/varibad_gridworld.md): VariBAD 36.03 "
    "[95% CI 35.71, 36.36] vs RL² 33.80 [30.76, 36.29]: VariBAD is above RL² and tighter (RL²'s seeds 28.6 to 37.2, "
    "one of them Bayes-optimal; VariBAD's 35.6 to 36.6), but the intervals overlap by 0.58",
    strict=False,
)
def test_varibad_above_rl2_with_separate_cis(grid_finals):
    """Stricter than issue 17 asks: VariBAD above RL² with 95% bootstrap CIs over 5 seeds that do not overlap."""
    assert _bootstrap_ci(grid_finals["varibad"])[0] > _bootstrap_ci(grid_finals["rl2"])[1], grid_finals


def _freeze_belief_at_prior(state):
    """The same learner with its encoder's output layer zeroed: every belief is the prior N(0, I)."""
    enc = state.vae.params["encoder"]
    enc = {**enc, "head": jax.tree.map(jnp.zeros_like, enc["head"])}
    return state.replace(vae=state.vae._replace(params={**state.vae.params, "encoder": enc}))


# slow: 182 s on CI's 2 cores (stop 41), run by hand (`-m slow`); the gridworld learning tests stay in CI
@pytest.mark.learning
@pytest.mark.slow
def test_varibad_adapts_on_the_point_robot():
    """Continuous actions: VariBAD with experiments/varibad_point_robot.py's config, 2.05M env steps (1,600 iterations,
    one seed), greedy meta-test on the 30 held-out goals. Per 20-step episode, the best policy that ignores the goal
    scores -14.9 and one that knows it -4.5. Measured here: -6.1 and -4.5 per episode, and -18.3 for the same policy
    with its belief frozen at the prior; in the 5-seed run of experiments/varibad_point_robot.py four seeds end
    between -9.9 and -4.7 and one collapsed to -21 (results file). Asserted: above -11 per episode (4 points better
    than any goal-blind policy) and 4 points above the frozen-belief policy: the posterior is what it uses."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "experiments"))
    from varibad_point_robot import CONFIGS, DEFAULT_STEPS, point_robot

    family, tasks = point_robot()
    cfg = dataclasses.replace(CONFIGS["varibad"], total_env_steps=DEFAULT_STEPS)
    algo = varibad.make(cfg, family, tasks)
    iterations = DEFAULT_STEPS // algo.env_steps_per_iteration
    run = jax.jit(lambda s: jax.lax.scan(lambda s, _: algo.step(s), s, None, length=iterations)[0])
    state = run(algo.init(jax.random.PRNGKey(0)))
    evaluate = jax.jit(algo.evaluate, static_argnums=2)
    posterior = np.asarray(evaluate(state, jax.random.PRNGKey(7), 2)["adaptation"])
    prior = np.asarray(evaluate(_freeze_belief_at_prior(state), jax.random.PRNGKey(7), 2)["adaptation"])
    print("per-episode meta-test return: posterior", posterior, "belief frozen at the prior", prior)
    assert np.all(posterior > -11.0), (posterior, prior)
    assert np.mean(posterior) > np.mean(prior) + 4.0, (posterior, prior)
