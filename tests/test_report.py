"""``jaxrl report`` on run directories written by hand (no training): known answers, rliable's numbers, the
shared bootstrap band of ``jaxrl plot``, the files, and one-line errors."""

import csv
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rliable import library, metrics

from jaxrl.run import cli, plot
from jaxrl.run import report as rp

KNOWN = [0.0, 1.0, 2.0, 4.0, 6.0, 7.0, 9.0, 100.0]  # mean 16.125, median 5, IQM mean(2, 4, 6, 7) = 4.75


def write_run_dir(
    path: Path,
    algo: str,
    env: str,
    values,
    *,
    seeds,
    grid=None,
    config=None,
    env_metadata=None,
    metric: str = "eval_return",
) -> Path:
    """A run directory as the README's contract describes it, with ``values [chunks, runs, ...]`` as ``metric``
    (runs seed-major over ``seeds`` x ``grid`` points)."""
    grid = grid or {}
    points = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())] or [{}]
    runs = [{"seed": s, "point": p} for s in seeds for p in points]
    values = np.asarray(values, dtype=float)
    assert values.shape[1] == len(runs)
    path.mkdir(parents=True)
    (path / "config.json").write_text(
        json.dumps(
            {
                "algo": algo,
                "env": env,
                "config": {"learning_rate": 1e-3, "hidden": [16, 16], **(config or {})},
                "seeds": list(seeds),
                "grid": grid,
                "num_chunks": len(values),
                "chunk_iterations": 10,
                "eval_episodes": 2,
                "runs": runs,
                "env_metadata": env_metadata or {},
            }
        )
    )
    records = [
        {
            "chunk": c,
            "iteration": 10 * (c + 1),
            "env_steps": 100 * (c + 1),
            metric: v.tolist(),
            "eval_return": v.tolist(),
            "loss": [0.5] * len(runs),
        }
        for c, v in enumerate(values)
    ]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (path / "summary.json").write_text(
        json.dumps(
            {
                "algo": algo,
                "env": env,
                metric: values[-1].tolist(),
                f"{metric}_best": values.max(axis=0).tolist(),
                "eval_return_mean": float(values[-1].mean()),
                "runs": runs,
                "env_steps": 100 * len(values),
            }
        )
    )
    return path


def known_dir(tmp_path, name="ppo", algo="ppo", shift=0.0) -> Path:
    """8 seeds of ``algo`` on CartPole: 5 after the first chunk, :data:`KNOWN` (+ ``shift``) after the second."""
    final = np.asarray(KNOWN) + shift
    return write_run_dir(tmp_path / name, algo, "CartPole-v1", [np.full(8, 5.0 + shift), final], seeds=range(8))


def test_known_scores_give_hand_computed_statistics(tmp_path):
    result = rp.report([known_dir(tmp_path)], target=10.0, reps=200)
    (row,) = result["groups"]
    assert (result["metric"], result["by"], row["group"], row["runs"], row["tasks"]) == ("eval_return", [], "ppo", 8, 1)
    assert row["iqm"] == pytest.approx(4.75)
    assert row["mean"] == pytest.approx(16.125)
    assert row["median"] == pytest.approx(5.0)
    assert row["optimality_gap"] == pytest.approx(10 - 39 / 8)  # min(score, 10) sums to 39
    assert row["final"] == pytest.approx(16.125)
    assert row["best"] == pytest.approx((5 * 4 + 6 + 7 + 9 + 100) / 8)  # max(5, final) per run
    for name in rp.STATISTICS:
        low, high = row[f"{name}_ci"]
        assert low <= row[name] <= high
    assert result["improvement"] == []


def test_interval_estimates_match_rliable_with_tasks_as_strata(tmp_path):
    """Three envs x 6 seeds grouped by algo: a [6, 3] score matrix, envs as strata; IQM and its CI agree with
    rliable's on the same matrix (another seed: within bootstrap noise)."""
    rng = np.random.default_rng(0)
    scores = rng.normal([[10.0, 50.0, 200.0]], 20.0, size=(6, 3))
    dirs = [
        write_run_dir(tmp_path / env, "sac", env, [scores[:, k] - 1, scores[:, k]], seeds=range(6))
        for k, env in enumerate(["a-v0", "b-v0", "c-v0"])
    ]
    (row,) = rp.report(dirs, by=["algo"], reps=4000)["groups"]
    assert (row["runs"], row["tasks"]) == (18, 3)
    np.random.seed(1)
    iqm, iqm_ci = library.get_interval_estimates(
        {"sac": scores}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps=4000
    )
    assert row["iqm"] == pytest.approx(float(iqm["sac"][0]))
    width = iqm_ci["sac"][1, 0] - iqm_ci["sac"][0, 0]
    np.testing.assert_allclose(row["iqm_ci"], iqm_ci["sac"][:, 0], atol=0.15 * width)
    assert row["mean"] == pytest.approx(float(metrics.aggregate_mean(scores)))


def test_probability_of_improvement_known_case_and_rliable():
    better, worse = np.arange(10.0, 18.0)[:, None], np.arange(8.0)[:, None]
    assert rp.probability_of_improvement(better, worse) == 1.0
    assert rp.probability_of_improvement(worse, better) == 0.0
    p, ci = rp.improvement_interval(better, worse, reps=200)
    assert p == 1.0 and list(ci) == [1.0, 1.0]
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 4, (7, 3)).astype(float), rng.integers(0, 4, (5, 3)).astype(float)  # ties on purpose
    assert rp.probability_of_improvement(x, y) == pytest.approx(metrics.probability_of_improvement(x, y), abs=1e-12)
    assert rp.probability_of_improvement(x, x) == 0.5


def test_groups_compare_by_algo_with_probability_of_improvement(tmp_path):
    dirs = [known_dir(tmp_path, "ppo", "ppo"), known_dir(tmp_path, "sac", "sac", shift=200.0)]
    result = rp.report(dirs, by=["algo"], reps=200)
    assert [r["group"] for r in result["groups"]] == ["ppo", "sac"]
    (improvement,) = result["improvement"]
    assert (improvement["x"], improvement["y"], improvement["probability"]) == ("sac", "ppo", 1.0)
    assert result["target"] == 300.0  # no reference score: the best final score of any run


def test_multitask_runs_stratify_by_task_and_draw_per_task_bars(tmp_path):
    tasks = ["reach", "push", "pick"]
    per_task = np.arange(24.0).reshape(4, 2, 3) / 24  # [chunks, runs, tasks]: eval_success [runs][tasks]
    run_dir = write_run_dir(
        tmp_path / "mt",
        "mt_sac",
        "point-goal-3",
        per_task,
        seeds=range(2),
        env_metadata={"num_tasks": 3, "task_names": tasks},
        metric="eval_success",
    )
    result = rp.report([run_dir], metric="eval_success", out_dir=tmp_path / "out", reps=200)
    (row,) = result["groups"]
    assert (row["runs"], row["tasks"], result["target"]) == (2, 3, 1.0)
    assert row["mean"] == pytest.approx(per_task[-1].mean())
    scores, keys = rp.score_matrix(rp.load_runs(run_dir, *rp.read_run_dir(run_dir), "eval_success"), [])
    np.testing.assert_array_equal(scores, per_task[-1])
    assert [k[-1] for k in keys] == tasks
    assert (tmp_path / "out" / "tasks.png").stat().st_size > 0


def test_per_run_lists_without_tasks_are_averaged(tmp_path):
    """Meta-RL's ``adaptation`` is a list per run over adaptation steps, not tasks: one score per run."""
    adaptation = np.arange(12.0).reshape(2, 2, 3)
    run_dir = write_run_dir(tmp_path / "rl2", "rl2", "bandit", adaptation, seeds=range(2), metric="adaptation")
    runs = rp.load_runs(run_dir, *rp.read_run_dir(run_dir), "adaptation")
    assert [r.tasks for r in runs] == [("",), ("",)]
    np.testing.assert_array_equal([r.final[0] for r in runs], adaptation[-1].mean(axis=-1))


def test_two_dimensional_grid_groups_by_point_and_draws_a_heat_map(tmp_path):
    grid = {"learning_rate": [1e-3, 3e-4], "clip": [0.2, 0.1]}
    values = np.arange(16.0).reshape(2, 8)
    run_dir = write_run_dir(tmp_path / "sweep", "ppo", "CartPole-v1", values, seeds=range(2), grid=grid)
    result = rp.report([run_dir], out_dir=tmp_path / "out", reps=200)
    assert result["by"] == ["clip", "learning_rate"]
    assert [r["group"] for r in result["groups"]] == [
        "clip=0.1, learning_rate=0.0003",
        "clip=0.1, learning_rate=0.001",
        "clip=0.2, learning_rate=0.0003",
        "clip=0.2, learning_rate=0.001",
    ]
    # run i is seed i // 4 at grid point i % 4 (learning_rate-major): clip=0.1, lr=3e-4 is point 3: runs 3 and 7
    assert result["groups"][0]["mean"] == pytest.approx((values[-1, 3] + values[-1, 7]) / 2)
    assert (tmp_path / "out" / "heatmap.png").stat().st_size > 0


def test_offline_runs_default_to_normalized_score_by_dataset(tmp_path):
    meta = {"offline": True, "env_name": "Pendulum-v1", "dataset_names": ["medium", "expert"]}
    values = [[10.0, 90.0, 20.0, 80.0], [30.0, 95.0, 40.0, 99.0]]  # seeds 0, 1 x datasets medium, expert
    run_dir = write_run_dir(
        tmp_path / "iql",
        "iql",
        "dataset:/data/medium.hdf5",
        values,
        seeds=range(2),
        grid={"dataset_index": [0, 1]},
        env_metadata=meta,
        metric="normalized_score",
    )
    result = rp.report([run_dir], reps=200)
    assert (result["metric"], result["by"], result["target"]) == ("normalized_score", ["dataset"], 100.0)
    assert {r["group"]: r["mean"] for r in result["groups"]} == {"expert": 97.0, "medium": 35.0}
    assert rp.load_runs(run_dir, *rp.read_run_dir(run_dir), "eval_return")[0].fields["env"] == "Pendulum-v1"


def test_bootstrap_band_never_leaves_the_data_range():
    """CartPole-like returns at the 500 ceiling: the band of the mean stays within [min, max] at every chunk,
    also as drawn by ``jaxrl plot`` (which draws with the same function)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    values = np.minimum(500.0, rng.uniform(300, 700, (5, 20)))
    values[:, -3:] = 500.0
    mean, low, high = rp.bootstrap_band(values)
    assert np.all(low >= values.min(axis=0)) and np.all(high <= values.max(axis=0))
    assert np.all(low <= mean) and np.all(mean <= high)
    np.testing.assert_array_equal([low[-1], high[-1]], [500.0, 500.0])
    assert plot.draw_band is rp.draw_band
    fig, ax = plt.subplots()
    plot.draw_band(ax, np.arange(20), values, "ppo")
    assert ax.collections[0].get_paths()[0].vertices[:, 1].max() <= 500.0
    plt.close(fig)


def test_bootstrap_band_matches_rliable_percentile_bootstrap():
    values = np.random.default_rng(1).normal(0.0, 1.0, (10, 4))
    _, low, high = rp.bootstrap_band(values, reps=4000)
    np.random.seed(2)
    _, ci = library.get_interval_estimates({"": values}, lambda v: v.mean(axis=0), reps=4000)
    np.testing.assert_allclose([low, high], ci[""], atol=0.15 * np.mean(ci[""][1] - ci[""][0]))


def test_plot_runs_draws_the_shared_band(tmp_path):
    run_dir = known_dir(tmp_path)
    assert plot.plot_runs([run_dir], tmp_path / "curves.png").stat().st_size > 0


def test_cli_writes_report_files(tmp_path):
    dirs = [known_dir(tmp_path, "ppo", "ppo"), known_dir(tmp_path, "sac", "sac", shift=1.0)]
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, "-m", "jaxrl", "report", *map(str, dirs), "--by", "algo", "--out", str(out), "--reps", "200"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    text = (out / "report.md").read_text()
    assert "| group | runs | IQM [95% CI] | mean [95% CI] | median | optimality gap | final / best |" in text
    assert "| sac | 8 | 5.75 [" in text and "## Probability of improvement" in text
    assert "| sac | 8 | 5.75 [" in proc.stdout
    with (out / "report.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["group"], r["algo"], r["runs"]) for r in rows] == [("ppo", "ppo", "8"), ("sac", "sac", "8")]
    assert float(rows[0]["iqm"]) == pytest.approx(4.75)
    for png in ("curves.png", "profiles.png"):
        assert (out / png).stat().st_size > 0


def _bad_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "nometrics").mkdir()
    (tmp_path / "nometrics" / "config.json").write_text(
        json.dumps({"algo": "ppo", "env": "x", "config": {}, "runs": []})
    )
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text("{}")
    ppo, sac = known_dir(tmp_path, "ppo", "ppo"), known_dir(tmp_path, "sac", "sac")
    return {
        "empty": ([tmp_path / "empty"], "is not a run directory (no config.json)"),
        "missing": ([tmp_path / "nowhere"], "is not a directory"),
        "other": ([tmp_path / "other"], "is not a jaxrl run directory (config.json has no algo, env, config, runs)"),
        "no metrics": ([tmp_path / "nometrics"], "has no logged chunks yet"),
        "algorithms": ([ppo, sac], "different algorithms (ppo, sac): say how to group them, e.g. --by algo"),
        "metric": ([ppo, "--metric", "eval_retrun"], "unknown metric 'eval_retrun'; did you mean ['eval_return']"),
        "by": (
            [ppo, "--by", "learning_rat"],
            "cannot group by 'learning_rat': no such field; did you mean ['learning_rate']",
        ),
    }


def test_bad_inputs_give_one_line_errors(tmp_path, capsys):
    for name, (args, message) in _bad_inputs(tmp_path).items():
        code = cli.main(["report", *map(str, args), "--out", str(tmp_path / "out"), "--reps", "10"])
        err = capsys.readouterr().err
        assert code == 2, name
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, (name, err)
    assert not (tmp_path / "out").exists()


def test_bad_input_from_the_command_line_has_no_traceback(tmp_path):
    args, message = _bad_inputs(tmp_path)["metric"]
    proc = subprocess.run(
        [sys.executable, "-m", "jaxrl", "report", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and message in proc.stderr


def test_meta_runs_get_adaptation_curves_with_bootstrap_intervals(tmp_path):
    # [chunks, seeds, k]: the final curve of 4 seeds after k = 0, 1, 2 inner steps
    final = np.asarray([[0.0, 2.0, 4.0], [1.0, 3.0, 5.0], [2.0, 4.0, 6.0], [3.0, 5.0, 7.0]])
    maml = write_run_dir(tmp_path / "maml", "maml", "nav2d", [final - 10, final], seeds=range(4), metric="adaptation")
    flat = write_run_dir(tmp_path / "pre", "maml", "nav2d", [final, final * 0 + 1], seeds=range(4), metric="adaptation",
                         config={"num_inner_steps": 0})  # fmt: skip
    result = rp.report([maml, flat], metric="adaptation", out_dir=tmp_path / "out", reps=500)
    curves = {c["group"]: c for c in result["adaptation"]}
    assert set(curves) == {"num_inner_steps=0", "num_inner_steps=None"}  # the field only one run dir sets
    steep = curves["num_inner_steps=None"]
    assert curves["num_inner_steps=0"]["mean"] == [1.0, 1.0, 1.0]
    assert steep["mean"] == [1.5, 3.5, 5.5] and steep["runs"] == 4 and steep["k"] == [0, 1, 2]
    for (low, high), lo, hi, m in zip(steep["ci"], final.min(0), final.max(0), steep["mean"]):
        assert lo <= low <= m <= high <= hi and low < high
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## Adaptation" in text and "| k=0 | k=1 | k=2 |" in text
    assert (tmp_path / "out" / "adaptation.png").is_file()
    assert rp.report([known_dir(tmp_path)], reps=100)["adaptation"] == []  # no adaptation logged: no curves


def test_probability_of_improvement_compares_groups_of_one_dataset_only(tmp_path):
    meta = {"offline": True, "env_name": "Pendulum-v1", "dataset_names": ["medium", "expert"]}
    dirs = [
        write_run_dir(
            tmp_path / algo,
            algo,
            "dataset:/data/m.hdf5",
            np.asarray([values]),
            seeds=range(2),
            grid={"dataset_index": [0, 1]},
            env_metadata=meta,
            metric="normalized_score",
        )  # fmt: skip
        for algo, values in [("iql", [10.0, 90.0, 20.0, 80.0]), ("cql", [30.0, 70.0, 40.0, 60.0])]
    ]
    result = rp.report(dirs, by=["algo", "dataset"], reps=200)
    pairs = {(p["x"], p["y"]) for p in result["improvement"]}
    assert pairs == {("cql, medium", "iql, medium"), ("iql, expert", "cql, expert")}, pairs


def _add_monitoring(run_dir: Path, success, grads: dict[str, list[float]]) -> None:
    """Add per-task ``eval_success [runs, tasks]`` per chunk and gradient-monitor metrics (``[runs]`` per chunk) to
    a written run directory's records."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for c, record in enumerate(records):
        record["eval_success"] = np.asarray(success[c]).tolist()
        record.update({name: values[c] for name, values in grads.items()})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_multitask_monitoring_shows_per_task_success_and_gradient_conflict(tmp_path):
    """Per-task success per group (mean and CI per task) and the gradient-conflict / norm-spread curves per chunk
    (mean over runs at every chunk), in the result, report.md and two figures."""
    meta = {"num_tasks": 2, "task_names": ["near", "far"]}
    returns = np.ones((2, 3, 2))  # [chunks, runs, tasks]
    success = np.asarray([[[0, 0], [1, 0], [0, 0]], [[1, 0], [1, 1], [1, 0]]], float)
    cos = [[0.5, 0.4, 0.3], [-0.1, -0.2, -0.3]]  # critic_grad_cos_mean [chunks][runs]
    cv = [[0.1, 0.1, 0.1], [0.7, 0.8, 0.9]]
    run_dir = write_run_dir(tmp_path / "mt", "mt_sac", "point-goal-2", returns, seeds=range(3), env_metadata=meta)
    _add_monitoring(run_dir, success, {"critic_grad_cos_mean": cos, "critic_grad_norm_cv": cv, "grad_cos_min": cv})
    result = rp.report([run_dir], out_dir=tmp_path / "out", reps=200)
    (row,) = result["task_success"]
    assert row["tasks"] == ["near", "far"] and row["runs"] == 3
    assert row["mean"] == pytest.approx([1.0, 1 / 3])
    assert row["ci"][0] == [1.0, 1.0] and 0.0 <= row["ci"][1][0] <= 1 / 3 <= row["ci"][1][1] <= 1.0
    curves = {c["metric"]: c for c in result["gradients"]}
    assert list(curves) == ["grad_cos_min", "critic_grad_cos_mean", "critic_grad_norm_cv"]  # the logged ones
    assert curves["critic_grad_cos_mean"]["mean"] == pytest.approx([0.4, -0.2])
    assert curves["critic_grad_cos_mean"]["env_steps"] == [100, 200]
    lo, hi = curves["critic_grad_norm_cv"]["ci"][-1]
    assert 0.7 <= lo <= 0.8 <= hi <= 0.9
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## Per-task success" in text and "| group | runs | near | far |" in text
    assert "## Gradient conflict and gradient-norm spread" in text
    assert "| mt_sac | critic | 0.4 → -0.2 [" in text and "| mt_sac | all | - | 0.1 → 0.8 [" in text
    for png in ("task_success.png", "gradients.png"):
        assert (tmp_path / "out" / png).stat().st_size > 0
    plain = rp.report([known_dir(tmp_path)], reps=100)
    assert (plain["task_success"], plain["gradients"]) == ([], [])  # single-task runs: no such sections


def test_best_leaves_out_the_model_phase_of_model_based_runs():
    # MOPO's first chunk ends inside its 5,000-update model phase: its score is the untrained actor's
    values = np.array([[69.0], [40.0], [10.0]])
    steps = np.array([3_500, 7_000, 10_500])
    model_based = rp.Run({"model_train_updates": 5_000}, ("",), steps, values)
    assert model_based.best.tolist() == [40.0]
    assert rp.Run({}, ("",), steps, values).best.tolist() == [69.0]
    # 3,550 updates in iterations of 100: the phase ends at 3,600 env steps, so the 3,600 chunk is still untrained
    phase = {"model_train_updates": 3_550, "updates_per_iteration": 100}
    assert rp.Run(phase, ("",), np.array([3_600, 7_200]), np.array([[69.0], [40.0]])).best.tolist() == [40.0]
