"""Frozen, validated configs that are also pytrees.

A config is a keyword-only frozen dataclass. Each field is one of two kinds:

* ``hyper(...)``: a numeric hyperparameter that does not change array shapes (learning rate, discount, clip,
  entropy coefficient, ...). It is a *traced pytree leaf*, so a grid of settings is one batched config and
  ``jax.vmap`` over it compiles once.
* ``static(...)``: a field that changes shapes or control flow (widths, number of envs, batch size). It is pytree
  metadata: part of the compiled program's identity.

Values are validated when a config is constructed (or ``dataclasses.replace``-d), and the error names the field
and its allowed range. Rebuilding a config from leaves (``jax.tree.map``, ``vmap``) skips validation, because
leaves may then be tracers, axis specs or placeholders.
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
from collections.abc import Iterable
from typing import Any, dataclass_transform

import jax
import numpy as np

__all__ = [
    "ConfigError",
    "hyper",
    "index",
    "static",
    "config_name",
    "config",
    "hyper_fields",
    "static_fields",
    "replace",
    "close_matches",
    "to_dict",
    "from_dict",
]


class ConfigError(ValueError):
    """An invalid configuration value, raised before anything compiles."""


def hyper(
    default: float,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
    help: str = "",
) -> Any:
    """A traced numeric hyperparameter in ``[low, high]`` (``(low`` / ``high)`` when open); ``allow_inf``: +inf is
    a valid value too (a bound that is off, such as no gradient clipping)."""
    return dataclasses.field(
        default=default,
        metadata=dict(
            static=False, low=low, high=high, low_open=low_open, high_open=high_open, choices=None, help=help,
            allow_inf=allow_inf,
        ),
    )  # fmt: skip


def index(default: int = 0, *, help: str = "") -> Any:
    """A traced integer index (which stacked dataset, which task): an int32 pytree leaf, so a grid over it
    (``grid={"dataset_index": [0, 1, 2]}``) is one batched config, like a ``hyper`` field. Must be an integer >= 0;
    the upper bound depends on the data and is checked where the data is known."""
    return dataclasses.field(
        default=default,
        metadata=dict(
            static=False, integer=True, low=0, high=None, low_open=False, high_open=False, choices=None, help=help
        ),
    )


def static(
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: Iterable[Any] | None = None,
    help: str = "",
) -> Any:
    """A static (shape- or control-flow-changing) field; optional range or choices."""
    kw = dict(default_factory=lambda: tuple(default)) if isinstance(default, (list, tuple)) else dict(default=default)
    return dataclasses.field(
        **kw,
        metadata=dict(
            static=True,
            low=low,
            high=high,
            low_open=False,
            high_open=False,
            choices=tuple(choices) if choices is not None else None,
            help=help,
        ),
    )


def _is_static(f: dataclasses.Field) -> bool:
    return f.metadata.get("static", True)


def hyper_fields(cfg_or_cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cfg_or_cls) if not _is_static(f))


def static_fields(cfg_or_cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cfg_or_cls) if _is_static(f))


def close_matches(name: str, options: Iterable[str], n: int = 5) -> list[str]:
    """Close spellings of ``name`` among ``options`` (case-insensitive), best first."""
    options = list(options)
    lowered = {o.lower(): o for o in options}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    prefix = [o for o in options if o.lower().startswith(name.lower()[:3]) and o.lower() not in hits]
    return [lowered[h] for h in hits] + prefix[: max(0, n - len(hits))]


def _range_text(md) -> str:
    lo, hi = md["low"], md["high"]
    parts = []
    if lo is not None:
        parts.append(f"{'>' if md['low_open'] else '>='} {lo}")
    if hi is not None:
        parts.append(f"{'<' if md['high_open'] else '<='} {hi}")
    return " and ".join(parts)


def config_name(cls_or_cfg) -> str:
    """``<algo>.Config``: the prefix of every error about a config (the module's last name and the class)."""
    cls = cls_or_cfg if isinstance(cls_or_cfg, type) else type(cls_or_cfg)
    return f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__qualname__}"


def _check_value(cls_name: str, f: dataclasses.Field, value: Any) -> None:
    md = f.metadata
    where = f"{cls_name}.{f.name}"
    if isinstance(value, jax.core.Tracer):
        return
    if md.get("choices") is not None:
        if value not in md["choices"]:
            raise ConfigError(f"{where}={value!r} is not allowed: choose one of {list(md['choices'])}")
        return
    if not _is_static(f):
        # Traced hyperparameters: real numbers, or arrays of them (a batched config).
        if isinstance(value, bool) or not (isinstance(value, numbers.Real) or hasattr(value, "dtype")):
            raise ConfigError(f"{where}={value!r} must be a real number, got {type(value).__name__}")
        arr = np.asarray(value)
        if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
            raise ConfigError(f"{where} must be a real number, got dtype {arr.dtype}")
        if md.get("integer") and not (np.issubdtype(arr.dtype, np.integer) or np.all(arr == np.round(arr))):
            raise ConfigError(f"{where}={value!r} must be an integer")
        if not np.all(np.isfinite(arr) | (bool(md.get("allow_inf")) & np.isposinf(arr))):
            raise ConfigError(f"{where}={value!r} must be finite" + (" or inf" if md.get("allow_inf") else ""))
    else:
        if (
            f.default is not dataclasses.MISSING
            and type(f.default) is int
            and not isinstance(value, bool)
            and not isinstance(value, numbers.Integral)
        ):
            raise ConfigError(f"{where}={value!r} must be an integer")
        if md.get("low") is None and md.get("high") is None:
            return
        arr = np.asarray(value)
    lo, hi = md.get("low"), md.get("high")
    bad = np.zeros(arr.shape, bool)
    if lo is not None:
        bad |= (arr <= lo) if md["low_open"] else (arr < lo)
    if hi is not None:
        bad |= (arr >= hi) if md["high_open"] else (arr > hi)
    if np.any(bad):
        raise ConfigError(f"{where}={value!r} is out of range: must be {_range_text(md)}")


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(dataclasses.field,))
def config(cls):
    """Decorator: frozen keyword-only dataclass, validated on construction, registered as a pytree.

    A class attribute ``renamed = {"old_name": "new_name"}`` (inherited, merged) keeps old field names working
    for one release: ``Config(old_name=v)`` sets ``new_name`` with a ``DeprecationWarning``."""
    user_post_init = getattr(cls, "__post_init__", None)
    if getattr(user_post_init, "_jaxrl_validates", False):
        user_post_init = getattr(user_post_init, "_jaxrl_user", None)  # a base config's, wrapped already

    def __post_init__(self):
        for f in dataclasses.fields(self):
            _check_value(config_name(self), f, getattr(self, f.name))
        if user_post_init is not None:
            user_post_init(self)  # cross-field checks

    # markers on the function object (read back above when a subclass is decorated)
    __post_init__._jaxrl_validates = True  # type: ignore[attr-defined]
    __post_init__._jaxrl_user = user_post_init  # type: ignore[attr-defined]
    cls.__post_init__ = __post_init__
    cls = dataclasses.dataclass(frozen=True, kw_only=True)(cls)
    _accept_renamed(cls)
    data_names = hyper_fields(cls)
    meta_names = static_fields(cls)

    def flatten(c):
        return [getattr(c, n) for n in data_names], tuple(getattr(c, n) for n in meta_names)

    def unflatten(meta, leaves):
        obj = object.__new__(cls)  # no validation: leaves may be tracers or axis specs
        for n, v in zip(data_names, leaves):
            object.__setattr__(obj, n, v)
        for n, v in zip(meta_names, meta):
            object.__setattr__(obj, n, v)
        return obj

    jax.tree_util.register_pytree_node(cls, flatten, unflatten)
    return cls


def renamed_fields(cls_or_cfg) -> dict[str, str]:
    """Old field name -> new field name, over the class and its bases (see :func:`config`)."""
    cls = cls_or_cfg if isinstance(cls_or_cfg, type) else type(cls_or_cfg)
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        out.update(vars(klass).get("renamed", {}))
    return out


def _new_names(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
    import warnings

    renamed = renamed_fields(cls)
    out = {}
    for k, v in kwargs.items():
        if k in renamed:
            new = renamed[k]
            warnings.warn(
                f"{config_name(cls)}.{k} is now {new!r}; the old name stops working in the next release",
                DeprecationWarning,
                stacklevel=3,
            )
            if new in kwargs:
                raise ConfigError(f"{config_name(cls)}: {k!r} and {new!r} are the same field; pass only {new!r}")
            k = new
        out[k] = v
    return out


def _accept_renamed(cls) -> None:
    if not renamed_fields(cls):
        return
    dataclass_init = cls.__init__

    def __init__(self, **kwargs):
        dataclass_init(self, **_new_names(cls, kwargs))

    __init__.__doc__ = dataclass_init.__doc__
    __init__.__signature__ = __import__("inspect").signature(dataclass_init)  # type: ignore[attr-defined]
    cls.__init__ = __init__


def replace(cfg, **changes):
    """``dataclasses.replace`` that names close matches for an unknown field."""
    names = [f.name for f in dataclasses.fields(cfg)]
    changes = _new_names(type(cfg), changes)
    for k in changes:
        if k not in names:
            hint = close_matches(k, names)
            raise ConfigError(
                f"{config_name(cfg)} has no field {k!r}"
                + (f"; did you mean {', '.join(map(repr, hint))}?" if hint else f"; fields: {names}")
            )
    return dataclasses.replace(cfg, **changes)


def to_dict(cfg) -> dict[str, Any]:
    """JSON-friendly dict of a (possibly batched) config."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if hasattr(v, "tolist"):
            v = v.tolist()
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


def from_dict(cls, values: dict[str, Any]):
    """Build a config from :func:`to_dict` output (JSON lists back to tuples for static fields)."""
    kwargs = {}
    values = {renamed_fields(cls).get(k, k): v for k, v in values.items()}  # a run saved before a rename
    for f in dataclasses.fields(cls):
        if f.name in values:
            v = values[f.name]
            kwargs[f.name] = tuple(v) if isinstance(v, list) else v
    return cls(**kwargs)
