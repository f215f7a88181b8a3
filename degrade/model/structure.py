"""Where a model's units sit in its weights: MLP neurons, attention heads (grouped-query included), whole layers.

A unit is found from the model's own config and module types, never from a table of models:
heads from ``num_attention_heads``, ``num_key_value_heads`` and ``head_dim`` (the text config of a
multimodal model for its language tower, its vision config for the vision tower); neurons as the
intermediate dimension of the MLP's gate, up and down projections. GPT-2's ``Conv1D`` stores a
weight as (in, out), the transpose of ``nn.Linear``. Inside a fused tensor the units follow its
layout (:mod:`degrade.model.fused`): a head's q, k and v blocks of a fused q/k/v, a neuron's gate
row and up row of a fused gate/up. A slice of a fused tensor is read as a tensor of its own: its
units are indexed within the slice, along the slice's dimension.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from degrade.errors import DegradeError
from degrade.model import fused
from degrade.model.fused import HeadLayout, Segments, head_layout
from degrade.model.groups import Target

__all__ = ["HEAD_KINDS", "UNITS", "HeadLayout", "Slot", "head_layout", "slot"]

UNITS = ("neuron", "head", "layer")
HEAD_KINDS = ("attn_q", "attn_k", "attn_v", "attn_o", "attn_qkv")


@dataclass(frozen=True)
class Slot:
    """Where one target holds the units of its layer.

    Attributes:
        dim: the dimension of the weight that the units index (a slice's own dimension for a slice).
        count: the units of the layer (query heads, neurons; 1 for the layer itself).
        expand: the layer's dead units (a bool tensor of ``count``) → the dead indices along ``dim``
            (bool), within the slice for a slice.
    """

    dim: int
    count: int
    expand: Callable[[torch.Tensor], torch.Tensor]


def _by_segment(layout: HeadLayout, segments: Segments) -> Callable[[torch.Tensor], torch.Tensor]:
    """Dead query heads → dead rows of a fused q/k/v, block by block as the layout stores them."""
    unit = torch.tensor([h if kind == "attn_q" else layout.heads + h for kind, h in segments])

    def expand(dead: torch.Tensor) -> torch.Tensor:
        flags = torch.cat([dead, layout.kv_dead(dead)])
        return flags[unit.to(dead.device)].repeat_interleave(layout.head_dim)

    return expand


def _neurons(model: nn.Module, target: Target, shape: list[int], out: int, into: int) -> Slot | None:
    if target.kind.startswith("mlp") and len(shape) > 2:
        raise DegradeError(
            f"degradation.options.unit=neuron: {target.name} stacks the neurons of {shape[0]} experts along two "
            "of its axes, which neuron_ablation does not zero; allowed: leave the experts out "
            "(param_group.exclude=[experts]), or unit=layer, or another method"
        )
    if target.kind == "mlp_gate_up":
        if not fused.knows_gate_up(model, target.tower):
            raise DegradeError(
                f"degradation.options.unit=neuron: {target.name} holds gate and up in one tensor whose layout is not "
                f"known for model type {fused.model_type(model, target.tower)}; allowed: unit=layer, or another method"
            )
        return Slot(out, shape[out] // 2, lambda dead: torch.cat([dead, dead]))  # neuron i: gate row i, up row I + i
    dim = {"mlp_gate": out, "mlp_up": out, "mlp_down": into}.get(target.kind)
    return None if dim is None or len(shape) < 2 else Slot(dim, shape[dim], lambda dead: dead)


def _heads(model: nn.Module, target: Target, shape: list[int], out: int, into: int) -> Slot | None:
    layout = head_layout(model, target.tower)
    if target.kind not in HEAD_KINDS or layout is None or len(shape) < 2:
        return None
    q, kv = layout.per_head, layout.per_kv_head
    if target.kind == "attn_qkv":
        found = fused.qkv_segments(model, target.tower, target.name, shape[out])
        if found is None:
            raise DegradeError(
                f"degradation.options.unit=head: {target.name} holds q, k and v in one tensor whose layout is not "
                f"known for model type {fused.model_type(model, target.tower)}; allowed: unit=neuron or layer, or "
                "a group without it"
            )
        dim, expand = out, _by_segment(*found)
    else:
        dim, expand = {"attn_q": (out, q), "attn_k": (out, kv), "attn_v": (out, kv), "attn_o": (into, q)}[target.kind]
    size = expand(torch.zeros(layout.heads, dtype=torch.bool)).numel()
    if shape[dim] != size:
        raise DegradeError(
            f"{target.name}: {shape[dim]} rows where the model's config declares {size} ({layout.heads} heads, "
            f"{layout.kv_heads} key/value heads of {layout.head_dim}); its heads cannot be located"
        )
    return Slot(dim, layout.heads, expand)


_UNIT_SLOTS = {"neuron": _neurons, "head": _heads}


def slot(model: nn.Module, target: Target, unit: str) -> Slot | None:
    """Where ``target`` holds units of kind ``unit``; None when it holds none (e.g. a norm for ``neuron``).

    Raises:
        DegradeError: a projection whose size does not match the model's declared head layout, or units this
            method cannot locate (the neurons of stacked experts, a fused tensor of an unknown layout).
    """
    if target.layer is None:
        return None
    param = model.get_parameter(target.name)
    module = model.get_submodule(target.name.rpartition(".")[0])
    shape = list(param.shape)
    if target.part is not None:  # the slice's rows, read as a tensor of their own
        shape[target.part.dim] = target.part.size
    if unit == "layer":
        dim = 0 if target.part is None else target.part.dim
        return Slot(dim, 1, lambda dead: dead.expand(shape[dim]))
    out = fused.out_dim(module, len(shape))
    return _UNIT_SLOTS[unit](model, target, shape, out, 1 - out if len(shape) == 2 else 2)
