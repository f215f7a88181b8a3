"""``rtn``: round-to-nearest at b bits, the baseline of the GPTQ and AWQ papers, as quantised models are deployed.

Each weight is rounded onto an integer grid of b bits with a scale (and, asymmetric, a zero point)
per tensor, per output channel (a row: one output of the layer) or per group of ``group_size``
consecutive input columns within a row; a row whose length the group size does not divide ends in
a shorter group, with a scale of its own. The grid:

- symmetric (AWQ's and llama.cpp's Q8_0 convention): scale = max|w| / (2^(b−1) − 1),
  q = clamp(round(w / scale), −2^(b−1), 2^(b−1) − 1), w′ = q·scale. The largest magnitude lands on
  ±(2^(b−1) − 1) exactly, so the code −2^(b−1) is never used: 2^b − 1 values.
- asymmetric (GPTQ's quantizer; the default): the range [min, max] widened to hold 0, scale =
  (max − min) / (2^b − 1), zero = round(−min / scale), q = clamp(round(w / scale) + zero, 0, 2^b − 1),
  w′ = (q − zero)·scale: 2^b values, and 0 stays exact.

``round`` is round-half-to-even (``torch.round``). A block whose values are all 0 stays 0. No
randomness: the same weights give the same rounding in every cell. Fewer bits is more damage.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from degrade.methods.registry import LevelAxis, Option, register_group
from degrade.methods.seeding import Seeding, read_target, write_target
from degrade.model import fused
from degrade.model.groups import ResolvedGroup, Target

BITS = (2, 16)  # the domain of b: 2 bits is ternary (symmetric) or four values; 16 is all but lossless
GROUP_SIZES = (32, 64, 128, 256)  # those deployed formats use (MX and llama.cpp 32, GPTQ/AWQ 128, k-quants 256)


def is_bits(x: float) -> bool:
    """An integer b with 2 ≤ b ≤ 16, or 0 (the clean model)."""
    return x == 0 or (float(x).is_integer() and BITS[0] <= x <= BITS[1])


def input_dim(model: nn.Module, target: Target, ndim: int) -> int:
    """The dimension of ``target``'s values that runs along one output's inputs (its row).

    ``nn.Linear`` and embeddings store (out, in): the last; GPT-2's ``Conv1D`` stores (in, out): the
    first; stacked experts (E, out, in): the last. A 1-D tensor (a norm, a bias) is one row.
    """
    if ndim != 2:
        return max(ndim - 1, 0)
    return 1 - fused.out_dim(model.get_submodule(target.name.rpartition(".")[0]), 2)


def by_blocks(
    values: torch.Tensor, dim: int, size: int | None, fn: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """``fn`` on each block of ``size`` consecutive values along ``dim`` (``size`` None: each whole row).

    ``fn`` receives a (rows, blocks, size) tensor and works along its last dimension. A row whose
    length ``size`` does not divide ends in one shorter block, given to ``fn`` on its own.
    """
    moved = values.movedim(dim, -1)
    rows = moved.reshape(-1, moved.shape[-1])
    n, cols = rows.shape
    size = cols if size is None else min(size, cols)
    full = cols - cols % size
    parts = [fn(rows[:, :full].reshape(n, full // size, size)).reshape(n, full)]
    if full < cols:
        parts.append(fn(rows[:, full:].reshape(n, 1, cols - full)).reshape(n, cols - full))
    return torch.cat(parts, dim=1).reshape(moved.shape).movedim(-1, dim)


def symmetric(blocks: torch.Tensor, bits: int) -> torch.Tensor:
    """Each block (last dimension) on b bits around 0: scale = max|w| / (2^(b−1) − 1)."""
    top = 2 ** (bits - 1) - 1
    amax = blocks.abs().amax(dim=-1, keepdim=True)
    scale = torch.where(amax > 0, amax / top, 1.0)  # an all-zero block: any scale keeps it 0
    return torch.round(blocks / scale).clamp_(-top - 1, top).mul_(scale)


def asymmetric(blocks: torch.Tensor, bits: int) -> torch.Tensor:
    """Each block (last dimension) on 2^b values over its [min, max] widened to hold 0, with a zero point."""
    top = 2**bits - 1
    lo = blocks.amin(dim=-1, keepdim=True).clamp(max=0)
    hi = blocks.amax(dim=-1, keepdim=True).clamp(min=0)
    scale = torch.where(hi > lo, (hi - lo) / top, 1.0)
    zero = torch.round(-lo / scale)
    return (torch.round(blocks / scale).add_(zero).clamp_(0, top).sub_(zero)).mul_(scale)


def rtn_round(
    weight: torch.Tensor, bits: int, *, dim: int, granularity: str, group_size: int, symmetric_grid: bool
) -> torch.Tensor:
    """``weight`` (float32) rounded to nearest on a b-bit grid; a new tensor.

    Args:
        weight: the values, float32.
        bits: b, 2 to 16.
        dim: the dimension along an output's inputs (:func:`input_dim`).
        granularity: ``tensor`` (one scale), ``channel`` (one per row) or ``group`` (one per
            ``group_size`` consecutive inputs of a row; the last group of a row may be shorter).
        group_size: the inputs per group, for ``group``.
        symmetric_grid: the symmetric grid (no zero point), else the asymmetric one.
    """
    grid = symmetric if symmetric_grid else asymmetric
    if granularity == "tensor":
        return grid(weight.reshape(1, 1, -1), bits).reshape(weight.shape)
    return by_blocks(weight, dim, group_size if granularity == "group" else None, lambda b: grid(b, bits))


@register_group(
    "rtn",
    domain="an integer b, 2 ≤ b ≤ 16 (or 0 for the clean model)",
    accepts=is_bits,
    integer_levels=True,
    axis=LevelAxis("b (bits per weight)", damage_grows_with_level=False),
    options={
        "granularity": Option("group", ("group", "channel", "tensor")),
        "group_size": Option(128, GROUP_SIZES),
        "symmetric": Option(False, (False, True)),
    },
)
@torch.no_grad()
def rtn(model: nn.Module, group: ResolvedGroup, level: float, *, seeding: Seeding, options: Mapping[str, Any]) -> None:
    """Round every weight of the group to nearest on a grid of b = ``level`` bits (see the module's docstring)."""
    if level == 0:
        return
    for target in group.targets:
        values = read_target(model, target)
        rounded = rtn_round(
            values,
            int(level),
            dim=input_dim(model, target, values.ndim),
            granularity=options["granularity"],
            group_size=options["group_size"],
            symmetric_grid=options["symmetric"],
        )
        write_target(model, target, rounded)
