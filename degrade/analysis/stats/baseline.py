"""A shared clean baseline: the clean records a line without level 0 is measured against.

Every effect size is against the clean model. A sweep whose jobs each start at level 0 carries its own;
the study's ``quant_attn`` (n 1024 → 4) has none, so every d would be unknown. Where the records hold
a clean job of the same model, prompts and decoding — a ``degradation=none`` job, else level 0 of
another job — its level-0 records are that line's level 0, and the statistics name the job that served.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

BASELINE = "baseline"  # the stats column naming the job dir whose clean records a line borrowed (empty: its own)
_DECODING = ("do_sample", "temperature", "top_k", "top_p", "max_new_tokens", "repetition_penalty")
_NEEDED = ("job_dir", "prompt_hash")


def decoding(record: pd.Series) -> dict[str, Any]:
    """The decoding a record was generated with, as far as it says: its ``gen_params``, else its own two fields."""
    params = record.get("gen_params")
    known = dict(params) if isinstance(params, dict) else {}
    for key in ("do_sample", "temperature"):
        if known.get(key) is None and key in record and not _missing(record[key]):
            known[key] = record[key]
    if known.get("do_sample") is False:
        known.pop("temperature", None)  # greedy: the temperature plays no part
    return {k: known[k] for k in _DECODING if not _missing(known.get(k))}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def same_decoding(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two decodings agree on everything both state (a study file states fewer knobs than ours)."""
    if "do_sample" not in a or "do_sample" not in b:
        return False
    return all(a[k] == b[k] for k in a.keys() & b.keys())


def with_baselines(df: pd.DataFrame, line: list[str]) -> pd.DataFrame:
    """``df`` with, for each line (``line`` columns) lacking level 0, a shared clean job's records as its level 0.

    A clean job is a job dir's level-0 records of one method and group; it serves a line of the same
    experiment and model whose decoding agrees (:func:`same_decoding`) and whose prompts it all holds.
    ``degradation=none`` jobs come first, then the others in the order their records come. The borrowed
    records carry the line's own keys, only the line's prompts, and the job dir they came from in
    :data:`BASELINE`; the line's own records have it empty.

    Args:
        df: Records, as :func:`degrade.records.collect.collect` returns them.
        line: The columns that make a line (experiment, model, method, group, settings).

    Returns:
        The records, the borrowed ones appended; unchanged when ``df`` has no job dirs or prompt hashes.
    """
    df = df.assign(**{BASELINE: ""})
    if any(c not in df for c in _NEEDED) or df.empty:
        return df
    clean = df[df["level_value"] == 0]
    if clean.empty:
        return df
    jobs = [
        (job, experiment, model, decoding(part.iloc[0]), part)  # a job has one decoding: its first record's
        for (job, experiment, model, _), part in clean.groupby(
            ["job_dir", "experiment", "model_name", "degradation_method"], sort=False
        )
    ]
    jobs.sort(key=lambda j: j[4]["degradation_method"].iloc[0] != "none")  # stable: none first, then record order
    borrowed = []
    for key, records in df.groupby(line, dropna=False, sort=False):
        if (records["level_value"] == 0).any():
            continue
        named = dict(zip(line, key))
        mine, prompts = decoding(records.iloc[0]), set(records["prompt_hash"])
        for job, experiment, model, theirs, part in jobs:
            if (experiment, model) != (named["experiment"], named["model_name"]) or not same_decoding(mine, theirs):
                continue
            if not prompts <= set(part["prompt_hash"]):
                continue
            served = part[part["prompt_hash"].isin(prompts)]
            borrowed.append(served.assign(**{c: named[c] for c in line}, **{BASELINE: job}))
            break
    return pd.concat([df, *borrowed], ignore_index=True) if borrowed else df
