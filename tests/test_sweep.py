"""``jaxrl sweep``: static fields split programs while numeric grids share one (counted in real compiles), and
every bad spec is a one-line error before anything compiles. In the integration stage (more compiles): a sweep
SIGTERM-ed mid-way resumes to the same metrics and summaries as an uninterrupted one, in process and through the
CLI in a child process."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import jax.monitoring
import pytest

from jaxrl.run import sweep as sweep_lib
from jaxrl.run.cli import main as cli_main
from jaxrl.run.logging import MetricsLog, read_metrics

# 2 seeds x 2 learning rates (one program each) x 2 widths (two programs); 4 iterations of 64 env steps, 2 chunks
SPEC = """
[sweep]
seeds = 2
num_chunks = 2
eval_episodes = 1
tensorboard = false
total_env_steps = 256

[sweep.report]
reps = 100

[[runs]]
algo = "ppo"
env = "CartPole-v1"
config = { num_envs = 4, num_steps = 16, num_epochs = 1, num_minibatches = 2 }
grid = { hidden = [[8], [16]], learning_rate = [1e-3, 3e-4] }
"""
NAMES = ["ppo-CartPole-v1-hidden=8", "ppo-CartPole-v1-hidden=16"]
PROGRAMS = ("jit(init_one)", "jit(chunk_one)", "jit(eval_one)")  # what train compiles per program
TIMINGS = ("env_steps_per_second", "compile_seconds", "run_seconds", "compilation_cache")

_compiles: list[str] = []


def _on_event(event: str, duration_secs: float, **kwargs: str | int) -> None:
    if event.endswith("backend_compile_duration"):
        _compiles.append(str(kwargs.get("fun_name", "?")))


jax.monitoring.register_event_duration_secs_listener(_on_event)


def _count_compiles(fn):
    start = len(_compiles)
    out = fn()
    return out, _compiles[start:]


def _quiet_run(spec, out):
    return sweep_lib.run(spec, out, progress=False, say=lambda line: None)


def _results(summary: dict) -> dict:
    """A summary without its timings (best scores: their own test below)."""
    return {k: v for k, v in summary.items() if k not in TIMINGS and not k.endswith("_best")}


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "ppo_cartpole.toml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="module")
def straight(spec_file, tmp_path_factory):
    """The sweep run without interruption, and the programs compiled meanwhile."""
    out = tmp_path_factory.mktemp("straight") / "sweep"
    return _count_compiles(lambda: _quiet_run(spec_file, out))


def test_static_field_is_one_program_per_value_numeric_grid_one_axis(straight):
    result, compiles = straight
    assert result.status == {NAMES[0]: "ran", NAMES[1]: "ran"} and not result.interrupted
    # Two widths are two programs; the learning-rate grid and the seeds are axes inside each.
    for program in PROGRAMS:
        assert compiles.count(program) == 2, (program, compiles)
    for name, width in zip(NAMES, ([8], [16])):
        spec = json.loads((result.run_dir(name) / "config.json").read_text())
        assert spec["config"]["hidden"] == width and spec["grid"] == {"learning_rate": [1e-3, 3e-4]}
        summary = result.summaries[name]
        assert [(r["seed"], r["point"]["learning_rate"]) for r in summary["runs"]] == [
            (0, 1e-3), (0, 3e-4), (1, 1e-3), (1, 3e-4),
        ]  # fmt: skip
        assert summary["env_steps"] == 256 and not summary["interrupted"]
    record = json.loads((result.sweep.out / "sweep.json").read_text())
    assert [p["name"] for p in record["programs"]] == NAMES
    # The report covers every run: 2 widths x 2 learning rates, 2 seeds each.
    report = result.report
    assert report["by"] == ["hidden", "learning_rate"] and [g["runs"] for g in report["groups"]] == [2] * 4
    assert (result.sweep.out / "report" / "report.md").is_file()


@pytest.fixture(scope="module")
def split(straight, spec_file, tmp_path_factory):
    """The sweep SIGTERM-ed during its second program's first chunk, then run again: ``(stopped, the chunks it
    logged of the second program, resumed, the programs the resume compiled)``. Its first program is the straight
    sweep's, copied (test 1 shows a sweep running it), so that only the program that stops compiles here; the
    integration test below runs it all."""
    reference = straight[0]
    out = tmp_path_factory.mktemp("split") / "sweep"
    out.mkdir()
    shutil.copy(reference.sweep.out / "sweep.json", out / "sweep.json")
    shutil.copytree(reference.run_dir(NAMES[0]), out / NAMES[0])
    real_write = MetricsLog.write

    def write(self, record):  # a real SIGTERM during the second program's first chunk
        real_write(self, record)
        if self.path.parent.name == NAMES[1]:
            os.kill(os.getpid(), signal.SIGTERM)

    MetricsLog.write = write  # type: ignore[method-assign]
    try:
        stopped = _quiet_run(spec_file, out)
    finally:
        MetricsLog.write = real_write  # type: ignore[method-assign]
    logged = len(read_metrics(out / NAMES[1]))
    resumed, compiles = _count_compiles(lambda: _quiet_run(spec_file, out))
    return stopped, logged, resumed, compiles


@pytest.mark.integration  # two more PPO compiles (~15 s on 2 idle cores): the fast suite's budget
def test_sigterm_mid_sweep_then_resume_ends_as_an_uninterrupted_sweep(straight, split, spec_file):
    reference, (stopped, logged, resumed, compiles) = straight[0], split
    out = resumed.sweep.out
    assert stopped.interrupted and stopped.report is None
    assert stopped.status == {NAMES[0]: "complete", NAMES[1]: "interrupted"}
    assert logged == 1 and stopped.summaries[NAMES[1]]["interrupted"]

    assert resumed.status == {NAMES[0]: "complete", NAMES[1]: "resumed"} and not resumed.interrupted
    # only the stopped program compiles again (its state comes from the checkpoint, so no init program)
    assert compiles.count("jit(chunk_one)") == 1 == compiles.count("jit(eval_one)"), compiles
    for name in NAMES:
        assert read_metrics(out / name) == read_metrics(reference.run_dir(name))
        assert _results(resumed.summaries[name]) == _results(reference.summaries[name])
    assert resumed.report is not None and reference.report is not None
    assert [g["iqm"] for g in resumed.report["groups"]] == [g["iqm"] for g in reference.report["groups"]]

    # Once more: everything is complete, nothing compiles, the report is written again.
    again, compiles = _count_compiles(lambda: _quiet_run(spec_file, out))
    assert set(again.status.values()) == {"complete"} and not [c for c in compiles if c in PROGRAMS]


@pytest.mark.integration
def test_resumed_summary_best_scores_cover_the_chunks_before_the_stop(straight, split):
    reference, resumed = straight[0], split[2]
    for name in NAMES:
        best = {k: v for k, v in resumed.summaries[name].items() if k.endswith("_best")}
        assert best == {k: reference.summaries[name][k] for k in best}


def test_a_different_spec_into_the_same_out_dir_is_refused(straight, tmp_path, capsys):
    out = straight[0].sweep.out
    path = tmp_path / "other.toml"
    path.write_text(SPEC.replace("learning_rate = [1e-3, 3e-4]", "learning_rate = [1e-3, 1e-4]"))
    code = cli_main(["sweep", str(path), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "different spec" in err and f"{NAMES[0]}) differs in grid" in err


def test_yaml_spec_and_dry_run(spec_file, tmp_path, capsys):
    path = tmp_path / "ppo_cartpole.yaml"
    path.write_text(
        textwrap.dedent("""
        sweep: {seeds: 2, num_chunks: 2, eval_episodes: 1, tensorboard: false, total_env_steps: 256,
                report: {reps: 100}}
        runs:
          - algo: ppo
            env: CartPole-v1
            config: {num_envs: 4, num_steps: 16, num_epochs: 1, num_minibatches: 2}
            grid: {hidden: [[8], [16]], learning_rate: [1.0e-3, 3.0e-4]}
        """)
    )
    from_yaml = sweep_lib.plan(sweep_lib.load_spec(path), tmp_path / "out")
    assert from_yaml.programs == sweep_lib.plan(sweep_lib.load_spec(spec_file), tmp_path / "out").programs
    assert cli_main(["sweep", str(path), "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert f"{NAMES[0]}: ppo on CartPole-v1, seeds[2] x learning_rate[2] (new)" in printed
    assert "2 programs" in printed and not (tmp_path / "out").exists()


_RUN = 'algo = "ppo"\nenv = "CartPole-v1"\n'
BAD_SPECS = {
    "missing file": (None, ["does not exist"]),
    "malformed TOML": ("[sweep\nseeds = 2\n", ["malformed TOML", "line 1"]),
    "unknown algorithm": ('[[runs]]\nalgo = "ppo2"\n', ["unknown algorithm 'ppo2'", "did you mean 'ppo'"]),
    "unknown env": ('[[runs]]\nalgo = "ppo"\nenv = "CartPole-v2"\n', ["unknown environment", "'CartPole-v1'"]),
    "unknown config field": (
        f"[[runs]]\n{_RUN}config = {{ lerning_rate = 1e-3 }}\n",
        ["ppo.Config has no field 'lerning_rate'", "did you mean 'learning_rate'"],
    ),
    "unknown grid field": (f"[[runs]]\n{_RUN}grid = {{ hiden = [[8]] }}\n", ["no field 'hiden'", "'hidden'"]),
    "unknown spec key": (f"[[runs]]\n{_RUN}gird = {{ hidden = [[8]] }}\n", ["unknown key 'gird'", "'grid'"]),
    "grid value not a number": (
        f'[[runs]]\n{_RUN}grid = {{ learning_rate = ["fast"] }}\n',
        ["ppo.Config.learning_rate = 'fast' must be a real number"],
    ),
    "grid width not a list": (
        f"[[runs]]\n{_RUN}grid = {{ hidden = [8, 16] }}\n",
        ["ppo.Config.hidden = 8 must be a list of integers"],
    ),
    "grid value out of range": (f"[[runs]]\n{_RUN}grid = {{ learning_rate = [-1.0] }}\n", ["out of range", "> 0"]),
    "empty grid": (f"[[runs]]\n{_RUN}grid = {{ learning_rate = [] }}\n", ["learning_rate is empty"]),
    "no runs": ("[sweep]\nseeds = 2\n", ["no [[runs]]"]),
    "offline without datasets": ('[[runs]]\nalgo = "iql"\n', ["iql is an offline algorithm", "datasets"]),
    # the whole spec is checked first: the second entry's too-short run stops the sweep before the first compiles
    "second entry invalid": (
        f'[[runs]]\n{_RUN}\n[[runs]]\nalgo = "ppo"\nenv = "Acrobot-v1"\ntotal_env_steps = 10\n',
        ["program ppo-Acrobot-v1", "total_env_steps=10 is out of range"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_bad_spec_is_one_line_error_before_anything_compiles(case, tmp_path, capsys):
    text, fragments = BAD_SPECS[case]
    path = tmp_path / "spec.toml"
    if text is not None:
        path.write_text(text)
    out = tmp_path / "out"
    code, compiles = _count_compiles(lambda: cli_main(["sweep", str(path), "--out", str(out)]))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert not [c for c in compiles if c in PROGRAMS] and not out.exists()


def test_yaml_without_pyyaml_says_how_to_get_it(tmp_path, capsys, monkeypatch):
    path = tmp_path / "spec.yaml"
    path.write_text("runs: [{algo: ppo}]\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # as if pyyaml were not installed
    assert cli_main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install pyyaml" in err and "TOML" in err


_CHILD = """
import os, signal, sys
import jaxrl.run.logging as logging
real_write = logging.MetricsLog.write
def write(self, record):
    real_write(self, record)
    if self.path.parent.name == {name!r}:
        os.kill(os.getpid(), signal.SIGTERM)
logging.MetricsLog.write = write
from jaxrl.run.cli import main
sys.exit(main(["sweep", {spec!r}, "--out", {out!r}, "--no-progress"]))
"""


@pytest.mark.integration
def test_cli_sweep_sigterm_in_a_process_then_resume(straight, spec_file, tmp_path):
    reference = straight[0]
    out = str(tmp_path / "sweep")
    env = {**os.environ, "JAXRL_COMPILATION_CACHE": "0"}
    child = _CHILD.format(name=NAMES[1], spec=str(spec_file), out=out)
    first = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0 and "SIGTERM" in first.stderr and "again to continue" in first.stderr, first.stderr
    second = subprocess.run(
        [sys.executable, "-m", "jaxrl.run.cli", "sweep", str(spec_file), "--out", out, "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert second.returncode == 0, second.stderr
    assert "1 complete, 1 resumed" in second.stdout and "| IQM [95% CI] |" in second.stdout
    for name in NAMES:
        assert read_metrics(tmp_path / "sweep" / name) == read_metrics(reference.run_dir(name))
