"""Reading CARE's context-embedding file (the one file a multi-task config names), at the run layer.

``context_embedding`` (:class:`jaxrl.algos.multitask.architecture.ArchitectureConfig`) may name a ``.npy``, ``.csv``
or whitespace-separated text file of one row per task. :func:`inline_context_file` reads it and returns the config
with the rows inline (JSON), so the algorithms below never read files and ``config.json`` records the matrix
itself (a resume does not need the file). ``jaxrl train`` and :func:`jaxrl.run.train` call it before anything is
built.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from jaxrl.algos.multitask.architecture import CONTEXT_KEYWORDS, inline_rows
from jaxrl.config import ConfigError

__all__ = ["load_context_embedding", "inline_context_file"]


def load_context_embedding(value: str) -> np.ndarray:
    """A ``[K, C]`` context matrix from a ``.npy``, ``.csv`` or whitespace-separated text file."""
    path = Path(value)
    if not path.is_file():
        raise ConfigError(
            f"context_embedding={value!r}: not suite, one_hot or descriptor, and no such file (give a .npy, .txt "
            "or .csv file with one row per task)"
        )
    if path.suffix == ".npy":
        return np.load(path)
    return np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None, ndmin=2)


def inline_context_file(config: Any) -> Any:
    """``config`` with a context-embedding file replaced by its rows inline; any other config unchanged."""
    value = getattr(config, "context_embedding", None)
    if not isinstance(value, str) or value in CONTEXT_KEYWORDS or value.lstrip().startswith("["):
        return config
    return dataclasses.replace(config, context_embedding=inline_rows(load_context_embedding(value)))
