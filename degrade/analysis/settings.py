"""Jobs whose record-shaping settings differ: told apart by a short label, never pooled into one line.

Records of one (experiment, model, method, group) normally share one settings hash. Where a sweep ran
them with other settings (another decoding, another seed), the report keeps them apart and names what
differs, read from each job's ``metadata.json`` (:func:`degrade.records.collect.read_settings`).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from degrade.records.collect import SETTINGS

LINE = ["experiment", "model_name", "degradation_method", "param_group_name", SETTINGS]


def with_settings(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a ``settings_hash`` column, None (not NaN) where a record has none."""
    # Records without a settings hash (older ones, or a frame built by hand) form one null group.
    hashes = df[SETTINGS] if SETTINGS in df else pd.Series(None, index=df.index, dtype=object)
    return df.assign(**{SETTINGS: hashes.astype(object).where(hashes.notna(), None)})


def settings_key(settings_hash: Any) -> Any:
    """A settings hash as a dict key: None for a missing one."""
    return None if pd.isna(settings_hash) else settings_hash  # grouping turns a None key into NaN


def settings_label(labels: dict[Any, str], settings_hash: Any) -> str:
    """The label of a job's settings where they differ from another's; empty where nothing is split."""
    return labels.get(settings_key(settings_hash), "")


def _flat(settings: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value if isinstance(value, str) else json.dumps(value)
    return out


def split_settings(df: pd.DataFrame, settings: dict[str, dict] | None = None) -> tuple[dict[Any, str], str]:
    """Tell apart the settings of records that would otherwise pool into one line.

    Args:
        df: Records, as :func:`collect` returns them.
        settings: ``{settings_hash: settings}``, as :func:`read_settings` returns them.

    Returns:
        A short label per settings hash (null for older records) of every (experiment, model,
        method, group) holding more than one, naming the settings that differ; and one line
        naming them with their values. Both empty when nothing is split.
    """
    hashes = with_settings(df)[SETTINGS]
    split = hashes.groupby([df[c] for c in LINE[:-1]], dropna=False).transform(lambda s: s.nunique(dropna=False) > 1)
    ordered = list(dict.fromkeys(hashes[split.astype(bool)]))
    if not ordered:
        return {}, ""
    flat = {h: _flat(settings[h]) for h in ordered if settings and h in settings}
    keys = sorted({k for f in flat.values() for k in f if len({g.get(k, "?") for g in flat.values()}) > 1})
    labels = {
        h: ", ".join(f"{k}={flat[h].get(k, '?')}" for k in keys) if h in flat and keys else f"settings {h or 'unknown'}"
        for h in ordered
    }
    parts = [f"{k} " + " / ".join(dict.fromkeys(f.get(k, "?") for f in flat.values())) for k in keys]
    if len(flat) < len(ordered) or not keys:  # some jobs' settings are unknown: name their hashes
        parts.append(f"{SETTINGS} " + " / ".join(h or "none (older records)" for h in ordered))
    return labels, "; ".join(parts)
