"""Apply a degradation method to a resolved parameter group, with per-parameter seeding."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from degrade import quant4
from degrade.methods import METHODS
from degrade.params import ResolvedGroup


def param_seed(seed: int, repeat: int, name: str, level: float | None = None) -> int:
    """The seed of one parameter's generator: a hash of (seed, repeat, name[, level]).

    Without the level (``common_noise``) every level of a repetition scales one draw; with
    it, each cell draws afresh. Either way a cell's damage does not depend on what ran before.
    """
    key = f"{seed}|{repeat}|{name}" + ("" if level is None else f"|{float(level)!r}")
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") >> 1


@torch.no_grad()
def apply(
    model: nn.Module,
    group: ResolvedGroup,
    method: str,
    level: float,
    *,
    seed: int,
    repeat: int,
    common_noise: bool = True,
) -> None:
    """Damage every parameter of ``group`` in place: float32 arithmetic, cast back to its dtype.

    A 4-bit parameter is de-quantized, damaged and quantized again.
    """
    fn = METHODS[method].fn
    for target in group.targets:
        param = model.get_parameter(target.name)
        generator = torch.Generator(device=param.device)
        generator.manual_seed(param_seed(seed, repeat, target.name, None if common_noise else level))
        if quant4.is_4bit(param):
            clean = quant4.dequantize(param)
            damaged = fn(clean, level, generator=generator)
            if damaged is not clean:
                quant4.requantize_(param, damaged)
            continue
        clean = param.detach().to(torch.float32)
        damaged = fn(clean, level, generator=generator)
        if damaged is not clean:
            param.data.copy_(damaged)
