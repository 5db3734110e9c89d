"""Networks as (init, apply) pairs; policy heads return distrax distributions."""

from jaxrl.nets.core import (
    MLP,
    Network,
    make_categorical_policy,
    make_ensemble,
    make_gaussian_policy,
    make_mlp,
    make_q_ensemble,
    make_tanh_gaussian_policy,
    make_value_network,
    mode,
)

__all__ = [
    "MLP",
    "Network",
    "make_mlp",
    "make_value_network",
    "make_categorical_policy",
    "make_gaussian_policy",
    "make_tanh_gaussian_policy",
    "make_q_ensemble",
    "make_ensemble",
    "mode",
]
