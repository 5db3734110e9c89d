"""``experiments/multitask_table.py --quick``: every cell through run directories and ``jaxrl report`` (integration;
the full table is run by hand: see the script's docstring)."""

import json
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.mark.integration
def test_quick_table_goes_through_run_directories_and_report_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import multitask_table as mtt

    args = ["--quick", "--runs", str(tmp_path / "runs"), "--suites", "point-goal-4,no-such-suite", "--reps", "50"]
    cells = mtt.main(args)
    assert list(cells) == ["point-goal-4"] and list(cells["point-goal-4"]) == ["MT-SAC", "MT-PPO"]
    assert "suite 'no-such-suite' is not registered" in capsys.readouterr().err
    for slug in ("mt-sac", "mt-ppo"):
        summary = json.loads((tmp_path / "runs" / "point-goal-4" / slug / "summary.json").read_text())
        assert len(summary["runs"]) == 2 and not summary.get("interrupted")
    text = (tmp_path / "runs" / "multitask_point-goal-4.md").read_text()
    assert text.startswith("# Multi-task success on point-goal-4") and "Budget: 12 env steps per task" in text
    for section in (
        "| mt-sac | 2 |",
        "## Ordering",
        "Not in the published ordering: MT-PPO",
        "## Per-task success",
        "## Gradient conflict",
        "Hardware:",
        "Command:",
    ):
        assert section in text, section
    for row in ("| mt-sac | critic |", "| mt-sac | actor |", "| mt-ppo | all |"):  # the gradient monitor's rows
        assert row in text, row
    assert (tmp_path / "runs" / "multitask_point-goal-4" / "gradients.png").is_file()
    assert (tmp_path / "runs" / "multitask_point-goal-4" / "tasks.png").is_file()
    overview = (tmp_path / "runs" / "multitask_table.md").read_text()
    assert "| MT-SAC | " in overview and "| point-goal-4 |" in overview
    # a finished cell is kept (nothing retrained: the run directory's files are untouched)
    metrics = tmp_path / "runs" / "point-goal-4" / "mt-sac" / "metrics.jsonl"
    stamp = metrics.stat().st_mtime_ns
    again = ["--quick", "--runs", str(tmp_path / "runs"), "--suites", "point-goal-4", "--reps", "50"] + [
        "--rows",
        "MT-SAC",
    ]
    assert mtt.main(again)["point-goal-4"]["MT-SAC"] == cells["point-goal-4"]["MT-SAC"]
    assert metrics.stat().st_mtime_ns == stamp
    sys.modules.pop("multitask_table", None)


def test_ordering_states_the_measured_order_the_clear_pairs_and_the_published_steps(monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import multitask_table as mtt

    row = lambda mean, low, high: {"mean": mean, "mean_ci": [low, high]}
    cells = {"MT-SAC": row(0.7, 0.6, 0.8), "MH-SAC": row(0.65, 0.6, 0.7), "CARE": row(0.9, 0.85, 0.95)}
    cells["MT-SAC + PCGrad"] = row(0.75, 0.72, 0.78)
    cells["Distral"] = row(0.2, 0.1, 0.3)
    text = "\n".join(mtt.ordering(cells))
    assert "CARE 0.900 [0.850, 0.950] > MT-SAC + PCGrad 0.750 [0.720, 0.780] > MT-SAC 0.700" in text
    # CIs: CARE's lies above all four others; PCGrad's above MH-SAC's and Distral's; MT-SAC's, MH-SAC's above Distral's
    assert "(8 of 10 pairs)" in text and "- CARE above MT-SAC + PCGrad, MT-SAC, MH-SAC, Distral" in text
    # MT-SAC < MH-SAC is reversed; MH-SAC < PCGrad and PCGrad < CARE hold, with clear CIs; MOORE etc.
    # are absent, so only 3 steps are checked
    assert "2 of its 3 steps hold" in text
    assert (
        "MH-SAC > MT-SAC: reversed (-0.050)" in text
        and "MT-SAC + PCGrad > MH-SAC: as published (+0.100, CIs clear)" in text
    )
    assert text.endswith("Not in the published ordering: Distral.")
    sys.modules.pop("multitask_table", None)
