"""Two runs of the same prompts side by side: which answers are identical, and where the others part.

For comparing backends (``model.backend=transformers`` against ``vllm``) or dtypes on greedy decoding:
records are paired by their key (experiment, model, method, group, level, repetition, prompt id and
hash), so the jobs of two sweeps pair job with job; where one side holds several jobs of one key
(a sweep over the decoding), by their settings hash too. For each method, group and level, the share
of identical answers and, for the others, the first token (of the answer, as the tokenizer splits it)
where they differ.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from degrade.errors import DegradeError
from degrade.records.collect import SETTINGS, Sources, collect
from degrade.records.contract import KEY_FIELDS

PAIR = list(KEY_FIELDS)


def first_difference(a: list[int], b: list[int]) -> int:
    """The index of the first token where ``a`` and ``b`` differ (the shorter one's length if one extends the other)."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def compare(left: Sources, right: Sources, tokenizer: Any) -> pd.DataFrame:
    """Per level: pairs, identical answers (count and share), and the first differing token of the others.

    Raises:
        DegradeError: the two runs share no (level, repetition, prompt).
    """
    a, b = collect(left), collect(right)
    on = _pairing(a, b)
    pairs = a[on + ["output"]].merge(b[on + ["output"]], on=on, suffixes=("_a", "_b"))
    if pairs.empty:
        raise DegradeError("the two runs share no (level, repetition, prompt): compare runs of the same prompts")
    pairs["identical"] = pairs.output_a == pairs.output_b

    def tokens(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False)

    pairs["first_diff"] = [
        None if same else first_difference(tokens(x), tokens(y))
        for same, x, y in zip(pairs.identical, pairs.output_a, pairs.output_b)
    ]
    rows = []
    for (method, param_group, level), group in pairs.groupby(["degradation_method", "param_group_name", "level_value"]):
        differ = group.first_diff.dropna().astype(int)
        rows.append(
            {
                "method": method,
                "param_group": param_group,
                "level": level,
                "pairs": len(group),
                "identical": int(group.identical.sum()),
                "identical_share": round(group.identical.mean(), 3),
                "first_diff_median": float(differ.median()) if len(differ) else None,
                "first_diff_min": int(differ.min()) if len(differ) else None,
                "first_diffs": sorted(differ.tolist()),
            }
        )
    return pd.DataFrame(rows)


def _pairing(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    """The columns that pair a record of ``a`` with one of ``b``: the record key, and the settings hash if need be.

    Raises:
        DegradeError: a side holds one key in several jobs whose settings the other side does not share.
    """
    if not (a.duplicated(PAIR).any() or b.duplicated(PAIR).any()):
        return PAIR
    on = [*PAIR, SETTINGS]
    if set(a[SETTINGS].dropna()) & set(b[SETTINGS].dropna()) and not (a.duplicated(on).any() or b.duplicated(on).any()):
        return on
    raise DegradeError(
        "a run holds the same prompts, levels and method in several jobs of other settings, which the other run "
        "does not share: compare one job with one job, or two runs of the same settings"
    )
