"""``subset_in_memory`` restore: keep a CPU copy of the group's clean weights, copy it back.

After :meth:`Snapshot.restore` the weights are bit-identical to the clean ones and no method's
forward hook (``activation_noise``) is left on the model;
:func:`fingerprint` (a real digest of the bits) proves it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from torch import nn

from degrade.model import hooks, quant4

_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}  # for legacy_fingerprint
_CHUNK = 1 << 26  # bytes digested per step: on a GPU, the host copy a step makes


class Snapshot:
    """The clean values of some parameters of a model, held in CPU memory (pinned under CUDA)."""

    def __init__(self, model: nn.Module, names: Iterable[str], clean: dict[str, Any] | None = None) -> None:
        """Copy the clean values of ``names`` (the model must be clean now).

        ``clean`` holds copies by parameter name across snapshots of one model: the jobs of a
        multirun share it, so each parameter is copied once however many groups the sweep uses,
        and the copies never exceed one copy of the weights.
        """
        self.model = model
        self.names = list(names)
        self.params = [model.get_parameter(n) for n in self.names]
        pin = torch.cuda.is_available() and any(p.is_cuda for p in self.params)
        clean = {} if clean is None else clean
        for name, param in model.named_parameters():
            # A forward pass may repack 4-bit codes for the CPU kernel, after which they cannot be
            # captured: take every 4-bit weight still as loaded, for the groups of later jobs.
            if quant4.is_4bit(param) and name not in clean and not quant4.is_repacked(param):
                clean[name] = quant4.capture(param)
        for name, param in zip(self.names, self.params):
            if name not in clean:
                clean[name] = quant4.capture(param) if quant4.is_4bit(param) else _cpu_copy(param, pin)
        self.saved: list[Any] = [clean[n] for n in self.names]
        # from the copies: the live 4-bit codes may be in the CPU kernel's layout until restored
        self.clean_fingerprint = fingerprint(self.clean_tensors)

    @property
    def clean_tensors(self) -> list[torch.Tensor]:
        """The clean copies, as :attr:`tensors` lists the live values."""
        return [t for s in self.saved for t in quant4.captured_tensors(s)]

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
        """Remove the methods' forward hooks, copy the clean values back; with ``verify``, check the fingerprint."""
        hooks.detach(self.model)
        for param, saved in zip(self.params, self.saved):
            if isinstance(saved, tuple):
                quant4.put_back(param, saved)
            else:
                param.data.copy_(saved, non_blocking=True)
        if any(p.is_cuda for p in self.params):
            torch.cuda.synchronize()
        if verify and fingerprint(self.tensors) != self.clean_fingerprint:
            raise RuntimeError("restore did not bring back the clean weights (fingerprint differs)")


def _cpu_copy(param: torch.Tensor, pin: bool) -> torch.Tensor:
    copy = param.detach().to("cpu", copy=True)
    return copy.pin_memory() if pin else copy


def fingerprint(tensors: Iterable[torch.Tensor]) -> str:
    """A digest of tensors' exact bits, shapes and dtypes, in the order given (BLAKE2b, 128 bits).

    Any change to any bit, and any permutation of elements or of tensors, changes it. The value does
    not depend on the device, on the chunks a GPU tensor is copied in, or on the threads.
    """
    return _combine([("", t) for t in tensors])


def model_fingerprint(model: nn.Module) -> str:
    """The fingerprint of every parameter of ``model`` (a 4-bit one: codes and quant state), by name."""
    named = sorted(model.named_parameters(), key=lambda item: item[0])
    return _combine([(name, t) for name, p in named for t in quant4.state_tensors(p)])


@torch.no_grad()
def _combine(labelled: list[tuple[str, torch.Tensor]]) -> str:
    # each tensor digested on its own, in threads (hashlib releases the GIL), then the digests in order
    with ThreadPoolExecutor(max_workers=max(1, min(len(labelled), os.cpu_count() or 1))) as pool:
        digests = list(pool.map(_digest, (t for _, t in labelled)))
    outer = hashlib.blake2b(digest_size=16)
    for (label, tensor), digest in zip(labelled, digests):
        outer.update(f"{label}|{tuple(tensor.shape)}|{tensor.dtype}|".encode() + digest)
    return outer.hexdigest()


def _digest(tensor: torch.Tensor) -> bytes:
    flat = tensor.detach().reshape(-1)
    data = flat.contiguous().view(torch.uint8) if flat.numel() else flat.new_empty(0, dtype=torch.uint8)
    digest = hashlib.blake2b(digest_size=16)
    for start in range(0, data.numel(), _CHUNK):  # a GPU tensor crosses to the host a slice at a time
        digest.update(data[start : start + _CHUNK].cpu().numpy())
    return digest.digest()


def legacy_fingerprint(tensors: Iterable[torch.Tensor]) -> str:
    """The sum-of-squares print (16 hex digits) that ``metadata.json`` held before :func:`fingerprint`.

    Blind to a permutation of elements, so never written any more; kept only so that a job dir written
    with it can still be checked against the weights loaded now.
    """
    acc = 0
    for index, tensor in enumerate(tensors):
        flat = tensor.detach().reshape(-1)
        bits = flat.view(_BITS[flat.element_size()])
        value = 0
        for start in range(0, bits.numel(), 1 << 16):
            chunk = bits[start : start + (1 << 16)].to(torch.int64)
            value += int(chunk.sum()) + 31 * int((chunk * chunk).sum())
        acc = (acc * 1_000_003 + value + index) % (1 << 64)
    return f"{acc:016x}"
