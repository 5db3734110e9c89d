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
    data = tmp_path / "random.hdf5"
    subprocess.run(
        [sys.executable, "-m", "jaxrl", "dataset", "make", "Pendulum-v1", "--kind", "random", "--size", "2000",
         "--out", str(data)],
        check=True, env=_env(1), capture_output=True,
    )  # fmt: skip
    bc = f"train td3_bc --dataset {data} --seeds 4 --hidden 32 32 --updates-per-iteration 50 --total-env-steps 100 "
    bc += "--num-chunks 2 --eval-episodes 1 --run-block 1 --no-watchdog"
    one, two = _both(bc.split(), tmp_path, "td3_bc")
    _assert_same_runs(two, one)


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
