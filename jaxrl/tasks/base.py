"""Task families and suites: distributions over, and fixed sets of, env params.

A task lives in the env params. A *family* samples tasks: ``family.sample(key, n)`` returns params whose every
leaf has a leading task axis ``[n]`` (so a batch of tasks is a ``vmap`` over params). A *suite* is a fixed set of
``K`` tasks (the multi-task setting): the same stacked params, plus the known context omega of each task
(``contexts [K, D]``: one-hot task IDs by default, or any given embedding such as a language or video
description). Multi-task RL shows omega to the agent; meta-RL hides it. One code path serves both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp


class TaskFamily(Protocol):
    env: Any

    def sample(self, key: jax.Array, n: int) -> Any:
        """Env params with a leading task axis ``[n]``."""


def num_tasks(params: Any) -> int:
    return int(jax.tree.leaves(params)[0].shape[0])


def task(params: Any, index: int | jax.Array) -> Any:
    """Task ``index`` out of stacked params (a bad static index fails with the valid range)."""
    k = num_tasks(params)
    if isinstance(index, int) and not 0 <= index < k:
        raise IndexError(f"task index {index} is out of range: the suite has {k} tasks (0..{k - 1})")
    return jax.tree.map(lambda x: x[index], params)


@dataclasses.dataclass(frozen=True)
class TaskSuite:
    """``K`` tasks of one env with their known contexts. Pass it where an env goes: ``(suite, suite.params)``."""

    name: str
    env: Any  # the single-task env (gymnax protocol)
    params: Any  # env params, every leaf [K, ...]
    contexts: jax.Array  # [K, D] omega
    task_names: tuple[str, ...] = ()
    success_fn: Callable[[dict], jax.Array] | None = None  # step info -> success flag, where defined
    extra_metadata: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self):
        k = num_tasks(self.params)
        if self.contexts.ndim != 2 or self.contexts.shape[0] != k:
            raise ValueError(f"{self.name}: contexts must be [num_tasks={k}, D], got shape {self.contexts.shape}")
        if self.task_names and len(self.task_names) != k:
            raise ValueError(f"{self.name}: {len(self.task_names)} task names for {k} tasks")

    @property
    def num_tasks(self) -> int:
        return num_tasks(self.params)

    @property
    def context_dim(self) -> int:
        return int(self.contexts.shape[1])

    def task(self, index: int) -> Any:
        return task(self.params, index)

    def with_contexts(self, contexts: jax.Array) -> TaskSuite:
        """The same tasks described by other contexts (e.g. a ``[K, D]`` array of language embeddings)."""
        contexts = jnp.asarray(contexts, jnp.float32)
        if contexts.ndim != 2 or contexts.shape[0] != self.num_tasks:
            raise ValueError(f"{self.name}: omega must have shape [{self.num_tasks}, D], got {contexts.shape}")
        return dataclasses.replace(self, contexts=contexts)

    def metadata(self) -> dict:
        return {
            "suite": self.name,
            "num_tasks": self.num_tasks,
            "task_names": list(self.task_names),
            **dict(self.extra_metadata),
        }


def one_hot_contexts(k: int) -> jax.Array:
    return jnp.eye(k, dtype=jnp.float32)
