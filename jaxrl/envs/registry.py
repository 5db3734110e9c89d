"""``jaxrl.envs.make(name)``: the one resolver of env names.

Name forms:

- a registered name: the task suites and families of :mod:`jaxrl.tasks` (``point-goal-4``, ``nav2d``, ...) and
  whatever :func:`register` added;
- a gymnax id (``CartPole-v1``);
- ``brax:<robot>[:<backend>]`` and ``playground:<EnvName>``;
- ``dataset:<file>[,<file>...][?env=<name>]``: dataset files as the offline env of offline algorithms (the name
  a run directory records; :func:`dataset_name` writes one);
- ``metaworld:<benchmark>``: host envs, which step on the CPU outside JAX: :func:`make_host` (multi-task MT10 /
  MT25 / MT50 and task subsets, :mod:`jaxrl.envs.metaworld`; meta-RL ML1-<task> / ML10 / ML25 / ML45,
  :mod:`jaxrl.envs.metaworld_meta`).

No import cycle: task modules register their names with :func:`register` when :mod:`jaxrl.tasks` is imported,
and this module imports nothing of theirs; it imports the packages named in :data:`PROVIDERS` by name on the first
lookup. Loaders of prefixed names that live in other packages are ``"module:function"`` strings imported on
first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from jaxrl.config import close_matches

_BRAX_NAMES = (
    "ant",
    "halfcheetah",
    "hopper",
    "humanoid",
    "humanoidstandup",
    "inverted_pendulum",
    "inverted_double_pendulum",
    "pusher",
    "reacher",
    "walker2d",
)
# ``brax:<name>:<backend>`` picks brax's physics pipeline; the name carries it so that datasets and run
# directories re-create the same physics. On CPU "generalized" (brax's default for most robots) runs hopper at
# ~70 steps/s with 8 envs, "positional" at ~27k and "spring" at ~60k (measured on this project's 2-core CPU).
_BRAX_BACKENDS = ("generalized", "positional", "spring", "mjx")

# Packages whose import registers env names (each of their modules calls `register`).
PROVIDERS = ("jaxrl.tasks",)
# The offline env (datasets stacked beside the real env, jaxrl.envs.offline) is built from the files the name lists;
# imported by name because it builds its real env through this module.
_DATASET_LOADER = "jaxrl.envs.offline:load_offline_env"
_HOST_PREFIXES = ("metaworld",)

# name -> factory returning (env, params)
_EXTRA: dict[str, Callable[..., tuple[Any, Any]]] = {}
_loaded: set[str] = set()


class Resolved(NamedTuple):
    name: str  # the name to record (a resume resolves it again): dataset names carry absolute paths
    env: Any
    params: Any


def register(name: str, factory: Callable[..., tuple[Any, Any]]) -> None:
    """Register an env or task-suite name; ``factory(**kwargs) -> (env, env_params)``."""
    _EXTRA[name] = factory


def _load_providers() -> None:
    for package in PROVIDERS:
        if package not in _loaded:
            importlib.import_module(package)
            _loaded.add(package)


def _load(spec: str) -> Callable:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def gymnax_names() -> list[str]:
    import gymnax

    return list(gymnax.registered_envs)


def list_envs() -> list[str]:
    _load_providers()
    return (
        gymnax_names()
        + [f"brax:{n}" for n in _BRAX_NAMES]
        + sorted(_EXTRA)
        + [
            "playground:<EnvName>",
            "dataset:<FILE>[,<FILE>...]",
            "metaworld:<MT10|MT25|MT50>",
            "metaworld:<ML1-<task>|ML10|ML25|ML45>",
        ]
    )


def make(name: str, **kwargs) -> tuple[Any, Any]:
    """Return ``(env, env_params)`` following the gymnax >= 1.0 functional protocol.

    Names: any gymnax id (``CartPole-v1``), ``brax:<name>`` (``brax:ant``), ``playground:<EnvName>``,
    ``dataset:<file>`` or a registered jaxrl env or task suite. An unknown name raises ``ValueError`` listing close
    matches.
    """
    _, env, params = resolve(name, **kwargs)
    return env, params


def resolve(name: str, **kwargs) -> Resolved:
    """:func:`make` with the name to record for the env (see :class:`Resolved`)."""
    _load_providers()
    if name in _EXTRA:
        return Resolved(name, *_EXTRA[name](**kwargs))
    if name in gymnax_names():
        import gymnax

        return Resolved(name, *gymnax.make(name, **kwargs))
    prefix, _, rest = name.partition(":")
    if prefix == "dataset" and rest:
        env, params = _load(_DATASET_LOADER)(name, **kwargs)
        return Resolved(env.name, env, params)
    if prefix in _HOST_PREFIXES and rest:
        raise ValueError(
            f"{name!r} is a host env (it steps on the CPU, outside JAX): train it with "
            + (
                f"jaxrl.run.host_meta.train_meta, as `jaxrl train rl2 --env {name}` does (meta-RL)"
                if rest.upper().startswith("ML")
                else f"jaxrl.run.host_train.train_host, as `jaxrl train mt_sac --env {name}` does"
            )
        )
    robot, _, backend = rest.partition(":")
    if prefix == "brax" and robot in _BRAX_NAMES:
        return Resolved(name, *_make_brax(robot, backend, **kwargs))
    if prefix == "playground" and rest:
        from jaxrl.envs.brax_adapter import make_playground

        env = make_playground(rest, **kwargs)
        return Resolved(name, env, env.default_params)
    options = gymnax_names() + [f"brax:{n}" for n in _BRAX_NAMES] + sorted(_EXTRA)
    hint = close_matches(name, options) or close_matches(name.split(":")[-1], options)
    msg = f"unknown environment {name!r}"
    msg += f"; did you mean {', '.join(map(repr, hint))}?" if hint else "; `jaxrl list` shows them all"
    raise ValueError(msg)


def _make_brax(robot: str, backend: str, **kwargs) -> tuple[Any, Any]:
    from jaxrl.envs.brax_adapter import make_brax

    if backend:
        if backend not in _BRAX_BACKENDS:
            raise ValueError(
                f"unknown brax backend {backend!r} in 'brax:{robot}:{backend}'; choose one of "
                f"{', '.join(_BRAX_BACKENDS)} (e.g. 'brax:{robot}:positional')"
            )
        kwargs = {**kwargs, "backend": backend}
    env = make_brax(robot, **kwargs)
    return env, env.default_params


def dataset_name(paths: Sequence[str], env: str | None = None) -> str:
    """The ``dataset:`` name of dataset files; ``env`` names the env of files that do not name theirs."""
    paths = [str(p) for p in paths]
    for p in paths:
        if "," in p or "?env=" in p:
            raise ValueError(f"dataset path {p!r}: a dataset name cannot hold ',' or '?env=' (rename the file)")
    return "dataset:" + ",".join(paths) + (f"?env={env}" if env else "")


def is_dataset(name: Any) -> bool:
    """Whether ``name`` is a ``dataset:`` name: an offline env's own name, which :func:`resolve` rebuilds."""
    return isinstance(name, str) and name.startswith("dataset:") and len(name) > len("dataset:")


def is_host(name: Any) -> bool:
    """Whether ``name`` is a host env's (``metaworld:MT10``, ``metaworld:ML1-reach-v3``): trained by
    :mod:`jaxrl.run.host_train` (multi-task) or :mod:`jaxrl.run.host_meta` (meta-RL)."""
    return isinstance(name, str) and name.partition(":")[0] in _HOST_PREFIXES


def make_host(name: str, **kwargs) -> tuple[Callable[[int], Any], str]:
    """``(seed -> host env, the name to record)`` for a host env; a bare benchmark (``"MT10"``) is Meta-World's."""
    from jaxrl.envs.metaworld import make_metaworld

    full = name if is_host(name) else f"metaworld:{name}"
    return (lambda seed: make_metaworld(full, seed=seed, **kwargs)), full
