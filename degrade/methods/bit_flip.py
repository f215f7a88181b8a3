"""``bit_flip``: every bit of the stored floats flips with probability p, in the dtype the model runs in.

Vectorised, never a loop over elements: per tensor the number of flips is drawn from a
binomial over its eligible bits, then that many distinct bit positions uniformly. Which bits
are eligible follows the dtype's layout (sign, exponent, mantissa), so the sign and the
exponent can be spared (``degradation.options.spare_sign`` / ``spare_exponent``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from degrade import quant4
from degrade.errors import DegradeError
from degrade.methods.registry import LevelAxis, Option, register_group
from degrade.params import ResolvedGroup
from degrade.weights import Seeding

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


def distinct_positions(n: int, k: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``k`` distinct positions of ``range(n)``, uniformly at random (sorted)."""
    if 2 * k > n:  # most positions: draw the ones that stay instead
        keep = torch.ones(n, dtype=torch.bool, device=device)
        keep[distinct_positions(n, n - k, generator, device)] = False
        return keep.nonzero().reshape(-1)
    chosen = torch.empty(0, dtype=torch.int64, device=device)
    while chosen.numel() < k:  # draws with replacement, topped up until k distinct: uniform by symmetry
        extra = torch.randint(0, n, (k - chosen.numel(),), generator=generator, device=device)
        chosen = torch.unique(torch.cat([chosen, extra]))
    return chosen


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
    count = torch.tensor(float(n), dtype=torch.float64, device=tensor.device)
    prob = torch.tensor(float(p), dtype=torch.float64, device=tensor.device)
    k = int(torch.binomial(count, prob, generator=generator))
    if k == 0:
        return 0
    positions = distinct_positions(n, k, generator, tensor.device)
    element = positions // bits.numel()
    shifted = torch.ones_like(positions).bitwise_left_shift_(bits[positions % bits.numel()])
    touched, slot = torch.unique(element, return_inverse=True)
    # distinct bits of one element: their sum is their OR; int64 → int32/int16 keeps the low bits
    masks = torch.zeros(touched.numel(), dtype=torch.int64, device=tensor.device).index_add_(0, slot, shifted)
    flat = tensor.view(-1).view(int_dtype)
    flat[touched] ^= masks.to(int_dtype)
    return k


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
    """Flip every eligible bit of each parameter's own dtype (fp32, bf16, fp16) with probability p = ``level``."""
    for target in group.targets:
        param = model.get_parameter(target.name)
        flip_bits(
            param.data,
            level,
            seeding.generator(target.name, param.device),
            spare_sign=options["spare_sign"],
            spare_exponent=options["spare_exponent"],
        )
