"""The measures the statistics read, and which way each one declines: the one place that says so.

A measure is a numeric record column. Those the report already summarises, the text measures of
the ``[nlp]`` extra and the judge's ratings (``judge_<rubric>_<field>`` columns, joined to the
records by :mod:`degrade.judge`) are picked up when present; an absent or all-null column is
skipped. A new measure is one line here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

Better = Literal["higher", "lower", "either"]


@dataclass(frozen=True)
class Measure:
    """A record column the statistics summarise.

    Attributes:
        column: the record column.
        label: its name in tables and plots.
        better: ``"higher"`` (it falls as the model breaks), ``"lower"`` (it rises: repetition,
            perplexity) or ``"either"`` (no good direction: the Spearman test is two-sided and the
            normalised curve is not inverted).
        per_level: one value per level, shared by every record of it (perplexity of a reference
            text): its repetitions are no samples, so it has no spread and no effect size.
    """

    column: str
    label: str
    better: Better = "higher"
    per_level: bool = False


MEASURES: tuple[Measure, ...] = (
    Measure("correct", "accuracy"),
    Measure("info_units", "information units"),
    Measure("mattr", "MATTR"),
    Measure("repetition_rate", "repetition rate", better="lower"),
    Measure("perplexity", "perplexity", better="lower", per_level=True),
    Measure("tokens_out", "tokens out", better="either"),
    # The [nlp] extra's text measures (docs/records.md).
    Measure("loop_truncated", "loop truncated", better="lower"),
    Measure("type_lemma_ratio", "type-lemma ratio"),
    Measure("lexical_density", "lexical density"),
    Measure("zipf_frequency", "Zipf frequency", better="either"),
    Measure("n_sentences", "sentences", better="either"),
    Measure("mean_sentence_length", "mean sentence length", better="either"),
)
JUDGE_PREFIX = "judge_"  # judge_<rubric>_<field>: a rating, higher is better unless listed below
JUDGE_LOWER = ("derailment", "tangentiality")  # the discourse rubric's fields, where more is worse


def judge_measure(column: str) -> Measure:
    """The measure of a judge rating column ``judge_<rubric>_<field>``."""
    better: Better = "lower" if column.endswith(JUDGE_LOWER) else "higher"
    return Measure(column, column.removeprefix(JUDGE_PREFIX).replace("_", " "), better=better)


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
