"""``experiments/offline_table.py --quick`` and ``experiments/d4rl_datasets.py``: D4RL-protocol datasets, every cell
through run directories and ``jaxrl report``, CORL's column (integration; the full table is run by hand: see the
script's docstring)."""

import json
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


@pytest.mark.integration
def test_quick_offline_table_through_run_directories_report_and_corl(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import offline_table as ot

    runs, data = tmp_path / "runs", tmp_path / "data"
    argv = ["--quick", "--env", "Pendulum-v1", "--algos", "bc,td3_bc,rebrac", "--runs", str(runs), "--reps", "50"]
    argv += ["--data-dir", str(data), "--set", "rebrac@medium-expert.actor_beta=1", "--set", "td3_bc.alpha=3"]
    cells = ot.main(argv)
    # BC also on random and expert (the extra columns); ReBRAC's per-dataset beta splits it into two programs.
    assert {k.split("|")[0] for k in cells} == {"bc", "td3_bc", "rebrac"}
    assert {"bc|random", "bc|expert", "td3_bc|medium-replay", "rebrac|medium-expert"} <= set(cells)
    assert "td3_bc|random" not in cells
    made = sorted(p.name for p in (runs / "Pendulum-v1").iterdir())
    assert made == ["bc", "rebrac@medium+medium-replay", "rebrac@medium-expert", "td3_bc"]
    config = json.loads((runs / "Pendulum-v1" / "rebrac@medium-expert" / "config.json").read_text())
    assert config["config"]["actor_beta"] == 1 and len(config["seeds"]) == 2  # ReBRAC is a 5-seed column (2: quick)
    assert json.loads((runs / "Pendulum-v1" / "td3_bc" / "config.json").read_text())["config"]["alpha"] == 3
    text = (runs / "offline_Pendulum-v1.md").read_text()
    sections = ["## The issue's bars", "## Against CORL's D4RL scores", "Cells (run directory", "Hardware:"]
    sections += ["| bc, Pendulum-v1-medium-replay | 2 |", "rebrac@medium-expert`: rebrac on medium-expert"]
    for section in sections:
        assert section in text, section
    store = json.loads((runs / "offline_Pendulum-v1.json").read_text())
    assert all(c["run_seconds"] >= 0 for c in store["cells"].values())
    # each cell names the command that trained it (recorded in its run directory when it started)
    assert {c["command"] for c in store["cells"].values()} == {
        "python " + " ".join(["experiments/offline_table.py"] + argv)
    }
    # The datasets carry the D4RL protocol: random from the untrained policy, reference returns, checksums.
    import d4rl_datasets

    out = tmp_path / "d4rl.md"
    d4rl_datasets.main(["--envs", "Pendulum-v1", "--size", "2000", "--behaviour-steps", "4000"]
                       + ["--behaviour-hidden", "32,32", "--data-dir", str(data), "--out", str(out)])  # fmt: skip
    facts = json.loads(out.with_suffix(".json").read_text())["Pendulum-v1"]
    assert list(facts["kinds"]) == ["random", "medium", "medium-replay", "medium-expert", "expert"]
    assert all(len(k["sha256"]) == 64 and k["validation"] == "ok" for k in facts["kinds"].values())
    assert facts["kinds"]["medium-expert"]["transitions"] == 4000 and "## Pendulum-v1" in out.read_text()
    # the behaviour run's snapshot is kept beside --out's checksums, not in the committed results folder
    assert [p.name for p in (tmp_path / "d4rl_behaviour").iterdir()] == ["Pendulum-v1-4000x1-h32x32-c1.msgpack"]
    assert not (d4rl_datasets.BEHAVIOUR / "Pendulum-v1-4000x1-h32x32-c1.msgpack").exists()
    # A finished cell is kept; one asked for with other settings is refused, never overwritten.
    metrics = runs / "Pendulum-v1" / "bc" / "metrics.jsonl"
    stamp = metrics.stat().st_mtime_ns
    again = ot.main(argv[:4] + ["bc"] + argv[5:])
    assert again["bc|medium"] == cells["bc|medium"]
    assert again.keys() == cells.keys()  # the other finished cells stay in the table
    assert metrics.stat().st_mtime_ns == stamp
    with pytest.raises(SystemExit, match="made with other settings .*grid"):
        ot.main(argv[:4] + ["bc", "--no-extra-columns"] + argv[5:])
    assert metrics.stat().st_mtime_ns == stamp
    # a command that runs no extra column (a cell run on its own core) rewrites the table with them still shown
    ot.main(argv[:4] + ["td3_bc", "--no-extra-columns"] + argv[5:])
    assert "**random**" in (runs / "offline_Pendulum-v1.md").read_text()
    # A cell saved before a config field existed ran as that field's FIELDS_ADDED value: kept for it only.
    saved_path = runs / "Pendulum-v1" / "bc" / "config.json"
    saved = json.loads(saved_path.read_text())
    del saved["config"]["normalize_states"]
    saved_path.write_text(json.dumps(saved))
    assert ot.main(argv[:4] + ["bc"] + argv[5:])["bc|medium"] == cells["bc|medium"]
    with pytest.raises(SystemExit, match="normalize_states=False .made before the field existed., not True"):
        ot.main(argv[:4] + ["bc"] + argv[5:] + ["--set", "bc.normalize_states=True"])
    assert metrics.stat().st_mtime_ns == stamp
    for name in ("offline_table", "d4rl_datasets", "published_scores", "results_table"):
        sys.modules.pop(name, None)


def test_cells_split_by_kind_and_keep_their_names(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import offline_table as ot

    kinds = ["medium", "medium-replay", "medium-expert"]
    assert ot.cells_of("iql", kinds, {}) == [("iql", kinds, {})]
    per_kind = {("rebrac", "medium-expert"): {"actor_beta": 1}}
    assert [c[0] for c in ot.cells_of("rebrac", kinds, per_kind)] == [
        "rebrac@medium+medium-replay",
        "rebrac@medium-expert",
    ]
    # one dataset alone (--split-kinds, or a cell of its own already made) is never named as the whole column
    assert ot.cells_of("iql", ["medium-replay"], {}, split={"medium-replay"}) == [
        ("iql@medium-replay", ["medium-replay"], {})
    ]
    assert ot.own_cell_kinds("iql", kinds, tmp_path, split_all=True) == set(kinds)
    assert ot.own_cell_kinds("iql", kinds, tmp_path, split_all=False) == set()
    (tmp_path / "iql@medium-replay").mkdir()
    assert ot.own_cell_kinds("iql", kinds, tmp_path, split_all=False) == {"medium-replay"}
    names = [c[0] for c in ot.cells_of("iql", kinds, {}, split={"medium-replay"})]
    assert names == ["iql@medium+medium-expert", "iql@medium-replay"]
    # 5 seeds where the issue compares on medium-replay; 3 on the other datasets and for the other algorithms
    assert ot.cell_seeds("iql", ["medium-replay"], 3, 5) == ot.cell_seeds("iql", kinds, 3, 5) == 5
    assert ot.cell_seeds("iql", ["medium", "medium-expert"], 3, 5) == ot.cell_seeds("mopo", kinds, 3, 5) == 3
    (tmp_path / "iql").mkdir()  # the one-program cell exists: it stays the only one
    assert ot.own_cell_kinds("iql", kinds, tmp_path, split_all=True) == set()
    sys.modules.pop("offline_table", None)


def test_record_cell_adds_to_the_results_json(tmp_path, monkeypatch):
    """A finished cell is in the results JSON as soon as it ends, beside what is there, not only when the table is
    written at the end of the command."""
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import offline_table as ot

    store = tmp_path / "offline_env.json"
    store.write_text(json.dumps({"budget": "b", "cells": {"runs/a": {"seeds": 3}}}))
    ot.record_cell(store, "runs/b~seeds0-0", {"seeds": [0]})
    saved = json.loads(store.read_text())
    assert saved["budget"] == "b" and saved["cells"] == {"runs/a": {"seeds": 3}, "runs/b~seeds0-0": {"seeds": [0]}}
    sys.modules.pop("offline_table", None)


def test_a_running_cell_is_skipped_or_refused_by_a_second_command(tmp_path, monkeypatch):
    """Two commands never write one run directory: while one holds a cell's lock, a second either skips the cell
    (``skip_if_busy``: two cores share a cell's seed parts) or exits naming it; neither touches the directory."""
    import fcntl

    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import results_table

    run_dir = tmp_path / "edac@medium-expert~seeds1-1"
    lock_path = results_table.cell_lock(run_dir)
    assert lock_path.parent == tmp_path and lock_path.name.startswith(".")
    with open(lock_path, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert results_table.run_cell(run_dir, "edac", "Pendulum-v1", None, skip_if_busy=True) is None
        with pytest.raises(SystemExit, match="being run by another command"):
            results_table.run_cell(run_dir, "edac", "Pendulum-v1", None)
    assert not run_dir.exists()
    sys.modules.pop("results_table", None)


def test_a_finished_cell_removes_its_lock_and_a_stopped_one_keeps_it(tmp_path, monkeypatch):
    """A results folder holds only run directories once its cells finish (the listing the table test checks); a
    cell stopped mid-way keeps its lock file and exits saying how to resume. ``train`` is a stand-in that writes
    the summary a finished (or interrupted) run leaves."""
    import jaxrl.run

    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import results_table

    interrupted = []  # empty: the stand-in run finishes

    def fake_train(algo, env, config, *, out_dir, **kw):
        (out_dir / "summary.json").write_text(json.dumps({"interrupted": bool(interrupted)}))

    monkeypatch.setattr(jaxrl.run, "train", fake_train)
    done = tmp_path / "bc"
    assert results_table.run_cell(done, "bc", "Pendulum-v1", None, command="cmd") == done
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bc"]
    assert (done / results_table.COMMAND_FILE).read_text() == "cmd\n"
    stopped = tmp_path / "iql"
    interrupted.append(True)
    with pytest.raises(SystemExit, match="saved mid-way"):
        results_table.run_cell(stopped, "iql", "Pendulum-v1", None)
    assert results_table.cell_lock(stopped).exists()
    sys.modules.pop("results_table", None)


def test_seed_parts_split_a_cell_and_keep_a_whole_one(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import offline_table as ot

    assert ot.seed_parts("cql@medium-replay", 5, None, tmp_path) == [("cql@medium-replay", 5)]
    assert ot.seed_parts("cql@medium-replay", 5, 2, tmp_path) == [
        ("cql@medium-replay~seeds0-1", [0, 1]),
        ("cql@medium-replay~seeds2-3", [2, 3]),
        ("cql@medium-replay~seeds4-4", [4]),
    ]
    assert ot.seed_parts("cql", 3, 3, tmp_path) == [("cql", 3)]
    # a part on disk marks its kind as a cell of its own; a cell already run whole is not split again
    (tmp_path / "cql@medium-replay~seeds0-1").mkdir()
    assert ot.own_cell_kinds("cql", ["medium", "medium-replay"], tmp_path, split_all=False) == {"medium-replay"}
    (tmp_path / "iql@medium-replay").mkdir()
    assert ot.seed_parts("iql@medium-replay", 5, 1, tmp_path) == [("iql@medium-replay", 5)]
    sys.modules.pop("offline_table", None)


def test_checks_state_the_issue_bars_and_the_lecture_mopo_ordering(monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import offline_table as ot

    group = lambda mean: {"mean": mean, "iqm": mean}
    groups = {
        ("bc", "medium-replay"): group(40.0),
        ("mopo", "medium-replay"): group(55.0),
        ("bc", "random"): group(2.0),
        ("mopo", "random"): group(8.0),
        ("bc", "medium"): group(36.0),
        ("mopo", "medium"): group(30.0),
    }
    lines = ot.checks(groups, {"medium": 35.0})
    assert "- medium-replay: mopo 55.0 vs BC 40.0: +15.0 (bar: +10) met" in lines
    partial = ot.checks({**groups, ("cql", "medium-replay"): {"mean": 60.0, "iqm": 60.0, "runs": 1}}, {})
    assert "- medium-replay: cql 60.0 vs BC 40.0: +20.0 (bar: +10) met (1 of 5 seeds so far)" in partial
    lecture = {line.split(":")[0].rsplit(" ", 1)[1]: line for line in lines if "lecture's MOPO table" in line}
    assert lecture["random"].endswith("+6.0 (lecture: MOPO far above BC) does NOT hold")
    assert lecture["medium-replay"].endswith("+15.0 (lecture: MOPO far above BC) holds")
    assert lecture["medium"].endswith("-6.0 (lecture: MOPO close to BC) holds")


def test_published_tables_beside_ours_with_their_rankings(monkeypatch):
    """CORL's columns list every algorithm of a dataset; the lecture's model-based table only those it ran, ranked
    against it (Spearman of the two rankings, hand-computed: sum of squared rank differences 24 over 5 algorithms)."""
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import offline_table as ot

    row = lambda m: {"mean": m, "iqm": m, "mean_ci": (m - 1, m + 1), "iqm_ci": (m - 1, m + 1), "best": m + 5}
    ours = dict(bc=45.6, mopo=69.0, sac_offline=69.5, bear=50.2, brac_v=52.1, cql=118.4)
    groups = {(a, "medium-replay"): row(m) for a, m in ours.items()} | {("bc", "random"): row(12.0)}
    env = "brax:hopper:positional"
    lines = ot.comparison(groups, env, ot.LECTURE_KINDS, ot.ALGOS, ot.LECTURE, every_algo=False)
    assert lines[0] == f"## Against {ot.LECTURE.title} (ordering only: a different simulator)"
    assert "**random**" not in lines and not any(line.startswith("| cql") for line in lines)  # bc alone; cql not in it
    # ours: sac_offline 1, mopo 2, brac_v 3, bear 4, bc 5; the lecture's (hopper mixed): mopo, bc, bear, sac, brac_v
    assert "| algorithm | final, mean [95% CI] | IQM [95% CI] | best | lecture | rank | lecture rank |" in lines
    assert "| sac_offline | 69.5 [68.5, 70.5] | 69.5 [68.5, 70.5] | 74.5 | 1.9 | 1 | 4 |" in lines
    assert "Spearman rank correlation with lecture over 5 algorithms: -0.20." in lines
    corl = ot.comparison(groups, env, ["medium-replay"], ot.ALGOS)
    header = "| algorithm | final, mean [95% CI] | IQM [95% CI] | best | CORL last | CORL best | rank | CORL rank |"
    assert header in corl
    assert "| cql | 118.4 [117.4, 119.4] | 118.4 [117.4, 119.4] | 123.4 | 95.1 | 101.6 | 1 | 1 |" in corl
    assert "| bear | 50.2 [49.2, 51.2] | 50.2 [49.2, 51.2] | 55.2 | - | - | - | - |" in corl
    sys.modules.pop("offline_table", None)


def test_env_settings_per_dataset_and_for_envs_that_fall(monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import offline_table as ot

    hopper = ot.parse_args(["--env", "brax:hopper:positional"]).overrides
    assert hopper[("rebrac", "medium-replay")] == {"actor_beta": 0.05, "critic_beta": 0.5}
    assert hopper[("mopo", None)] == {"rollout_horizon": 25, "rollout_batch_size": 200}
    assert hopper[("mopo", "medium")] == {"penalty_coef": 5.0}  # the authors' lambda; h stays the falling rule's
    cheetah = ot.parse_args(["--env", "brax:halfcheetah:positional", "--set", "rebrac@medium.critic_beta=0"]).overrides
    assert ("mopo", None) not in cheetah  # never falls: the authors' h per dataset, lambda scaled by 0.25
    assert cheetah[("mopo", "medium")] == {"penalty_coef": 0.25, "rollout_horizon": 1}
    assert cheetah[("rebrac", "medium")] == {"actor_beta": 0.001, "critic_beta": 0}  # --set wins
    assert cheetah[("iql", None)] == {"normalize_rewards": True}
    assert cheetah[("edac", "medium-expert")] == {"eta": 5.0} and ("edac", "medium") not in cheetah  # the authors'
    assert hopper[("edac", None)] == {"num_critics": 50} and ("edac", "medium-expert") not in hopper
    assert ("morel", None) not in cheetah and hopper[("morel", None)] == hopper[("mopo", None)]
    # BRAC's alpha: the authors' 0.1 on halfcheetah (both variants), the library's default where they give none
    assert cheetah[("brac_v", None)] == cheetah[("brac_p", None)] == {"alpha": 0.1}
    assert ("brac_v", None) not in hopper and ("brac_p", None) not in hopper
    assert ot.parse_args(["--env", "Pendulum-v1"]).overrides == {}


def test_partial_line_names_missing_algorithms_then_missing_cells(monkeypatch):
    """A table with every cell says nothing; one without some algorithm counts them; one where every algorithm has a
    cell but some datasets do not names only those (it once read "missing: ; and ..."); cells short of their seeds
    come last."""
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import offline_table as ot

    assert ot.partial_lines([], []) == []
    n = len(ot.ALGOS)
    first = f"**Partial: {n - 1} of the {n} algorithms so far** (missing: algorithms bcq; and awr on medium);"
    assert ot.partial_lines(["bcq"], ["awr on medium"])[0].startswith(first)
    assert ot.partial_lines(["bcq"], [])[0].startswith(
        f"**Partial: {n - 1} of the {n} algorithms so far** (missing: algorithms bcq);"
    )
    assert ot.partial_lines([], ["awr on medium"])[0].startswith(
        "**Partial: every algorithm** (missing: awr on medium);"
    )
    # a cell with fewer seeds than its plan is named with its count, so a pooled part never reads as the whole cell
    assert ot.partial_lines([], [], ["bcq on medium-replay (1 of 3)"])[0].startswith(
        "**Partial: every algorithm** (short of their seeds: bcq on medium-replay (1 of 3));"
    )
    assert ot.partial_lines([], ["awr on medium"], ["bcq on medium-replay (1 of 3)"])[0].startswith(
        "**Partial: every algorithm** (missing: awr on medium) (short of their seeds: bcq on medium-replay (1 of 3));"
    )
    sys.modules.pop("offline_table", None)


def test_iqm_bars_across_envs_pool_stores_of_the_same_budget(tmp_path, monkeypatch):
    """The issue's "A's IQM over the 6 datasets is at least B's": this env's groups plus every other env's store
    made at the same budget (one of another budget is not pooled), only once both algorithms have every dataset."""
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import offline_table as ot

    def report(env, iqms):
        return {f"{a}, {env}-{k}": {"iqm": v} for (a, k), v in iqms.items()}

    kinds = ot.KINDS
    here = {(a, k): {"iqm": v} for a, v in (("rebrac", 60.0), ("td3_bc", 50.0)) for k in kinds}
    other = {(a, k): v for a, v in (("rebrac", 30.0), ("td3_bc", 38.0)) for k in kinds}
    (tmp_path / "offline_b.json").write_text(json.dumps({"budget": "x", "report": report("env:b", other)}))
    (tmp_path / "offline_c.json").write_text(json.dumps({"budget": "y", "report": report("env:c", other)}))
    lines = ot.across_envs(here, "env:a", "x", tmp_path)
    # (60 * 3 + 30 * 3) / 6 = 45 against (50 * 3 + 38 * 3) / 6 = 44: met; env:c (budget y) is not pooled
    assert "env:a, env:b (6 datasets" in lines[0]
    assert "rebrac 45.0 vs td3_bc 44.0 (bar: rebrac >= td3_bc) met" in lines[2]
    assert lines[3].endswith("so far edac has 0 and sac_n 0 of them")
    del here[("rebrac", "medium")]
    assert "so far rebrac has 5 and td3_bc 6" in ot.across_envs(here, "env:a", "x", tmp_path)[2]
    assert ot.across_envs(here, "env:a", "z", tmp_path) == []  # no other env at this budget: nothing to pool
    assert ot.kind_of("brax:hopper:positional-medium-replay") == "medium-replay"
    # SAC-N and EDAC at the authors' ensemble of 50 on hopper, the library's 10 elsewhere
    hopper = ot.env_settings("brax:hopper:positional")
    assert hopper[("edac", None)] == hopper[("sac_n", None)] == {"num_critics": 50}
    assert ("edac", None) not in ot.env_settings("brax:halfcheetah:positional")
    sys.modules.pop("offline_table", None)
