"""Two runs of the same prompts side by side: which answers are identical, and where the others part.

For comparing backends (``model.backend=transformers`` against ``vllm``) or dtypes on greedy decoding:
records are paired by (level, repetition, prompt id, prompt hash); for each level, the share of
identical answers and, for the others, the first token (of the answer, as the tokenizer splits it)
where they differ.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from degrade.errors import DegradeError
from degrade.records.collect import Sources, collect

PAIR = ["level_value", "repeat_index", "prompt_id", "prompt_hash"]


def first_difference(a: list[int], b: list[int]) -> int:
    """The index of the first token where ``a`` and ``b`` differ (the shorter one's length if one extends the other)."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def compare(left: Sources, right: Sources, tokenizer: Any) -> pd.DataFrame:
    """Per level: pairs, identical answers (count and share), and the first differing token of the others.

    Raises:
        DegradeError: the two runs share no (level, repetition, prompt).
    """
    a, b = collect(left), collect(right)
    pairs = a[PAIR + ["output"]].merge(b[PAIR + ["output"]], on=PAIR, suffixes=("_a", "_b"))
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
    for level, group in pairs.groupby("level_value"):
        differ = group.first_diff.dropna().astype(int)
        rows.append(
            {
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
