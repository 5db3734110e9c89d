"""The run loop: grids compile once and match single runs bit for bit, determinism, exact resume, atomic
checkpoints, signals, sharding, NaN detection, the run-directory contract and the CLI."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import jax.monitoring
import numpy as np
import pytest

from jaxrl.algos.single import ppo
from jaxrl.config import config, hyper, static
from jaxrl.run import NonFiniteError, resume, train
from jaxrl.run import checkpoint as ckpt
from jaxrl.run.logging import read_metrics

TINY = dict(num_envs=4, num_steps=16, num_epochs=2, num_minibatches=2, hidden=(16, 16), total_env_steps=512)
# run_block: fixed blocks of vmapped runs make every run bit-identical alone, in a sweep, or sharded.
RUN = dict(num_chunks=2, eval_episodes=2, progress=False, run_block=2)
ENV = "CartPole-v1"

_compiles: list[str] = []
jax.monitoring.register_event_duration_secs_listener(
    lambda event, duration, **kw: (
        _compiles.append(kw.get("fun_name", "?")) if event.endswith("backend_compile_duration") else None
    )
)


def _count_compiles(fn):
    """Run ``fn`` and return its result and the names of the XLA programs compiled meanwhile."""
    start = len(_compiles)
    out = fn()
    return out, _compiles[start:]


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _assert_trees_equal(a, b):
    la, lb = _leaves(a), _leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(x, y)


def _python(code: str, env=None, check=True):
    full_env = {**os.environ, "JAXRL_COMPILATION_CACHE": "0", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=full_env, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"subprocess failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """Seed 2 at learning rate 3e-4, alone, with a run directory; and the compile count it took."""
    out = tmp_path_factory.mktemp("alone") / "run"
    cfg = ppo.Config(**TINY, learning_rate=3e-4)
    return _count_compiles(lambda: train("ppo", ENV, cfg, seeds=[2], out_dir=out, **RUN))


@pytest.fixture(scope="module")
def alone_in_memory():
    """The same run without a run directory (no I/O), and its compile count."""
    cfg = ppo.Config(**TINY, learning_rate=3e-4)
    return _count_compiles(lambda: train("ppo", ENV, cfg, seeds=[2], **RUN))


@pytest.fixture(scope="module")
def grid_run():
    cfg = ppo.Config(**TINY)
    return _count_compiles(
        lambda: train("ppo", ENV, cfg, seeds=[0, 1, 2, 3], grid={"learning_rate": [1e-3, 3e-4, 1e-4]}, **RUN)
    )


def test_grid_compiles_once_and_matches_single_runs(grid_run, alone_in_memory):
    (grid, grid_compiles), (single, single_compiles) = grid_run, alone_in_memory
    assert grid.axes == ("seed", "learning_rate", "chunk")
    assert grid.metrics["eval_return"].shape == (4, 3, 2)
    # 12 runs cost the same programs as one run: the training chunk compiles once, nothing per seed or point.
    for program in ("jit(init_one)", "jit(chunk_one)", "jit(eval_one)"):
        assert grid_compiles.count(program) == 1 == single_compiles.count(program), program
    for name, values in single.metrics.items():
        np.testing.assert_array_equal(grid.metrics[name][2, 1], values[0], err_msg=name)
    _assert_trees_equal(grid.run_state(2 * 3 + 1).params, single.run_state(0).params)
    # Different learning rates really are different runs.
    assert not np.array_equal(grid.metrics["policy_loss"][2, 0], grid.metrics["policy_loss"][2, 1])


def test_same_seed_is_bit_identical_twice(alone, alone_in_memory):
    first, again = alone[0], alone_in_memory[0]
    for name in first.metrics:
        np.testing.assert_array_equal(again.metrics[name], first.metrics[name], err_msg=name)
    _assert_trees_equal(again.state, first.state)


def test_run_directory_contract(alone):
    result = alone[0]
    run_dir = result.run_dir
    spec = json.loads((run_dir / "config.json").read_text())
    assert spec["algo"] == "ppo" and spec["env"] == ENV and spec["config"]["learning_rate"] == 3e-4
    assert {"jax", "jaxrl", "gymnax"} <= set(spec["versions"])
    # the CPU's instruction-set extensions, which XLA:CPU's floating point depends on (bit-for-bit reruns)
    assert spec["host"]["model"] and spec["host"]["machine"] and isinstance(spec["host"]["isa"], list)
    records = read_metrics(run_dir)
    assert [r["iteration"] for r in records] == [4, 8] and records[-1]["env_steps"] == 512
    assert len(records[0]["eval_return"]) == 1 and "policy_loss" in records[0]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["eval_return"] == records[-1]["eval_return"]
    assert summary["runs"] == [{"seed": 2, "point": {}}]
    for key in ("env_steps_per_second", "compile_seconds", "run_seconds"):
        assert summary[key] > 0
    assert (run_dir / "curves.png").stat().st_size > 1000
    assert list((run_dir / "tensorboard").iterdir())
    assert [p.name for p in ckpt.list_checkpoints(run_dir / "checkpoints")] == ["chunk_000000", "chunk_000001"]


_RESUME_CHILD = """
import sys
from jaxrl.algos.single import ppo
from jaxrl.run import train, resume
TINY = {tiny!r}
if sys.argv[1] == "first_half":
    train("ppo", "CartPole-v1", ppo.Config(**TINY, learning_rate=3e-4), seeds=[2], out_dir=sys.argv[2],
          num_chunks=2, eval_episodes=2, progress=False, run_block=2, stop_after_chunks=1)
else:
    resume(sys.argv[2], progress=False)
"""


@pytest.mark.integration
def test_resume_in_new_process_is_exact(alone, tmp_path):
    straight = alone[0]
    run_dir = tmp_path / "split"
    code = _RESUME_CHILD.format(tiny=TINY)
    for phase in ("first_half", "second_half"):
        _python(f"import sys; sys.argv = ['x', {phase!r}, {str(run_dir)!r}]\n" + code)
    assert read_metrics(run_dir) == read_metrics(straight.run_dir)
    restored, meta = ckpt.restore(ckpt.latest(run_dir / "checkpoints"), jax.tree.map(np.asarray, straight.state))
    assert meta["iteration"] == 8
    _assert_trees_equal(jax.tree.map(lambda x: x[:1], restored), straight.state)
    # the run's seconds add up over the two processes: each checkpoint carries the total so far
    first = ckpt.meta(ckpt.list_checkpoints(run_dir / "checkpoints")[0])["run_seconds"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert 0 < first < summary["run_seconds"] == pytest.approx(meta["run_seconds"])
    assert "run_seconds_from_iteration" not in summary


def test_write_atomic_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "new" / "summary.json"
    ckpt.write_atomic(path, '{"a": 1}')
    ckpt.write_atomic(path, b'{"a": 2}')
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["summary.json"]


def test_metrics_truncated_for_a_resume_keep_the_records_before_it(tmp_path):
    from jaxrl.run.logging import MetricsLog

    log = MetricsLog(tmp_path, tensorboard=False)
    for it in (10, 20, 30):
        log.write({"iteration": it, "env_steps": it, "eval_return": [float(it)]})
    log.truncate_after(20)
    assert [r["iteration"] for r in read_metrics(tmp_path)] == [10, 20]
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]


@pytest.mark.integration
def test_killed_checkpoint_writer_leaves_previous_checkpoint(alone, tmp_path):
    straight = alone[0]
    run_dir = tmp_path / "killed"
    proc = _python(
        f"""
        import os, signal
        import jaxrl.run.checkpoint as ckpt
        from jaxrl.algos.single import ppo
        from jaxrl.run import train
        calls = []
        real_commit = ckpt._commit
        def commit(tmp, final):  # die half-way through the second checkpoint: data written, not committed
            calls.append(final)
            if len(calls) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            real_commit(tmp, final)
        ckpt._commit = commit
        train("ppo", "CartPole-v1", ppo.Config(**{TINY!r}, learning_rate=3e-4), seeds=[2], out_dir={str(run_dir)!r},
              num_chunks=2, eval_episodes=2, progress=False, run_block=2)
        """,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL
    assert any(p.name.startswith(".tmp-") for p in (run_dir / "checkpoints").iterdir())
    with pytest.warns(RuntimeWarning, match="incomplete checkpoint"):
        result = resume(run_dir, progress=False)
    assert not any(p.name.startswith(".tmp-") for p in (run_dir / "checkpoints").iterdir())
    assert read_metrics(run_dir) == read_metrics(straight.run_dir)
    _assert_trees_equal(result.state, straight.state)
    # the chunk before the resume counts: best scores and the returned metrics cover the whole run
    assert result.summary["eval_return_best"] == straight.summary["eval_return_best"]
    np.testing.assert_array_equal(result.metrics["eval_return"], straight.metrics["eval_return"])


@pytest.mark.integration
def test_sigterm_then_cli_resume_ends_where_uninterrupted_run_ends(tmp_path):
    run_dir = tmp_path / "sigterm"
    args = [
        "train",
        "ppo",
        "--env",
        ENV,
        "--seeds",
        "1",
        "--num-envs",
        "4",
        "--num-steps",
        "16",
        "--num-epochs",
        "2",
        "--num-minibatches",
        "2",
        "--hidden",
        "16",
        "16",
        "--total-env-steps",
        "512",
        "--learning-rate",
        "3e-4",
        "--num-chunks",
        "2",
        "--eval-episodes",
        "2",
        "--run-block",
        "2",
        "--out",
        str(run_dir),
    ]
    # A real SIGTERM, delivered deterministically right after the first chunk is logged.
    proc = _python(f"""
        import os, signal, sys
        import jaxrl.run.logging as logging
        real_write = logging.MetricsLog.write
        def write(self, record):
            real_write(self, record)
            os.kill(os.getpid(), signal.SIGTERM)
        logging.MetricsLog.write = write
        from jaxrl.run.cli import main
        sys.exit(main({args!r}))
        """)
    assert "SIGTERM" in proc.stderr and "--resume" in proc.stderr
    assert len(read_metrics(run_dir)) == 1
    # Seed 0 here; compare with a straight in-process run of seed 0 (the CLI's --seeds 1).
    reference = train("ppo", ENV, ppo.Config(**TINY, learning_rate=3e-4), seeds=[0], out_dir=tmp_path / "ref", **RUN)
    resumed = subprocess.run(
        [sys.executable, "-m", "jaxrl.run.cli", "train", "--resume", str(run_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, "JAXRL_COMPILATION_CACHE": "0"},
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "done: ppo on CartPole-v1" in resumed.stdout
    assert read_metrics(run_dir) == read_metrics(reference.run_dir)
    assert json.loads((run_dir / "summary.json").read_text())["eval_return"] == reference.summary["eval_return"]


@pytest.mark.integration
def test_sharded_run_equals_one_device_run(grid_run, tmp_path):
    grid = grid_run[0]
    out = tmp_path / "sharded.npz"
    _python(
        f"""
        import jax, numpy as np
        assert len(jax.local_devices()) == 4, jax.local_devices()
        from jaxrl.algos.single import ppo
        from jaxrl.run import train
        r = train("ppo", "CartPole-v1", ppo.Config(**{TINY!r}), seeds=[0, 1, 2, 3],
                  grid={{"learning_rate": [1e-3, 3e-4, 1e-4]}}, num_chunks=2, eval_episodes=2, progress=False,
                  run_block=2)
        assert len(r.summary["devices"]) == 4
        np.savez({str(out)!r}, **r.metrics)
        """,
        env={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"},
    )
    sharded = np.load(out)
    # Trajectories, episode statistics and evaluations are identical. Loss values agree to float rounding:
    # XLA:CPU compiles the 4-way partitioned program with other summation orders (measured: <= 1e-9 absolute).
    for name in ("eval_return", "episode_return", "episode_length", "episodes", "clip_fraction"):
        np.testing.assert_array_equal(sharded[name], grid.metrics[name], err_msg=name)
    for name, values in grid.metrics.items():
        np.testing.assert_allclose(sharded[name], values, rtol=1e-4, atol=1e-7, err_msg=name)


# A minimal algorithm whose loss turns NaN at iteration 3: exercises the loop's NaN stop for any algorithm.
@config
class _NaNConfig:
    scale: float = hyper(1.0)
    total_env_steps: int = static(6, low=1)

    @property
    def env_steps_per_iteration(self):
        return 1

    @property
    def num_iterations(self):
        return self.total_env_steps


class _NaNAlgo:
    Config = _NaNConfig
    __name__ = "tests.nan_algo"

    @staticmethod
    def make(cfg, env, env_params):
        import jax.numpy as jnp

        from jaxrl.algos.common import Algorithm

        def step(state):
            it = state + 1
            loss = jnp.where(it == 3, jnp.nan, cfg.scale * it)
            return it, {"critic_loss": loss}

        return Algorithm(
            init=lambda key: jnp.zeros((), jnp.int32),
            step=step,
            act=None,
            evaluate=lambda s, k, n: jnp.zeros(()),
            config=cfg,
            env_steps_per_iteration=1,
        )


def test_nan_stops_the_run_naming_metric_and_iteration():
    with pytest.raises(NonFiniteError, match=r"metric 'critic_loss' became nan at iteration 3 in run 0 \(seed 0"):
        train(_NaNAlgo, ENV, _NaNConfig(), seeds=2, num_chunks=3, progress=False)


def test_cli_list_help_and_clear_errors(capsys):
    from jaxrl.run.cli import main

    listed = subprocess.run([sys.executable, "-m", "jaxrl.run.cli", "list"], capture_output=True, text=True)
    assert listed.returncode == 0 and "ppo" in listed.stdout and "CartPole-v1" in listed.stdout

    def run(*args):  # in-process: the entry point's subprocess path is covered above
        try:
            code = main(list(args))
        except SystemExit as e:  # --help exits through the argument parser
            code = e.code
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = run("train", "sac", "--help")
    assert code == 0 and "--learning-rate" in out and "--total-env-steps" in out
    for args, message in [
        (("train", "ppo", "--learning-rate", "-1"), "learning_rate=-1.0 is out of range: must be > 0"),
        (("train", "ppo", "--env", "CartPol-v1"), "did you mean 'CartPole-v1'"),
        (("train", "ppo", "--grid", "num-envs=4,8"), "cannot grid over ppo.Config.num_envs"),
        (("train", "pop"), "did you mean 'ppo'"),
        (("train", "sac", "--env", "CartPole-v1"), "continuous"),
    ]:
        code, _, err = run(*args)
        assert code == 2 and message in err, (args, err)


# A training step with a host callback that never returns once iteration 5 (the second chunk) is reached and the
# flag file exists: the injected stall. Without the flag the same program runs through.
_STALL_CHILD = """
import os, sys, time
import jax, jax.numpy as jnp
from jaxrl.algos.single import ppo
from jaxrl.run import train, resume
from jaxrl.run.watchdog import Watchdog

real_make = ppo.make
flag = sys.argv[3]

def make(config, env, env_params, **kw):
    algo = real_make(config, env, env_params, **kw)

    def block(iteration):
        while iteration >= 5 and os.path.exists(flag):
            time.sleep(0.2)
        return iteration

    def step(state):
        state, metrics = algo.step(state)
        probe = jax.pure_callback(block, jax.ShapeDtypeStruct((), state.iteration.dtype), state.iteration,
                                  vmap_method="sequential")
        return state, dict(metrics, probe=probe)

    return algo._replace(step=step)

ppo.make = make
TINY = {tiny!r}
dog = Watchdog(first_chunk_seconds=600, factor=10, margin_seconds=3)
if sys.argv[1] == "train":
    train("ppo", "CartPole-v1", ppo.Config(**TINY, learning_rate=3e-4), seeds=[2], out_dir=sys.argv[2],
          num_chunks=2, eval_episodes=2, progress=False, run_block=2, watchdog=dog)
else:
    resume(sys.argv[2], progress=False, watchdog=dog)
"""


_SUSPEND_CHILD = """
import sys, time
from jaxrl.run import watchdog
watchdog.SUSPENDED_AFTER_SECONDS = 1.0
monitor = watchdog.StallMonitor(watchdog.Watchdog(first_chunk_seconds=2.5, factor=1, margin_seconds=1), None,
                                lambda elapsed, bound: f"STALLED after {elapsed:.1f} s")
monitor.start()
print("ready", flush=True)
time.sleep(float(sys.argv[1]))  # the 'chunk': no beat while it runs
monitor.stop()
"""


@pytest.mark.integration
def test_watchdog_does_not_count_time_the_process_was_suspended():
    """SIGSTOP for 4 s in a 'chunk' of 5.5 s wall time (1.5 s running) against a 2.5 s bound: not a stall; a chunk
    that really runs 3.5 s is one. (A paused background job must not be killed as stalled when it is resumed.)"""
    from jaxrl.run.watchdog import EXIT_STALLED

    def child(seconds: float, suspend: float) -> subprocess.CompletedProcess:
        proc = subprocess.Popen([sys.executable, "-c", _SUSPEND_CHILD, str(seconds)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        assert proc.stdout.readline().strip() == "ready"
        if suspend:
            time.sleep(0.5)
            proc.send_signal(signal.SIGSTOP)
            time.sleep(suspend)
            proc.send_signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=60)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    suspended = child(seconds=1.5, suspend=4.0)
    assert suspended.returncode == 0, suspended.stderr
    stalled = child(seconds=3.5, suspend=0)
    assert stalled.returncode == EXIT_STALLED and "STALLED after" in stalled.stderr, stalled.stderr


@pytest.mark.integration
def test_watchdog_stops_a_stalled_run_and_resume_is_exact(tmp_path):
    from jaxrl.run.watchdog import EXIT_STALLED

    code = _STALL_CHILD.format(tiny=TINY)
    flag = tmp_path / "block"
    run = lambda phase, run_dir: _python(
        f"import sys; sys.argv = ['x', {phase!r}, {str(run_dir)!r}, {str(flag)!r}]\n" + code, check=False
    )
    reference = run("train", tmp_path / "straight")  # same program, no stall
    assert reference.returncode == 0, reference.stderr
    flag.touch()
    stalled_dir = tmp_path / "stalled"
    proc = run("train", stalled_dir)
    assert proc.returncode == EXIT_STALLED, (proc.returncode, proc.stderr)
    assert "STALLED" in proc.stderr and f"jaxrl train --resume {stalled_dir}" in proc.stderr
    assert "in chunk 1 of 2" in proc.stderr
    summary = json.loads((stalled_dir / "summary.json").read_text())
    assert summary["stalled"] is True and summary["stalled_chunk"] == 1 and summary["interrupted"] is True
    assert summary["stalled_after_seconds"] >= summary["stall_bound_seconds"] > 3
    stacks = (stalled_dir / "stall-stacks.txt").read_text()
    assert "Python stacks" in stacks and "in block" in stacks  # the blocked callback's frame
    assert "native stacks" in stacks
    assert len(read_metrics(stalled_dir)) == 1
    flag.unlink()
    resumed = run("resume", stalled_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert read_metrics(stalled_dir) == read_metrics(tmp_path / "straight")
    final = json.loads((stalled_dir / "summary.json").read_text())
    assert (
        "stalled" not in final
        and final["eval_return"] == json.loads((tmp_path / "straight" / "summary.json").read_text())["eval_return"]
    )


def test_resume_of_a_finished_run_changes_nothing(alone, tmp_path):
    import shutil

    run_dir = tmp_path / "finished"
    shutil.copytree(alone[0].run_dir, run_dir)
    before = {p.relative_to(run_dir): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}
    mtimes = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    proc = subprocess.run(
        [sys.executable, "-m", "jaxrl", "train", "--resume", str(run_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, "JAXRL_COMPILATION_CACHE": "0"},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().count("\n") == 0 and "already complete" in proc.stdout
    after = {p.relative_to(run_dir): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}
    assert after == before
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")} == mtimes
    # From Python: the result is read back from disk.
    result = resume(run_dir, progress=False)
    assert result.already_complete and result.summary == alone[0].summary
    np.testing.assert_array_equal(result.metrics["eval_return"], alone[0].metrics["eval_return"])
    _assert_trees_equal(result.state, alone[0].state)


def test_resume_of_a_run_trained_on_an_env_object_needs_the_object(alone, tmp_path):
    """config.json records only an env object's label (here made to look like one: the run used a name), so a
    resume must be handed the object again; without it the error says so instead of rebuilding another env."""
    import shutil

    import jaxrl.envs

    run_dir = tmp_path / "object"
    shutil.copytree(alone[0].run_dir, run_dir)
    spec = json.loads((run_dir / "config.json").read_text())
    assert spec["env_registered"] is True
    (run_dir / "config.json").write_text(json.dumps({**spec, "env_registered": False}))
    with pytest.raises(ValueError, match="trained on an env object .* resume\\(run_dir, env=\\(env, env_params\\)\\)"):
        resume(run_dir, progress=False)
    result = resume(run_dir, env=jaxrl.envs.make(ENV), progress=False)
    assert result.already_complete and result.summary == alone[0].summary


def test_a_signal_stops_the_run_and_the_sweep_around_it():
    """A run's stop flag inside a sweep's: SIGTERM in the run's last chunk must stop the sweep too."""
    from jaxrl.run.recorder import StopRequest

    with StopRequest() as sweep, StopRequest() as run:
        os.kill(os.getpid(), signal.SIGTERM)
    assert run.signal_name == sweep.signal_name == "SIGTERM"
    with StopRequest() as alone:
        os.kill(os.getpid(), signal.SIGINT)  # no outer handler is called (the default would raise)
    assert alone.signal_name == "SIGINT"
