"""The method registry: what a method is (its level's domain, axis and options) and how one is registered.

A method damages a resolved parameter group in place through one group-level signature,
``apply(model, group, level, *, seeding, options)``. Most methods act on each tensor alone and
are written as a pure per-tensor function ``(weight, level, *, generator) -> Tensor`` registered
with :func:`register`, which wraps it in :func:`degrade.methods.seeding.elementwise`. Methods that need the
whole group (a threshold across tensors, heads and neurons spanning several projections, forward
hooks) register their group-level function with :func:`register_group`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from degrade.errors import ConfigError
from degrade.methods.seeding import Seeding, elementwise
from degrade.model.groups import ResolvedGroup

MethodFn = Callable[..., torch.Tensor]
GroupFn = Callable[..., None]
CheckFn = Callable[[nn.Module, ResolvedGroup, Mapping[str, Any]], None]


@dataclass(frozen=True)
class LevelAxis:
    """How a method's level reads on a plot and in which order its levels damage more.

    Attributes:
        label: what the level is, for a plot axis, e.g. ``"σ (multiplicative Gaussian noise)"``.
        log: the levels span orders of magnitude and are drawn on a logarithmic axis
            (level 0, the clean model, has no place there and is drawn as a reference line).
        damage_grows_with_level: a larger level is more damage (σ, p); False when a larger
            level is less damage (uni_quant's n). Either way level 0 is the clean model.
    """

    label: str = "level"
    log: bool = False
    damage_grows_with_level: bool = True

    def damage_order(self, level: float) -> float:
        """A sort key that puts levels in order of growing damage, the clean level 0 first."""
        if level == 0:
            return -math.inf
        return level if self.damage_grows_with_level else -level


@dataclass(frozen=True)
class Option:
    """One option of a method (a key of ``degradation.options``): its default and the values allowed."""

    default: Any
    allowed: tuple[Any, ...]


@dataclass(frozen=True)
class Method:
    """A registered degradation method, the domain of its level and how that level is drawn.

    Attributes:
        fn: the per-tensor function, for a method that acts on each tensor alone (else None).
        apply: damages a group in place: ``(model, group, level, *, seeding, options) -> None``.
        check: refuses, in one line (:class:`~degrade.errors.DegradeError`), a model or group the
            method cannot act on; called before any damage.
        options: the method's options by key (``degradation.options``).
        forward_hooks: the method damages outputs through forward hooks, not weights (a serving
            engine, which runs its own modules, cannot apply it).
    """

    fn: MethodFn | None
    domain: str
    accepts: Callable[[float], bool]
    integer_levels: bool = False
    axis: LevelAxis = LevelAxis()
    apply: GroupFn | None = None
    check: CheckFn | None = None
    options: Mapping[str, Option] = field(default_factory=dict)
    forward_hooks: bool = False


METHODS: dict[str, Method] = {}


def register(
    name: str,
    *,
    domain: str,
    accepts: Callable[[float], bool],
    integer_levels: bool = False,
    axis: LevelAxis = LevelAxis(),
):
    """Register the per-tensor function ``fn`` as the degradation method ``name``.

    Args:
        name: the method's name, as ``degradation.method`` and the records spell it.
        domain: the allowed levels, in words, for error messages.
        accepts: whether a level lies in the domain.
        integer_levels: a computed range of levels is rounded to integers.
        axis: how the report draws and orders the levels.
    """

    def wrap(fn: MethodFn) -> MethodFn:
        METHODS[name] = Method(fn, domain, accepts, integer_levels, axis, apply=elementwise(fn))
        return fn

    return wrap


def register_group(
    name: str,
    *,
    domain: str,
    accepts: Callable[[float], bool],
    integer_levels: bool = False,
    axis: LevelAxis = LevelAxis(),
    options: Mapping[str, Option] | None = None,
    check: CheckFn | None = None,
    forward_hooks: bool = False,
):
    """Register the group-level function ``apply`` as the degradation method ``name``.

    ``apply(model, group, level, *, seeding, options)`` damages the group's parameters (or the
    outputs of its modules) in place; at level 0 it leaves the model clean. Arguments as in
    :func:`register` (``integer_levels`` included), plus the method's ``options``, a ``check`` of what
    it cannot act on, and whether it acts through ``forward_hooks``.
    """

    def wrap(apply: GroupFn) -> GroupFn:
        opts = options or {}
        METHODS[name] = Method(None, domain, accepts, integer_levels, axis, apply, check, opts, forward_hooks)
        return apply

    return wrap


def level_axis(name: str) -> LevelAxis:
    """How to draw and order the levels of method ``name``.

    A method that is no longer registered (named by old records) gets a plain linear
    ``"level"`` axis, damage growing with the level.
    """
    registered = METHODS.get(name)
    return registered.axis if registered is not None else LevelAxis()


def method(name: str) -> Method:
    """The registered method ``name``; raises KeyError listing the known names."""
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; allowed: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def check_options(name: str, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options of method ``name``: ``given`` checked against its registration, defaults filled in.

    Raises:
        ConfigError: naming ``degradation.options.<key>`` and what is allowed.
    """
    declared = method(name).options
    given = dict(given or {})
    for key, value in given.items():
        if key not in declared:
            known = f"its options are {', '.join(declared)}" if declared else "it takes no options"
            raise ConfigError(f"degradation.options.{key}", f"unknown option of {name}; {known}")
        allowed = declared[key].allowed
        if not any(value == a and type(value) is type(a) for a in allowed):
            raise ConfigError(
                f"degradation.options.{key}", f"{value!r}; allowed: {', '.join(_show(a) for a in allowed)}"
            )
    return {key: given.get(key, option.default) for key, option in declared.items()}


def seeding_for(seed: int, repeat: int, level: float, common_noise: bool) -> Seeding:
    """The seeding of one cell: the level joins the seeds only without ``common_noise``."""
    return Seeding(seed, repeat, None if common_noise else float(level))


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
