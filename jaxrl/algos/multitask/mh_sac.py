"""Multi-head MT-SAC: :mod:`jaxrl.algos.multitask.mt_sac` with ``multi_head=True`` by default (a shared trunk,
one actor and one critic output head per task, one temperature per task)."""

from __future__ import annotations

from jaxrl.algos.multitask import mt_sac
from jaxrl.algos.multitask.mt_sac import State  # noqa: F401
from jaxrl.config import config, static


@config
class Config(mt_sac.Config):
    multi_head: bool = static(True, choices=(True, False), help="shared trunk + one output head per task")


def make(config: Config, env, env_params):
    return mt_sac.make(config, env, env_params)
