"""``activation_noise``: Gaussian noise added to the outputs of the group's modules at forward time.

The weights stay clean: the method attaches a forward hook to the module of each parameter of
the group (the projection, the embedding, the norm), and restoring the model removes the hooks
(:meth:`degrade.model.restore.Snapshot.restore`). Each output vector (the last dimension, one token of
one prompt) takes noise of σ times its own spread: y ← y + σ·std(y)·ε, ε ~ N(0, 1).

Each hook draws from its own generator, seeded per (seed, repeat, parameter) when the cell is
damaged, in the order of the forward passes: the same cell run the same way (same prompts,
same batches) gets the same noise; under ``common_noise`` every level scales the same draws.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from degrade.methods.registry import LevelAxis, register_group
from degrade.methods.seeding import Seeding
from degrade.model import hooks
from degrade.model.groups import ResolvedGroup


def noisy(level: float, generator: torch.Generator) -> hooks.Hook:
    """A forward hook adding σ·std(y)·ε to each output vector y, σ = ``level``."""

    def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
        first = output[0] if isinstance(output, tuple) else output
        if not torch.is_tensor(first) or not first.is_floating_point():
            return None
        values = first.float()
        noise = torch.randn(values.shape, generator=generator, device=values.device, dtype=torch.float32)
        spread = values.std(dim=-1, keepdim=True, correction=0)
        damaged = noise.mul_(spread).mul_(level).add_(values).to(first.dtype)
        return (damaged, *output[1:]) if isinstance(output, tuple) else damaged

    return hook


@register_group(
    "activation_noise",
    domain="σ ≥ 0",
    accepts=lambda x: x >= 0,
    axis=LevelAxis("σ (Gaussian noise on module outputs, in units of each output's std)"),
    forward_hooks=True,
)
def activation_noise(
    model: nn.Module, group: ResolvedGroup, level: float, *, seeding: Seeding, options: Mapping[str, Any]
) -> None:
    """Hook noise of σ = ``level`` onto the output of every module whose weight is in the group."""
    if level == 0:
        return
    for target in group.targets:
        module = model.get_submodule(target.name.rpartition(".")[0])
        device = model.get_parameter(target.name).device
        hooks.attach(model, module, noisy(level, seeding.generator(target.name, device)))
