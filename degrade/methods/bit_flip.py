"""``bit_flip``: every bit of the stored floats flips with probability p, in the dtype the model runs in.

Vectorised, never a loop over elements: per tensor, the flipped bits are drawn as the gaps
between them (geometric with parameter p), which gives a binomial number of flips at uniformly
random distinct positions, in time proportional to the flips, not the bits. Which bits
are eligible follows the dtype's layout (sign, exponent, mantissa), so the sign and the
exponent can be spared (``degradation.options.spare_sign`` / ``spare_exponent``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from degrade.errors import DegradeError
from degrade.methods.registry import LevelAxis, Option, register_group
from degrade.methods.seeding import Seeding
from degrade.model import quant4
from degrade.model.groups import ResolvedGroup

# dtype → (the integer type of its bits, mantissa bits, exponent bits); the sign is the top bit.
LAYOUTS: dict[torch.dtype, tuple[torch.dtype, int, int]] = {
    torch.float32: (torch.int32, 23, 8),
    torch.bfloat16: (torch.int16, 7, 8),
    torch.float16: (torch.int16, 10, 5),
}


def eligible_bits(dtype: torch.dtype, *, spare_sign: bool = False, spare_exponent: bool = False) -> list[int]:
    """The bit indices (0 = least significant mantissa bit) that may flip in a float of ``dtype``."""
    _, mantissa, exponent = LAYOUTS[dtype]
    sign = mantissa + exponent
    return [
        b for b in range(sign + 1) if not (spare_sign and b == sign) and not (spare_exponent and mantissa <= b < sign)
    ]


def bernoulli_positions(n: int, p: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """The positions of ``range(n)`` that a Bernoulli(p) draw per position selects, in increasing order.

    The gaps between successive selected positions are geometric(p), so drawing the gaps draws
    exactly that law — the count is binomial(n, p), the positions uniform — with no sort and no
    collision to resolve, in time and memory proportional to n·p, not n.
    """
    if p >= 1:
        return torch.arange(n, device=device)
    found, reached = [], 0.0  # the last selected position, 1-based (float64 is exact below 2**53)
    while True:
        expected = (n - reached) * p
        gaps = torch.empty(int(expected + 6 * math.sqrt(expected) + 16), dtype=torch.float64, device=device)
        ends = gaps.geometric_(p, generator=generator).cumsum_(0).add_(reached)
        found.append(ends[ends <= n])
        if ends[-1] > n:
            break
        reached = float(ends[-1])
    return torch.cat(found).sub_(1).to(torch.int64)


@torch.no_grad()
def flip_bits(
    tensor: torch.Tensor,
    p: float,
    generator: torch.Generator,
    *,
    spare_sign: bool = False,
    spare_exponent: bool = False,
) -> int:
    """Flip each eligible bit of ``tensor``'s storage with probability ``p``, in place; return the flips."""
    int_dtype = LAYOUTS[tensor.dtype][0]
    bits = torch.tensor(
        eligible_bits(tensor.dtype, spare_sign=spare_sign, spare_exponent=spare_exponent), device=tensor.device
    )
    n = tensor.numel() * bits.numel()
    if p == 0 or n == 0:
        return 0
    positions = bernoulli_positions(n, p, generator, tensor.device)
    element = positions // bits.numel()
    shifted = torch.ones_like(positions).bitwise_left_shift_(bits[positions % bits.numel()])
    touched, slot = torch.unique_consecutive(element, return_inverse=True)  # positions are sorted
    # distinct bits of one element: their sum is their OR; int64 → int32/int16 keeps the low bits
    masks = torch.zeros(touched.numel(), dtype=torch.int64, device=tensor.device).index_add_(0, slot, shifted)
    flat = tensor.view(-1).view(int_dtype)
    flat[touched] ^= masks.to(int_dtype)
    return positions.numel()


def check(model: nn.Module, group: ResolvedGroup, options: Mapping[str, Any]) -> None:
    """Refuse 4-bit weights (their bits are packed codes) and dtypes without a float layout here."""
    for target in group.targets:
        param = model.get_parameter(target.name)
        if quant4.is_4bit(param):
            raise DegradeError(
                f"degradation=bit_flip flips the bits of stored floats; {target.name} holds packed 4-bit codes "
                "(model.load_4bit=true): load the model without load_4bit, or pick another method"
            )
        if param.dtype not in LAYOUTS:
            allowed = ", ".join(str(d).removeprefix("torch.") for d in LAYOUTS)
            raise DegradeError(
                f"degradation=bit_flip: {target.name} is {str(param.dtype).removeprefix('torch.')}; allowed: {allowed}"
            )


@register_group(
    "bit_flip",
    domain="0 ≤ p ≤ 1",
    accepts=lambda x: 0 <= x <= 1,
    axis=LevelAxis("p (probability that each stored bit flips)", log=True),
    options={"spare_sign": Option(False, (False, True)), "spare_exponent": Option(False, (False, True))},
    check=check,
)
def bit_flip(
    model: nn.Module, group: ResolvedGroup, level: float, *, seeding: Seeding, options: Mapping[str, Any]
) -> None:
    """Flip every eligible bit of each parameter's own dtype (fp32, bf16, fp16) with probability p = ``level``.

    A slice of a fused tensor is flipped in a copy of its rows, put back into those rows alone.
    """
    for target in group.targets:
        param = model.get_parameter(target.name)
        index = None if target.part is None else target.part.index(param.device)
        bits = param.data if index is None else param.data.index_select(target.part.dim, index)
        flip_bits(
            bits,
            level,
            seeding.generator(target.key, param.device),
            spare_sign=options["spare_sign"],
            spare_exponent=options["spare_exponent"],
        )
        if index is not None:
            param.data.index_copy_(target.part.dim, index, bits)
