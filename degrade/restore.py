"""``subset_in_memory`` restore: keep a CPU copy of the group's clean weights, copy it back.

After :meth:`Snapshot.restore` the weights are bit-identical to the clean ones;
:func:`fingerprint` proves it cheaply where the weights live.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
_CHUNK = 1 << 22


class Snapshot:
    """The clean values of some parameters of a model, held in CPU memory (pinned under CUDA)."""

    def __init__(self, model: nn.Module, names: Iterable[str]) -> None:
        self.names = list(names)
        self.params = [model.get_parameter(n) for n in self.names]
        pin = torch.cuda.is_available() and any(p.is_cuda for p in self.params)
        self.saved = [p.detach().to("cpu", copy=True) for p in self.params]
        if pin:
            self.saved = [s.pin_memory() for s in self.saved]
        self.clean_fingerprint = fingerprint(self.params)

    @property
    def nbytes(self) -> int:
        return sum(s.numel() * s.element_size() for s in self.saved)

    @torch.no_grad()
    def restore(self, *, verify: bool = False) -> None:
        """Copy the clean values back; with ``verify``, check the fingerprint too."""
        for param, saved in zip(self.params, self.saved):
            param.data.copy_(saved, non_blocking=True)
        if any(p.is_cuda for p in self.params):
            torch.cuda.synchronize()
        if verify and fingerprint(self.params) != self.clean_fingerprint:
            raise RuntimeError("restore did not bring back the clean weights (fingerprint differs)")


@torch.no_grad()
def fingerprint(tensors: Iterable[torch.Tensor]) -> str:
    """A cheap, order-sensitive fingerprint of tensors' exact bits, computed on their device.

    Integer sums are associative, so the value is the same on every device and run.
    """
    acc = 0
    for index, tensor in enumerate(tensors):
        flat = tensor.detach().reshape(-1)
        bits = flat.view(_BITS[flat.element_size()])
        for start in range(0, bits.numel(), _CHUNK):
            chunk = bits[start:start + _CHUNK].to(torch.int64)
            value = int(chunk.sum()) + 31 * int((chunk * chunk).sum())
            acc = (acc * 1_000_003 + value + index) % (1 << 64)
    return f"{acc:016x}"
