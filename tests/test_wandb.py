"""Weights & Biases logging (the ``wandb`` extra): an offline run holds the config, every metric per chunk (per run
and the mean), the summary and the curves; a resume continues the same W&B run; without the extra, ``--wandb`` is
one error line before anything compiles."""

import contextlib
import importlib
import importlib.util
import json
import shutil
import struct
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from jaxrl.algos.single import ppo
from jaxrl.run import cli, wandb_log
from jaxrl.run.logging import read_metrics

TINY: dict[str, Any] = dict(
    num_envs=4, num_steps=16, num_epochs=2, num_minibatches=2, hidden=(16, 16), total_env_steps=512
)
PROJECT = "jaxrl-tests"

HAVE_WANDB = importlib.util.find_spec("wandb") is not None
needs_wandb = pytest.mark.skipif(not HAVE_WANDB, reason='wandb is not installed (pip install -e ".[wandb]")')


# The .wandb file's framing (stable across wandb releases; its Python reader is not: wandb 0.31 dropped
# wandb.sdk.internal.datastore): a 7-byte file header (":W&B", magic 0xBEE1, version), then 32 KiB blocks of records,
# each a 7-byte header (crc32 of type + data, length, type: full / first / middle / last) and a protobuf Record
# or a piece of one; a block's tail shorter than a header is zero padding.
_BLOCK, _HEADER, _FULL, _FIRST, _LAST = 32768, 7, 1, 2, 4


def wandb_records(path: Path) -> list[bytes]:
    """The serialised records of a ``.wandb`` file, checksums checked."""
    data = path.read_bytes()
    ident, magic, _ = struct.unpack("<4sHB", data[:_HEADER])
    assert (ident, magic) == (b":W&B", 0xBEE1), path
    records, pending, pos = [], b"", _HEADER
    while pos + _HEADER <= len(data):
        if _BLOCK - pos % _BLOCK < _HEADER:  # padding at a block's end
            pos += _BLOCK - pos % _BLOCK
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        if kind == 0:  # zero-filled rest of a block
            pos += _BLOCK - pos % _BLOCK
            continue
        if pos + _HEADER + length > len(data):  # being written
            break
        piece = data[pos + _HEADER : pos + _HEADER + length]
        assert zlib.crc32(piece, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF == crc, f"{path}: bad checksum at {pos}"
        pending = piece if kind in (_FULL, _FIRST) else pending + piece
        if kind in (_FULL, _LAST):
            records.append(pending)
        pos += _HEADER + length
    return records


def read_offline_run(run_file: Path) -> dict:
    """An offline run's id, config, history rows and summary, read from its ``.wandb`` file."""
    protos = importlib.import_module("wandb.proto.wandb_internal_pb2")  # generated: no types
    items = lambda entries: {e.key or "/".join(e.nested_key): json.loads(e.value_json) for e in entries}
    out: dict = {"config": {}, "history": [], "summary": {}, "run_id": None, "finished": False}
    for data in wandb_records(run_file):
        record = protos.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["run_id"] = record.run.run_id
            out["config"].update(items(record.run.config.update))
        elif kind == "config":
            out["config"].update(items(record.config.update))
        elif kind == "history":
            out["history"].append(items(record.history.item))
        elif kind == "summary":
            out["summary"].update(items(record.summary.update))
        elif kind == "exit":
            out["finished"] = True
    return out


def finished_run(run_file: Path, timeout: float = 60.0) -> dict:
    """:func:`read_offline_run` once the run's exit record is on disk: wandb-core may write the file's records
    after ``run.finish()`` returns (seen with wandb 0.31 in offline mode)."""
    deadline = time.monotonic() + timeout
    while not (run := read_offline_run(run_file))["finished"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert run["finished"], f"{run_file} has no exit record after {timeout} s"
    return run


@contextlib.contextmanager
def offline(tmp: Path):
    """W&B offline and quiet, its settings and caches under ``tmp``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
            mp.setenv(var, str(tmp / var.lower()))
        yield


def offline_files(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))  # names start with the time


OPTIONS: dict[str, Any] = dict(seeds=2, num_chunks=2, eval_episodes=1, tensorboard=False, progress=False)


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    """Two seeds of tiny PPO in two chunks, logged to W&B offline."""
    from jaxrl.run import train

    tmp = tmp_path_factory.mktemp("wandb")
    with offline(tmp):
        result = train("ppo", "CartPole-v1", ppo.Config(**TINY), out_dir=tmp / "run", wandb=PROJECT, **OPTIONS)
    return result.run_dir


def check_config(config: dict, run_dir: Path) -> None:
    """The W&B config is config.json's: algorithm, env, every config field, seeds, grid, runs."""
    spec = json.loads((run_dir / "config.json").read_text())
    assert config["algo"] == "ppo" and config["env"] == "CartPole-v1"
    assert config["seeds"] == [0, 1] and config["grid"] == {} and config["runs"] == spec["runs"]
    assert config["config"] == spec["config"] and config["config"]["num_envs"] == 4


def check_rows(history: list[dict], run_dir: Path) -> None:
    """Every metric of metrics.jsonl, per run and the mean over runs, once per chunk."""
    records = read_metrics(run_dir)
    rows = [r for r in history if "chunk" in r]
    assert [r["chunk"] for r in rows] == [0, 1] and [r["env_steps"] for r in rows] == [256, 512]
    for record, row in zip(records, rows):
        for name, values in record.items():
            if isinstance(values, list):
                assert row[f"{name}/run_0"] == pytest.approx(values[0]), name
                assert row[f"{name}/run_1"] == pytest.approx(values[1]), name
                assert row[f"{name}/mean"] == pytest.approx(sum(values) / 2), name
    assert {"eval_return/run_0", "policy_loss/mean", "entropy/run_1"} <= set(rows[0])


def check_summary(summary: dict, run_dir: Path) -> None:
    """summary.json's numbers, and the curves' PNG logged as an image."""
    expected = json.loads((run_dir / "summary.json").read_text())
    assert summary["eval_return_mean"] == pytest.approx(expected["eval_return_mean"])
    assert summary["eval_return_best/run_1"] == pytest.approx(expected["eval_return_best"][1])
    assert summary["iterations"] == expected["iterations"] == 8 and summary["interrupted"] is False
    assert summary["curves/_type"] == "image-file" and summary["curves/path"].startswith("media/images/curves")


@needs_wandb
def test_offline_run_holds_config_metrics_summary_and_curves(offline_run):
    run_dir = offline_run
    state = json.loads((run_dir / wandb_log.STATE_FILE).read_text())
    assert state == {"id": state["id"], "project": PROJECT, "mode": "offline"}
    (run_file,) = offline_files(run_dir)
    assert run_file.name == f"run-{state['id']}.wandb"
    run = finished_run(run_file)
    assert run["run_id"] == state["id"]
    check_config(run["config"], run_dir)
    check_rows(run["history"], run_dir)
    check_summary(run["summary"], run_dir)
    assert list((run_file.parent / "files" / "media" / "images").glob("curves_*.png"))


@needs_wandb
def test_a_resumed_run_continues_its_wandb_run(offline_run, tmp_path):
    """What a resume does (the recorder reopens with ``wandb=None`` and no config): the same W&B id and project,
    the config read back from config.json; ``wandb=False`` turns it off."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("config.json", wandb_log.STATE_FILE):
        shutil.copy(offline_run / name, run_dir / name)
    state = json.loads((run_dir / wandb_log.STATE_FILE).read_text())
    with offline(tmp_path):
        assert wandb_log.WandbLog.open(False, run_dir, None, resuming=True) is None
        log = wandb_log.WandbLog.open(None, run_dir, None, resuming=True)
        assert log is not None
        log.write({"chunk": 1, "iteration": 8, "env_steps": 512, "eval_return": [1.0, 3.0]})
        log.finish({"iterations": 8, "interrupted": False})
    (run_file,) = offline_files(run_dir)
    run = finished_run(run_file)
    assert run["run_id"] == state["id"] and json.loads((run_dir / wandb_log.STATE_FILE).read_text()) == state
    assert run["config"]["config"] == json.loads((run_dir / "config.json").read_text())["config"]
    assert run["history"][0]["eval_return/mean"] == 2.0 and run["summary"]["iterations"] == 8


@needs_wandb
@pytest.mark.integration
def test_jaxrl_train_resume_continues_the_wandb_run(tmp_path):
    """End to end: stopped after chunk 0, `jaxrl train --resume` logs chunk 1 and the summary to the same W&B run."""
    from jaxrl.run import train

    run_dir = tmp_path / "run"
    with offline(tmp_path):
        cfg = ppo.Config(**TINY)
        first = train("ppo", "CartPole-v1", cfg, out_dir=run_dir, stop_after_chunks=1, wandb=PROJECT, **OPTIONS)
        assert first.interrupted
        first_id = json.loads((run_dir / wandb_log.STATE_FILE).read_text())["id"]
        assert cli.main(["train", "--resume", str(run_dir)]) == 0
    files = offline_files(run_dir)
    assert [f.name for f in files] == [f"run-{first_id}.wandb"] * 2
    before, after = (finished_run(f) for f in files)
    assert before["run_id"] == after["run_id"] == first_id
    assert before["summary"]["interrupted"] is True
    check_config(before["config"], run_dir)
    check_rows(before["history"] + after["history"], run_dir)
    check_summary(after["summary"], run_dir)


@pytest.fixture
def no_wandb(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError


@pytest.mark.parametrize("flag", [["--wandb"], ["--wandb", "my-project"]])
def test_wandb_without_the_extra_is_one_error_line(no_wandb, flag, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "ppo", *flag, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == 'error: --wandb needs the wandb extra: pip install -e ".[wandb]"\n'
    assert not out.exists()  # the one line and nothing else: it stopped before "compiling ..." and the run directory


def test_train_wandb_without_the_extra_raises_before_compiling(no_wandb):
    from jaxrl.run import train

    with pytest.raises(ValueError, match=r"needs the wandb extra"):
        train("ppo", "CartPole-v1", ppo.Config(**TINY), wandb="p", progress=False)


def test_wandb_option_parses_to_a_project(tmp_path, capsys):
    import tyro

    args_class = cli._train_args_class(ppo, "CartPole-v1")
    parse = lambda *argv: tyro.cli(args_class, args=list(argv))
    assert parse().wandb_project() is None
    if HAVE_WANDB:
        assert parse("--wandb").wandb_project() is True
        assert parse("--wandb", "p", "--seeds", "2").wandb_project() == "p"
    assert cli.main(["train", "ppo", "--wandb", "a", "b", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == "error: --wandb takes at most one project name, got a b\n"


def test_chunk_rows_per_run_and_mean_multitask_records_average_tasks():
    row = wandb_log.chunk_row({"chunk": 3, "iteration": 8, "env_steps": 512, "eval_return": [[1.0, 3.0], [5.0, 7.0]]})
    assert row == {
        "env_steps": 512,
        "iteration": 8,
        "chunk": 3,
        "eval_return/run_0": 2.0,
        "eval_return/run_1": 6.0,
        "eval_return/mean": 4.0,
    }
    fields = wandb_log.summary_fields({"algo": "ppo", "eval_return_mean": 4.0, "runs": [{}], "devices": ["cpu:0"]})
    assert fields == {"eval_return_mean": 4.0, "devices": "cpu:0"}
