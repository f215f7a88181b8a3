"""The ratio table the benchmark prints at the end."""

from __future__ import annotations

from typing import Any

from degrade.benchmark.timing import TARGETS

HEADER = f"{'ratio':20s} {'measured':>9s}  {'target':8s} {'':6s}  {'other CPU':>9s}  {'part':>6s}"


def row(name: str, entry: dict[str, Any]) -> str:
    """One line: the ratio, its target, whether it is met, other processes' CPU share and the part's wall time."""
    if "error" in entry:
        return f"{name:20s} {'FAILED':>9s}  {entry['error']}"
    raw = entry["raw"]
    cpu = f"{raw['foreign_cpu_share']:.0%}" if "foreign_cpu_share" in raw else "?"
    wall = f"{raw['part_wall_s']:.0f} s" if "part_wall_s" in raw else "?"
    verdict = "met" if entry["met"] else "MISSED"
    return f"{name:20s} {entry['ratio']:9.4f}  {entry['target']:8s} {verdict:6s}  {cpu:>9s}  {wall:>6s}"


def format_table(report: dict[str, Any]) -> str:
    """Every ratio of ``report`` (in the order of the targets), then the total wall time."""
    lines = [HEADER, *(row(name, report[name]) for name in TARGETS if name in report)]
    lines.append(f"wall {report['wall_s']:.0f} s ({report['mode']} run)")
    return "\n".join(lines)
