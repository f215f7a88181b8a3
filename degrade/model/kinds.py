"""The kind of every weight of a model, from its own name and its module's: the vocabulary groups are written in.

A weight's kind is found from the name of the module that holds it and its parent's
(``self_attn.v_proj`` → ``attn_v``, GPT-2's ``mlp.c_proj`` → ``mlp_down``), never from a table
of models. Some kinds name a tensor that holds others: a fused ``attn_qkv`` holds the q, k and
v projections, a fused ``mlp_gate_up`` the gate and up projections, and ``mlp_experts`` (the
stacked 3-D weights of a mixture of experts) the gate and up, or the down, projections of every
expert; :func:`roles` says which. A weight matrix that no rule here classifies is reported by
:func:`family` so that a group that could hold it refuses, rather than silently leaving it out.
"""

from __future__ import annotations

import re

from torch import nn

KINDS = (
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_o",
    "attn_qkv",
    "mlp_gate",
    "mlp_up",
    "mlp_down",
    "mlp_gate_up",
    "mlp_experts",
    "mlp_router",
    "embed",
    "embed_pos",
    "embed_patch",
    "mm_projector",
    "lm_head",
    "norm",
)
TOWERS = ("language", "vision", "all")

ATTN_PARENTS = {"self_attn", "attn", "attention", "self_attention", "cross_attn"}
MLP_PARENTS = {"mlp", "feed_forward", "ffn", "block_sparse_moe", "moe", "shared_expert", "shared_experts"}
_ATTN_LEAVES = {
    "q_proj": "attn_q",
    "k_proj": "attn_k",
    "v_proj": "attn_v",
    "o_proj": "attn_o",
    "out_proj": "attn_o",
    "c_proj": "attn_o",
    "dense": "attn_o",
    "c_attn": "attn_qkv",
    "qkv_proj": "attn_qkv",
    "query_key_value": "attn_qkv",
    "Wqkv": "attn_qkv",
}
_MLP_LEAVES = {
    "gate_proj": "mlp_gate",
    "w1": "mlp_gate",
    "up_proj": "mlp_up",
    "w3": "mlp_up",
    "c_fc": "mlp_up",
    "fc1": "mlp_up",
    "fc_in": "mlp_up",
    "dense_h_to_4h": "mlp_up",
    "down_proj": "mlp_down",
    "w2": "mlp_down",
    "c_proj": "mlp_down",
    "fc2": "mlp_down",
    "fc_out": "mlp_down",
    "dense_4h_to_h": "mlp_down",
    "gate_up_proj": "mlp_gate_up",
    "shared_expert_gate": "mlp_router",  # the sigmoid gate that scales the shared expert's output
}
# The stacked weights of an ``experts`` module, by parameter name: which projections each holds.
_EXPERT_ROLES = {
    "gate_up_proj": ("mlp_gate", "mlp_up"),
    "gate_proj": ("mlp_gate",),
    "up_proj": ("mlp_up",),
    "down_proj": ("mlp_down",),
}
_ROUTER_LEAVES = {"gate", "router"}  # a router is told apart from a dense gate by its sibling ``experts``
_EMBED_LEAVES = {
    "embed_tokens": "embed",
    "wte": "embed",
    "word_embeddings": "embed",
    "tok_embeddings": "embed",
    "wpe": "embed_pos",
    "position_embedding": "embed_pos",
    "embed_positions": "embed_pos",
    "patch_embedding": "embed_patch",
    "patch_embed": "embed_patch",
}
_PROJECTORS = {"multi_modal_projector", "mm_projector"}
# What each fused kind holds, when a group names only some of it.
_FUSED_ROLES = {"attn_qkv": ("attn_q", "attn_k", "attn_v"), "mlp_gate_up": ("mlp_gate", "mlp_up")}
FAMILIES = {
    "attention": tuple(k for k in KINDS if k.startswith("attn_")),
    "MLP": tuple(k for k in KINDS if k.startswith("mlp_")),
    "embedding": ("embed", "embed_pos", "embed_patch", "lm_head"),
}
_VISION_MARKERS = ("vision_tower", "vision_model", "visual", "image_encoder", *_PROJECTORS)
_LAYER_RE = re.compile(r"(?:^|\.)(?:layers|h|layer|blocks)\.(\d+)(?:\.|$)")


def classify(param_name: str, module: nn.Module, parent: nn.Module | None) -> str | None:
    """The kind of parameter ``param_name`` held by ``module`` (whose parent module is ``parent``), or None."""
    parts = param_name.split(".")
    attr, leaf, above = parts[-1], (parts[-2] if len(parts) > 1 else ""), (parts[-3] if len(parts) > 2 else "")
    if leaf == "experts" and attr in _EXPERT_ROLES:
        return "mlp_experts"
    if any(p in _PROJECTORS for p in parts[:-1]) and attr.endswith("weight") and "norm" not in param_name:
        return "mm_projector"
    if attr != "weight":
        return None
    if isinstance(module, nn.Embedding) or leaf in _EMBED_LEAVES:
        return _EMBED_LEAVES.get(leaf, "embed" if "embed" in leaf else None)
    if leaf == "lm_head":
        return "lm_head"
    if "norm" in type(module).__name__.lower() or "norm" in leaf or leaf.startswith("ln_"):
        return "norm"
    if leaf in _ROUTER_LEAVES and parent is not None and hasattr(parent, "experts"):
        return "mlp_router"
    if above in ATTN_PARENTS:
        return _ATTN_LEAVES.get(leaf)
    if above in MLP_PARENTS:
        return _MLP_LEAVES.get(leaf)
    return None


def roles(param_name: str, kind: str) -> tuple[str, ...]:
    """The kinds a weight of ``kind`` holds: its own, or for a fused or stacked tensor the projections inside it."""
    if kind == "mlp_experts":
        return _EXPERT_ROLES[param_name.rpartition(".")[2]]
    return _FUSED_ROLES.get(kind, (kind,))


def family(param_name: str, module: nn.Module) -> str | None:
    """Where an unclassified weight sits (attention, MLP, embedding), or None when nothing tells."""
    parts = set(param_name.split(".")[:-1])
    if parts & ATTN_PARENTS:
        return "attention"
    if parts & (MLP_PARENTS | {"experts"}):
        return "MLP"
    return "embedding" if isinstance(module, nn.Embedding) else None


def tower_of(name: str) -> str:
    return "vision" if any(m in name.split(".") for m in _VISION_MARKERS) else "language"


def layer_of(name: str) -> int | None:
    match = _LAYER_RE.search(name)
    return int(match.group(1)) if match else None
