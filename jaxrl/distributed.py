"""Runs over several processes (hosts) on JAX's own multi-controller runtime (``jax.distributed``).

Every process runs the same ``jaxrl train ... --distributed`` command (or calls :func:`initialize` first thing in a
script: before ``jaxrl.run`` is imported, since gymnax builds arrays at import time and JAX must be joined before
any computation). :func:`initialize` joins them into one JAX runtime; the run
loop then lays the run axis over a 1-D mesh of every process's devices (:func:`jaxrl.run.train`), so each process
computes its share of the runs. Between chunks the per-run metrics are gathered to every process
(:func:`to_host`); process 0 alone writes the run directory (config, metrics, summary, curves, TensorBoard). A
checkpoint is written by all processes together, each its own shards of the state, through orbax's multi-process
support (:mod:`jaxrl.run.checkpoint`), and a resume on the same number of processes continues exactly.

Where the processes find each other, first match wins:

1. explicit arguments (the CLI's ``--coordinator HOST:PORT --num-processes N --process-id I``);
2. ``JAXRL_COORDINATOR`` / ``JAXRL_NUM_PROCESSES`` / ``JAXRL_PROCESS_ID``;
3. the cluster JAX detects by itself: a SLURM job step (one task per process), a Cloud TPU pod, Open MPI, ...

On CPU the processes' collectives go through gloo. The run directory must be on a filesystem every process sees
(a cluster's shared filesystem, or one machine).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

__all__ = [
    "initialize",
    "join_from_argv",
    "is_distributed",
    "is_writer",
    "to_host",
    "local",
    "put_global",
    "exchange",
    "sync",
]

ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID = "JAXRL_COORDINATOR", "JAXRL_NUM_PROCESSES", "JAXRL_PROCESS_ID"


def _int_env(name: str) -> int | None:
    value = os.environ.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r}: expected an integer") from None


def settings(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> dict[str, Any]:
    """The coordinator address, process count and id from the arguments, else the ``JAXRL_*`` variables (None:
    left to JAX's cluster detection). Checked here, before anything starts: a clear error names what is wrong."""
    coordinator = coordinator or os.environ.get(ENV_COORDINATOR) or None
    num_processes = num_processes if num_processes is not None else _int_env(ENV_NUM_PROCESSES)
    process_id = process_id if process_id is not None else _int_env(ENV_PROCESS_ID)
    given = {"coordinator": coordinator, "num_processes": num_processes, "process_id": process_id}
    if any(v is not None for v in given.values()) and any(v is None for v in given.values()):
        missing = [k for k, v in given.items() if v is None]
        raise ValueError(
            f"distributed: {', '.join(missing)} not given; give all three of --coordinator HOST:PORT, "
            f"--num-processes N and --process-id I (or {ENV_COORDINATOR}, {ENV_NUM_PROCESSES}, {ENV_PROCESS_ID}), "
            "or none of them on a cluster JAX detects (SLURM, Cloud TPU)"
        )
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"distributed: num_processes={num_processes}: must be >= 1")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"distributed: process_id={process_id}: must be in [0, {num_processes - 1}]")
    if coordinator is not None and ":" not in coordinator:
        raise ValueError(f"distributed: coordinator={coordinator!r}: expected HOST:PORT")
    return given


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    heartbeat_timeout_s: int = 60,
    initialization_timeout_s: int = 300,
) -> None:
    """Join this process to the others (before any JAX computation). ``heartbeat_timeout_s``: how long the others
    wait for a process that stopped answering before they stop with an error (instead of hanging)."""
    given = settings(coordinator, num_processes, process_id)
    if jax.distributed.is_initialized():
        return
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        raise RuntimeError(
            "distributed: JAX has already computed something in this process, so it can no longer join others; "
            "call jaxrl.distributed.initialize() first thing, before importing jaxrl.run (the `jaxrl` command "
            "does this for --distributed)"
        )
    if jax.config.jax_platforms in (None, "", "cpu") or "cpu" in str(jax.config.jax_platforms):
        # CPU collectives across processes need a transport; gloo ships with jaxlib
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=given["coordinator"],
        num_processes=given["num_processes"],
        process_id=given["process_id"],
        heartbeat_timeout_seconds=heartbeat_timeout_s,
        initialization_timeout=initialization_timeout_s,
    )


def join_from_argv(argv: list[str]) -> None:
    """The ``jaxrl`` command's early step: with ``--distributed`` among the arguments, join the other processes
    (``--coordinator``, ``--num-processes``, ``--process-id``, or the environment) before anything imports JAX's
    backend. The option parser checks the same options again later."""
    if "--distributed" not in argv:
        return
    values: dict[str, str] = {}
    for i, arg in enumerate(argv):
        for name in ("--coordinator", "--num-processes", "--process-id"):
            if arg == name and i + 1 < len(argv):
                values[name] = argv[i + 1]
            elif arg.startswith(name + "="):
                values[name] = arg.split("=", 1)[1]

    def as_int(name: str) -> int | None:
        if name not in values:
            return None
        try:
            return int(values[name])
        except ValueError:
            raise ValueError(f"{name} {values[name]!r}: expected an integer") from None

    initialize(values.get("--coordinator"), as_int("--num-processes"), as_int("--process-id"))


def is_distributed() -> bool:
    return jax.process_count() > 1


def is_writer() -> bool:
    """Whether this process writes the run directory (process 0)."""
    return jax.process_index() == 0


def to_host(tree: Any) -> Any:
    """Every leaf as a full numpy array on every process (a collective when several processes take part)."""
    if not is_distributed():
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))


def local(tree: Any) -> Any:
    """``tree`` readable in this process: unchanged on one process; with several, every leaf gathered to host."""
    return to_host(tree) if is_distributed() else tree


def put_global(tree: Any, sharding: jax.sharding.Sharding) -> Any:
    """Host arrays (the same on every process) as global arrays laid out by ``sharding``; each process places
    only the shards on its own devices."""
    if not is_distributed():
        return jax.device_put(tree, sharding)

    def put(x):
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return jax.tree.map(put, tree)


_exchanges = itertools.count()  # every process calls exchange() in the same order: the n-th calls pair up


def exchange(items: Mapping[int, bytes], count: int, timeout_s: int = 600) -> list[bytes]:
    """Items ``0..count-1`` of a table the processes fill together: each gives the items it has (every item by
    exactly one process), and every process gets the whole table. Through the coordinator's key-value store, not
    the devices; one process: ``items`` must hold them all."""
    round_ = next(_exchanges)
    if not is_distributed():
        return [items[i] for i in range(count)]
    from jax._src.distributed import global_state

    client = global_state.client
    if client is None:
        raise RuntimeError("distributed: exchange() needs jax.distributed to be initialised")
    for i, value in items.items():
        client.key_value_set_bytes(f"jaxrl/exchange/{round_}/{i}", value)
    return [client.blocking_key_value_get_bytes(f"jaxrl/exchange/{round_}/{i}", timeout_s * 1000) for i in range(count)]


def sync(name: str) -> None:
    """A barrier across processes (nothing on one process)."""
    if is_distributed():
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
