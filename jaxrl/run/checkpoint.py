"""Atomic, keep-last-k checkpoints of a whole training state. The only module that talks to orbax.

Layout: ``checkpoints/chunk_000007/{state/, meta.json}``. A checkpoint is written to a temporary sibling and
renamed into place only when complete, so a writer killed mid-write leaves the previous checkpoints intact; the
stale temporary directory is reported and removed by :func:`latest`.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxrl import distributed

_PREFIX = "chunk_"
_TMP = ".tmp-"


def _commit(tmp: Path, final: Path) -> None:
    os.replace(tmp, final)  # atomic on POSIX: the checkpoint appears whole or not at all
    fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    """Write a small file whole or not at all (a run's summary, its metrics after a resume, a results JSON): a
    temporary sibling, flushed to disk, then committed as a checkpoint is. Parents are made."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{_TMP}{path.name}-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    _commit(tmp, path)


def save(directory: str | os.PathLike, chunk: int, state: Any, meta: dict, keep: int = 3) -> Path:
    """Write ``state`` (any pytree; arrays are fetched to the host) and ``meta`` as checkpoint ``chunk``.

    With several processes (:mod:`jaxrl.run.distributed`) every process calls this with the global state: each
    writes its own shards through orbax, and process 0 then writes the metadata and renames the checkpoint into
    place."""
    directory = Path(directory)
    final = directory / f"{_PREFIX}{chunk:06d}"
    several = distributed.is_distributed()
    # one temporary name for all processes (they write into the same directory), the writer's pid otherwise
    tmp = directory / f"{_TMP}{final.name}" if several else directory / f"{_TMP}{final.name}-{os.getpid()}"
    if distributed.is_writer():
        directory.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    distributed.sync(f"checkpoint-{chunk}-open")
    checkpointer = ocp.StandardCheckpointer()
    # several processes: the global arrays, so that each process saves the shards on its own devices
    checkpointer.save((tmp / "state").absolute(), state if several else jax.tree.map(np.asarray, jax.device_get(state)))
    checkpointer.wait_until_finished()
    checkpointer.close()
    distributed.sync(f"checkpoint-{chunk}-written")
    if distributed.is_writer():
        (tmp / "meta.json").write_text(json.dumps({**meta, "chunk": chunk}))
        if final.exists():
            shutil.rmtree(final)
        _commit(tmp, final)
        for old in list_checkpoints(directory)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    distributed.sync(f"checkpoint-{chunk}-committed")
    return final


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Complete checkpoints, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.startswith(_PREFIX) and (p / "meta.json").exists())


def latest(directory: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint. Incomplete writes (a killed writer) are warned about and removed."""
    directory = Path(directory)
    if directory.is_dir():
        for stale in [p for p in directory.iterdir() if p.name.startswith(_TMP)]:
            warnings.warn(
                f"ignoring incomplete checkpoint {stale} (its writer was interrupted); "
                f"resuming from the previous complete checkpoint",
                RuntimeWarning,
                stacklevel=2,
            )
            shutil.rmtree(stale, ignore_errors=True)
    found = list_checkpoints(directory)
    return found[-1] if found else None


def meta(path: str | os.PathLike) -> dict:
    """The metadata saved with checkpoint ``path`` (``chunk``, ``iteration``, ...)."""
    return json.loads((Path(path) / "meta.json").read_text())


def restore(path: str | os.PathLike, like: Any) -> tuple[Any, dict]:
    """Restore ``(state, meta)`` from checkpoint ``path``, shaped and typed like the pytree ``like``."""
    path = Path(path)
    target = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), like)  # arrays or ShapeDtypeStructs
    checkpointer = ocp.StandardCheckpointer()
    restored = checkpointer.restore((path / "state").absolute(), target)
    checkpointer.close()
    restored = jax.tree.map(np.asarray, restored)
    return restored, meta(path)
