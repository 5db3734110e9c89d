"""Runs over several processes (jaxrl.distributed): two processes on localhost with 2 CPU devices each against one
process with 4 devices, through the `jaxrl` command as a user launches them. The end-to-end tests start several
processes and compile in each: integration stage. Bad options are one-line errors before anything starts (fast)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import types

import jax
import numpy as np
import pytest

from jaxrl.run import checkpoint as ckpt
from jaxrl.run.cli import main as cli_main

# same runs, same per-device programs (--run-block 1: one run per block wherever it runs)
PPO = [
    *["train", "ppo", "--env", "CartPole-v1", "--seeds", "4", "--num-envs", "4", "--num-steps", "16"],
    *["--eval-episodes", "2", "--run-block", "1", "--no-watchdog"],
]
TIMING = {"compile_seconds", "run_seconds", "env_steps_per_second", "devices", "process_index", "process_count"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _env(devices: int) -> dict:
    return {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "JAXRL_COMPILATION_CACHE": "0",
    }


def _start(args: list[str], out, processes: int, log_dir, port: int | None = None) -> list[subprocess.Popen]:
    """``jaxrl ARGS --out OUT`` as ``processes`` processes of 4 / processes devices each."""
    cmd = [sys.executable, "-m", "jaxrl", *args, "--out", str(out)]
    if processes == 1:
        return [subprocess.Popen(cmd, env=_env(4), stdout=open(log_dir / "p0.log", "w"), stderr=subprocess.STDOUT)]
    port = port or _free_port()
    return [
        subprocess.Popen(
            [
                *cmd,
                "--distributed",
                "--coordinator",
                f"localhost:{port}",
                "--num-processes",
                str(processes),
                "--process-id",
                str(i),
            ],
            env=_env(4 // processes),
            stdout=open(log_dir / f"p{i}.log", "w"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        for i in range(processes)
    ]


def _wait(procs, log_dir, timeout=900):
    for i, p in enumerate(procs):
        rc = p.wait(timeout=timeout)
        assert rc == 0, (log_dir / f"p{i}.log").read_text()[-3000:]


def _final_state(run_dir):
    path = ckpt.latest(run_dir / "checkpoints")
    import orbax.checkpoint as ocp

    md = ocp.StandardCheckpointer().metadata((path / "state").absolute())
    like = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), getattr(md, "item_metadata", md))
    return ckpt.restore(path, like)[0]


def _assert_same_runs(a, b):
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert {k: v for k, v in sa.items() if k not in TIMING} == {k: v for k, v in sb.items() if k not in TIMING}
    assert sa["process_count"] == 2 and "process_count" not in sb
    la, lb = jax.tree.leaves(_final_state(a)), jax.tree.leaves(_final_state(b))
    assert len(la) == len(lb) > 0
    assert all(np.array_equal(x, y) for x, y in zip(la, lb))  # bit for bit
    assert (a / "metrics.jsonl").read_text() == (b / "metrics.jsonl").read_text()


def _both(args, tmp_path, name):
    one, two = tmp_path / f"{name}-one", tmp_path / f"{name}-two"
    for out, n in ((one, 1), (two, 2)):
        logs = tmp_path / f"{name}-logs-{n}"
        logs.mkdir()
        _wait(_start(args, out, n, logs), logs)
    return one, two


@pytest.mark.integration
def test_two_processes_match_one_process_with_four_devices(tmp_path):
    one, two = _both([*PPO, "--total-env-steps", "2048", "--num-chunks", "2"], tmp_path, "ppo")
    _assert_same_runs(two, one)
    # offline: a grid over 2 datasets laid out so that each process's devices train on one of them
    paths = [_tiny_dataset(tmp_path / f"data{i}.npz", 300 + 100 * i, seed=i) for i in range(2)]
    bc = f"train td3_bc --dataset {paths[0]} --dataset {paths[1]} --grid dataset_index=0,1 --grid alpha=2.5,3 "
    bc += "--hidden 32 32 --updates-per-iteration 20 --total-env-steps 40 --num-chunks 2 --eval-episodes 1 "
    bc += "--run-block 1 --no-watchdog"
    one, two = _both(bc.split(), tmp_path, "td3_bc")
    _assert_same_runs(two, one)
    assert (one / "config.json").read_text() == (two / "config.json").read_text()  # the global dataset indices
    config = json.loads((two / "config.json").read_text())
    assert [r["point"]["dataset_index"] for r in config["runs"]] == [0, 0, 1, 1]
    assert config["env_metadata"]["dataset_rows"] == [300, 400]  # what each process knows of every file
    for i in range(2):  # each process read and holds only the file its devices' runs use
        log = (tmp_path / "td3_bc-logs-2" / f"p{i}.log").read_text()
        assert f"process {i} of 2: loaded dataset file(s) ['{paths[i]}'] (datasets [{i}] of 2)" in log, log[-2000:]


def _tiny_dataset(path, rows: int, seed: int) -> str:
    """A random Pendulum-v1 dataset file of ``rows`` transitions (episodes of 100 steps)."""
    from jaxrl.data import formats
    from jaxrl.data.dataset import DatasetInfo, make_dataset

    rng = np.random.default_rng(seed)
    obs = rng.uniform(-1, 1, (rows + 1, 3)).astype(np.float32)
    info = DatasetInfo(
        name=path.stem, kind="random", env_name="Pendulum-v1", random_return=-1200.0, expert_return=-150.0
    )
    ends = (np.arange(rows) % 100 == 99).astype(np.float32)
    data = make_dataset(
        obs[:-1], rng.uniform(-2, 2, (rows, 1)), rng.normal(size=rows), obs[1:], np.zeros(rows), ends, info=info
    )
    formats.save(data, path)
    return str(path.resolve())


@pytest.mark.integration
def test_killed_process_stops_the_other_and_resume_on_two_continues_exactly(tmp_path):
    args = [*PPO, "--total-env-steps", "12288", "--num-chunks", "6"]
    run = tmp_path / "killed"
    logs = tmp_path / "logs-killed"
    logs.mkdir()
    procs = _start(args, run, 2, logs)
    deadline = time.monotonic() + 600
    while not (run / "checkpoints" / "chunk_000001").exists():
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "no second checkpoint"
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGKILL)
    t0 = time.monotonic()
    rc = procs[0].wait(timeout=300)  # the heartbeat timeout (60 s) bounds it: no hang
    waited = time.monotonic() - t0
    assert rc != 0 and waited < 200, (rc, waited)
    log = (logs / "p0.log").read_text()
    assert "heartbeat" in log and "Task 1" in log, log[-3000:]  # names the process that died
    assert not (run / "summary.json").exists() or not json.loads((run / "summary.json").read_text()).get("eval_return")

    for i in range(2):
        (logs / f"p{i}.log").rename(logs / f"killed-p{i}.log")
    port = _free_port()
    resumed = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jaxrl",
                "train",
                "--resume",
                str(run),
                "--distributed",
                "--coordinator",
                f"localhost:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
            ],
            env=_env(2),
            stdout=open(logs / f"p{i}.log", "w"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        for i in range(2)
    ]
    _wait(resumed, logs)
    ref_logs = tmp_path / "logs-ref"
    ref_logs.mkdir()
    _wait(_start(args, tmp_path / "ref", 1, ref_logs), ref_logs)
    _assert_same_runs(run, tmp_path / "ref")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--coordinator", "localhost:1234"], "need --distributed"),
        (["--distributed", "--coordinator", "localhost:1234", "--out", "x"], "num_processes, process_id not given"),
        (["--distributed", "--coordinator", "localhost", "--num-processes", "2", "--process-id", "0", "--out", "x"],
         "expected HOST:PORT"),
        (["--distributed", "--coordinator", "localhost:1", "--num-processes", "2", "--process-id", "2", "--out", "x"],
         "must be in [0, 1]"),
        (["--distributed", "--num-processes", "2"], "--distributed needs --out"),
    ],
)  # fmt: skip
def test_bad_distributed_options_are_one_line_errors(extra, message, capsys, monkeypatch):
    for var in ("JAXRL_COORDINATOR", "JAXRL_NUM_PROCESSES", "JAXRL_PROCESS_ID"):
        monkeypatch.delenv(var, raising=False)
    assert cli_main(["train", "ppo", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error:"), err


def test_each_device_holds_its_runs_datasets_and_runs_read_them_by_slot():
    from jaxrl.envs import offline

    # 6 runs over 3 devices (2 each): datasets 0,0 | 2,1 | 1,1 -> stacks [0,0] [1,2] [1,1], slots 0 0 | 1 0 | 0 0
    layout, slots = offline.device_layout([0, 0, 2, 1, 1, 1], 3)
    assert layout == [[0, 0], [1, 2], [1, 1]] and slots.tolist() == [0, 0, 1, 0, 0, 0]
    offline.check_resumed_slots(types.SimpleNamespace(sampler=types.SimpleNamespace(index=slots)), slots)
    with pytest.raises(ValueError, match="resume an offline run on the number of devices"):
        state = types.SimpleNamespace(sampler=types.SimpleNamespace(index=np.zeros(6, np.int32)))
        offline.check_resumed_slots(state, slots)


def test_dataset_files_load_only_what_this_process_uses(tmp_path, capsys):
    from jaxrl.envs import offline

    paths = [_tiny_dataset(tmp_path / f"data{i}.npz", 30 + 10 * i, seed=i) for i in range(2)]
    files = offline.DatasetFiles("dataset:" + ",".join(paths))
    env, _ = files.load([[1], [1]], [0, 0])  # one process, both devices on dataset 1
    assert env.held == (1,) and env.num_datasets == 2 and env.valid_rows == (30, 40)
    assert env.data.observations.shape == (1, 40, 3) and env.name == "dataset:" + ",".join(paths)
    assert env.metadata()["dataset_hashes"] == offline.load_offline_env(paths)[0].metadata()["dataset_hashes"]
    assert env.stack_of([1, 1])["observations"].shape == (2, 40, 3)
    with pytest.raises(ValueError, match="not held by this process"):
        env.stack_of([0])
    assert f"loaded dataset file(s) ['{paths[1]}'] (datasets [1] of 2)" in capsys.readouterr().err


def test_a_bad_file_is_an_error_naming_it_for_every_process(tmp_path):
    from jaxrl.envs import offline

    paths = [_tiny_dataset(tmp_path / "good.npz", 30, seed=0), str(tmp_path / "bad.npz")]
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):  # published by the file's owner, raised by every process
        offline.DatasetFiles("dataset:" + ",".join(paths)).load([[0], [0]], [0, 0])
