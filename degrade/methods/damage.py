"""Apply a degradation method to a resolved parameter group, with per-parameter seeding."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from degrade.methods import check_options, method, seeding_for
from degrade.methods.seeding import param_seed
from degrade.model.groups import ResolvedGroup

__all__ = ["apply", "check", "param_seed"]


def check(model: nn.Module, group: ResolvedGroup, name: str, options: Mapping[str, Any] | None = None) -> None:
    """Refuse, in one line, a model or group that method ``name`` cannot act on (before any damage).

    Raises:
        DegradeError: e.g. bit flips on 4-bit weights, head ablation on a group without heads.
    """
    meth = method(name)
    if meth.check is not None:
        meth.check(model, group, check_options(name, options))


@torch.no_grad()
def apply(
    model: nn.Module,
    group: ResolvedGroup,
    method_name: str,
    level: float,
    *,
    seed: int,
    repeat: int,
    common_noise: bool = True,
    options: Mapping[str, Any] | None = None,
) -> None:
    """Damage ``group`` in place with ``method_name`` at ``level`` (on a clean model: restore first).

    Methods that act on each tensor alone compute in float32 and cast back to the parameter's
    dtype (a 4-bit parameter is de-quantized, damaged and quantized again); ``bit_flip`` acts on
    the bits of the dtype itself; ``activation_noise`` attaches hooks that restoring removes.

    Args:
        options: the method's ``degradation.options`` (its defaults when None).

    Raises:
        DegradeError: the method cannot act on this model or group (see :func:`check`).
    """
    meth = method(method_name)
    opts = check_options(method_name, options)
    if meth.check is not None:
        meth.check(model, group, opts)
    meth.apply(model, group, level, seeding=seeding_for(seed, repeat, level, common_noise), options=opts)
