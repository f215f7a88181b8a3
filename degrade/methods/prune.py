"""``prune_magnitude``: zero the fraction p of weights with the smallest magnitude, per tensor or across the group.

No randomness: the weights zeroed at p are among those zeroed at any larger p. Ties at the
threshold are broken by position (the first in the group's order go first), so exactly
round(p·n) weights are chosen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from degrade.methods.registry import LevelAxis, Option, register_group
from degrade.methods.seeding import Seeding, read_target, write_target
from degrade.model.groups import ResolvedGroup


def smallest(magnitude: torch.Tensor, k: int) -> torch.Tensor:
    """A boolean mask of exactly ``k`` positions of the flat ``magnitude`` holding its smallest values."""
    mask = torch.zeros_like(magnitude, dtype=torch.bool)
    if k <= 0:
        return mask
    if k >= magnitude.numel():
        return ~mask
    threshold = magnitude.kthvalue(k).values
    mask = magnitude < threshold
    ties = (magnitude == threshold).nonzero().reshape(-1)[: k - int(mask.sum())]
    mask[ties] = True
    return mask


@register_group(
    "prune_magnitude",
    domain="0 ≤ p ≤ 1",
    accepts=lambda x: 0 <= x <= 1,
    axis=LevelAxis("p (fraction of smallest-magnitude weights zeroed)"),
    options={"scope": Option("tensor", ("tensor", "group"))},
)
@torch.no_grad()
def prune_magnitude(
    model: nn.Module, group: ResolvedGroup, level: float, *, seeding: Seeding, options: Mapping[str, Any]
) -> None:
    """Zero the round(p·n) smallest-magnitude weights, p = ``level``, n the tensor's or the group's size."""
    if level == 0:
        return
    if options["scope"] == "tensor":
        for target in group.targets:
            values = read_target(model, target)
            mask = smallest(values.abs().reshape(-1), round(level * values.numel()))
            write_target(model, target, values.masked_fill(mask.view(values.shape), 0.0))
        return
    device = model.get_parameter(group.targets[0].name).device
    magnitude = torch.cat([read_target(model, t).abs().reshape(-1).to(device) for t in group.targets])
    mask = smallest(magnitude, round(level * magnitude.numel()))
    for target, part in zip(group.targets, mask.split([t.numel for t in group.targets])):
        values = read_target(model, target)  # read again rather than hold every tensor's float32 copy at once
        write_target(model, target, values.masked_fill(part.to(values.device).view(values.shape), 0.0))
