"""Learning tests: each algorithm reaches its threshold on a small environment (own command:
``pytest -m learning``). Thresholds are the issue's; the runs are the library's own run loop."""

import numpy as np
import pytest

from jaxrl.algos.single import ppo, sac
from jaxrl.run import train

pytestmark = pytest.mark.learning


def _final_eval(result):
    returns = np.asarray(result.summary["eval_return"])
    print(
        f"\n{result.summary['algo']} {result.summary['env']}: final eval returns {returns.round(1).tolist()}, "
        f"mean {returns.mean():.1f}, {result.summary['env_steps']} env steps per run, "
        f"{result.summary['run_seconds']:.0f} s"
    )
    return returns


def test_ppo_cartpole_reaches_475_within_500k_steps():
    result = train(
        "ppo",
        "CartPole-v1",
        ppo.Config(total_env_steps=500_000),
        seeds=4,
        num_chunks=5,
        eval_episodes=20,
        progress=False,
    )
    assert result.summary["env_steps"] <= 500_000
    assert _final_eval(result).mean() >= 475


def test_sac_pendulum_reaches_minus_250_within_20k_steps():
    # 64-unit layers (rejax's default width) keep this CPU test short; the default is 256.
    cfg = sac.Config(total_env_steps=20_000, hidden=(64, 64))
    result = train("sac", "Pendulum-v1", cfg, seeds=4, num_chunks=4, eval_episodes=10, progress=False)
    assert result.summary["env_steps"] <= 20_000
    assert _final_eval(result).mean() >= -250


def test_continuous_ppo_pendulum_reaches_minus_300():
    # Tuned in experiments/ppo_pendulum_sweep.py: short horizon (discount 0.9), observation normalisation,
    # 10 epochs of large batches; most seeds cross -300 by 30k env steps and settle near -180 by 60k, but one
    # seed in four can need longer (measured: 60k steps -> -225 / -195 / -141 / -639), so the run is 100k steps.
    # Seeds differ a lot at 100k (std ~65 over seeds), so the mean is over 8 seeds, not 4: on 8 seeds the tests
    # never use (100-107) it was -238.9 (jax 0.11.2); seeds 0-3 alone gave -305.7, seeds 0-7 give -244.1.
    cfg = ppo.Config(
        num_envs=16,
        num_steps=128,
        num_epochs=10,
        num_minibatches=8,
        learning_rate=3e-3,
        discount=0.9,
        gae_lambda=0.9,
        ent_coef=0.0,
        clip_value=False,
        normalize_observations=True,
        total_env_steps=100_000,
    )
    result = train("ppo", "Pendulum-v1", cfg, seeds=8, num_chunks=10, eval_episodes=10, progress=False)
    assert result.summary["env_steps"] <= 100_000
    assert _final_eval(result).mean() >= -300
