"""``neuron_ablation``: zero whole units with probability p — MLP neurons, attention heads or whole layers.

``degradation.options.unit`` picks the unit (see :mod:`degrade.model.structure` for where each sits):

- ``neuron``: an intermediate unit of the MLP, its row of gate and up and its column of down;
- ``head``: a query head, its rows of q and its columns of the output projection; a key/value
  head (shared by several query heads under grouped-query attention) is zeroed when all the
  query heads that read it are;
- ``layer``: every parameter of the group in one decoder layer.

Only the group's own parameters are touched: with ``param_group=attn_only`` (the value
projections) a head's v rows are zeroed, nothing else. Each layer's units draw one uniform each
from a generator seeded per (seed, repeat, tower, layer, unit), and a unit dies when its draw is
below p: under ``common_noise`` the units dead at p are dead at every larger p (nested masks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from degrade.errors import DegradeError
from degrade.methods.registry import LevelAxis, Option, register_group
from degrade.methods.seeding import Seeding
from degrade.model import quant4
from degrade.model.groups import ResolvedGroup, Target
from degrade.model.structure import UNITS, Slot, slot

HOLDERS = {
    "neuron": "MLP neurons (mlp_gate, mlp_up, mlp_down, mlp_gate_up, e.g. param_group=mlp_only)",
    "head": "attention heads (attn_q, attn_k, attn_v, attn_o, attn_qkv, e.g. param_group=attn)",
    "layer": "parameters inside decoder layers",
}


def layers(model: nn.Module, group: ResolvedGroup, unit: str) -> dict[tuple[str, int], list[tuple[Target, Slot]]]:
    """The group's targets that hold ``unit``, by (tower, layer), each with where it holds them."""
    found: dict[tuple[str, int], list[tuple[Target, Slot]]] = {}
    for target in group.targets:
        where = slot(model, target, unit)
        if where is not None:
            found.setdefault((target.tower, target.layer), []).append((target, where))
    return found


def check(model: nn.Module, group: ResolvedGroup, options: Mapping[str, Any]) -> None:
    """Refuse 4-bit weights, and a group that holds none of the chosen units."""
    unit = options["unit"]
    if any(quant4.is_4bit(model.get_parameter(t.name)) for t in group.targets):
        raise DegradeError(
            "degradation=neuron_ablation zeroes rows and columns of weights; this model's are packed 4-bit codes "
            "(model.load_4bit=true): load it without load_4bit, or pick an unstructured method"
        )
    found = layers(model, group, unit)
    if not found:
        raise DegradeError(
            f"degradation.options.unit={unit}: param_group={group.name} holds no {HOLDERS[unit]}; "
            f"pick another group or another unit ({', '.join(UNITS)})"
        )
    for (tower, layer), items in found.items():
        counts = {where.count for _, where in items}
        if len(counts) > 1:
            raise DegradeError(
                f"degradation.options.unit={unit}: the parameters of {tower} layer {layer} disagree on its "
                f"number of units ({sorted(counts)}): {', '.join(target.key for target, _ in items)}"
            )


@register_group(
    "neuron_ablation",
    domain="0 ≤ p ≤ 1",
    accepts=lambda x: 0 <= x <= 1,
    axis=LevelAxis("p (fraction of units zeroed: neurons, heads or layers)"),
    options={"unit": Option("neuron", UNITS)},
    check=check,
)
@torch.no_grad()
def neuron_ablation(
    model: nn.Module, group: ResolvedGroup, level: float, *, seeding: Seeding, options: Mapping[str, Any]
) -> None:
    """Zero each unit (``options["unit"]``) of the group's layers with probability p = ``level``."""
    if level == 0:
        return
    unit = options["unit"]
    for (tower, layer), items in layers(model, group, unit).items():
        device = model.get_parameter(items[0][0].name).device
        generator = seeding.generator(f"{tower}.layers.{layer}.{unit}", device)
        dead = torch.rand(items[0][1].count, generator=generator, device=device) < level
        if not dead.any():
            continue
        for target, where in items:
            param = model.get_parameter(target.name)
            index = where.expand(dead.to(param.device)).nonzero().reshape(-1)
            if target.part is not None:  # a slice's own rows → the fused tensor's rows
                index = target.part.index(param.device)[index]
            param.data.index_fill_(where.dim, index, 0)
