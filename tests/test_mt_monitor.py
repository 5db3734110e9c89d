"""Per-task gradient monitoring of the multi-task algorithms (:mod:`jaxrl.algos.multitask.monitor`): hand-computed
statistics (fast); every multi-task algorithm logs them through the run loop and ``jaxrl report`` shows them
(integration)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl.algos.multitask import monitor


def test_gradient_stats_known_answer():
    """g_1 = (1, 0), g_2 = (0, 2), g_3 = (-1, 0) (split over two leaves): cosines 0, -1, 0; one of three pairs
    conflicts; norms 1, 2, 1 (ratio 2, CV = std / mean = (sqrt(2) / 3) / (4 / 3))."""
    grads = {"a": jnp.asarray([[1.0], [0.0], [-1.0]]), "b": jnp.asarray([[0.0], [2.0], [0.0]])}
    stats = jax.jit(monitor.gradient_stats, static_argnums=1)(grads, "critic_")
    assert set(stats) == {"critic_" + n for n in monitor.NAMES}
    np.testing.assert_allclose(stats["critic_grad_cos_mean"], -1 / 3, atol=1e-6)
    np.testing.assert_allclose(stats["critic_grad_cos_min"], -1.0, atol=1e-6)
    np.testing.assert_allclose(stats["critic_grad_conflict_frac"], 1 / 3, atol=1e-6)
    np.testing.assert_allclose(stats["critic_grad_norm_ratio"], 2.0, atol=1e-6)
    np.testing.assert_allclose(stats["critic_grad_norm_cv"], np.sqrt(2) / 4, atol=1e-6)
    np.testing.assert_allclose(stats["critic_grad_norm_per_task"], [1.0, 2.0, 1.0], atol=1e-6)
    assert all(monitor.is_monitor_metric(k) for k in stats) and not monitor.is_monitor_metric("critic_loss")


def test_gradient_stats_are_finite_for_zero_and_single_task_gradients():
    cases = (jnp.zeros((3, 4)), jnp.ones((1, 4)), jnp.asarray([[1.0, 0], [0, 0]]))  # zero, K = 1, one zero
    zero, single, one_zero = jax.device_get(jax.jit(lambda cs: [monitor.gradient_stats(g) for g in cs])(cases))
    for stats in (zero, single, one_zero):
        assert all(np.all(np.isfinite(v)) for v in stats.values()), stats
    assert (float(zero["grad_norm_ratio"]), float(zero["grad_norm_cv"]), float(zero["grad_cos_mean"])) == (1, 0, 0)
    assert (float(single["grad_cos_mean"]), float(single["grad_conflict_frac"])) == (1.0, 0.0)
    assert float(one_zero["grad_norm_ratio"]) == pytest.approx(1e12, rel=1e-6)


# The golden cases' tiny configs (tests/golden/cases.py): one chunk each through the run loop.
_TINY_SAC = dict(num_envs=4, batch_size=16, learning_starts=2, hidden=(8,), buffer_size=256, total_env_steps=24)
_TINY_PG = dict(num_envs=4, num_steps=8, total_env_steps=64, hidden=(16,), num_minibatches=2)
_RUNS = {"distral": ("shared_", _TINY_SAC), "mt_trpo": ("", _TINY_PG)}


@pytest.mark.integration
def test_distral_and_mt_trpo_log_the_monitor_and_report_shows_it(tmp_path):
    """Distral (pi_0's per-task distillation gradients, in ``evaluate``) and MT-TRPO (the per-task surrogate
    gradients, every iteration) log every statistic (finite, cosines in [-1, 1], min <= mean, ratio >= 1) besides
    per-task return and success; ``jaxrl report`` over both run directories shows per-task success and each one's
    gradient rows. (MT-SAC / MH-SAC with every architecture and MT-PPO: tests/test_mt_networks.py's integration
    tests; MT-SAC and MT-PPO through the run loop and report: tests/test_multitask_table.py; TE-PPO uses MT-PPO's
    learner.)"""
    from jaxrl import algos
    from jaxrl.config import replace
    from jaxrl.run import report, train

    for name, (prefix, tiny) in _RUNS.items():
        cfg = replace(algos.get(name).Config(), **tiny)
        result = train(name, "point-goal-4", cfg, seeds=2, num_chunks=1, eval_episodes=1, progress=False,
                       tensorboard=False, checkpoint=False, out_dir=tmp_path / name)  # fmt: skip
        m = result.metrics  # [seeds, chunks, ...]
        assert m["train_success_per_task"].shape == (2, 1, 4) and m["eval_success"].shape == (2, 1, 4)
        assert m[prefix + "grad_norm_per_task"].shape == (2, 1, 4), name
        for stat in monitor.STATS:
            assert np.all(np.isfinite(m[prefix + stat])), (name, prefix + stat)
        assert np.all(np.abs(m[prefix + "grad_cos_min"]) <= 1 + 1e-5)
        assert np.all(m[prefix + "grad_cos_min"] <= m[prefix + "grad_cos_mean"] + 1e-6)
        assert np.all(m[prefix + "grad_norm_ratio"] >= 1 - 1e-6)
    out = report.report([tmp_path / n for n in _RUNS], by=["algo"], out_dir=tmp_path / "report", reps=100)
    assert [r["group"] for r in out["task_success"]] == ["distral", "mt_trpo"]
    logged = {(c["group"], c["metric"]) for c in out["gradients"]}
    assert {("distral", "shared_grad_norm_cv"), ("mt_trpo", "grad_cos_min")} <= logged
    assert ("distral", "grad_cos_min") not in logged  # each algorithm's own networks
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Per-task success" in text and (tmp_path / "report" / "task_success.png").is_file()
    assert "| distral | shared |" in text and "| mt_trpo | all |" in text
