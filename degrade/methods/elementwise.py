"""Methods that act on each tensor alone: pure functions ``(weight, level, *, generator) -> Tensor``.

``weight`` is a float32 tensor, the result a new float32 tensor, and all randomness comes from
``generator``. Because the caller seeds that generator from (seed, repeat, parameter) — not from
the level — the same standard-normal or uniform draw is scaled by every level of a repetition
("common random numbers"): the noise grows with σ along one direction and ablation masks are
nested across p. Level 0 returns the weight unchanged, so a sweep can hold its own baseline.
"""

from __future__ import annotations

import torch

from degrade.methods.registry import LevelAxis, register


@register("none", domain="0 (the clean model)", accepts=lambda x: x == 0, axis=LevelAxis("level (0: the clean model)"))
def none(weight: torch.Tensor, level: float, *, generator: torch.Generator) -> torch.Tensor:
    """The identity: the clean baseline every sweep should contain."""
    return weight


@register("mult_gauss", domain="σ ≥ 0", accepts=lambda x: x >= 0, axis=LevelAxis("σ (multiplicative Gaussian noise)"))
def mult_gauss(weight: torch.Tensor, level: float, *, generator: torch.Generator) -> torch.Tensor:
    """W ← W ⊙ (1 + ε), ε ~ N(0, σ²) per element; σ = ``level``."""
    if level == 0:
        return weight
    noise = torch.randn(weight.shape, generator=generator, device=weight.device, dtype=torch.float32)
    return noise.mul_(level).add_(1.0).mul_(weight)


@register(
    "add_gauss",
    domain="σ ≥ 0",
    accepts=lambda x: x >= 0,
    axis=LevelAxis("σ (additive Gaussian noise, in units of each tensor's std)"),
)
def add_gauss(weight: torch.Tensor, level: float, *, generator: torch.Generator) -> torch.Tensor:
    """W ← W + ε, ε ~ N(0, (σ·std(W))²) per element; σ = ``level``, relative to the tensor's own spread.

    A constant tensor (std 0, e.g. a norm weight as initialised) takes no noise.
    """
    if level == 0:
        return weight
    noise = torch.randn(weight.shape, generator=generator, device=weight.device, dtype=torch.float32)
    return noise.mul_(level * weight.std(correction=0)).add_(weight)


@register(
    "ablation", domain="0 ≤ p ≤ 1", accepts=lambda x: 0 <= x <= 1, axis=LevelAxis("p (fraction of weights zeroed)")
)
def ablation(weight: torch.Tensor, level: float, *, generator: torch.Generator) -> torch.Tensor:
    """Zero every element independently with probability p = ``level``."""
    if level == 0:
        return weight
    draw = torch.rand(weight.shape, generator=generator, device=weight.device, dtype=torch.float32)
    return torch.where(draw < level, torch.zeros((), dtype=weight.dtype, device=weight.device), weight)


def is_quant_level(x: float) -> bool:
    """An integer n ≥ 2, or 0 (the clean model)."""
    return x == 0 or (x >= 2 and float(x).is_integer())


@register(
    "uni_quant",
    domain="an integer n ≥ 2 (or 0 for the clean model)",
    accepts=is_quant_level,
    integer_levels=True,
    axis=LevelAxis("n (quantisation levels per tensor)", log=True, damage_grows_with_level=False),
)
def uni_quant(weight: torch.Tensor, level: float, *, generator: torch.Generator) -> torch.Tensor:
    """Round each tensor to n = ``level`` evenly spaced values over its own [min, max].

    Larger n is less damage; n = 0 leaves the tensor clean so a sweep can hold its baseline.
    """
    if level == 0:
        return weight
    lo, hi = weight.min(), weight.max()
    if hi == lo:
        return weight
    top = int(level) - 1
    step = (hi - lo) / top
    index = torch.round((weight - lo) / step).clamp_(0, top)
    # lo + top·step can miss hi by a float32 step; the top value is hi itself.
    return torch.where(index == top, hi, index * step + lo)
