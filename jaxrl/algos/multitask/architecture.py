"""The config side of the multi-task architectures of :mod:`jaxrl.nets.multitask` (``--network``).

:class:`ArchitectureConfig` is the mixin that gives a multi-task algorithm's ``Config`` its ``network`` fields, and
:func:`arch_spec` turns such a config into the :class:`~jaxrl.nets.multitask.ArchSpec` the networks are built from.
CARE's context matrix ``[K, C]`` (``context_embedding``) is ``suite`` (the suite's omega), ``one_hot``,
``descriptor`` (the suite's task descriptors) or the matrix itself, inline as JSON rows (``[[0, 1], [1, 0]]``).
A file (``.npy``, ``.txt``, ``.csv``) is read by the run layer, :func:`jaxrl.run.contexts.inline_context_file`
(``jaxrl train`` and :func:`jaxrl.run.train` call it), which puts its rows inline: nothing here does I/O, and a
run directory's ``config.json`` holds the matrix itself, so a resume does not need the file.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from jaxrl.config import ConfigError, config, config_name, static
from jaxrl.nets.multitask import NETWORKS, ArchSpec, check_arch, check_contexts, context_rows

__all__ = ["ARCHITECTURE_ALGORITHMS", "CONTEXT_KEYWORDS", "ArchitectureConfig", "arch_spec", "inline_rows"]

ARCHITECTURE_ALGORITHMS = ("mt_sac", "mh_sac", "mt_ppo")  # the algorithms whose networks ``network`` chooses
CONTEXT_KEYWORDS = ("suite", "one_hot", "descriptor")


@config
class ArchitectureConfig:
    """The ``network`` fields of a multi-task algorithm's Config: put it FIRST among the bases (its ``validate``
    runs the other bases' checks, then these)."""

    network: str = static("mlp", help=f"network architecture: {', '.join(NETWORKS)} (mlp: the shared MLP)")
    num_experts: int = static(4, low=1, help="CARE encoders / MOORE experts / PaCo parameter sets (k)")
    num_modules: int = static(2, low=1, help="Soft Modularization: modules per base layer (m)")
    context_embedding: str = static(
        "suite",
        help="CARE's per-task context [K, C]: suite (the suite's omega), one_hot, descriptor (the suite's "
        "task descriptors), a .npy / .txt / .csv file with one row per task, or the rows inline as JSON",
    )

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        parent = getattr(super(), "validate", None)
        if parent is not None:
            parent()
        where = f"{config_name(self)}.network"
        hidden = tuple(getattr(self, "hidden", (64,)))
        check_arch(ArchSpec(self.network, hidden, "relu", 1, self.num_experts, self.num_modules), where)
        if self.context_embedding != "suite" and self.network != "care":
            raise ConfigError(
                f"{config_name(self)}.context_embedding={self.context_embedding!r} is CARE's context: it needs "
                f"--network care (network={self.network!r})"
            )
        if self.network != "mlp" and config_name(self).split(".")[0] not in ARCHITECTURE_ALGORITHMS:
            raise ConfigError(
                f"{where}={self.network!r}: this algorithm builds its own networks; --network is for "
                f"{', '.join(ARCHITECTURE_ALGORITHMS)}"
            )


def inline_rows(matrix: Any) -> str:
    """A ``[K, C]`` matrix as ``context_embedding``'s inline JSON rows (float32 values round-trip exactly)."""
    return json.dumps(np.asarray(matrix, np.float32).tolist())


def _inline_matrix(value: str, what: str) -> np.ndarray:
    if not value.lstrip().startswith("["):
        raise ConfigError(
            f"{what}: not {', '.join(CONTEXT_KEYWORDS)} or inline JSON rows; a file is read by the run layer "
            "(jaxrl train, jaxrl.run.train, or jaxrl.run.contexts.inline_context_file(config) before make)"
        )
    try:
        return np.asarray(json.loads(value), dtype=np.float32)
    except (json.JSONDecodeError, ValueError) as e:
        raise ConfigError(f"{what}: inline rows are not a JSON matrix of numbers ({e})") from None


def arch_spec(config, num_tasks: int, suite_contexts=None, descriptors=None) -> ArchSpec | None:
    """The :class:`~jaxrl.nets.multitask.ArchSpec` of an :class:`ArchitectureConfig` (``None`` for
    ``network="mlp"``). CARE's context: ``suite_contexts`` (one-hot when ``None``), one-hot, ``descriptors``, or
    inline rows; checked to be ``[K, C]``."""
    if config.network == "mlp":
        return None
    contexts = None
    if config.network == "care":
        value, what = config.context_embedding, f"{config_name(config)}.context_embedding={config.context_embedding!r}"
        if value == "one_hot" or (value == "suite" and suite_contexts is None):
            arr: Any = np.eye(num_tasks, dtype=np.float32)
        elif value in ("suite", "descriptor"):
            arr = suite_contexts if value == "suite" else descriptors
            if arr is None:
                raise ConfigError(f"{what}: the suite ships no task descriptors; use suite, one_hot or a file")
        else:
            arr = _inline_matrix(value, what)
        contexts = context_rows(check_contexts(arr, num_tasks, what))
    spec = ArchSpec(
        config.network, tuple(config.hidden), config.activation, num_tasks, config.num_experts, config.num_modules,
        contexts,
    )  # fmt: skip
    check_arch(spec, f"{config_name(config)}.network")
    return spec
