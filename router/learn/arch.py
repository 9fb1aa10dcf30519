"""The shape of the ensemble's network, without JAX: both trainers and the model file read it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Arch:
    """The shape of the network; saved in the model file so a load rebuilds the same one."""

    n_templates: int
    n_features: int
    embed_dim: int = 8
    hidden: int = 64
    members: int = 5
