"""``minifloat``: the OCP Microscaling (MX) floating-point formats, levels in bits per element.

As the OCP MX specification (v1.0) defines MXFP8, MXFP6 and MXFP4: every block of 32 consecutive
values along an output's inputs (a row; the last block of a row shorter when 32 does not divide it)
shares one scale X, a power of two (E8M0, exponents −127 to 127), and each value is stored as an
element of a small float format:

    X = 2^(floor(log2(max|v|)) − emax_elem),   v′ = X · round_elem(v / X)

where emax_elem is the exponent of the element format's largest normal number and ``round_elem``
rounds to nearest, ties to even, in the element format (its subnormals included), saturating to
its largest magnitude (v / X can reach just under 2^(emax_elem + 1), past that maximum):

| level | element | exponent bits, mantissa bits, bias | emax_elem | largest | smallest subnormal |
|---|---|---|---|---|---|
| 8 | E4M3 (FP8; no infinities, one NaN pattern) | 4, 3, 7 | 8 | 448 | 2^−9 |
| 6 | E3M2 (FP6) | 3, 2, 3 | 4 | 28 | 2^−4 |
| 4 | E2M1 (FP4: ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}) | 2, 1, 1 | 2 | 6 | 0.5 |

No randomness; fewer bits is more damage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from degrade.methods.registry import LevelAxis, register_group
from degrade.methods.rtn import by_blocks, input_dim
from degrade.methods.seeding import Seeding, read_target, write_target
from degrade.model.groups import ResolvedGroup

BLOCK = 32  # the MX specification's block size k
SCALE_EXPONENTS = (-127, 127)  # what E8M0 holds (its 255 is NaN)


@dataclass(frozen=True)
class ElementFormat:
    """A small float format: its mantissa bits, the exponents of its smallest and largest normals, its largest value."""

    name: str
    mantissa: int
    emin: int  # 1 − bias: below it, subnormals with the same quantum
    emax: int
    largest: float


FORMATS = {
    8: ElementFormat("E4M3", 3, -6, 8, 448.0),  # 1.75·2^8: S.1111.111 is NaN, so 1.110 is the top mantissa
    6: ElementFormat("E3M2", 2, -2, 4, 28.0),  # 1.75·2^4: no NaN or infinity
    4: ElementFormat("E2M1", 1, 0, 2, 6.0),  # 1.5·2^2
}


def is_element_bits(x: float) -> bool:
    """8, 6 or 4 bits per element, or 0 (the clean model)."""
    return x == 0 or x in FORMATS


def round_element(values: torch.Tensor, fmt: ElementFormat) -> torch.Tensor:
    """``values`` (float32) rounded to nearest, ties to even, in ``fmt``, saturated at its largest magnitude."""
    # floor(log2|v|) exactly, from the float's own exponent (frexp: v = m·2^e, 0.5 ≤ |m| < 1); a zero gets emin
    exponent = (torch.frexp(values).exponent - 1).clamp_(min=fmt.emin)
    quantum = torch.ldexp(torch.ones_like(values), exponent - fmt.mantissa)
    return torch.round(values / quantum).mul_(quantum).clamp_(-fmt.largest, fmt.largest)


def mx_blocks(blocks: torch.Tensor, fmt: ElementFormat) -> torch.Tensor:
    """Each block (last dimension) with its shared power-of-two scale and its elements in ``fmt``."""
    amax = blocks.abs().amax(dim=-1, keepdim=True)
    shared = (torch.frexp(amax).exponent - 1 - fmt.emax).clamp_(*SCALE_EXPONENTS)
    scale = torch.ldexp(torch.ones_like(amax), shared)  # an all-zero block rounds to 0 whatever its scale
    return round_element(blocks / scale, fmt).mul_(scale)


def mx_round(weight: torch.Tensor, bits: int, *, dim: int, block: int = BLOCK) -> torch.Tensor:
    """``weight`` (float32) in the MX format of ``bits`` per element, in blocks of ``block`` along ``dim``."""
    fmt = FORMATS[bits]
    return by_blocks(weight, dim, block, lambda b: mx_blocks(b, fmt))


@register_group(
    "minifloat",
    domain="8 (E4M3), 6 (E3M2) or 4 (E2M1) bits per element (or 0 for the clean model)",
    accepts=is_element_bits,
    integer_levels=True,
    axis=LevelAxis("bits per MX element", damage_grows_with_level=False),
)
@torch.no_grad()
def minifloat(
    model: nn.Module, group: ResolvedGroup, level: float, *, seeding: Seeding, options: Mapping[str, Any]
) -> None:
    """Store every weight of the group in the MX format of ``level`` bits per element (see the module's docstring)."""
    if level == 0:
        return
    for target in group.targets:
        values = read_target(model, target)
        write_target(model, target, mx_round(values, int(level), dim=input_dim(model, target, values.ndim)))
