"""Where each projection sits inside a fused tensor, so that a group can damage it as a slice.

A fused q/k/v tensor (GPT-2's ``c_attn``, Phi-3's ``qkv_proj``, GPT-NeoX's and Falcon's
``query_key_value``) stacks blocks of ``head_dim`` rows along its output dimension; which block
is which differs between architectures and cannot be told from the shapes (GPT-NeoX interleaves
q, k and v per head, GPT-2 and Phi-3 put all queries first, Falcon has three layouts of its own).
So the layouts are read from the modeling code of each architecture and listed by model type,
and a fused tensor of a type not listed is refused in one line rather than cut at a guess. The
same holds for the fused gate/up tensors (Phi-3's ``gate_up_proj`` and the experts of Mixtral
and Qwen2-MoE hold the gate rows first, then the up rows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from degrade.errors import DegradeError

Segments = list[tuple[str, int]]  # (kind, head) per block of head_dim rows, in storage order


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
        return self.kv_dead(dead).repeat_interleave(self.head_dim)

    def kv_dead(self, dead: torch.Tensor) -> torch.Tensor:
        return dead.view(self.kv_heads, self.heads // self.kv_heads).all(dim=1)


@dataclass(frozen=True)
class Part:
    """The rows of a fused tensor that hold one kind: half-open ``ranges`` of indices along ``dim``."""

    kind: str
    dim: int
    ranges: tuple[tuple[int, int], ...]

    @property
    def size(self) -> int:
        return sum(stop - start for start, stop in self.ranges)

    def index(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """The indices of the part's rows along ``dim``, in storage order."""
        return torch.cat([torch.arange(start, stop, device=device) for start, stop in self.ranges])


def _concatenated(layout: HeadLayout) -> Segments:
    """All query heads, then all key heads, then all value heads (GPT-2, Phi-3, Falcon multi-query)."""
    return [
        *(("attn_q", h) for h in range(layout.heads)),
        *(("attn_k", g) for g in range(layout.kv_heads)),
        *(("attn_v", g) for g in range(layout.kv_heads)),
    ]


def _per_kv_group(layout: HeadLayout) -> Segments:
    """Per key/value head: the query heads that read it, its key, its value (GPT-NeoX and Falcon are one per head)."""
    per_group = layout.heads // layout.kv_heads
    return [
        seg
        for g in range(layout.kv_heads)
        for seg in (*(("attn_q", g * per_group + i) for i in range(per_group)), ("attn_k", g), ("attn_v", g))
    ]


def _falcon_kv_heads(config: Any) -> int:
    return config.num_kv_heads if (config.new_decoder_architecture or not config.multi_query) else 1


# model type → (its key/value head count from the config, when not num_key_value_heads; its q/k/v layout)
_QKV: dict[str, tuple[Callable[[Any], int] | None, Callable[[HeadLayout], Segments]]] = {
    "gpt2": (None, _concatenated),
    "phi3": (None, _concatenated),
    "gpt_neox": (None, _per_kv_group),
    "falcon": (_falcon_kv_heads, _per_kv_group),  # multi-query: one group of every head, so q, q, …, k, v
}
_GATE_UP_HALVES = {"phi3", "mixtral", "qwen2_moe"}  # gate rows first, then up rows (``chunk(2, dim=-1)``)


def tower_config(model: nn.Module, tower: str) -> Any:
    """The config that describes ``tower`` (a multimodal model's text or vision config, else the model's)."""
    config = model.config
    return getattr(config, "vision_config" if tower == "vision" else "text_config", None) or config


def head_layout(model: nn.Module, tower: str) -> HeadLayout | None:
    """The head layout of ``tower`` from the model's config, or None when it declares no heads."""
    sub = tower_config(model, tower)
    heads = getattr(sub, "num_attention_heads", None)
    hidden = getattr(sub, "hidden_size", None)
    if not heads or not hidden:
        return None
    kv_of = _QKV.get(getattr(sub, "model_type", ""), (None, None))[0]
    kv_heads = kv_of(sub) if kv_of else getattr(sub, "num_key_value_heads", None) or heads
    head_dim = getattr(sub, "head_dim", None) or hidden // heads
    return HeadLayout(heads, kv_heads, head_dim)


def out_dim(module: nn.Module, ndim: int) -> int:
    """The dimension of a weight that indexes its outputs: GPT-2's ``Conv1D`` stores (in, out), experts (E, out, in)."""
    return 1 if type(module).__name__ == "Conv1D" or ndim == 3 else 0


def qkv_segments(model: nn.Module, tower: str, name: str, rows: int) -> tuple[HeadLayout, Segments] | None:
    """The head layout and the blocks of the fused q/k/v tensor ``name`` (``rows`` along its output dimension).

    Returns None when the layout of the model's type is not known here.

    Raises:
        DegradeError: the tensor's size does not match the layout and the model's config.
    """
    model_type = getattr(tower_config(model, tower), "model_type", None)
    layout = head_layout(model, tower)
    if model_type not in _QKV or layout is None:
        return None
    segments = _QKV[model_type][1](layout)
    if len(segments) * layout.head_dim != rows:
        raise DegradeError(
            f"{name}: {rows} rows where {model_type}'s layout has {len(segments) * layout.head_dim} "
            f"({layout.heads} heads, {layout.kv_heads} key/value heads of {layout.head_dim}); "
            "its q, k and v cannot be located"
        )
    return layout, segments


def knows_gate_up(model: nn.Module, tower: str) -> bool:
    """Whether the fused gate/up tensors of ``tower`` are known to hold the gate rows first, then the up rows."""
    return getattr(tower_config(model, tower), "model_type", None) in _GATE_UP_HALVES


def model_type(model: nn.Module, tower: str) -> str:
    return str(getattr(tower_config(model, tower), "model_type", "?"))


def part_of(model: nn.Module, name: str, tower: str, kind: str) -> Part:
    """The rows of the fused tensor ``name`` that hold ``kind`` (attn_q/k/v, mlp_gate/up).

    Raises:
        DegradeError: the tensor's layout is not known, or does not match the model's config.
    """
    module = model.get_submodule(name.rpartition(".")[0])
    shape = model.get_parameter(name).shape
    dim = out_dim(module, len(shape))
    whole = (
        "mlp_gate, mlp_up and mlp_down together, e.g. param_group=mlp_only" if kind.startswith("mlp") else "attn_qkv"
    )
    unknown = DegradeError(
        f"{name} holds {'gate and up' if kind.startswith('mlp') else 'q, k and v'} in one tensor whose layout is not "
        f"known for model type {model_type(model, tower)}; allowed: a group that takes it whole ({whole})"
    )
    if kind in ("mlp_gate", "mlp_up"):
        if not knows_gate_up(model, tower):
            raise unknown
        half = shape[dim] // 2
        return Part(kind, dim, ((0, half),) if kind == "mlp_gate" else ((half, shape[dim]),))
    found = qkv_segments(model, tower, name, shape[dim])
    if found is None:
        raise unknown
    layout, segments = found
    ranges: list[tuple[int, int]] = []
    for i, (seg_kind, _) in enumerate(segments):
        start = i * layout.head_dim
        if seg_kind != kind:
            continue
        if ranges and ranges[-1][1] == start:  # adjacent blocks read as one range
            ranges[-1] = (ranges[-1][0], start + layout.head_dim)
        else:
            ranges.append((start, start + layout.head_dim))
    return Part(kind, dim, tuple(ranges))
