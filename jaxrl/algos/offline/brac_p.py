"""BRAC-p: the KL penalty in the actor only (policy penalty).

See :mod:`jaxrl.algos.offline.brac` for the algorithm; this module is the registry entry ``brac_p``, whose
``Config`` fixes ``variant="p"``."""

from __future__ import annotations

from jaxrl.algos.common import Algorithm
from jaxrl.algos.offline import brac
from jaxrl.config import config, static

State = brac.State


@config
class Config(brac.Config):
    variant: str = static("p", choices=("p",), help="BRAC variant (fixed by this module; the other is brac_v)")


def make(config: Config, env, env_params) -> Algorithm:
    return brac.make_brac(config, env, env_params, "brac_p", value_penalty=config.variant == "v")
