"""The offline "env": stacked datasets of one env (on device) and that env for evaluation, loaded from files or
arrays, and the checks that run before anything compiles.

The offline env passed to ``jaxrl.run.train`` is an :class:`OfflineEnv` paired with the real env's params:
``train("iql", env=load_offline_env(["medium.hdf5", "medium-replay.hdf5"]))``. It holds the datasets stacked
``[D, N, ...]`` (padded to one size with a validity mask, :func:`jaxrl.data.dataset.stack`), with actions rescaled
to the agent's ``[-1, 1]`` box.

**Where the data lives.** The run loop does not close its programs over the stack: it lays the data out per device,
as a program input sharded like the runs (:func:`device_layout`, :func:`shard_datasets`). Each device holds the
stack of the datasets *its* runs train on (sorted, padded to the widest device's count ``K`` by repeating one), and
each run's ``dataset_index`` is replaced, on device only, by its slot in that stack; config.json, metrics and
summaries keep the global index. The slot (hence ``State.sampler.index``) depends only on the run-to-device layout,
so one process with 4 devices and two processes with 2 each compute the same runs bit for bit, and a resume must
use the same number of devices (checked: :func:`check_resumed_slots`).

**Several processes** (:mod:`jaxrl.distributed`): a run on a ``dataset:`` name is loaded by :class:`DatasetFiles`
after the run layout is known: each process reads only the files its devices' runs use and holds only those (its
:attr:`OfflineEnv.data` is the stack of :attr:`OfflineEnv.held`, padded to the global row count). What every
process must know of every file (its info, size, valid rows, sha256: for the padding, the batch-size check, the
normalised score and config.json) is published through JAX's distributed key-value store by the file's owner, the
lowest process that loads it; a file no run uses is read by process 0 for those facts alone and dropped. A bad file
is an error on every process (its owner publishes the message), not a hang. (An :class:`OfflineEnv` object passed
in Python was loaded whole by whoever built it; its devices still get only their runs' datasets.)

Why not let each process close its programs over its own smaller stack? That works on CPU (checked: processes may
compile programs that differ in a closed-over constant's values and shape when the program has no cross-device
collectives), but JAX's multi-controller contract is one SPMD program on all processes, a closed-over constant is
copied to every local device, and the stack position recorded in the state would depend on the process count; a
sharded input avoids all three.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl.config import ConfigError
from jaxrl.data import dataset as ds
from jaxrl.data.dataset import Dataset, DatasetError

__all__ = [
    "ACTION_EPS",
    "OfflineEnv",
    "array_sha256",
    "file_sha256",
    "make_offline_env",
    "load_offline_env",
    "check_offline_env",
    "check_batch_size",
    "check_dataset_index",
    "DatasetFiles",
    "device_layout",
    "shard_datasets",
    "check_resumed_slots",
]

ACTION_EPS = 1e-4  # dataset actions are clipped to [-1 + eps, 1 - eps] so tanh policies' log-probs stay finite


class OfflineEnv:
    """Stacked datasets ``[D, N, ...]`` of one env (on device) and that env, for evaluation.

    ``data``: a stacked :class:`Dataset` (actions in ``[-1, 1]``); ``infos``: each member's
    :class:`~jaxrl.data.dataset.DatasetInfo`; ``env``/``env_params``: the real env; ``paths``/``hashes``: where
    the datasets came from (``None`` for in-memory ones) and the sha256 of their files (or arrays).
    """

    def __init__(
        self,
        data: Dataset,
        infos: Sequence[ds.DatasetInfo],
        env: Any,
        env_params: Any,
        env_name: str,
        paths: Sequence[str | None],
        hashes: Sequence[str],
        *,
        held: Sequence[int] | None = None,
        valid_rows: Sequence[int] | None = None,
    ):
        self.data = data
        self.infos = tuple(infos)
        self.env = env
        self.env_params = env_params
        self.env_name = env_name
        self.paths = tuple(paths)
        self.hashes = tuple(hashes)
        self.num_datasets = len(self.infos)
        # the global indices of the datasets in `data` (all of them unless a process loaded only its own)
        self.held = tuple(range(self.num_datasets)) if held is None else tuple(int(i) for i in held)
        if valid_rows is None:
            valid_rows = [int(n) for n in np.asarray(jnp.sum(data.stacked_mask() > 0, axis=-1))]
        self.valid_rows = tuple(int(n) for n in valid_rows)  # every dataset's, held or not
        # The name the run loop records (config.json "env"); `dataset:` names reload through jaxrl.run.train.
        if all(p is not None for p in self.paths):
            self.name = "dataset:" + ",".join(cast(tuple[str, ...], self.paths))  # all set (checked above)
        else:
            self.name = f"offline:{env_name}:" + "+".join(i.kind or i.name or "data" for i in self.infos)

    # The real env's spaces, so `action_dim(env, params)` etc. work on the offline env too.
    def action_space(self, params=None):
        return self.env.action_space(params if params is not None else self.env_params)

    def observation_space(self, params=None):
        return self.env.observation_space(params if params is not None else self.env_params)

    @property
    def random_return(self) -> float | None:
        return self.infos[0].random_return

    @property
    def expert_return(self) -> float | None:
        return self.infos[0].expert_return

    def with_data(self, data: Dataset) -> OfflineEnv:
        """This env with ``data`` as its stack (inside a program: the device's stack, indexed by slot)."""
        out = copy.copy(self)
        out.data = data
        return out

    def stack_of(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
        """The held datasets ``indices`` (global) stacked, as numpy arrays by field (a device's stack)."""
        missing = sorted(set(indices) - set(self.held))
        if missing:
            raise ValueError(f"datasets {missing} are not held by this process (it holds {list(self.held)})")
        rows = np.asarray([self.held.index(i) for i in indices])
        fields = {f.name: getattr(self.data, f.name) for f in dataclasses.fields(self.data) if f.name != "info"}
        return {k: np.asarray(v)[rows] for k, v in fields.items() if v is not None}

    def metadata(self) -> dict:
        """What config.json records: dataset paths, hashes, kinds, sizes and reference returns."""
        return {
            "offline": True,
            "env_name": self.env_name,
            "dataset_paths": list(self.paths),
            "dataset_hashes": list(self.hashes),
            "dataset_kinds": [i.kind for i in self.infos],
            "dataset_names": [i.name for i in self.infos],
            "dataset_rows": list(self.valid_rows),
            "random_return": self.random_return,
            "expert_return": self.expert_return,
        }


def array_sha256(d: Dataset) -> str:
    """sha256 of a dataset's arrays (name and bytes of each, sorted by name): the same for the same data in any
    file format."""
    h = hashlib.sha256()
    for name, x in sorted(ds.to_numpy(d).items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()


def file_sha256(path: str) -> str:
    """sha256 of a dataset file's bytes (of every file under a directory, in sorted order): what a run's
    ``env_metadata.dataset_hashes`` records."""
    h = hashlib.sha256()
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _real_env(env_names: set[str], env: str | tuple[Any, Any] | None) -> tuple[Any, Any, str]:
    """``(env, env_params, name)`` of the datasets' env: ``env`` if given, else the one their infos name."""
    from jaxrl import envs
    from jaxrl.envs.wrappers import is_discrete

    if len(env_names) > 1:
        raise DatasetError(
            f"info.env_name: the datasets come from different envs {sorted(env_names)}; stack datasets of one env"
        )
    if env is None:
        if not env_names:
            raise DatasetError("info.env_name: the dataset does not name its env; pass env=")
        env = next(iter(env_names))
    env_name = env if isinstance(env, str) else getattr(env[0], "name", type(env[0]).__name__)
    env_obj, env_params = envs.make(env) if isinstance(env, str) else env
    if is_discrete(env_obj, env_params):
        raise DatasetError("actions: offline algorithms here need a continuous (Box) action space")
    return env_obj, env_params, env_name


def _prepare(datasets: dict[int, Dataset], env_obj: Any, env_params: Any, env_name: str) -> list[Dataset]:
    """Datasets ``{global index: dataset}`` checked against the env, actions rescaled to ``[-1, 1]``."""
    from jaxrl.envs.wrappers import action_dim, obs_dim

    n_act, n_obs = action_dim(env_obj, env_params), obs_dim(env_obj, env_params)
    space = env_obj.action_space(env_params)
    low = np.broadcast_to(np.asarray(space.low, np.float32), (n_act,))
    high = np.broadcast_to(np.asarray(space.high, np.float32), (n_act,))
    prepared = []
    for i, d in datasets.items():
        where = f"dataset {i}" + (f" ({d.info.name})" if d.info.name else "")
        try:
            ds.validate(d, action_dim=n_act, obs_dim=n_obs)
        except DatasetError as e:
            raise DatasetError(f"{where} does not fit env {env_name!r}: {e}") from None
        if d.mask is not None and int(np.sum(np.asarray(d.mask) > 0)) == 0:
            raise DatasetError(f"{where}: dataset is empty (no valid rows)")
        a = np.asarray(d.actions, np.float32)
        a = 2.0 * (a - low) / (high - low) - 1.0
        a = np.clip(a, -1.0 + ACTION_EPS, 1.0 - ACTION_EPS)
        prepared.append(dataclasses.replace(d, actions=jnp.asarray(a), next_actions=None))
    return prepared


def make_offline_env(
    datasets: Dataset | Sequence[Dataset],
    env: str | tuple[Any, Any] | None = None,
    *,
    paths: Sequence[str | None] | None = None,
    hashes: Sequence[str] | None = None,
):
    """``(OfflineEnv, env_params)`` from in-memory datasets (one env; ``env`` defaults to their ``env_name``).

    Raises :class:`DatasetError` before anything compiles for: no datasets, an empty dataset, NaN/inf anywhere,
    an observation or action dimension that does not match the env, discrete actions, datasets of different
    envs.
    """
    datasets = [datasets] if isinstance(datasets, Dataset) else list(datasets)
    if not datasets:
        raise DatasetError("observations: no datasets given")
    env_obj, env_params, env_name = _real_env({d.info.env_name for d in datasets if d.info.env_name}, env)
    data = ds.stack(_prepare(dict(enumerate(datasets)), env_obj, env_params, env_name))
    paths = list(paths) if paths is not None else [None] * len(datasets)
    hashes = list(hashes) if hashes is not None else [array_sha256(d) for d in datasets]
    offline = OfflineEnv(data, [d.info for d in datasets], env_obj, env_params, env_name, paths, hashes)
    return offline, env_params


def _files_and_env(paths: str | os.PathLike | Sequence[str | os.PathLike], env: Any) -> tuple[list[str], Any]:
    """The files a path list or ``dataset:`` name lists (each must exist) and the env it names, if any."""
    if isinstance(paths, (str, os.PathLike)):
        text = str(paths)
        if text.startswith("dataset:"):
            text, _, recorded_env = text[len("dataset:") :].partition("?env=")
            env = env or recorded_env or None
            paths = [p for p in text.split(",") if p]
        else:
            paths = [text]
    files: list[str] = [str(p) for p in paths]
    for p in files:
        if not Path(p).exists():
            raise FileNotFoundError(
                f"dataset file {p!r} does not exist (make one with `jaxrl dataset make ENV --kind medium --out FILE`)"
            )
    return files, env


def _check_env_names(files: Sequence[str], infos: Sequence[ds.DatasetInfo], env: Any) -> bool:
    """Whether the files name their env; a file naming another env than ``env``, or no env named, is an error."""
    named = any(i.env_name for i in infos)
    if env is None and not named:
        raise DatasetError(
            f"info.env_name: the dataset does not name its env ({', '.join(files)}): pass env= (--env "
            f"on the command line)"
        )
    if isinstance(env, str):
        for p, i in zip(files, infos):
            if i.env_name and i.env_name != env:
                raise DatasetError(
                    f"info.env_name: dataset {p!r} is of env {i.env_name!r}, not {env!r} "
                    f"(env= / --env); leave the env out to use the dataset's"
                )
    return named


def load_offline_env(paths: str | os.PathLike | Sequence[str | os.PathLike], env: str | tuple | None = None):
    """``(OfflineEnv, env_params)`` from dataset files (D4RL HDF5, Minari dir or npz); see :func:`make_offline_env`.

    ``env`` is needed for files that do not name their env (D4RL's own); a file that names another env is an
    error. A ``"dataset:a.hdf5,b.hdf5"`` string (the name recorded in a run's config.json, ending ``?env=NAME``
    when only ``env`` named the env) works too.
    """
    from jaxrl.data import formats

    files, env = _files_and_env(paths, env)
    datasets = [formats.load(p) for p in files]
    named = _check_env_names(files, [d.info for d in datasets], env)
    offline, env_params = make_offline_env(
        datasets, env, paths=[str(Path(p).resolve()) for p in files], hashes=[file_sha256(p) for p in files]
    )
    if isinstance(env, str) and not named:
        offline.name += f"?env={env}"  # the files do not say: the recorded name must, so that a resume finds it
    return offline, env_params


class DatasetFiles:
    """A ``dataset:`` name whose files are not read yet: in a multi-process run the run loop builds its offline env
    with :meth:`load` once the run layout says which files this process's devices use (see the module docstring).
    """

    def __init__(self, name: str, env: str | None = None):
        self.files, self.env = _files_and_env(name, env)
        self.name = name

    def load(self, device_datasets: Sequence[Sequence[int]], device_process: Sequence[int]):
        """``(OfflineEnv, env_params)`` holding the datasets this process's devices use.

        ``device_datasets``: each device's datasets (global indices, every device of every process, in mesh
        order); ``device_process``: each device's process index.
        """
        from jaxrl import distributed

        me, count = jax.process_index(), len(self.files)
        mine = sorted({i for lst, p in zip(device_datasets, device_process) if p == me for i in lst})
        users: dict[int, set[int]] = {}
        for lst, p in zip(device_datasets, device_process):
            for i in lst:
                users.setdefault(i, set()).add(p)
        owned = [i for i in range(count) if min(users.get(i, {0})) == me]
        loaded, facts, error = self._read(sorted(set(mine) | set(owned)), mine, owned)
        every = [pickle.loads(b) for b in distributed.exchange(facts, count)]
        for f in [{"error": error}] * bool(error) + every:
            if "error" in f:
                raise DatasetError(f["error"])
        infos = [f["info"] for f in every]
        named = _check_env_names(self.files, infos, self.env)
        env_obj, env_params, env_name = _real_env({i.env_name for i in infos if i.env_name}, self.env)
        problem = b""
        try:
            prepared = _prepare(loaded, env_obj, env_params, env_name)
        except DatasetError as e:
            problem = str(e).encode()
        for message in distributed.exchange({me: problem}, jax.process_count()):
            if message:
                raise DatasetError(message.decode())
        rows = max(f["size"] for f in every)
        data = ds.stack([ds.pad_to(d, rows) for d in prepared])
        paths = [str(Path(p).resolve()) for p in self.files]
        offline = OfflineEnv(
            data, infos, env_obj, env_params, env_name, paths, [f["hash"] for f in every],
            held=mine, valid_rows=[f["valid"] for f in every],
        )  # fmt: skip
        if isinstance(self.env, str) and not named:
            offline.name += f"?env={self.env}"
        print(
            f"process {me} of {jax.process_count()}: loaded dataset file(s) {[self.files[i] for i in mine]} "
            f"(datasets {mine} of {count}), the ones its devices' runs use",
            file=sys.stderr,
            flush=True,
        )
        return offline, env_params

    def _read(self, indices: list[int], mine: list[int], owned: list[int]) -> tuple[dict, dict[int, bytes], str]:
        """Read files ``indices``: keep ``mine``; for ``owned`` the facts every process needs (or the error, which
        goes to every owned key, so that no process waits for facts that will not come)."""
        from jaxrl.data import formats

        loaded: dict[int, Dataset] = {}
        facts: dict[int, bytes] = {}
        where = ""
        try:
            for i in indices:
                where = self.files[i]
                d = formats.load(where)
                if i in owned:
                    valid = d.size if d.mask is None else int(np.sum(np.asarray(d.mask) > 0))
                    fact = {"info": d.info, "size": d.size, "valid": valid, "hash": file_sha256(self.files[i])}
                    facts[i] = pickle.dumps(fact)
                if i in mine:
                    loaded[i] = d
        except Exception as e:  # any reader's error (a corrupt zip, a bad HDF5 header): every process must hear it
            error = f"dataset file {where!r}: {type(e).__name__}: {e}"
            return {}, {j: pickle.dumps({"error": error}) for j in owned}, error
        return loaded, facts, ""


def device_layout(dataset_of_run: Sequence[int] | np.ndarray, num_devices: int) -> tuple[list[list[int]], np.ndarray]:
    """``(device_datasets, slots)`` of the padded run axis (``num_devices`` equal blocks of runs, one a device).

    Each device's datasets are those its runs use, sorted, padded to the widest device's count by repeating the
    last; ``slots[r]``: run ``r``'s position in its device's stack (what its config's ``dataset_index`` becomes
    on device).
    """
    per_device = len(dataset_of_run) // num_devices
    lists = [
        sorted({int(i) for i in dataset_of_run[d * per_device : (d + 1) * per_device]}) for d in range(num_devices)
    ]
    slots = np.asarray([lists[r // per_device].index(int(i)) for r, i in enumerate(dataset_of_run)], np.int32)
    width = max(len(lst) for lst in lists)
    return [lst + lst[-1:] * (width - len(lst)) for lst in lists], slots


def check_resumed_slots(state: Any, slots: np.ndarray) -> None:
    """A resumed run's datasets must sit in the device stacks where its checkpoint's runs read them: the slots the
    checkpoint's samplers (``state.sampler.index``, ``[R]``) hold must be those of this layout (they change with
    the number of devices); else a clear error, not runs silently reading another dataset."""
    sampler = getattr(state, "sampler", None)
    index = getattr(sampler, "index", None)
    if index is None or np.shape(index) != np.shape(slots):
        return
    if not np.array_equal(np.asarray(index), slots):
        raise ValueError(
            f"the checkpoint's runs read their datasets at stack positions {np.asarray(index).tolist()}, but "
            f"over {jax.device_count()} devices they sit at {slots.tolist()}: resume an offline run on the number "
            "of devices (processes x devices each) it was trained on"
        )


def shard_datasets(env: OfflineEnv, device_datasets: Sequence[Sequence[int]], sharding: Any) -> Dataset:
    """The global ``[devices * K, N, ...]`` stack laid out by ``sharding`` (over the run axis): each device gets the
    stack of its datasets; each process builds only its own devices' shards (``jax.make_array_from_callback`` asks
    each process for its own devices' blocks only)."""
    width = len(device_datasets[0])
    position = {d: k for k, d in enumerate(sharding.mesh.devices.flat)}
    local = {position[d]: env.stack_of(device_datasets[position[d]]) for d in sharding.addressable_devices}
    like = next(iter(local.values()))

    def leaf(name: str) -> jax.Array:
        shape = (len(device_datasets) * width, *like[name].shape[1:])
        block = lambda index: np.asarray(local[(index[0].start or 0) // width][name], like[name].dtype)
        return jax.make_array_from_callback(shape, sharding, block)

    return Dataset(**{name: leaf(name) for name in like})  # type: ignore[arg-type]


def check_offline_env(env, algo_name: str) -> OfflineEnv:
    if not isinstance(env, OfflineEnv):
        raise ConfigError(
            f"{algo_name} is an offline algorithm: it trains on a dataset, not on env "
            f"{getattr(env, 'name', type(env).__name__)!r}. Pass --dataset FILE on the command line, "
            f"or env=jaxrl.envs.load_offline_env(FILE) in Python"
        )
    return env


def check_batch_size(env: OfflineEnv, batch_size: int, algo_name: str) -> None:
    smallest = min(env.valid_rows)
    if batch_size > smallest:
        raise ConfigError(
            f"{algo_name}.Config.batch_size={batch_size} is larger than the data: the smallest "
            f"dataset has {smallest} valid rows"
        )


def check_dataset_index(env: OfflineEnv, value: Any, algo_name: str) -> None:
    if isinstance(value, jax.core.Tracer):
        return
    arr = np.asarray(value)
    if np.any(arr < 0) or np.any(arr > env.num_datasets - 1) or np.any(arr != np.round(arr)):
        raise ConfigError(
            f"{algo_name}.Config.dataset_index={value!r} is out of range: must be an integer in "
            f"[0, {env.num_datasets - 1}] ({env.num_datasets} dataset(s) given)"
        )
