"""A method's sweep of levels: an explicit list or a range, each level checked against the method's domain."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from degrade.methods.registry import method


def resolve_levels(spec: Any, name: str) -> list[float]:
    """Turn ``degradation.levels`` into the list of levels to sweep, in order.

    Args:
        spec: a list of numbers, or a mapping {min, max, steps, spacing: linear|geometric}
            (``degradation.range``).
        name: the method, whose domain every level must lie in.

    Raises:
        ValueError: with a message naming what is allowed.
    """
    meth = method(name)
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        values = [float(spec)]
    elif isinstance(spec, (list, tuple)):
        if not spec:
            raise ValueError(
                f"is empty; give a list of levels ({name}: {meth.domain}) or degradation.range={{min, max, steps}}"
            )
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec):
            raise ValueError(f"must hold numbers only, got {list(spec)}")
        values = [float(v) for v in spec]
    elif isinstance(spec, dict):
        values = range_levels(spec)
        if meth.integer_levels:  # a computed sweep of n: rounded, each n once, in order
            values = list(dict.fromkeys(float(round(v)) for v in values))
    else:
        raise ValueError(f"must be a list of numbers, got {spec!r}")
    bad = [v for v in values if not (math.isfinite(v) and meth.accepts(v))]
    if bad:
        raise ValueError(f"{', '.join(f'{v:g}' for v in bad)} outside the domain of {name}: {meth.domain}")
    return values


def range_levels(spec: dict) -> list[float]:
    """The levels of a range {min, max, steps, spacing}: linear or geometric, ``steps`` of them."""
    keys = {"min", "max", "steps", "spacing"}
    if set(spec) - keys or not {"min", "max", "steps"} <= set(spec):
        raise ValueError(f"a range needs keys min, max, steps (and optional spacing), got {sorted(spec)}")
    lo, hi, steps = float(spec["min"]), float(spec["max"]), spec["steps"]
    spacing = spec.get("spacing", "linear")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be an integer ≥ 1, got {steps!r}")
    if spacing == "linear":
        return [float(v) for v in np.linspace(lo, hi, steps)]
    if spacing == "geometric":
        if lo <= 0 or hi <= 0:
            raise ValueError(f"geometric spacing needs min > 0 and max > 0, got min={lo}, max={hi}")
        return [float(v) for v in np.geomspace(lo, hi, steps)]
    raise ValueError(f"spacing must be linear or geometric, got {spacing!r}")
