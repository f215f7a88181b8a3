"""JSON that every reader takes: no ``NaN`` or ``Infinity``, which Python writes by default and JSON does not have.

``json.dumps`` writes a float ``inf`` as ``Infinity`` and ``nan`` as ``NaN``; ``jq``, JavaScript,
DuckDB's strict mode and most other readers reject the file. The settings that could put one
there are refused by the config checks; a value a job measures can still be one (the perplexity
of a model damaged past use is infinite), and a record written by an earlier version may hold
one. Such a value is written as ``null``: the one way JSON says "no number". Every file a job
writes as JSON goes through :func:`dumps`.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite(value: Any) -> Any:
    """``value`` with every non-finite float, in any dict or list inside it, replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps(value, **kwargs)`` that never writes ``NaN`` or ``Infinity`` (written as ``null``).

    The value is only walked when it holds such a number, so the usual case costs nothing more.
    """
    try:
        return json.dumps(value, allow_nan=False, **kwargs)
    except ValueError:  # a non-finite float somewhere in it
        return json.dumps(finite(value), allow_nan=False, **kwargs)
