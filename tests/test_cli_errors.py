"""``jaxrl train``'s answers to a new user's mistakes (issue 14): one ``error: ...`` line, exit code 2, no traceback
and nothing compiled; and the two options that were missing: ``--env`` for a dataset file that names no env (as
D4RL's own files), ``--seed`` to re-run seeds of a sweep alone."""

import importlib.util
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from jaxrl.algos.offline.common import load_offline_env
from jaxrl.data.dataset import DatasetError


def write_d4rl_file(path, env_name=None, rows=64):
    """A tiny Pendulum-shaped file in the D4RL schema; D4RL's own files name no env (``env_name=None``)."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["observations"] = rng.normal(size=(rows, 3)).astype(np.float32)
        f["actions"] = rng.uniform(-2, 2, size=(rows, 1)).astype(np.float32)
        f["rewards"] = rng.normal(size=rows).astype(np.float32)
        f["terminals"] = np.zeros(rows, bool)
        f["timeouts"] = np.arange(rows) % 32 == 31
        f["next_observations"] = rng.normal(size=(rows, 3)).astype(np.float32)
        if env_name:
            f.create_group("metadata").attrs["env_name"] = env_name
    return path


def run_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "jaxrl", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "JAXRL_COMPILATION_CACHE": "0"},
        timeout=600,
    )


@pytest.fixture
def files(tmp_path):
    write_d4rl_file(tmp_path / "nameless.hdf5")
    write_d4rl_file(tmp_path / "named.hdf5", env_name="Pendulum-v1")
    (tmp_path / "a_file").write_text("")
    return tmp_path


ERRORS = {
    "dataset-names-no-env": (["bc", "--dataset", "nameless.hdf5"], ["does not name its env", "--env"]),
    "env-differs-from-dataset": (
        ["bc", "--dataset", "named.hdf5", "--env", "MountainCarContinuous-v0"],
        ["'Pendulum-v1', not 'MountainCarContinuous-v0'", "--env"],
    ),
    "online-algo-with-dataset": (
        ["ppo", "--dataset", "named.hdf5"],
        ["ppo is not an offline algorithm; --dataset is for: ", "bc, ", "iql, "],
    ),
    "run-block-0": (["sac", "--run-block", "0"], ["--run-block", "must be >= 1"]),
    "out-is-a-file": (["sac", "--out", "a_file"], ["--out a_file", "a_file is an existing file"]),
    "out-under-a-file": (["sac", "--out", "a_file/run"], ["--out a_file/run", "a_file is an existing file"]),
    "playground-extra-missing": (
        ["sac", "--env", "playground:CartpoleBalance"],
        ["'playground:CartpoleBalance'", "pip install 'jaxrl[playground]'"],
    ),
}


@pytest.mark.parametrize("case", ERRORS)
def test_mistake_is_one_error_line(files, case):
    args, fragments = ERRORS[case]
    if case == "playground-extra-missing" and importlib.util.find_spec("mujoco_playground"):
        pytest.skip("MuJoCo Playground is installed")
    if "--out" not in args:
        args = [*args, "--out", "run"]
    proc = run_cli("train", *args, cwd=files)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "compiling" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], proc.stderr
    assert all(f in lines[-1] for f in fragments), proc.stderr
    assert not (files / "run").exists()


def test_env_option_names_the_env_of_a_nameless_dataset_and_seed_starts_the_seeds(files):
    proc = run_cli(
        "train",
        "bc",
        "--env",
        "Pendulum-v1",
        "--dataset",
        "nameless.hdf5",
        "--total-env-steps",
        200,
        "--updates-per-iteration",
        100,
        "--hidden",
        8,
        8,
        "--batch-size",
        16,
        "--num-chunks",
        1,
        "--eval-episodes",
        1,
        "--seeds",
        2,
        "--seed",
        5,
        "--out",
        "run",
        cwd=files,
    )
    assert proc.returncode == 0, proc.stderr
    config = json.loads((files / "run" / "config.json").read_text())
    summary = json.loads((files / "run" / "summary.json").read_text())
    assert config["env_metadata"]["env_name"] == summary["env_metadata"]["env_name"] == "Pendulum-v1"
    assert config["env"] == summary["env"] == f"dataset:{(files / 'nameless.hdf5').resolve()}?env=Pendulum-v1"
    assert config["seeds"] == [5, 6] and [run["seed"] for run in config["runs"]] == [5, 6]


def test_recorded_name_of_a_nameless_dataset_reloads_its_env(files):
    """``--resume`` reloads the offline env from the name in config.json: it must carry the env the files lack."""
    offline, _ = load_offline_env(files / "nameless.hdf5", "Pendulum-v1")
    assert offline.name.endswith("?env=Pendulum-v1")
    assert load_offline_env(offline.name)[0].env_name == "Pendulum-v1"
    with pytest.raises(DatasetError, match="does not name its env"):
        load_offline_env(files / "nameless.hdf5")
    named = files / "named.hdf5"
    assert load_offline_env(named, "Pendulum-v1")[0].name == f"dataset:{named.resolve()}"  # the file says it
