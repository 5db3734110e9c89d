"""The offline "env": stacked datasets of one env (on device) and that env for evaluation, loaded from files or
arrays, and the checks that run before anything compiles.

The offline env passed to ``jaxrl.run.train`` is an :class:`OfflineEnv` paired with the real env's params:
``train("iql", env=load_offline_env(["medium.hdf5", "medium-replay.hdf5"]))``. It holds the datasets stacked
``[D, N, ...]`` (padded to one size with a validity mask, :func:`jaxrl.data.dataset.stack`), with actions rescaled
to the agent's ``[-1, 1]`` box.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
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
    "make_offline_env",
    "load_offline_env",
    "check_offline_env",
    "check_batch_size",
    "check_dataset_index",
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
    ):
        self.data = data
        self.infos = tuple(infos)
        self.env = env
        self.env_params = env_params
        self.env_name = env_name
        self.paths = tuple(paths)
        self.hashes = tuple(hashes)
        self.num_datasets = len(self.infos)
        self.valid_rows = tuple(int(n) for n in np.asarray(jnp.sum(data.stacked_mask() > 0, axis=-1)))
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


def _array_hash(d: Dataset) -> str:
    h = hashlib.sha256()
    for name, x in sorted(ds.to_numpy(d).items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()


def _file_hash(path: str) -> str:
    h = hashlib.sha256()
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


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
    from jaxrl import envs
    from jaxrl.envs.wrappers import action_dim, is_discrete, obs_dim

    datasets = [datasets] if isinstance(datasets, Dataset) else list(datasets)
    if not datasets:
        raise DatasetError("observations: no datasets given")
    names = {d.info.env_name for d in datasets if d.info.env_name}
    if len(names) > 1:
        raise DatasetError(
            f"info.env_name: the datasets come from different envs {sorted(names)}; stack datasets of one env"
        )
    if env is None:
        if not names:
            raise DatasetError("info.env_name: the dataset does not name its env; pass env=")
        env = names.pop()
    env_name = env if isinstance(env, str) else getattr(env[0], "name", type(env[0]).__name__)
    env_obj, env_params = envs.make(env) if isinstance(env, str) else env
    if is_discrete(env_obj, env_params):
        raise DatasetError("actions: offline algorithms here need a continuous (Box) action space")
    n_act, n_obs = action_dim(env_obj, env_params), obs_dim(env_obj, env_params)
    space = env_obj.action_space(env_params)
    low = np.broadcast_to(np.asarray(space.low, np.float32), (n_act,))
    high = np.broadcast_to(np.asarray(space.high, np.float32), (n_act,))
    prepared = []
    for i, d in enumerate(datasets):
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
    data = ds.stack(prepared)
    paths = list(paths) if paths is not None else [None] * len(datasets)
    hashes = list(hashes) if hashes is not None else [_array_hash(d) for d in datasets]
    offline = OfflineEnv(data, [d.info for d in datasets], env_obj, env_params, env_name, paths, hashes)
    return offline, env_params


def load_offline_env(paths: str | os.PathLike | Sequence[str | os.PathLike], env: str | tuple | None = None):
    """``(OfflineEnv, env_params)`` from dataset files (D4RL HDF5, Minari dir or npz); see :func:`make_offline_env`.

    ``env`` is needed for files that do not name their env (D4RL's own); a file that names another env is an
    error. A ``"dataset:a.hdf5,b.hdf5"`` string (the name recorded in a run's config.json, ending ``?env=NAME``
    when only ``env`` named the env) works too.
    """
    from jaxrl.data import formats

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
    datasets = [formats.load(p) for p in files]
    named = any(d.info.env_name for d in datasets)
    if env is None and not named:
        raise DatasetError(
            f"info.env_name: the dataset does not name its env ({', '.join(files)}): pass env= (--env "
            f"on the command line)"
        )
    if isinstance(env, str):
        for p, d in zip(files, datasets):
            if d.info.env_name and d.info.env_name != env:
                raise DatasetError(
                    f"info.env_name: dataset {p!r} is of env {d.info.env_name!r}, not {env!r} "
                    f"(env= / --env); leave the env out to use the dataset's"
                )
    offline, env_params = make_offline_env(
        datasets, env, paths=[str(Path(p).resolve()) for p in files], hashes=[_file_hash(p) for p in files]
    )
    if isinstance(env, str) and not named:
        offline.name += f"?env={env}"  # the files do not say: the recorded name must, so that a resume finds it
    return offline, env_params


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
