"""Degradation methods: pure functions registered by name, and their level sweeps.

Every method shares one signature, ``(weight, level, *, generator) -> Tensor``: ``weight``
is a float32 tensor, the result is a new float32 tensor, and all randomness comes from
``generator``. Because the caller seeds that generator from (seed, repeat, parameter) —
not from the level — the same standard-normal or uniform draw is scaled by every level of
a repetition ("common random numbers"): mult_gauss noise grows with σ along one
direction and ablation masks are nested across p.

Level 0 is the clean model for every method: a method's function must return the weight
unchanged at 0, so a sweep can hold its own baseline. What the report needs to draw and
order a method's levels is data on its registration (:class:`LevelAxis`), so a new method
is one function here and one YAML file in ``conf/degradation/``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

MethodFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class LevelAxis:
    """How a method's level reads on a plot and in which order its levels damage more.

    Attributes:
        label: what the level is, for a plot axis, e.g. ``"σ (multiplicative Gaussian noise)"``.
        log: the levels span orders of magnitude and are drawn on a logarithmic axis
            (level 0, the clean model, has no place there and is drawn as a reference line).
        damage_grows_with_level: a larger level is more damage (σ, p); False when a larger
            level is less damage (uni_quant's n). Either way level 0 is the clean model.
    """

    label: str = "level"
    log: bool = False
    damage_grows_with_level: bool = True

    def damage_order(self, level: float) -> float:
        """A sort key that puts levels in order of growing damage, the clean level 0 first."""
        if level == 0:
            return -math.inf
        return level if self.damage_grows_with_level else -level


@dataclass(frozen=True)
class Method:
    """A registered degradation method, the domain of its level and how that level is drawn."""

    fn: MethodFn
    domain: str
    accepts: Callable[[float], bool]
    integer_levels: bool = False
    axis: LevelAxis = LevelAxis()


METHODS: dict[str, Method] = {}


def register(
    name: str,
    *,
    domain: str,
    accepts: Callable[[float], bool],
    integer_levels: bool = False,
    axis: LevelAxis = LevelAxis(),
):
    """Register ``fn`` as the degradation method ``name`` (the value of ``degradation.method``).

    Args:
        name: the method's name, as ``degradation.method`` and the records spell it.
        domain: the allowed levels, in words, for error messages.
        accepts: whether a level lies in the domain.
        integer_levels: a computed range of levels is rounded to integers.
        axis: how the report draws and orders the levels.
    """

    def wrap(fn: MethodFn) -> MethodFn:
        METHODS[name] = Method(fn, domain, accepts, integer_levels, axis)
        return fn

    return wrap


def level_axis(name: str) -> LevelAxis:
    """How to draw and order the levels of method ``name``.

    A method that is no longer registered (named by old records) gets a plain linear
    ``"level"`` axis, damage growing with the level.
    """
    registered = METHODS.get(name)
    return registered.axis if registered is not None else LevelAxis()


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
    "ablation", domain="0 ≤ p ≤ 1", accepts=lambda x: 0 <= x <= 1, axis=LevelAxis("p (fraction of weights zeroed)")
)
def ablation(weight: torch.Tensor, level: float, *, generator: torch.Generator) -> torch.Tensor:
    """Zero every element independently with probability p = ``level``."""
    if level == 0:
        return weight
    draw = torch.rand(weight.shape, generator=generator, device=weight.device, dtype=torch.float32)
    return torch.where(draw < level, torch.zeros((), dtype=weight.dtype, device=weight.device), weight)


def _is_quant_level(x: float) -> bool:
    return x == 0 or (x >= 2 and float(x).is_integer())


@register(
    "uni_quant",
    domain="an integer n ≥ 2 (or 0 for the clean model)",
    accepts=_is_quant_level,
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


def method(name: str) -> Method:
    """The registered method ``name``; raises KeyError listing the known names."""
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; allowed: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def resolve_levels(spec: Any, name: str) -> list[float]:
    """Turn ``degradation.levels`` into the list of levels to sweep, in order.

    Args:
        spec: a list of numbers, or a mapping {min, max, steps, spacing: linear|geometric}
            (``degradation.range``).
        name: the method, whose domain every level must lie in.

    Raises:
        ValueError: with a message naming what is allowed.
    """
    meth = method(name)
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        values = [float(spec)]
    elif isinstance(spec, (list, tuple)):
        if not spec:
            raise ValueError(
                f"is empty; give a list of levels ({name}: {meth.domain}) or degradation.range={{min, max, steps}}"
            )
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec):
            raise ValueError(f"must hold numbers only, got {list(spec)}")
        values = [float(v) for v in spec]
    elif isinstance(spec, dict):
        values = _range_levels(spec)
        if meth.integer_levels:  # a computed sweep of n: rounded, each n once, in order
            values = list(dict.fromkeys(float(round(v)) for v in values))
    else:
        raise ValueError(f"must be a list of numbers, got {spec!r}")
    bad = [v for v in values if not (math.isfinite(v) and meth.accepts(v))]
    if bad:
        raise ValueError(f"{_fmt(bad)} outside the domain of {name}: {meth.domain}")
    return values


def _range_levels(spec: dict) -> list[float]:
    keys = {"min", "max", "steps", "spacing"}
    if set(spec) - keys or not {"min", "max", "steps"} <= set(spec):
        raise ValueError(f"a range needs keys min, max, steps (and optional spacing), got {sorted(spec)}")
    lo, hi, steps = float(spec["min"]), float(spec["max"]), spec["steps"]
    spacing = spec.get("spacing", "linear")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be an integer ≥ 1, got {steps!r}")
    if spacing == "linear":
        return [float(v) for v in np.linspace(lo, hi, steps)]
    if spacing == "geometric":
        if lo <= 0 or hi <= 0:
            raise ValueError(f"geometric spacing needs min > 0 and max > 0, got min={lo}, max={hi}")
        return [float(v) for v in np.geomspace(lo, hi, steps)]
    raise ValueError(f"spacing must be linear or geometric, got {spacing!r}")


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:g}" for v in values)
