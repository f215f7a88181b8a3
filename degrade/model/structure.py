"""Where a model's units sit in its weights: MLP neurons, attention heads (grouped-query included), whole layers.

A unit is found from the model's own config and module types, never from a table of models:
heads from ``num_attention_heads``, ``num_key_value_heads`` and ``head_dim`` (the text config of a
multimodal model for its language tower, its vision config for the vision tower); neurons as the
intermediate dimension of the MLP's gate, up and down projections. GPT-2's ``Conv1D`` stores a
weight as (in, out), the transpose of ``nn.Linear``, and its fused ``c_attn`` holds q, k and v.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from degrade.errors import DegradeError
from degrade.model.groups import Target

UNITS = ("neuron", "head", "layer")
HEAD_KINDS = ("attn_q", "attn_k", "attn_v", "attn_o", "attn_qkv")
NEURON_KINDS = ("mlp_gate", "mlp_up", "mlp_down")


@dataclass(frozen=True)
class HeadLayout:
    """The attention heads of one layer: query heads, key/value heads (fewer under grouped-query attention), size."""

    heads: int
    kv_heads: int
    head_dim: int

    def per_head(self, dead: torch.Tensor) -> torch.Tensor:
        """Dead query heads → dead rows of a q projection (or columns of the output projection)."""
        return dead.repeat_interleave(self.head_dim)

    def per_kv_head(self, dead: torch.Tensor) -> torch.Tensor:
        """Dead query heads → dead rows of a k or v projection: a key/value head dies with all its query heads."""
        return dead.view(self.kv_heads, self.heads // self.kv_heads).all(dim=1).repeat_interleave(self.head_dim)


@dataclass(frozen=True)
class Slot:
    """Where one parameter holds the units of its layer.

    Attributes:
        dim: the dimension of the weight that the units index.
        count: the units of the layer (query heads, neurons; 1 for the layer itself).
        expand: the layer's dead units (a bool tensor of ``count``) → the dead indices along ``dim`` (bool).
    """

    dim: int
    count: int
    expand: Callable[[torch.Tensor], torch.Tensor]


def head_layout(model: nn.Module, tower: str) -> HeadLayout | None:
    """The head layout of ``tower`` from the model's config, or None when it declares no heads."""
    config = model.config
    sub: Any = getattr(config, "vision_config" if tower == "vision" else "text_config", None) or config
    heads = getattr(sub, "num_attention_heads", None)
    hidden = getattr(sub, "hidden_size", None)
    if not heads or not hidden:
        return None
    kv_heads = getattr(sub, "num_key_value_heads", None) or heads
    head_dim = getattr(sub, "head_dim", None) or hidden // heads
    return HeadLayout(heads, kv_heads, head_dim)


def slot(model: nn.Module, target: Target, unit: str) -> Slot | None:
    """Where ``target`` holds units of kind ``unit``; None when it holds none (e.g. a norm for ``neuron``).

    Raises:
        DegradeError: a projection whose size does not match the model's declared head layout.
    """
    if target.layer is None:
        return None
    shape = model.get_parameter(target.name).shape
    module = model.get_submodule(target.name.rpartition(".")[0])
    out_dim, in_dim = (1, 0) if type(module).__name__ == "Conv1D" else (0, 1)
    if unit == "layer":
        return Slot(0, 1, lambda dead: dead.expand(shape[0]))
    if unit == "neuron":
        dim = {"mlp_gate": out_dim, "mlp_up": out_dim, "mlp_down": in_dim}.get(target.kind)
        return None if dim is None or len(shape) < 2 else Slot(dim, shape[dim], lambda dead: dead)
    layout = head_layout(model, target.tower)
    if target.kind not in HEAD_KINDS or layout is None or len(shape) < 2:
        return None
    q, kv = layout.per_head, layout.per_kv_head
    dim, expand = {
        "attn_q": (out_dim, q),
        "attn_k": (out_dim, kv),
        "attn_v": (out_dim, kv),
        "attn_o": (in_dim, q),
        "attn_qkv": (out_dim, lambda dead: torch.cat([q(dead), kv(dead), kv(dead)])),
    }[target.kind]
    size = expand(torch.zeros(layout.heads, dtype=torch.bool)).numel()
    if shape[dim] != size:
        raise DegradeError(
            f"{target.name}: {shape[dim]} rows where the model's config declares {size} ({layout.heads} heads, "
            f"{layout.kv_heads} key/value heads of {layout.head_dim}); its heads cannot be located"
        )
    return Slot(dim, layout.heads, expand)
