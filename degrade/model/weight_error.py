"""How much damage a cell did to the weights: relative error, SNR, the share of weights changed, bits flipped.

Measured over the damaged group (each target: a whole tensor, or a fused tensor's own rows) against the
clean copies the restore keeps (:class:`~degrade.model.restore.Snapshot`), on the device the weights live
on, a chunk at a time: only a chunk of the clean copy crosses to the device, so no second copy of the
group is ever held. Differences and squares are float64, so a flipped exponent bit (a weight of 1e38)
is measured, not overflowed.

- ``weight_rel_error`` = ‖W′ − W‖ / ‖W‖ (Frobenius norms over the whole group): exactly 0 when no weight
  changed; None when a damaged weight is not finite (NaN or ±inf, which bit flips can make) or the
  clean group is all zeros and something changed.
- ``weight_snr_db`` = 10·log10(‖W‖² / ‖W′ − W‖²) = −20·log10(weight_rel_error): None where the relative
  error is 0 (the SNR is infinite, which JSON cannot hold) or None.
- ``weights_changed_share``: the share of the group's weights whose stored bits differ from the clean ones.
- ``bits_flipped``: how many stored bits differ (the Hamming distance of the group's storage), which is
  the flips themselves for ``bit_flip`` and for any other method the bits its rounding or noise rewrote;
  None for 4-bit weights, whose stored bits are packed codes (their values are compared de-quantized).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from degrade.model import quant4
from degrade.model.groups import ResolvedGroup
from degrade.model.restore import Snapshot

CHUNK = 1 << 20  # weights compared per step: the transient memory is a few times this, whatever the group
_INTS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
_SWAR = (0x55555555, 0x33333333, 0x0F0F0F0F)


@dataclass(frozen=True)
class WeightDamage:
    """The damage of one cell to the weights of its group (see the module's docstring); record fields."""

    weight_rel_error: float | None
    weight_snr_db: float | None
    weights_changed_share: float | None
    bits_flipped: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def popcount(bits: torch.Tensor) -> torch.Tensor:
    """The number of set bits in an integer tensor's storage, as a 0-d int64 tensor."""
    if bits.device.type != "cpu":
        return popcount_torch(bits)
    # NumPy counts bits in one instruction per word, where torch has no op for it; in 64-bit words where the
    # bytes allow, twice as fast. Unsigned: NumPy counts the bits of a signed word's absolute value.
    data = bits.contiguous().reshape(-1).numpy()
    words = data.view(np.uint64) if data.nbytes % 8 == 0 else data.view(f"uint{8 * bits.element_size()}")
    return torch.tensor(int(np.bitwise_count(words).sum(dtype=np.int64)))


def popcount_torch(bits: torch.Tensor) -> torch.Tensor:
    """:func:`popcount` in torch's own arithmetic, on the tensor's device (a GPU's)."""
    words = bits.reshape(-1)
    if words.element_size() == 8:
        words = words.view(torch.int32)  # two 32-bit halves: the same bits
    # int64 holds every 32-bit pattern as a non-negative number: no sign or overflow in the arithmetic below
    x = words.to(torch.int64) & ((1 << (8 * words.element_size())) - 1)
    x = x - ((x >> 1) & _SWAR[0])
    x = (x & _SWAR[1]) + ((x >> 2) & _SWAR[1])
    x = (x + (x >> 4)) & _SWAR[2]  # each byte holds its own count
    x = x + (x >> 8)
    x = x + (x >> 16)
    return (x & 0x3F).sum()


@torch.no_grad()
def measure(model: nn.Module, group: ResolvedGroup, snapshot: Snapshot, *, unchanged: bool = False) -> WeightDamage:
    """The damage to ``group``'s weights now, against ``snapshot``'s clean copies of them.

    Args:
        model: the model, its group damaged (or clean: every measure is then 0, the SNR None).
        group: the damaged group.
        snapshot: the restore's snapshot of the model, holding every parameter of ``group``.
        unchanged: the caller knows every bit is the clean one (the group's fingerprint is the clean
            fingerprint): the clean measures, without reading a weight.
    """
    if unchanged:
        packed = any(isinstance(saved, tuple) for saved in snapshot.saved)  # 4-bit: no bit count
        return summarize(0.0, 0.0, 0, group.numel, None if packed else 0)
    sums = _sums(model, group, snapshot, wide=False)
    if not math.isfinite(sums[0]):  # a difference past float32's range (a flipped exponent bit): again, in float64
        sums = _sums(model, group, snapshot, wide=True)
    return summarize(*sums)


def _sums(
    model: nn.Module, group: ResolvedGroup, snapshot: Snapshot, *, wide: bool
) -> tuple[float, float, int, int, int | None]:
    """‖W′ − W‖², ‖W‖², the weights changed, all the weights, the bits flipped (None for 4-bit weights)."""
    clean = dict(zip(snapshot.names, snapshot.saved))
    device = model.get_parameter(group.targets[0].name).device
    error = torch.zeros((), dtype=torch.float64, device=device)
    norm = torch.zeros((), dtype=torch.float64, device=device)
    changed = torch.zeros((), dtype=torch.int64, device=device)
    bits: torch.Tensor | None = torch.zeros((), dtype=torch.int64, device=device)
    total = 0
    for target in group.targets:
        param, saved = model.get_parameter(target.name), clean[target.name]
        if isinstance(saved, tuple):  # 4-bit: the values the layer computes with, on both sides
            live, ref, bits = quant4.dequantize(param), quant4.dequantize_captured(saved, param.device), None
        else:
            live, ref = param.detach(), saved
        if target.part is not None:
            live = live.index_select(target.part.dim, target.part.index(live.device))
            ref = ref.index_select(target.part.dim, target.part.index(ref.device))
        live, ref = live.reshape(-1), ref.reshape(-1)
        ints = _INTS[live.element_size()]
        arithmetic = torch.float64 if wide else torch.promote_types(live.dtype, torch.float32)
        for start in range(0, live.numel(), CHUNK):
            new = live[start : start + CHUNK]
            old = ref[start : start + CHUNK].to(new.device, non_blocking=True)
            flipped = new.view(ints) ^ old.view(ints)
            changed += torch.count_nonzero(flipped)
            if bits is not None:
                bits += popcount(flipped).to(device)
            diff, was = new.to(arithmetic) - old.to(arithmetic), old.to(arithmetic)
            # a dot product: ten times as fast as squares then a sum, precise to about 1e-7 over a chunk
            error += torch.dot(diff, diff)
            norm += torch.dot(was, was)
        total += live.numel()
    return float(error), float(norm), int(changed), total, None if bits is None else int(bits)


def summarize(error: float, norm: float, changed: int, total: int, bits: int | None) -> WeightDamage:
    """The measures from the sums: ‖W′ − W‖², ‖W‖², the weights changed, all of them, the bits flipped."""
    if error == 0:
        rel = 0.0
    elif math.isfinite(error) and norm > 0:
        rel = math.sqrt(error / norm)
    else:
        rel = None
    snr = None if not rel else 10 * math.log10(norm / error)
    return WeightDamage(rel, snr, changed / total if total else None, bits)
