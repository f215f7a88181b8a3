"""Which records a rubric judges: the experiments it applies to, a seeded sample per cell, not judged yet.

A cell is one (job dir, level, repetition). ``judge.sample`` below 1 takes that fraction of a
cell's records (rounded up), 1 or more takes that many. Records are ranked by a hash of the seed
and their key, so a larger sample holds every record of a smaller one, and a resumed or repeated
command picks the same records.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from degrade.records.contract import record_key


@dataclass(frozen=True)
class Item:
    """One record to judge."""

    job_dir: str  # relative to the run dir
    record: dict[str, Any]


def applicable(records: pd.DataFrame, rubric: Any) -> pd.DataFrame:
    if rubric.applies_to is None:
        return records
    return records[records["experiment"].isin(list(rubric.applies_to))]


def rank(seed: int, record: dict[str, Any]) -> str:
    return hashlib.sha256(f"{seed}|{record_key(record)!r}".encode()).hexdigest()


def sample_size(sample: float | None, n: int) -> int:
    if sample is None:
        return n
    if sample < 1:
        return min(n, math.ceil(sample * n))
    return min(n, int(sample))


def select(records: pd.DataFrame, rubric: Any, sample: float | None, seed: int) -> list[Item]:
    """The records of ``records`` (from ``records.collect.collect``) that ``rubric`` judges, in a stable order."""
    chosen: list[Item] = []
    frame = applicable(records, rubric)
    for (job, _, _), cell in frame.groupby(["job_dir", "level_value", "repeat_index"], sort=True):
        rows = [_plain(r) for r in cell.to_dict("records")]
        rows.sort(key=lambda r: rank(seed, r))
        chosen += [Item(job, r) for r in rows[: sample_size(sample, len(rows))]]
    return chosen


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A frame row with NaN as None (what the record held)."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
