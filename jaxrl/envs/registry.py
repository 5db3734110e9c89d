"""``jaxrl.envs.make(name)``: one name space for gymnax, brax and MuJoCo Playground environments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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

# Extra JAX-native envs and task families register here (name -> factory returning (env, params)).
_EXTRA: dict[str, Callable[..., tuple[Any, Any]]] = {}


def register(name: str, factory: Callable[..., tuple[Any, Any]]) -> None:
    """Register an env or task-suite name; ``factory(**kwargs) -> (env, env_params)``."""
    _EXTRA[name] = factory


def _load_builtin_tasks() -> None:
    """Import every module of ``jaxrl.tasks`` once: modules register their names at import."""
    import importlib
    import pkgutil

    import jaxrl.tasks

    for info in pkgutil.iter_modules(jaxrl.tasks.__path__):
        importlib.import_module(f"jaxrl.tasks.{info.name}")


def gymnax_names() -> list[str]:
    import gymnax

    return list(gymnax.registered_envs)


def list_envs() -> list[str]:
    _load_builtin_tasks()
    return gymnax_names() + [f"brax:{n}" for n in _BRAX_NAMES] + sorted(_EXTRA) + ["playground:<EnvName>"]


def make(name: str, **kwargs) -> tuple[Any, Any]:
    """Return ``(env, env_params)`` following the gymnax >= 1.0 functional protocol.

    Names: any gymnax id (``CartPole-v1``), ``brax:<name>`` (``brax:ant``), ``playground:<EnvName>``,
    or a registered jaxrl env or task suite. An unknown name raises ``ValueError`` listing close matches.
    """
    _load_builtin_tasks()
    if name in _EXTRA:
        return _EXTRA[name](**kwargs)
    if name in gymnax_names():
        import gymnax

        env, params = gymnax.make(name, **kwargs)
        return env, params
    prefix, _, rest = name.partition(":")
    robot, _, backend = rest.partition(":")
    if prefix == "brax" and robot in _BRAX_NAMES:
        from jaxrl.envs.brax_adapter import make_brax

        if backend:
            if backend not in _BRAX_BACKENDS:
                raise ValueError(
                    f"unknown brax backend {backend!r} in {name!r}; choose one of "
                    f"{', '.join(_BRAX_BACKENDS)} (e.g. 'brax:{robot}:positional')"
                )
            kwargs = {**kwargs, "backend": backend}
        env = make_brax(robot, **kwargs)
        return env, env.default_params
    if prefix == "playground" and rest:
        from jaxrl.envs.brax_adapter import make_playground

        env = make_playground(rest, **kwargs)
        return env, env.default_params
    options = gymnax_names() + [f"brax:{n}" for n in _BRAX_NAMES] + sorted(_EXTRA)
    hint = close_matches(name, options) or close_matches(name.split(":")[-1], options)
    msg = f"unknown environment {name!r}"
    msg += f"; did you mean {', '.join(map(repr, hint))}?" if hint else "; `jaxrl list` shows them all"
    raise ValueError(msg)
