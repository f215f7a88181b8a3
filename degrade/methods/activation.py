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

from degrade.errors import DegradeError
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


def check(model: nn.Module, group: ResolvedGroup, options: Mapping[str, Any]) -> None:
    """Refuse what noise on a module's output cannot damage as named: a slice, a router."""
    for target in group.targets:
        if target.part is not None:
            raise DegradeError(
                f"degradation=activation_noise: param_group={group.name} takes the {target.kind} rows of "
                f"{target.name} alone, and its module's output carries the other rows' outputs too; allowed: a "
                "group that takes the fused tensor whole, or a method that acts on weights"
            )
        if target.kind == "mlp_router":
            raise DegradeError(
                f"degradation=activation_noise: {target.name} is a router, which picks its experts inside its "
                "own forward pass, so noise on its output would change nothing; allowed: a group without "
                "mlp_router (e.g. param_group=mlp_only)"
            )


@register_group(
    "activation_noise",
    domain="σ ≥ 0",
    accepts=lambda x: x >= 0,
    axis=LevelAxis("σ (Gaussian noise on module outputs, in units of each output's std)"),
    forward_hooks=True,
    check=check,
)
def activation_noise(
    model: nn.Module, group: ResolvedGroup, level: float, *, seeding: Seeding, options: Mapping[str, Any]
) -> None:
    """Hook noise of σ = ``level`` onto the output of every module whose weight is in the group, once per module.

    A module holding several of the group's tensors (the experts' gate/up and down) takes one hook, seeded by the
    first of them.
    """
    if level == 0:
        return
    hooked: set[str] = set()
    for target in group.targets:
        owner = target.name.rpartition(".")[0]
        if owner in hooked:
            continue
        hooked.add(owner)
        device = model.get_parameter(target.name).device
        hooks.attach(model, model.get_submodule(owner), noisy(level, seeding.generator(target.name, device)))
