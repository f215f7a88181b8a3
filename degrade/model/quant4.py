"""4-bit (bitsandbytes) parameters: damage the de-quantized values, restore the packed storage.

A ``Params4bit`` holds packed nf4/fp4 codes plus a quant state (per-block absmax, and for
double quantization a second state). Damage de-quantizes to float32, applies the method and
quantizes back with the same block size and type; restore puts back copies of the clean
codes and quant state, so the clean model returns bit for bit.

On CPUs with AVX512-BF16, bitsandbytes repacks the codes (and mutates the quant state) for
its fast kernel at the first forward pass. Restore therefore replaces both objects rather
than copying into them; the next forward pass repacks the restored copy.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from torch import nn


class _NoHubKernelWarning(logging.Filter):
    """Drops bitsandbytes' warning that the optional ``kernels`` package is missing.

    ``kernels`` would fetch a compiled CPU kernel from the Hugging Face hub; without it bitsandbytes uses
    its own CPU kernel, with the same results. The warning says nothing a run can act on.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to load CPU gemm_4bit_forward from kernels-community")


def quiet_bitsandbytes() -> None:
    """Silence bitsandbytes' missing-``kernels`` warning; call before bitsandbytes is first imported."""
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    if not any(isinstance(f, _NoHubKernelWarning) for f in logger.filters):
        logger.addFilter(_NoHubKernelWarning())


def is_4bit(param: nn.Parameter) -> bool:
    return type(param).__name__ == "Params4bit" and getattr(param, "quant_state", None) is not None


def n_weights(param: nn.Parameter) -> int:
    """How many weights ``param`` holds: its element count, or for 4-bit its original shape's (two codes a byte)."""
    return param.quant_state.shape.numel() if is_4bit(param) else param.numel()


def _state_parts(state: Any) -> list[torch.Tensor]:
    parts = [state.absmax]
    if getattr(state, "nested", False):
        parts += [state.state2.absmax]
    return parts


def state_tensors(param: nn.Parameter) -> list[torch.Tensor]:
    """Every tensor that defines the parameter's value: the packed codes and their quant state."""
    return captured_tensors((param.data, param.quant_state) if is_4bit(param) else param.data)


def captured_tensors(saved: torch.Tensor | tuple[torch.Tensor, Any]) -> list[torch.Tensor]:
    """What :func:`state_tensors` gives, for a saved copy: a tensor, or :func:`capture`'s codes and quant state."""
    if not isinstance(saved, tuple):
        return [saved]
    data, state = saved
    return [data, *_state_parts(state)]


def capture(param: nn.Parameter) -> tuple[torch.Tensor, Any]:
    """A CPU copy of the codes and the quant state, for :func:`put_back`."""
    _check_layout(param)
    state = copy.deepcopy(param.quant_state)
    state.to("cpu")  # QuantState.to moves its tensors in place
    return param.data.detach().to("cpu", copy=True), state


@torch.no_grad()
def put_back(param: nn.Parameter, saved: tuple[torch.Tensor, Any]) -> None:
    """Replace the codes and quant state with copies of ``saved`` (bit for bit)."""
    data, state = saved
    param.data = data.to(param.device, copy=True)
    state = copy.deepcopy(state)
    state.to(param.device)
    param.quant_state = state


def is_repacked(param: nn.Parameter) -> bool:
    """Whether a forward pass has put the codes into the CPU kernel's own layout."""
    return bool(getattr(param.quant_state, "packing_format_for_cpu", False))


def _check_layout(param: nn.Parameter) -> None:
    if is_repacked(param):
        raise RuntimeError(
            "4-bit weights are in the CPU kernel's layout: take a snapshot before the first "
            "forward pass, and restore it before damaging them"
        )


def dequantize(param: nn.Parameter) -> torch.Tensor:
    """The parameter's values as float32 (the weight the layer computes with)."""
    import bitsandbytes.functional as bnbf

    _check_layout(param)
    return bnbf.dequantize_4bit(param.data, param.quant_state).to(torch.float32)


def dequantize_captured(saved: tuple[torch.Tensor, Any], device: torch.device | str) -> torch.Tensor:
    """The float32 values a :func:`capture` copy stands for, on ``device`` (the copy itself left as it was)."""
    import bitsandbytes.functional as bnbf

    data, state = saved
    state = copy.deepcopy(state)
    state.to(device)
    return bnbf.dequantize_4bit(data.to(device), state).to(torch.float32)


@torch.no_grad()
def requantize_(param: nn.Parameter, values: torch.Tensor) -> None:
    """Quantize ``values`` with the parameter's own block size and type, in place."""
    import bitsandbytes.functional as bnbf

    _check_layout(param)
    state = param.quant_state
    packed, fresh = bnbf.quantize_4bit(
        values.to(state.dtype),
        blocksize=state.blocksize,
        quant_type=state.quant_type,
        compress_statistics=getattr(state, "nested", False),
        quant_storage=param.data.dtype,
    )
    param.data.copy_(packed)
    param.quant_state = fresh
