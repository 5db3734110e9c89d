"""Offline RL datasets as pytrees, and pure functions over them.

A :class:`Dataset` holds ``N`` transitions ``(s_t, a_t, r_t, s_{t+1}, terminal_t, timeout_t)`` as arrays with a
leading ``[N]`` axis, in file order (so the transitions of one episode are contiguous). It is a
``flax.struct.dataclass``: the arrays are pytree leaves, and a :class:`DatasetInfo` (name, kind, env name,
reference returns) rides along as static pytree metadata.

Conventions:

* dtypes: observations / rewards float32; actions float32 ``[N, A]`` (continuous) or int32 ``[N]`` (discrete);
  ``terminals`` and ``timeouts`` float32 in ``{0, 1}`` (ready for ``1 - terminal`` in a TD target).
* ``mask`` (optional, float32 ``[N]`` in ``{0, 1}``): row validity. :func:`pad_to` adds it so datasets of
  different sizes can be :func:`stack`-ed into one leading ``[D]`` axis and ``vmap``-ed over.
* ``next_actions`` (optional): ``a_{t+1}`` from the data, filled in by :func:`with_next_actions` (ReBRAC's
  critic penalty needs it).

Episode rule (used by :func:`episode_ends`, returns, :func:`episode_ids`): an episode ends after row ``t``
when ``terminal_t`` or ``timeout_t`` is set, when row ``t + 1`` is invalid (padding), or at the last row.
A terminal and a timeout on the same step is allowed (Gymnasium's ``terminated and truncated``) and means
*terminal*: bootstrapping stops. A timeout alone cuts the episode without making ``s_{t+1}`` terminal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

__all__ = [
    "DatasetError",
    "DatasetInfo",
    "Dataset",
    "make_dataset",
    "validate",
    "num_valid",
    "sample",
    "episode_ends",
    "episode_ids",
    "discounted_returns",
    "returns_to_go",
    "monte_carlo_returns",
    "episode_returns",
    "top_episodes_mask",
    "with_next_actions",
    "pad_to",
    "subsample",
    "stack",
    "index",
    "normalized_score",
    "to_numpy",
    "to_transition",
]

ARRAY_FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")
OPTIONAL_FIELDS = ("mask", "next_actions")


class DatasetError(ValueError):
    """A malformed dataset. The message names the field and the problem."""


def _hashable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _hashable(v)) for k, v in value.items()))
    return value


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset (pytree metadata of :class:`Dataset`, so hashable).

    ``random_return`` / ``expert_return`` are the reference returns of :func:`normalized_score` (D4RL's
    ``REF_MIN_SCORE`` / ``REF_MAX_SCORE``, Minari's ``ref_min_score`` / ``ref_max_score``). ``extra`` keeps any
    other key/value pairs read from a file, as a sorted tuple of pairs.
    """

    name: str = ""
    kind: str = ""
    env_name: str = ""
    random_return: float | None = None
    expert_return: float | None = None
    extra: tuple = ()

    @property
    def metadata(self) -> dict:
        """The info as a plain dict (``extra`` flattened in)."""
        out = dict(
            name=self.name,
            kind=self.kind,
            env_name=self.env_name,
            random_return=self.random_return,
            expert_return=self.expert_return,
        )
        out.update(dict(self.extra))
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DatasetInfo:
        d = dict(d)

        def _opt_float(v):
            return None if v is None else float(v)

        known = dict(
            name=str(d.pop("name", "") or ""),
            kind=str(d.pop("kind", "") or ""),
            env_name=str(d.pop("env_name", "") or ""),
            random_return=_opt_float(d.pop("random_return", None)),
            expert_return=_opt_float(d.pop("expert_return", None)),
        )
        extra = tuple(sorted((str(k), _hashable(v)) for k, v in d.items()))
        return cls(**known, extra=extra)


@struct.dataclass
class Dataset:
    """``N`` transitions; every array has leading axis ``[N]`` (see the module docstring)."""

    observations: jax.Array  # [N, obs_dim] float32
    actions: jax.Array  # [N, A] float32 or [N] int32
    rewards: jax.Array  # [N] float32
    next_observations: jax.Array  # [N, obs_dim] float32
    terminals: jax.Array  # [N] float32 in {0, 1}
    timeouts: jax.Array  # [N] float32 in {0, 1}
    mask: jax.Array | None = None  # [N] float32 in {0, 1}; None: all valid
    next_actions: jax.Array | None = None  # [N, A] or [N]; see with_next_actions
    info: DatasetInfo = struct.field(pytree_node=False, default=DatasetInfo())

    def stacked_mask(self) -> jax.Array:
        """The validity mask of stacked datasets (:func:`stack` always sets it; a missing one is an error)."""
        if self.mask is None:
            raise DatasetError("mask: missing (expected stacked datasets)")
        return self.mask

    @property
    def size(self) -> int:
        """Number of rows ``N`` (valid or not)."""
        return self.rewards.shape[-1]

    @property
    def discrete(self) -> bool:
        return self.actions.ndim == self.rewards.ndim

    @property
    def metadata(self) -> dict:
        return self.info.metadata


def _cast(name: str, x: Any, xp=np) -> Any:
    if x is None:
        return None
    x = xp.asarray(x)
    if name in ("terminals", "timeouts", "mask"):
        return x.astype(xp.float32)
    if name in ("actions", "next_actions") and (np.issubdtype(x.dtype, np.integer) or x.dtype == bool):
        return x.astype(xp.int32)
    if np.issubdtype(x.dtype, np.number) or x.dtype == bool:
        return x.astype(xp.float32)
    return x  # non-numeric: left for validate() to reject


def make_dataset(
    observations,
    actions,
    rewards,
    next_observations,
    terminals,
    timeouts=None,
    *,
    mask=None,
    next_actions=None,
    info: DatasetInfo | Mapping | None = None,
    check: bool = True,
    action_dim: int | None = None,
    obs_dim: int | None = None,
) -> Dataset:
    """Builds a :class:`Dataset` from array-likes, casting to the conventional dtypes (numpy arrays).

    Missing ``timeouts`` are zeros. With ``check`` (default), :func:`validate` runs first on the raw arrays.
    """
    if timeouts is None:
        timeouts = np.zeros(np.shape(rewards)[:1], np.float32)
    if info is None:
        info = DatasetInfo()
    elif not isinstance(info, DatasetInfo):
        info = DatasetInfo.from_dict(info)
    raw = dict(
        observations=observations,
        actions=actions,
        rewards=rewards,
        next_observations=next_observations,
        terminals=terminals,
        timeouts=timeouts,
        mask=mask,
        next_actions=next_actions,
    )
    raw = {k: (None if v is None else np.asarray(v)) for k, v in raw.items()}
    if check:
        _validate_fields(raw, action_dim=action_dim, obs_dim=obs_dim)
    return Dataset(**{k: _cast(k, v) for k, v in raw.items()}, info=info)


# --------------------------------------------------------------------------------------------------- validate


def _validate_fields(f: Mapping[str, Any], *, action_dim=None, obs_dim=None) -> None:
    for name in ARRAY_FIELDS:
        if f.get(name) is None:
            raise DatasetError(f"{name}: missing")
    for name, x in f.items():
        if x is None:
            continue
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise DatasetError(f"{name}: dtype {x.dtype} is not numeric")
        if x.ndim == 0:
            raise DatasetError(f"{name}: is a scalar, expected a leading [N] axis")
    n = f["observations"].shape[0]
    if n == 0:
        raise DatasetError("observations: dataset is empty (0 rows)")
    for name, x in f.items():
        if x is not None and x.shape[0] != n:
            raise DatasetError(f"{name}: has {x.shape[0]} rows but observations has {n} (mismatched lengths)")
    obs = f["observations"]
    if obs.ndim < 2:
        raise DatasetError(f"observations: shape {obs.shape}, expected [N, obs_dim]")
    if f["next_observations"].shape != obs.shape:
        raise DatasetError(
            f"next_observations: shape {f['next_observations'].shape} differs from observations {obs.shape}"
        )
    if obs_dim is not None and obs.shape[1:] != (obs_dim,):
        raise DatasetError(f"observations: dimension {obs.shape[1:]} does not match the env's obs_dim {obs_dim}")
    for name in ("rewards", "terminals", "timeouts", "mask"):
        x = f.get(name)
        if x is not None and x.ndim != 1:
            raise DatasetError(f"{name}: shape {x.shape}, expected [N]")
    act = f["actions"]
    discrete = np.issubdtype(act.dtype, np.integer) or act.dtype == bool
    if discrete:
        if act.ndim != 1:
            raise DatasetError(f"actions: integer (discrete) actions must have shape [N], got {act.shape}")
        if act.min() < 0:
            raise DatasetError(f"actions: negative discrete action {act.min()} at index {int(np.argmin(act))}")
        if action_dim is not None and act.max() >= action_dim:
            raise DatasetError(
                f"actions: discrete action {act.max()} at index {int(np.argmax(act))} is out of "
                f"range for the env's {action_dim} actions (wrong action dim)"
            )
    else:
        if act.ndim != 2:
            raise DatasetError(f"actions: continuous actions must have shape [N, action_dim], got {act.shape}")
        if action_dim is not None and act.shape[1] != action_dim:
            raise DatasetError(
                f"actions: action dim {act.shape[1]} does not match the env's action dim "
                f"{action_dim} (wrong action dim)"
            )
    na = f.get("next_actions")
    if na is not None and na.shape != act.shape:
        raise DatasetError(f"next_actions: shape {na.shape} differs from actions {act.shape}")
    for name, x in f.items():
        if x is None or not np.issubdtype(x.dtype, np.floating):
            continue
        bad = ~np.isfinite(x)
        if bad.any():
            row = int(np.argmax(bad.reshape(n, -1).any(axis=1)))
            kind = "NaN" if np.isnan(x[row]).any() else "inf"
            raise DatasetError(f"{name}: contains {kind} (first at index {row})")
    for name in ("terminals", "timeouts", "mask"):
        x = f.get(name)
        if x is None or x.dtype == bool:
            continue
        bad = (x != 0) & (x != 1)
        if bad.any():
            row = int(np.argmax(bad))
            raise DatasetError(f"{name}: not boolean-valued: {x[row].item()!r} at index {row} (expected 0/1 or bool)")
    m = f.get("mask")
    if m is not None and not np.any(m):
        raise DatasetError("mask: no valid rows (dataset is empty)")


def validate(
    dataset: Dataset | Mapping[str, Any], *, action_dim: int | None = None, obs_dim: int | None = None
) -> None:
    """Checks a dataset on the host and raises :class:`DatasetError` naming the field and the problem.

    Checks: every field present and numeric; non-empty; equal leading lengths; ``observations`` /
    ``next_observations`` shapes agree (and match ``obs_dim``); actions ``[N, action_dim]`` float or ``[N]`` int
    in ``[0, action_dim)``; no NaN / inf in any float field (the message gives the first bad row); ``terminals``,
    ``timeouts`` and ``mask`` are boolean-valued (0/1). A terminal and a timeout on the same step is allowed
    (it is a terminal; see the module docstring).
    """
    if isinstance(dataset, Dataset):
        fields = {k: getattr(dataset, k) for k in ARRAY_FIELDS + OPTIONAL_FIELDS}
    else:
        fields = dict(dataset)
    fields = {k: (None if v is None else np.asarray(v)) for k, v in fields.items()}
    _validate_fields(fields, action_dim=action_dim, obs_dim=obs_dim)


# ---------------------------------------------------------------------------------------------- pure views


def _valid(dataset: Dataset) -> jax.Array:
    if dataset.mask is None:
        return jnp.ones(dataset.rewards.shape, jnp.float32)
    return jnp.asarray(dataset.mask, jnp.float32)


def num_valid(dataset: Dataset) -> jax.Array:
    """Number of valid rows (a traced int32 when the dataset is)."""
    return jnp.sum(_valid(dataset) > 0).astype(jnp.int32)


def sampling_cdf(mask: jax.Array) -> jax.Array:
    """``[N]`` int32 ``cumsum(mask > 0)``: the integer CDF in which :func:`sample` locates its uniform draws.

    A closed-over dataset's mask is a constant of the program, and XLA would fold this cumsum at compile time once
    per vmapped run (131 s of a 64-run offline compile on an H200); the barrier leaves it to run time."""
    return jnp.cumsum(jax.lax.optimization_barrier(jnp.asarray(mask) > 0).astype(jnp.int32))


def sample(key: jax.Array, dataset: Dataset, batch_size: int) -> Dataset:
    """Uniform sample, with replacement, of ``batch_size`` valid rows; jittable, ``batch_size`` static.

    With a mask, each valid row has probability ``1 / n_valid``: a uniform integer ``k`` in ``[0, n_valid)``
    is located in the integer ``cumsum(mask > 0)`` (exact for any N; O(N + B log N), no ``[B, N]``
    intermediate). The batch has no mask (all its rows are valid).
    """
    cdf = sampling_cdf(_valid(dataset))
    k = jax.random.randint(key, (batch_size,), 0, cdf[-1])
    idx = jnp.clip(jnp.searchsorted(cdf, k, side="right"), 0, dataset.size - 1)
    batch = jax.tree.map(lambda x: jnp.asarray(x)[idx], dataclasses.replace(dataset, mask=None))
    return batch


def episode_ends(dataset: Dataset) -> jax.Array:
    """``[N]`` float32: 1 where an episode ends after this row (terminal, timeout, next row invalid, last row)."""
    valid = _valid(dataset)
    next_valid = jnp.concatenate([valid[1:], jnp.zeros((1,), valid.dtype)])
    ends = (jnp.asarray(dataset.terminals) > 0) | (jnp.asarray(dataset.timeouts) > 0) | (next_valid <= 0)
    return ends.astype(jnp.float32)


def episode_ids(dataset: Dataset) -> jax.Array:
    """``[N]`` int32 episode index of each row: ``id_t = sum_{j<t} end_j`` (padding rows get their own ids)."""
    ends = episode_ends(dataset)
    return (jnp.cumsum(ends) - ends).astype(jnp.int32)


def discounted_returns(rewards_t: jax.Array, ends_t: jax.Array, discount: float | jax.Array) -> jax.Array:
    """Reverse scan ``G_t = r_t + discount * (1 - end_t) * G_{t+1}``, ``G_N = 0``, over ``[N]`` rows."""

    def step(g_tp1, x):
        r_t, end_t = x
        g_t = r_t + discount * (1.0 - end_t) * g_tp1
        return g_t, g_t

    _, g = jax.lax.scan(
        step,
        jnp.zeros((), jnp.float32),
        (jnp.asarray(rewards_t, jnp.float32), jnp.asarray(ends_t, jnp.float32)),
        reverse=True,
    )
    return g


def monte_carlo_returns(dataset: Dataset, discount: float | jax.Array) -> jax.Array:
    """``[N]`` discounted Monte-Carlo return of each transition to the end of its episode (0 on padding).

    ``G_t = r_t + discount (1 - end_t) G_{t+1}``. An episode cut by a timeout is summed to the cut (no
    bootstrap).
    """
    valid = _valid(dataset)
    return discounted_returns(jnp.asarray(dataset.rewards) * valid, episode_ends(dataset), discount) * valid


def returns_to_go(dataset: Dataset) -> jax.Array:
    """``[N]`` undiscounted return-to-go ``R_t = sum_{k >= t, same episode} r_k`` (0 on padding)."""
    return monte_carlo_returns(dataset, 1.0)


def episode_returns(dataset: Dataset) -> jax.Array:
    """``[N]`` total (undiscounted) return of the episode each row belongs to (0 on padding)."""
    ids = episode_ids(dataset)
    valid = _valid(dataset)
    per_episode = jax.ops.segment_sum(jnp.asarray(dataset.rewards, jnp.float32) * valid, ids, num_segments=dataset.size)
    return per_episode[ids] * valid


def top_episodes_mask(dataset: Dataset, fraction: float | jax.Array) -> jax.Array:
    """``[N]`` float32 mask of the rows whose episode is among the top ``ceil(fraction * M)`` of the ``M``
    valid episodes by total return (filtered / %BC). Jittable; ties broken by episode order."""
    n = dataset.size
    ids = episode_ids(dataset)
    valid = _valid(dataset)
    ep_valid = jax.ops.segment_max(valid, ids, num_segments=n) > 0
    ep_ret = jax.ops.segment_sum(jnp.asarray(dataset.rewards, jnp.float32) * valid, ids, num_segments=n)
    num_eps = jnp.sum(ep_valid)
    k = jnp.maximum(jnp.ceil(fraction * num_eps), 1.0)
    order = jnp.argsort(jnp.where(ep_valid, -ep_ret, jnp.inf), stable=True)  # best first
    rank = jnp.zeros((n,), jnp.int32).at[order].set(jnp.arange(n, dtype=jnp.int32))
    keep = ep_valid & (rank < k)
    return (keep[ids] & (valid > 0)).astype(jnp.float32)


def with_next_actions(dataset: Dataset) -> Dataset:
    """Fills ``next_actions``: ``a_{t+1}`` inside an episode, ``a_t`` on its last row (where a TD target
    multiplies the next-state term by ``1 - terminal`` or the row is cut)."""
    act = jnp.asarray(dataset.actions)
    shifted = jnp.concatenate([act[1:], act[-1:]], axis=0)
    ends = episode_ends(dataset) > 0
    ends = ends.reshape(ends.shape + (1,) * (act.ndim - 1))
    return dataclasses.replace(dataset, next_actions=jnp.where(ends, act, shifted))


# --------------------------------------------------------------------------------------------- reshaping


def pad_to(dataset: Dataset, n: int) -> Dataset:
    """Pads every array with zero rows to ``n`` rows; the padding has ``mask = 0``."""
    size = dataset.size
    if n < size:
        raise DatasetError(f"observations: cannot pad {size} rows down to {n}")
    valid = _valid(dataset)

    def pad(x):
        x = jnp.asarray(x)
        return jnp.concatenate([x, jnp.zeros((n - size,) + x.shape[1:], x.dtype)], axis=0)

    padded = jax.tree.map(pad, dataclasses.replace(dataset, mask=None))
    return padded.replace(mask=pad(valid))


def subsample(dataset: Dataset, n: int, key: jax.Array) -> Dataset:
    """``n`` distinct rows drawn uniformly without replacement from the valid rows, kept in file order.

    Jittable (``n`` static). If ``n`` exceeds the number of valid rows, the extra rows come back with
    ``mask = 0``. Subsampling rows breaks episodes' contiguity; episode views then see shorter episodes.
    """
    if n > dataset.size:
        raise DatasetError(f"observations: cannot subsample {n} rows from {dataset.size}")
    valid = _valid(dataset)
    scores = jnp.where(valid > 0, jax.random.uniform(key, valid.shape), 2.0)
    idx = jnp.sort(jnp.argsort(scores)[:n])
    out = jax.tree.map(lambda x: jnp.asarray(x)[idx], dataclasses.replace(dataset, mask=None))
    if dataset.mask is not None:
        out = out.replace(mask=valid[idx])
    return out


def stack(datasets: Sequence[Dataset]) -> Dataset:
    """Stacks datasets along a new leading ``[D]`` axis (for ``vmap``), padding each to the largest size.

    The result always has a ``[D, N]`` mask; its info is ``kind="stack"`` with the members' infos in
    ``extra["members"]``. Slice one member back out with :func:`index`.
    """
    if not datasets:
        raise DatasetError("observations: stack() of no datasets")
    n = max(d.size for d in datasets)
    padded = [pad_to(d, n) for d in datasets]
    opt = {name: [getattr(d, name) is None for d in padded] for name in ("next_actions",)}
    if any(opt["next_actions"]) and not all(opt["next_actions"]):
        raise DatasetError("next_actions: present in some datasets and not others")
    infos = tuple(d.info for d in datasets)
    info = DatasetInfo(
        name="+".join(i.name for i in infos),
        kind="stack",
        env_name="+".join(sorted({i.env_name for i in infos})),
        extra=(("members", infos),),
    )
    stripped = [dataclasses.replace(p, info=DatasetInfo()) for p in padded]
    out = jax.tree.map(lambda *xs: jnp.stack(xs), *stripped)
    return out.replace(info=info)


def index(stacked: Dataset, i: int) -> Dataset:
    """Member ``i`` of a :func:`stack`-ed dataset (still padded, with its mask) and its own info."""
    members = dict(stacked.info.extra).get("members", ())
    info = members[i] if i < len(members) else DatasetInfo()
    return jax.tree.map(lambda x: x[i], stacked).replace(info=info)


# ------------------------------------------------------------------------------------------------- scores


def normalized_score(ret, random_return, expert_return):
    """D4RL normalised score ``100 * (R - R_random) / (R_expert - R_random)`` (elementwise, float32)."""
    ret = jnp.asarray(ret, jnp.float32)
    return 100.0 * (ret - random_return) / (jnp.asarray(expert_return, jnp.float32) - random_return)


def to_numpy(dataset: Dataset) -> dict[str, np.ndarray]:
    """The arrays as a dict of numpy arrays (``None`` fields left out)."""
    out = {}
    for name in ARRAY_FIELDS + OPTIONAL_FIELDS:
        x = getattr(dataset, name)
        if x is not None:
            out[name] = np.asarray(x)
    return out


def to_transition(dataset: Dataset):
    """The rows as a :class:`jaxrl.data.types.Transition` (``obs, action, reward, next_obs, terminated,
    truncated``), for code written against the online replay / rollout containers."""
    from jaxrl.data.types import Transition

    return Transition(
        obs=dataset.observations,
        action=dataset.actions,
        reward=dataset.rewards,
        next_obs=dataset.next_observations,
        terminated=dataset.terminals,
        truncated=dataset.timeouts,
    )
