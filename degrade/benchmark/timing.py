"""Shared measuring helpers: wall time, the CPU other processes took meanwhile, targets and results."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from statistics import median
from typing import Any

# Each ratio's target: (comparison, value).
TARGETS: dict[str, tuple[str, float]] = {
    "generate_efficiency": (">=", 0.95),
    "restore_vs_copy": (">=", 0.8),
    "cell_overhead_share": ("<=", 0.05),
    "multirun_speedup": (">=", 1.5),
    "resume_skip_share": ("<=", 0.05),
    # the study-shaped sweep in at most half the wall time of the transformers backend
    "vllm_speedup": (">=", 2.0),
    # a measured choice, not a goal: bf16's speed beside how far it moves the clean model (its raw figures)
    "bf16_speed": (">=", 1.0),
}


def meets(name: str, ratio: float) -> bool:
    """Whether ``ratio`` meets the target of the ratio called ``name``."""
    op, value = TARGETS[name]
    return ratio >= value if op == ">=" else ratio <= value


def result(name: str, ratio: float, raw: dict[str, Any]) -> dict[str, Any]:
    """One ratio's entry of the report: the ratio, its target, whether it is met, and the raw figures."""
    op, value = TARGETS[name]
    return {"ratio": round(ratio, 4), "target": f"{op} {value}", "met": meets(name, ratio), "raw": raw}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of ``fn()`` and what it returned."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def rounded(values: Sequence[float], digits: int = 4) -> list[float]:
    return [round(v, digits) for v in values]


def median_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """median(numerator) ÷ median(denominator): the summary of interleaved paired timings."""
    return median(numerator) / median(denominator)


def busy_s() -> float:
    """CPU seconds all processes on the machine have used since boot (idle and iowait excluded)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def own_s() -> float:
    """CPU seconds of this process and the children it has waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@contextmanager
def foreign_cpu(raw: dict[str, Any]) -> Iterator[None]:
    """Record in ``raw`` how much CPU other processes took while the block ran (0 on a quiet machine).

    The whole machine's busy time from ``/proc/stat`` less this process tree's own, as seconds and as
    a share of every core over the block's wall time.
    """
    start, busy, own = time.perf_counter(), busy_s(), own_s()
    try:
        yield
    finally:
        wall = time.perf_counter() - start
        foreign = max(0.0, (busy_s() - busy) - (own_s() - own))
        raw["foreign_cpu_s"] = round(foreign, 2)
        raw["foreign_cpu_share"] = round(foreign / (wall * (os.cpu_count() or 1)), 3)
