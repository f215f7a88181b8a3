"""Parameter groups, resolved from the loaded model's own module structure.

Nothing here knows a layer count. Every weight gets a kind from its own name and its module's
(:mod:`degrade.model.kinds`), its tower from its path (``vision_tower`` …) and its layer from the
index that follows ``layers``/``h``/``layer``/``blocks``. A group is a set of kinds, a tower, an
optional layer range and exclusions. A fused or stacked tensor is taken whole when the group names
its kind or every projection it holds; when the group names only some of them (``attn_only`` on
GPT-2's ``c_attn``), each is taken as a slice, its rows located by :mod:`degrade.model.fused`. A
group that matches nothing, or that could hold a weight matrix no rule classifies, is an error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from torch import nn

from degrade.errors import ConfigError, DegradeError
from degrade.model import fused, quant4
from degrade.model.fused import Part
from degrade.model.kinds import FAMILIES, KINDS, TOWERS, classify, family, layer_of, roles, tower_of

__all__ = ["KINDS", "TOWERS", "Part", "ResolvedGroup", "Target", "candidates", "resolve_group"]

log = logging.getLogger(__name__)


class GroupSpec(Protocol):
    """What a group asks for (``config.schema.ParamGroupConfig`` is one; config imports this module, not back)."""

    name: str
    kinds: Sequence[str]
    tower: str
    layers: Sequence[int] | None
    exclude: Sequence[str]


@dataclass(frozen=True)
class Target:
    """One tensor a group damages or, with ``part``, the rows of a fused tensor that hold one kind.

    ``numel`` counts weights: a slice's own, a 4-bit tensor's unpacked (its storage holds two a byte).
    """

    name: str
    kind: str
    tower: str
    layer: int | None
    numel: int
    part: Part | None = None

    @property
    def key(self) -> str:
        """What seeds the target's random draws: the parameter's name, with a slice's kind appended."""
        return self.name if self.part is None else f"{self.name}[{self.part.kind}]"


@dataclass
class ResolvedGroup:
    """The parameters a group selected on one model, with what a run logs and saves."""

    name: str
    targets: list[Target] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """The parameters the group touches, each once (two slices of one tensor name it once)."""
        return list(dict.fromkeys(t.name for t in self.targets))

    @property
    def numel(self) -> int:
        return sum(t.numel for t in self.targets)

    def summary(self) -> dict:
        """What ``param_group.json`` holds: name, count, elements, kinds, names, and each slice's rows."""
        kinds: dict[str, int] = {}
        for t in self.targets:
            kinds[t.kind] = kinds.get(t.kind, 0) + 1
        return {
            "name": self.name,
            "count": len(self.targets),
            "elements": self.numel,
            "kinds": kinds,
            "names": self.names,
            "slices": [
                {"name": t.name, "kind": t.kind, "dim": t.part.dim, "ranges": [list(r) for r in t.part.ranges]}
                for t in self.targets
                if t.part is not None
            ],
        }


def _weights(model: nn.Module) -> Iterator[tuple[str, nn.Parameter, nn.Module, str | None]]:
    """Every parameter of ``model`` once (tied ones under their first name), its module and its kind (or None)."""
    modules = dict(model.named_modules())
    for name, param in model.named_parameters():
        owner = name.rpartition(".")[0]
        module = modules[owner]
        parent = modules.get(owner.rpartition(".")[0]) if owner else None
        yield name, param, module, classify(name, module, parent)


def candidates(model: nn.Module) -> Iterator[Target]:
    """Every damageable weight of ``model``, each parameter once (tied weights count once)."""
    for name, param, _, kind in _weights(model):
        if kind is not None:
            yield Target(name, kind, tower_of(name), layer_of(name), quant4.n_weights(param))


def unclassified(model: nn.Module) -> Iterator[tuple[str, str | None]]:
    """Each weight matrix (two or more dimensions) that no rule classifies, with where it sits if that tells."""
    for name, param, module, kind in _weights(model):
        if kind is None and (param.ndim >= 2 or quant4.is_4bit(param)):
            yield name, family(name, module)


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
        if getattr(cfg, "layer", None) is not None:  # one layer (or block) of a layer map: name the key typed
            raise ConfigError(
                "param_group.layer",
                f"{cfg.layer} (block {stop - start}) goes beyond this model's "
                f"{n_layers} layers; allowed: 0 ≤ layer ≤ {n_layers - (stop - start)}",
            )
        raise ConfigError(
            "param_group.layers",
            f"[{start}, {stop}] goes beyond this model's {n_layers} layers (0–{n_layers - 1}); "
            f"allowed: [start, stop) with 0 ≤ start < stop ≤ {n_layers}",
        )


def _take(model: nn.Module, cfg: GroupSpec, target: Target) -> list[Target]:
    """What of ``target`` the group takes: all of it, none, or a slice per kind it names inside a fused tensor."""
    held = roles(target.name, target.kind)
    named = [kind for kind in held if kind in cfg.kinds]
    if target.kind in cfg.kinds or len(named) == len(held):
        return [target]
    if not named:
        return []
    param = model.get_parameter(target.name)
    if quant4.is_4bit(param):
        raise DegradeError(
            f"param_group={cfg.name}: {target.name} holds {', '.join(held)} in one 4-bit tensor, whose "
            f"{', '.join(named)} rows cannot be damaged alone (quantizing it again would move the other rows); "
            f"allowed: load the model without model.load_4bit, or a group that takes it whole ({target.kind})"
        )
    try:
        parts = [fused.part_of(model, target.name, target.tower, kind) for kind in named]
    except DegradeError as exc:
        raise DegradeError(f"param_group={cfg.name}: {exc}") from None
    per_row = target.numel // param.shape[parts[0].dim]
    return [Target(target.name, p.kind, target.tower, target.layer, per_row * p.size, p) for p in parts]


def _refuse_unclassified(model: nn.Module, cfg: GroupSpec, covers: Callable[[str], bool]) -> None:
    """Refuse the group when a weight matrix no rule classifies could belong to it (it would be left out silently)."""
    for name, where in unclassified(model):
        could = where is None or any(kind in FAMILIES[where] for kind in cfg.kinds)
        if could and covers(name):
            shape = list(model.get_parameter(name).shape)
            inside = f"sits in the {where} and " if where else ""
            raise DegradeError(
                f"param_group={cfg.name}: {name} {shape} is a weight matrix that {inside}no rule classifies, so "
                "whether the group holds it is unknown; allowed: leave it out with "
                f"param_group.exclude=[{re.escape(name)}]"
            )


def _log_slices(group: ResolvedGroup) -> None:
    """One line per slice the group cuts out of the fused tensors of its layers: which kind, where, how many."""
    seen: dict[tuple, int] = {}
    for t in group.targets:
        if t.part is not None:
            key = (t.kind, t.part.dim, t.part.ranges, t.name.removesuffix(".weight").split(f".{t.layer}.")[-1])
            seen[key] = seen.get(key, 0) + 1
    for (kind, dim, ranges, where), count in seen.items():
        rows = " ".join(f"[{a}, {b})" for a, b in ranges)
        log.info(
            "param_group %s: %s is %s along dim %d of %s, in %d tensors (their other rows stay clean)",
            group.name,
            kind,
            rows,
            dim,
            where,
            count,
        )


def resolve_group(model: nn.Module, cfg: GroupSpec) -> ResolvedGroup:
    """Select the parameters of ``cfg`` on ``model``.

    Raises:
        ConfigError: a layer range beyond the model's layers.
        DegradeError: when the group matches no parameter of this model, could hold a weight matrix that no rule
            classifies, or names part of a fused tensor whose layout is not known.
    """
    check_layers(model, cfg)
    excludes = [re.compile(p) for p in cfg.exclude]

    def covers(name: str) -> bool:
        layer = layer_of(name)
        if cfg.tower != "all" and tower_of(name) != cfg.tower:
            return False
        if cfg.layers is not None and (layer is None or not cfg.layers[0] <= layer < cfg.layers[1]):
            return False
        return not any(p.search(name) for p in excludes)

    _refuse_unclassified(model, cfg, covers)
    picked = [taken for target in candidates(model) if covers(target.name) for taken in _take(model, cfg, target)]
    if not picked:
        found = sorted({(t.kind, t.tower) for t in candidates(model)})
        raise DegradeError(
            f"param_group={cfg.name}: matches no parameter of this model (kinds {list(cfg.kinds)}, tower "
            f"{cfg.tower}, layers {cfg.layers}); the model has: " + ", ".join(f"{k}/{t}" for k, t in found)
        )
    group = ResolvedGroup(cfg.name, picked)
    _log_slices(group)
    return group
