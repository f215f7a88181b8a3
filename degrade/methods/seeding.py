"""What every method shares: the seed of each random draw, and a parameter's values as float32 and back.

Each draw gets its own generator, seeded from (seed, repetition, a key naming what is drawn —
a parameter's name, a layer's units —, and the level when ``common_noise`` is off), so a cell's
damage does not depend on what ran before it, in a sweep, alone, or after a resume.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from degrade.model import quant4
from degrade.model.groups import Target


def param_seed(seed: int, repeat: int, name: str, level: float | None = None) -> int:
    """The seed of one generator: a hash of (seed, repeat, name[, level]).

    Without the level (``common_noise``) every level of a repetition scales one draw; with
    it, each cell draws afresh. Either way a cell's damage does not depend on what ran before.
    """
    key = f"{seed}|{repeat}|{name}" + ("" if level is None else f"|{float(level)!r}")
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") >> 1


@dataclass(frozen=True)
class Seeding:
    """The seeds of one cell: ``level`` is None under ``common_noise`` (every level scales one draw)."""

    seed: int
    repeat: int
    level: float | None = None

    def generator(self, key: str, device: torch.device | str = "cpu") -> torch.Generator:
        """A fresh generator on ``device`` for the draw named ``key`` (a parameter's name, a layer's units)."""
        generator = torch.Generator(device=device)
        generator.manual_seed(param_seed(self.seed, self.repeat, key, self.level))
        return generator


def read(param: nn.Parameter) -> torch.Tensor:
    """The values of ``param`` as float32 (a 4-bit parameter de-quantized); may share its storage."""
    return quant4.dequantize(param) if quant4.is_4bit(param) else param.detach().to(torch.float32)


def write(param: nn.Parameter, values: torch.Tensor) -> None:
    """Put float32 ``values`` into ``param``, cast to its dtype (a 4-bit parameter quantized again)."""
    if quant4.is_4bit(param):
        quant4.requantize_(param, values)
    else:
        param.data.copy_(values)


def read_target(model: nn.Module, target: Target) -> torch.Tensor:
    """The float32 values of ``target``: its parameter's (may share storage), or a copy of a slice's rows."""
    values = read(model.get_parameter(target.name))
    if target.part is None:
        return values
    return values.index_select(target.part.dim, target.part.index(values.device))


def write_target(model: nn.Module, target: Target, values: torch.Tensor) -> None:
    """Put float32 ``values`` into ``target``; for a slice, into its rows only, every other row left as it was."""
    param = model.get_parameter(target.name)
    if target.part is None:
        write(param, values)
    else:  # slices of 4-bit tensors are refused when the group is resolved
        param.data.index_copy_(target.part.dim, target.part.index(param.device), values.to(param.dtype))


def elementwise(fn: Callable[..., torch.Tensor]) -> Callable[..., None]:
    """The group-level form of a per-tensor method: ``fn`` on each target's float32 values, cast back.

    A slice of a fused tensor is one tensor to ``fn`` (uni_quant rounds it over its own range).
    """

    @torch.no_grad()
    def apply(model: nn.Module, group: Any, level: float, *, seeding: Seeding, options: Any = None) -> None:
        for target in group.targets:
            clean = read_target(model, target)
            damaged = fn(clean, level, generator=seeding.generator(target.key, clean.device))
            if damaged is not clean:
                write_target(model, target, damaged)

    apply.__doc__ = fn.__doc__
    return apply
