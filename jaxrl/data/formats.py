"""Offline dataset files in and out: D4RL HDF5, Minari directories and ``.npz``.

Host-side I/O (numpy + h5py only: no d4rl, mujoco-py or minari dependency; nothing downloads). Every reader
validates what it read (:func:`jaxrl.data.dataset.validate`) and raises
:class:`~jaxrl.data.dataset.DatasetError` naming the field and the problem.

D4RL HDF5 (one file)
    top-level datasets ``observations [N, obs_dim]``, ``actions [N, A]``, ``rewards [N]``,
    ``next_observations [N, obs_dim]``, ``terminals [N]`` (bool), ``timeouts [N]`` (bool); ``metadata/...``
    attributes or datasets (``metadata/ref_min_score`` / ``ref_max_score`` are the reference returns);
    ``infos/...`` is ignored. Older files without ``timeouts`` read as no timeouts. A file without
    ``next_observations`` gets ``s_{t+1} = observations[t + 1]`` with ``mask = 0`` where that is unknown
    (rows ending in a timeout, and the last row, unless terminal).
    Extra keys written by jaxrl: ``mask``, ``next_actions``.

Minari (a dataset directory, format ``data_format = "hdf5"``)
    ``<dir>/data/metadata.json`` (``dataset_id``, ``total_episodes``, ``total_steps``, ``data_format``,
    ``observation_space`` / ``action_space`` as JSON-serialised Gymnasium spaces, ``ref_min_score`` /
    ``ref_max_score``) and ``<dir>/data/main_data.hdf5`` with one group ``episode_{id}`` per episode
    (attributes ``id``, ``total_steps``; datasets ``observations`` with ``T + 1`` rows, ``actions``,
    ``rewards``, ``terminations``, ``truncations`` with ``T`` rows; ``infos``). Only flat ``Box`` /
    ``Discrete`` spaces are supported. jaxrl writes the rest of its :class:`DatasetInfo` under the
    ``jaxrl_info`` key of ``metadata.json``.

NPZ
    the D4RL keys as arrays plus ``__info__`` (a JSON string); read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxrl.data.dataset import Dataset, DatasetError, DatasetInfo, make_dataset, to_numpy

__all__ = [
    "load",
    "save",
    "read_d4rl",
    "write_d4rl",
    "read_minari",
    "write_minari",
    "read_npz",
    "write_npz",
]

PathLike = str | os.PathLike
_REQUIRED = ("observations", "actions", "rewards", "terminals")
_OPTIONAL = ("next_observations", "timeouts", "mask", "next_actions")


# --------------------------------------------------------------------------------------------- helpers


def _info_to_json(info: DatasetInfo) -> dict:
    d = info.metadata
    out = {}
    for k, v in d.items():
        if k == "members":
            continue
        out[k] = _jsonable(v)
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, DatasetInfo):
        return _info_to_json(v)
    return v


def _py(v: Any) -> Any:
    """h5py attribute / dataset value -> plain Python."""
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, np.ndarray):
        if v.ndim == 0:
            return _py(v[()])
        return [_py(x) for x in v.tolist()]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _fields_with_derived_next(fields: dict[str, np.ndarray | None]) -> dict[str, np.ndarray | None]:
    """D4RL files without ``next_observations``: shift observations, mask rows whose successor is unknown."""
    obs = fields["observations"]
    if obs is None:  # a required field: the readers raise before getting here without it
        raise DatasetError("observations: missing")
    n = obs.shape[0]
    timeouts = fields["timeouts"] if fields.get("timeouts") is not None else np.zeros((n,), bool)
    terminals = fields["terminals"]
    nxt = np.concatenate([obs[1:], obs[-1:]], axis=0) if n else obs
    unknown = (np.asarray(timeouts) > 0) & ~(np.asarray(terminals) > 0)
    if n:
        unknown[-1] = not (np.asarray(terminals)[-1] > 0)
    mask = (~unknown).astype(np.float32)
    if fields.get("mask") is not None:
        mask = mask * np.asarray(fields["mask"], np.float32)
    fields = dict(fields, next_observations=nxt, mask=mask)
    return fields


# ------------------------------------------------------------------------------------------------- D4RL


def write_d4rl(dataset: Dataset, path: PathLike) -> None:
    """Writes the D4RL HDF5 schema (terminals / timeouts as bool; info as ``metadata`` attributes)."""
    import h5py

    arrays = to_numpy(dataset)
    with h5py.File(path, "w") as f:
        for name, x in arrays.items():
            if name in ("terminals", "timeouts"):
                x = x > 0
            f.create_dataset(name, data=x)
        meta = f.create_group("metadata")
        info = _info_to_json(dataset.info)
        for k, v in info.items():
            if v is None:
                continue
            key = {"random_return": "ref_min_score", "expert_return": "ref_max_score"}.get(k, k)
            if isinstance(v, (list, dict)):
                meta.attrs[key + "__json"] = json.dumps(v)
            else:
                meta.attrs[key] = v


_MAX_META_SIZE = 16  # larger metadata arrays (D4RL stores policy weights under metadata/policy/...) are skipped


def _read_metadata_group(group) -> dict:
    """Scalars, strings and small arrays under ``metadata`` (attributes and datasets, ``/``-joined names)."""
    import h5py

    out: dict[str, Any] = {}
    for k, v in group.attrs.items():
        if np.size(v) <= _MAX_META_SIZE:
            out[k] = _py(v)

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.size <= _MAX_META_SIZE:
            out.setdefault(name, _py(obj[()]))

    group.visititems(visit)
    return out


def _info_from_flat(meta: Mapping[str, Any], defaults: Mapping[str, Any] | tuple[()] = ()) -> DatasetInfo:
    d = dict(defaults)
    for k, v in meta.items():
        if k.endswith("__json") and isinstance(v, str):
            k, v = k[: -len("__json")], json.loads(v)
        k = {"ref_min_score": "random_return", "ref_max_score": "expert_return"}.get(k, k)
        d[k] = v
    return DatasetInfo.from_dict(d)


def read_d4rl(
    path: PathLike, *, action_dim: int | None = None, obs_dim: int | None = None, info: Mapping[str, Any] | None = None
) -> Dataset:
    """Reads a D4RL-schema HDF5 file into a validated :class:`Dataset` (numpy arrays)."""
    import h5py

    path = pathlib.Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(f"{path}: not a readable HDF5 file ({e})") from e
    with f:
        fields: dict[str, np.ndarray | None] = {}
        for name in _REQUIRED + _OPTIONAL:
            if name not in f:
                if name in _REQUIRED:
                    raise DatasetError(f"{name}: missing key in {path.name}")
                fields[name] = None
                continue
            obj = f[name]
            if not isinstance(obj, h5py.Dataset):
                raise DatasetError(
                    f"{name}: expected an HDF5 dataset in {path.name}, found a {type(obj).__name__} "
                    "(nested observation/action structures are not supported)"
                )
            fields[name] = np.asarray(obj[()])
        meta = _read_metadata_group(f["metadata"]) if "metadata" in f else {}
    if fields["next_observations"] is None:
        obs = fields["observations"]
        if obs is None:  # a required field: the loop above raised without it
            raise DatasetError(f"observations: missing key in {path.name}")
        if obs.ndim < 1 or obs.shape[0] == 0:
            raise DatasetError(f"observations: dataset is empty (0 rows) in {path.name}")
        fields = _fields_with_derived_next(fields)
    dinfo = _info_from_flat(dict(meta, **(info or {})), defaults=dict(name=path.stem))
    # mypy checks **fields against every keyword parameter (check: bool too); it holds array fields only
    return make_dataset(**fields, info=dinfo, action_dim=action_dim, obs_dim=obs_dim)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------- Minari


def _box_space(shape, dtype) -> str:
    return json.dumps(
        dict(
            type="Box",
            dtype=str(np.dtype(dtype)),
            shape=list(shape),
            low=np.full(shape, -np.inf).tolist(),
            high=np.full(shape, np.inf).tolist(),
        )
    )


def _minari_data_dir(path: pathlib.Path) -> pathlib.Path:
    if path.is_file():
        return path.parent
    if (path / "data" / "main_data.hdf5").exists() or (path / "data" / "metadata.json").exists():
        return path / "data"
    return path


def write_minari(dataset: Dataset, path: PathLike, *, dataset_id: str | None = None) -> None:
    """Writes a Minari dataset directory ``path`` (``path/data/{main_data.hdf5, metadata.json}``).

    Each episode (see :func:`jaxrl.data.dataset.episode_ends`; padding rows are dropped) becomes a group
    ``episode_{id}`` whose ``observations`` are the episode's ``s_0..s_{T-1}`` followed by its last
    ``s_T``. Raises :class:`DatasetError` if ``next_observations[t] != observations[t + 1]`` inside an episode
    (Minari stores one observation sequence per episode).
    """
    import h5py

    from jaxrl.data.dataset import episode_ends

    arrays = to_numpy(dataset)
    ends = np.asarray(episode_ends(dataset)) > 0
    valid = arrays["mask"] > 0 if "mask" in arrays else np.ones_like(ends)
    rows = np.flatnonzero(valid)
    if rows.size == 0:
        raise DatasetError("observations: dataset is empty (0 valid rows)")
    data_dir = pathlib.Path(path) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    obs, nxt = arrays["observations"], arrays["next_observations"]
    episodes, start = [], None
    for i in rows:
        start = i if start is None else start
        if ends[i]:
            episodes.append((start, i + 1))
            start = None
    total_steps: int | np.integer = 0  # e - s are numpy integers
    with h5py.File(data_dir / "main_data.hdf5", "w", track_order=True) as f:
        for ep_id, (s, e) in enumerate(episodes):
            if not np.array_equal(nxt[s : e - 1], obs[s + 1 : e]):
                bad = s + int(np.argmax(np.any((nxt[s : e - 1] != obs[s + 1 : e]).reshape(e - 1 - s, -1), axis=1)))
                raise DatasetError(
                    f"next_observations: row {bad} differs from observations[{bad + 1}] inside an "
                    "episode; Minari stores one observation sequence per episode"
                )
            g = f.create_group(f"episode_{ep_id}")
            g.attrs["id"] = ep_id
            g.attrs["total_steps"] = e - s
            g.create_dataset("observations", data=np.concatenate([obs[s:e], nxt[e - 1 : e]], axis=0))
            g.create_dataset("actions", data=arrays["actions"][s:e])
            g.create_dataset("rewards", data=arrays["rewards"][s:e])
            g.create_dataset("terminations", data=arrays["terminals"][s:e] > 0)
            g.create_dataset("truncations", data=arrays["timeouts"][s:e] > 0)
            g.create_group("infos")
            total_steps += e - s
    info = dataset.info
    act = arrays["actions"]
    if dataset.discrete:
        n_act = int(dict(info.extra).get("action_n", int(act.max()) + 1))
        action_space = json.dumps(dict(type="Discrete", dtype="int64", start=0, n=n_act))
    else:
        action_space = _box_space(act.shape[1:], act.dtype)
    meta = {
        "dataset_id": dataset_id or info.name or pathlib.Path(path).name,
        "total_episodes": len(episodes),
        "total_steps": int(total_steps),
        "data_format": "hdf5",
        "observation_space": _box_space(obs.shape[1:], obs.dtype),
        "action_space": action_space,
        "jaxrl_info": _info_to_json(info),
    }
    if info.random_return is not None:
        meta["ref_min_score"] = info.random_return
    if info.expert_return is not None:
        meta["ref_max_score"] = info.expert_return
    with open(data_dir / "metadata.json", "w") as fh:
        json.dump(meta, fh)


def _space_dim(space: Any, field: str) -> int | None:
    if space is None:
        return None
    if isinstance(space, str):
        try:
            space = json.loads(space)
        except json.JSONDecodeError as e:
            raise DatasetError(f"metadata.json: {field} is not valid JSON ({e})") from e
    kind = space.get("type")
    if kind == "Box":
        shape = space.get("shape", [])
        if len(shape) != 1:
            raise DatasetError(f"metadata.json: {field} has shape {shape}; only flat Box spaces are supported")
        return int(shape[0])
    if kind == "Discrete":
        return int(space["n"])
    raise DatasetError(f"metadata.json: {field} type {kind!r} is not supported (Box or Discrete only)")


def read_minari(
    path: PathLike, *, action_dim: int | None = None, obs_dim: int | None = None, info: Mapping[str, Any] | None = None
) -> Dataset:
    """Reads a Minari dataset directory (or its ``data/`` dir, or ``main_data.hdf5``) into a :class:`Dataset`.

    ``action_dim`` / ``obs_dim`` default to the spaces recorded in ``metadata.json``.
    """
    import h5py

    data_dir = _minari_data_dir(pathlib.Path(path))
    meta_path, main_path = data_dir / "metadata.json", data_dir / "main_data.hdf5"
    if not meta_path.exists():
        raise DatasetError(f"metadata.json: missing in {data_dir}")
    if not main_path.exists():
        raise DatasetError(f"main_data.hdf5: missing in {data_dir}")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"metadata.json: invalid JSON ({e})") from e
    if meta.get("data_format", "hdf5") != "hdf5":
        raise DatasetError(f"metadata.json: data_format {meta['data_format']!r} is not supported (hdf5 only)")
    if action_dim is None:
        action_dim = _space_dim(meta.get("action_space"), "action_space")
    if obs_dim is None:
        obs_dim = _space_dim(meta.get("observation_space"), "observation_space")
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")
    }
    with h5py.File(main_path, "r") as f:
        names = []
        for k in f:
            m = re.fullmatch(r"episode_(\d+)", k)
            if m:
                names.append((int(m.group(1)), k))
        names.sort()
        if not names:
            raise DatasetError(f"observations: no episode_{{id}} groups in {main_path.name} (dataset is empty)")
        for _, name in names:
            g = f[name]
            ep = {}
            for key in ("observations", "actions", "rewards", "terminations", "truncations"):
                if key not in g:
                    raise DatasetError(f"{name}/{key}: missing key")
                if not isinstance(g[key], h5py.Dataset):
                    raise DatasetError(
                        f"{name}/{key}: a {type(g[key]).__name__}, not a dataset (Dict/Tuple spaces are not supported)"
                    )
                ep[key] = np.asarray(g[key][()])
            t = ep["rewards"].shape[0] if ep["rewards"].ndim else -1
            if "total_steps" in g.attrs and int(g.attrs["total_steps"]) != t:
                raise DatasetError(
                    f"{name}/rewards: {t} rows but attribute total_steps = "
                    f"{int(g.attrs['total_steps'])} (mismatched lengths)"
                )
            for key in ("actions", "terminations", "truncations"):
                if ep[key].ndim == 0 or ep[key].shape[0] != t:
                    raise DatasetError(
                        f"{name}/{key}: {ep[key].shape[:1]} rows but rewards has {t} (mismatched lengths)"
                    )
            if ep["observations"].ndim == 0 or ep["observations"].shape[0] != t + 1:
                raise DatasetError(
                    f"{name}/observations: {ep['observations'].shape[:1]} rows, expected "
                    f"total_steps + 1 = {t + 1} (mismatched lengths)"
                )
            parts["observations"].append(ep["observations"][:-1])
            parts["next_observations"].append(ep["observations"][1:])
            parts["actions"].append(ep["actions"])
            parts["rewards"].append(ep["rewards"])
            parts["terminals"].append(ep["terminations"])
            parts["timeouts"].append(ep["truncations"])
    fields = {k: np.concatenate(v, axis=0) for k, v in parts.items()}
    flat = dict(meta.get("jaxrl_info", {}))
    flat.setdefault("name", meta.get("dataset_id", data_dir.parent.name))
    if "ref_min_score" in meta:
        flat["random_return"] = meta["ref_min_score"]
    if "ref_max_score" in meta:
        flat["expert_return"] = meta["ref_max_score"]
    if not flat.get("env_name") and isinstance(meta.get("env_spec"), str):
        try:
            flat["env_name"] = json.loads(meta["env_spec"]).get("id", "")
        except json.JSONDecodeError:
            pass
    flat.update(info or {})
    # mypy checks **fields against every keyword parameter (check: bool too); it holds array fields only
    return make_dataset(**fields, info=DatasetInfo.from_dict(flat), action_dim=action_dim, obs_dim=obs_dim)  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------------------- NPZ


def write_npz(dataset: Dataset, path: PathLike) -> None:
    """Writes the arrays (D4RL key names) and the info as a JSON string under ``__info__``."""
    arrays = to_numpy(dataset)
    # numpy's stub types **kwds like allow_pickle (bool); arrays holds arrays only
    np.savez(path, **arrays, __info__=np.asarray(json.dumps(_info_to_json(dataset.info))))  # type: ignore[arg-type]


def read_npz(
    path: PathLike, *, action_dim: int | None = None, obs_dim: int | None = None, info: Mapping[str, Any] | None = None
) -> Dataset:
    """Reads an ``.npz`` with D4RL key names (``np.load(..., allow_pickle=False)``)."""
    path = pathlib.Path(path)
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: not a readable .npz file ({e})") from e
    with z:
        keys = set(z.files)
        fields: dict[str, np.ndarray | None] = {}
        for name in _REQUIRED + _OPTIONAL:
            if name not in keys:
                if name in _REQUIRED:
                    raise DatasetError(f"{name}: missing key in {path.name}")
                fields[name] = None
            else:
                try:
                    fields[name] = z[name]
                except ValueError as e:
                    raise DatasetError(f"{name}: cannot be read without pickle ({e})") from e
        meta = json.loads(str(z["__info__"])) if "__info__" in keys else {}
    if fields["next_observations"] is None:
        fields = _fields_with_derived_next(fields)
    meta.setdefault("name", path.stem)
    meta.update(info or {})
    # mypy checks **fields against every keyword parameter (check: bool too); it holds array fields only
    return make_dataset(**fields, info=DatasetInfo.from_dict(meta), action_dim=action_dim, obs_dim=obs_dim)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- dispatch


def _format_of(path: pathlib.Path, format: str | None) -> str:
    if format is not None:
        if format not in ("d4rl", "minari", "npz"):
            raise ValueError(f"format: {format!r} is not one of 'd4rl', 'minari', 'npz'")
        return format
    if path.is_dir() or (path.name == "main_data.hdf5" and (path.parent / "metadata.json").exists()):
        return "minari"
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return "npz"
    if suffix in (".hdf5", ".h5", ".hdf"):
        return "d4rl"
    if not path.exists() and suffix == "":
        return "minari"
    raise DatasetError(f"{path}: cannot tell the format (a Minari directory, .hdf5/.h5 or .npz); pass format=")


def load(
    path: PathLike,
    *,
    format: str | None = None,
    action_dim: int | None = None,
    obs_dim: int | None = None,
    info: Mapping[str, Any] | None = None,
) -> Dataset:
    """Reads and validates a dataset: a directory is Minari, ``.hdf5`` / ``.h5`` is D4RL, ``.npz`` is npz."""
    path = pathlib.Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or directory")
    reader = dict(d4rl=read_d4rl, minari=read_minari, npz=read_npz)[_format_of(path, format)]
    return reader(path, action_dim=action_dim, obs_dim=obs_dim, info=info)


def save(dataset: Dataset, path: PathLike, *, format: str | None = None) -> None:
    """Writes a dataset in the format chosen by ``format`` or the path (see :func:`load`)."""
    path = pathlib.Path(path)
    writer = dict(d4rl=write_d4rl, minari=write_minari, npz=write_npz)[_format_of(path, format)]
    writer(dataset, path)
