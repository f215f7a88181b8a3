"""The measures a frame of records holds, as the statistics read them.

Which columns are measures, their labels and which way each declines are the registry's
(:mod:`degrade.scoring.measures`), the one place that says so. Those the report already summarises, the
text measures and the judge's ratings (``judge_<rubric>_<field>`` columns, joined to the records by
:mod:`degrade.judge`) are picked up when present; an absent or all-null column is skipped.
"""

from __future__ import annotations

import pandas as pd

from degrade.scoring.measures import JUDGE_LOWER, JUDGE_PREFIX, MEASURES, Better, Measure, judge_measure

__all__ = ["JUDGE_LOWER", "JUDGE_PREFIX", "MEASURES", "Better", "Measure", "judge_measure", "measures_in", "values"]


def measures_in(df: pd.DataFrame) -> list[Measure]:
    """The declared measures (then the judge's ratings) that ``df`` holds as numbers with a value."""
    declared = [m for m in MEASURES if m.column in df]
    judged = [judge_measure(c) for c in df.columns if str(c).startswith(JUDGE_PREFIX)]
    return [m for m in (*declared, *judged) if _numeric(df[m.column]).notna().any()]


def values(df: pd.DataFrame, measure: Measure) -> pd.Series:
    """The column of ``measure`` as floats (booleans as 0/1); non-numeric values become null."""
    return _numeric(df[measure.column])


def _numeric(column: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return column.astype("float64")
    if column.dtype == object and column.map(lambda v: v is None or isinstance(v, (bool, int, float))).all():
        return pd.to_numeric(column, errors="coerce").astype("float64")
    return pd.Series(float("nan"), index=column.index)  # text columns (a judge's model name) are no measure
