"""Degradation methods, registered by name, and their level sweeps.

Each method is one registered function (:mod:`degrade.methods.registry`) plus one YAML file in
``conf/degradation/``. Its registration states the level's domain, its axis (label, linear or
log, whether damage grows with the level) and its options, so the config checks, the report
and the docs need no per-method code. Level 0 is the clean model for every method.

- :mod:`~degrade.methods.elementwise`: ``none``, ``mult_gauss``, ``add_gauss``, ``ablation``, ``uni_quant``;
- :mod:`~degrade.methods.bit_flip`: ``bit_flip``;
- :mod:`~degrade.methods.prune`: ``prune_magnitude``;
- :mod:`~degrade.methods.structured`: ``neuron_ablation``;
- :mod:`~degrade.methods.rtn`: ``rtn``; :mod:`~degrade.methods.minifloat`: ``minifloat``;
- :mod:`~degrade.methods.activation`: ``activation_noise``.
"""

from __future__ import annotations

from degrade.methods.activation import activation_noise
from degrade.methods.bit_flip import bit_flip
from degrade.methods.elementwise import ablation, add_gauss, mult_gauss, none, uni_quant
from degrade.methods.levels import resolve_levels
from degrade.methods.minifloat import minifloat
from degrade.methods.prune import prune_magnitude
from degrade.methods.registry import (
    METHODS,
    LevelAxis,
    Method,
    Option,
    check_options,
    level_axis,
    method,
    register,
    register_group,
    seeding_for,
)
from degrade.methods.rtn import rtn
from degrade.methods.structured import neuron_ablation

__all__ = [
    "METHODS",
    "LevelAxis",
    "Method",
    "Option",
    "ablation",
    "activation_noise",
    "add_gauss",
    "bit_flip",
    "check_options",
    "level_axis",
    "method",
    "minifloat",
    "mult_gauss",
    "neuron_ablation",
    "none",
    "prune_magnitude",
    "register",
    "register_group",
    "resolve_levels",
    "rtn",
    "seeding_for",
    "uni_quant",
]
