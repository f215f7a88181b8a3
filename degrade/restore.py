"""``subset_in_memory`` restore: keep a CPU copy of the group's clean weights, copy it back.

After :meth:`Snapshot.restore` the weights are bit-identical to the clean ones;
:func:`fingerprint` proves it cheaply where the weights live.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from degrade import quant4

_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
_CHUNK = 1 << 22


class Snapshot:
    """The clean values of some parameters of a model, held in CPU memory (pinned under CUDA)."""

    def __init__(self, model: nn.Module, names: Iterable[str]) -> None:
        self.names = list(names)
        self.params = [model.get_parameter(n) for n in self.names]
        pin = torch.cuda.is_available() and any(p.is_cuda for p in self.params)
        self.saved: list[Any] = []
        for param in self.params:
            if quant4.is_4bit(param):
                self.saved.append(quant4.capture(param))
            else:
                copy = param.detach().to("cpu", copy=True)
                self.saved.append(copy.pin_memory() if pin else copy)
        self.clean_fingerprint = fingerprint(self.tensors)

    @property
    def tensors(self) -> list[torch.Tensor]:
        """The tensors holding the group's values now (for a 4-bit parameter: codes and quant state)."""
        return [t for p in self.params for t in quant4.state_tensors(p)]

    @property
    def nbytes(self) -> int:
        first = [s[0] if isinstance(s, tuple) else s for s in self.saved]
        return sum(t.numel() * t.element_size() for t in first)

    @torch.no_grad()
    def restore(self, *, verify: bool = False) -> None:
        """Copy the clean values back; with ``verify``, check the fingerprint too."""
        for param, saved in zip(self.params, self.saved):
            if isinstance(saved, tuple):
                quant4.put_back(param, saved)
            else:
                param.data.copy_(saved, non_blocking=True)
        if any(p.is_cuda for p in self.params):
            torch.cuda.synchronize()
        if verify and fingerprint(self.tensors) != self.clean_fingerprint:
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
