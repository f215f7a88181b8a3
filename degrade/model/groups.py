"""Parameter groups, resolved from the loaded model's own module structure.

Nothing here knows a layer count. Every weight-bearing module is classified by its own
name and its parent's (``self_attn.v_proj`` → ``attn_v``, GPT-2's ``mlp.c_proj`` →
``mlp_down``), its tower by its path (``vision_tower`` …) and its layer by the index that
follows ``layers``/``h``/``layer``/``blocks``. A group is a set of kinds, a tower, an
optional layer range and exclusions; one that matches nothing is an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from torch import nn

from degrade.errors import ConfigError, DegradeError
from degrade.model import quant4

KINDS = (
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_o",
    "attn_qkv",
    "mlp_gate",
    "mlp_up",
    "mlp_down",
    "embed",
    "embed_pos",
    "lm_head",
    "norm",
)
TOWERS = ("language", "vision", "all")

_ATTN_PARENTS = {"self_attn", "attn", "attention", "self_attention", "cross_attn"}
_MLP_PARENTS = {"mlp", "feed_forward", "ffn"}
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
    "down_proj": "mlp_down",
    "w2": "mlp_down",
    "c_proj": "mlp_down",
    "fc2": "mlp_down",
}
_EMBED_LEAVES = {
    "embed_tokens": "embed",
    "wte": "embed",
    "word_embeddings": "embed",
    "tok_embeddings": "embed",
    "wpe": "embed_pos",
    "position_embedding": "embed_pos",
    "embed_positions": "embed_pos",
}
_VISION_MARKERS = ("vision_tower", "vision_model", "visual", "image_encoder", "multi_modal_projector", "mm_projector")
_LAYER_RE = re.compile(r"(?:^|\.)(?:layers|h|layer|blocks)\.(\d+)(?:\.|$)")


class GroupSpec(Protocol):
    """What a group asks for (``config.schema.ParamGroupConfig`` is one; config imports this module, not back)."""

    name: str
    kinds: Sequence[str]
    tower: str
    layers: Sequence[int] | None
    exclude: Sequence[str]


@dataclass(frozen=True)
class Target:
    """One parameter a group damages."""

    name: str
    kind: str
    tower: str
    layer: int | None
    numel: int


@dataclass
class ResolvedGroup:
    """The parameters a group selected on one model, with what a run logs and saves."""

    name: str
    targets: list[Target] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.targets]

    @property
    def numel(self) -> int:
        return sum(t.numel for t in self.targets)

    def summary(self) -> dict:
        kinds: dict[str, int] = {}
        for t in self.targets:
            kinds[t.kind] = kinds.get(t.kind, 0) + 1
        return {
            "name": self.name,
            "count": len(self.targets),
            "elements": self.numel,
            "kinds": kinds,
            "names": self.names,
        }


def classify(module_name: str, module: nn.Module) -> str | None:
    """The kind of a weight-bearing module from its name and its parent's, or None."""
    parts = module_name.split(".")
    leaf, parent = parts[-1], (parts[-2] if len(parts) > 1 else "")
    if isinstance(module, nn.Embedding):
        return _EMBED_LEAVES.get(leaf, "embed" if "embed" in leaf else None)
    if leaf == "lm_head":
        return "lm_head"
    if "norm" in type(module).__name__.lower() or "norm" in leaf or leaf.startswith("ln_"):
        return "norm"
    if parent in _ATTN_PARENTS:
        return _ATTN_LEAVES.get(leaf)
    if parent in _MLP_PARENTS:
        return _MLP_LEAVES.get(leaf)
    return None


def tower_of(module_name: str) -> str:
    return "vision" if any(m in module_name.split(".") for m in _VISION_MARKERS) else "language"


def layer_of(module_name: str) -> int | None:
    match = _LAYER_RE.search(module_name)
    return int(match.group(1)) if match else None


def candidates(model: nn.Module) -> Iterator[Target]:
    """Every damageable weight of ``model``, each parameter once (tied weights count once).

    A target's ``numel`` is its number of weights, also for a 4-bit parameter whose packed storage holds two per byte.
    """
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if not isinstance(weight, nn.Parameter) or id(weight) in seen:
            continue
        kind = classify(module_name, module)
        if kind is None:
            continue
        seen.add(id(weight))
        yield Target(
            f"{module_name}.weight", kind, tower_of(module_name), layer_of(module_name), quant4.n_weights(weight)
        )


def layer_counts(model: nn.Module) -> dict[str, int]:
    """The number of layers of each tower, from the layer indices in the model's own module names."""
    counts: dict[str, int] = {}
    for module_name, _ in model.named_modules():
        layer = layer_of(module_name)
        if layer is not None:
            tower = tower_of(module_name)
            counts[tower] = max(counts.get(tower, 0), layer + 1)
    return counts


def check_layers(model: nn.Module, cfg: GroupSpec) -> None:
    """Refuse a layer range that reaches past the layers of the group's tower(s).

    Raises:
        ConfigError: naming ``param_group.layers`` when ``stop`` exceeds the layer count.
    """
    if cfg.layers is None:
        return
    counts = layer_counts(model)
    towers = [n for tower, n in counts.items() if cfg.tower in ("all", tower)]
    if not towers:  # no numbered layers at all: the empty match below says what the model has
        return
    n_layers = max(towers)
    start, stop = cfg.layers
    if stop > n_layers:
        raise ConfigError(
            "param_group.layers",
            f"[{start}, {stop}] goes beyond this model's {n_layers} layers (0–{n_layers - 1}); "
            f"allowed: [start, stop) with 0 ≤ start < stop ≤ {n_layers}",
        )


def resolve_group(model: nn.Module, cfg: GroupSpec) -> ResolvedGroup:
    """Select the parameters of ``cfg`` on ``model``.

    Raises:
        ConfigError: a layer range beyond the model's layers.
        DegradeError: when the group matches no parameter of this model.
    """
    check_layers(model, cfg)
    excludes = [re.compile(p) for p in cfg.exclude]
    picked = []
    for target in candidates(model):
        if target.kind not in cfg.kinds or (cfg.tower != "all" and target.tower != cfg.tower):
            continue
        if cfg.layers is not None and (target.layer is None or not cfg.layers[0] <= target.layer < cfg.layers[1]):
            continue
        if any(p.search(target.name) for p in excludes):
            continue
        picked.append(target)
    if not picked:
        found = sorted({(t.kind, t.tower) for t in candidates(model)})
        raise DegradeError(
            f"param_group={cfg.name}: matches no parameter of this model (kinds {list(cfg.kinds)}, tower "
            f"{cfg.tower}, layers {cfg.layers}); the model has: " + ", ".join(f"{k}/{t}" for k, t in found)
        )
    return ResolvedGroup(cfg.name, picked)
