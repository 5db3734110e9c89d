"""Seeds x hyperparameter grids as one flattened run axis.

Only traced hyperparameters (``hyper`` fields) can be gridded: they are pytree leaves, so every grid point
shares one compiled program. Runs are ordered seed-major: run ``i`` is seed ``i // P`` at grid point ``i % P``,
so per-run arrays reshape to ``[seeds, *grid_sizes, ...]``.
"""

from __future__ import annotations

import dataclasses
import itertools
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jaxrl.config import ConfigError, close_matches, config_name, hyper_fields, renamed_fields, replace, static_fields


def parse_grid(items: Sequence[str]) -> dict[str, list[float]]:
    """Parse CLI ``FIELD=v1,v2,...`` items (the field may be written with dashes)."""
    grid: dict[str, list[float]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--grid {item!r}: expected FIELD=v1,v2,...")
        name, values = item.split("=", 1)
        name = name.strip().replace("-", "_")
        parsed = []
        for v in values.split(","):
            try:
                parsed.append(float(v))
            except ValueError:
                raise ConfigError(f"--grid {name}: value {v!r} is not a number") from None
        grid[name] = parsed
    return grid


def check_grid(config: Any, grid: Mapping[str, Sequence[Any]]) -> None:
    """Refuse, before compiling, a grid over a static field, an unknown field or a non-numeric value."""
    cls = config_name(config)
    hypers, statics = hyper_fields(config), static_fields(config)
    for name, values in grid.items():
        if name in statics:
            raise ConfigError(
                f"cannot grid over {cls}.{name}: it is a static field (it changes array shapes or "
                f"control flow, so each value needs its own program). Griddable fields: "
                f"{list(hypers)}"
            )
        if name not in hypers:
            hint = close_matches(name, hypers + statics)
            raise ConfigError(f"{cls} has no field {name!r}" + (f"; did you mean {hint}?" if hint else ""))
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise ConfigError(f"grid values for {cls}.{name} must be a non-empty list of numbers, got {values!r}")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise ConfigError(f"grid value {v!r} for {cls}.{name} must be a real number, got {type(v).__name__}")


def expand(config: Any, seeds: Sequence[int], grid: Mapping[str, Sequence[Any]] | None = None):
    """Return ``(batched_config, runs)``: hyper leaves as float32 arrays ``[R]``, and per run its seed and grid
    point. Every grid point is validated like a hand-written config."""
    grid = _new_names(config, dict(grid or {}))
    check_grid(config, grid)
    points = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())] or [{}]
    per_point = [replace(config, **p) for p in points]  # validates every value
    runs = [{"seed": int(s), "point": p} for s in seeds for p in points]
    configs = [per_point[i % len(points)] for i in range(len(runs))]
    dtypes = [np.int32 if f.metadata.get("integer") else np.float32 for f in _hyper_field_objects(config)]
    leaves = [np.asarray(xs, dtype=d) for d, xs in zip(dtypes, zip(*(jax.tree.leaves(c) for c in configs)))]
    batched = jax.tree.unflatten(jax.tree.structure(config), leaves)
    return batched, runs


def _hyper_field_objects(config: Any) -> list[dataclasses.Field]:
    """The traced fields in pytree-leaf order (the order :func:`jaxrl.config.config` flattens them)."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    return [fields[name] for name in hyper_fields(config)]


def _new_names(config: Any, grid: dict[str, Any]) -> dict[str, Any]:
    """A grid over a renamed field's old name grids the new one (with the config's deprecation warning)."""
    renamed = renamed_fields(config)
    for old in [k for k in grid if k in renamed]:
        import warnings

        warnings.warn(
            f"{config_name(config)}.{old} is now {renamed[old]!r}; the old name stops working in the next release",
            DeprecationWarning,
            stacklevel=3,
        )
        grid[renamed[old]] = grid.pop(old)
    return grid


def grid_shape(seeds: Sequence[int], grid: Mapping[str, Sequence[Any]] | None) -> tuple[int, ...]:
    return (len(seeds), *(len(v) for v in (grid or {}).values()))
