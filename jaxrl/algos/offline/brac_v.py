"""BRAC-v: the KL penalty in the actor and in the critic's target (value penalty).

See :mod:`jaxrl.algos.offline.brac` for the algorithm; this module is the registry entry ``brac_v``, whose
``Config`` fixes ``variant="v"``."""

from __future__ import annotations

from jaxrl.algos.common import Algorithm
from jaxrl.algos.offline import brac
from jaxrl.config import config, static

State = brac.State


@config
class Config(brac.Config):
    variant: str = static("v", choices=("v",), help="BRAC variant (fixed by this module; the other is brac_p)")


def make(config: Config, env, env_params) -> Algorithm:
    return brac.make_brac(config, env, env_params, "brac_v", value_penalty=config.variant == "v")
