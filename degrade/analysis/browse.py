"""The report as one page: ``report/index.html``, the summary and an outputs browser, opened from disk.

The page is a static template (``templates/index.html``: HTML, CSS and plain JavaScript, no build
step, no library) and a JSON payload written into it. Outputs are untrusted text (a damaged model
writes anything, ``<script>`` included), so the payload is escaped for a ``<script>`` element
(every ``<``, ``>`` and ``&`` as a JSON ``\\u`` escape: no byte sequence in it can close the element)
and the page puts text on screen only through ``textContent``. Its Content-Security-Policy forbids
every request (no network, no file beside it): figures are embedded as ``data:`` URIs.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from degrade.methods import level_axis

PAGE = "index.html"
# Columns with few distinct values are sent once as a list and referred to by index.
CODED = ("job", "experiment", "model_name", "degradation_method", "param_group_name", "prompt_id", "category",
         "finish_reason")  # fmt: skip
MEASURES = ("tokens_out", "mattr", "repetition_rate", "info_units", "perplexity")
# Decoding settings that make two outputs comparable word by word when no clean level shares their job.
_DECODING = ("experiment", "model_name", "prompt_id", "repeat_index", "temperature", "do_sample")


def first_difference(output: str, clean: str) -> int:
    """The index of the first whitespace-separated word of ``output`` that differs from ``clean``; -1 if none."""
    words, reference = output.split(), clean.split()
    for i, (a, b) in enumerate(zip(words, reference)):
        if a != b:
            return i
    return -1 if len(words) == len(reference) else min(len(words), len(reference))


def _clean_outputs(df: pd.DataFrame) -> pd.Series:
    """Each record's clean reference: level 0 of its own job, else of any job with the same prompt and decoding."""
    clean = df[df["level_value"] == 0]
    own = clean.drop_duplicates(["job_dir", "prompt_id", "repeat_index"]).set_index(
        ["job_dir", "prompt_id", "repeat_index"]
    )["output"]
    decoding = [c for c in _DECODING if c in df]  # records always hold them; a frame built by hand may not
    shared = clean.drop_duplicates(decoding).set_index(decoding)["output"]
    by_job = pd.Series(list(zip(df["job_dir"], df["prompt_id"], df["repeat_index"])), index=df.index).map(own)
    by_decoding = pd.Series(list(zip(*(df[c] for c in decoding))), index=df.index).map(shared)
    return by_job.where(by_job.notna(), by_decoding)


def _column(values: pd.Series) -> list[Any]:
    """JSON-ready values: NaN and NA as null, numpy scalars as Python numbers."""
    out = []
    for v in values.tolist():
        if v is None or (isinstance(v, float) and not math.isfinite(v)) or v is pd.NA:
            out.append(None)
        elif isinstance(v, bool):
            out.append(int(v))
        else:
            out.append(v)
    return out


def payload(df: pd.DataFrame) -> dict[str, Any]:
    """The records as columns for the page: coded columns as (values, codes), outputs, levels, measures."""
    df = df.reset_index(drop=True).assign(
        job=df["job_dir"].astype(str).to_numpy(),
        category=df["prompt_category"].astype(object).to_numpy() if "prompt_category" in df else None,
        finish_reason=df["finish_reason"].astype(object).to_numpy() if "finish_reason" in df else None,
    )
    out: dict[str, Any] = {"n": len(df), "coded": {}, "columns": {}}
    for name in CODED:
        codes, uniques = pd.factorize(df[name].astype(object).where(df[name].notna(), None), use_na_sentinel=True)
        out["coded"][name] = {"values": [str(u) for u in uniques], "codes": codes.tolist()}
    clean = _clean_outputs(df)
    outputs = df["output"].fillna("").astype(str)
    out["columns"] = {
        "output": outputs.tolist(),
        "level": _column(df["level_value"].astype(float)),
        "repeat": _column(df["repeat_index"]),
        "correct": _column(df["correct"]) if "correct" in df else [None] * len(df),
        "diff": [None if not isinstance(c, str) else first_difference(o, c) for o, c in zip(outputs, clean)],
    }
    first = df.drop_duplicates(["experiment", "prompt_id"])
    out["prompts"] = {
        f"{e}\u0000{i}": str(text) for e, i, text in zip(first["experiment"], first["prompt_id"], first["prompt_text"])
    }
    judged = sorted(c for c in df.columns if c.startswith("judge_") and pd.api.types.is_numeric_dtype(df[c]))
    out["measures"] = {m: _column(df[m].astype(float)) for m in (*MEASURES, *judged) if m in df and df[m].notna().any()}
    return out


def script_json(data: Any) -> str:
    """``data`` as JSON safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` left unescaped."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _figure(path: Path) -> dict[str, str]:
    return {"name": path.stem, "src": "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()}


def missing_baselines(df: pd.DataFrame) -> list[str]:
    """A warning per job with no clean level 0: its outputs are marked against another job's, or not at all."""
    clean = df.groupby("job_dir")["level_value"].agg(lambda levels: bool((levels == 0).any()))
    return [f"{job}: no clean level 0 in this job" for job, has in clean.items() if not has]


def write_page(
    df: pd.DataFrame,
    out_dir: Path,
    *,
    summary: pd.DataFrame,
    stats_md: str | None,
    settings: dict[str, dict],
    warnings: Sequence[str],
    figures: Sequence[Path],
) -> Path:
    """Write ``out_dir/index.html``: the summary (tables, figures, settings, warnings) and the outputs browser.

    Args:
        df: Every record, as the report collected them (with ``job_dir``).
        out_dir: The report dir.
        summary: The summary table (one row per method, group and level).
        stats_md: The statistics page (``stats.md``), when written: shown as its tables.
        settings: ``{settings_hash: settings}`` of the jobs read.
        warnings: Lines the reader must see first (differing settings, missing baselines).
        figures: The PNGs to embed.

    Returns:
        The page's path.
    """
    data = {
        "records": payload(df),
        "summary": json.loads(summary.to_json(orient="split", index=False)),
        "stats_md": stats_md,
        "settings": settings,
        "warnings": list(warnings),
        "figures": [_figure(p) for p in figures],
        "methods": {
            m: {"reversed": not level_axis(m).damage_grows_with_level} for m in df["degradation_method"].unique()
        },
    }
    template = resources.files("degrade.analysis").joinpath("templates", PAGE).read_text(encoding="utf-8")
    page = template.replace("/*PAYLOAD*/null", script_json(data), 1)
    path = Path(out_dir) / PAGE
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
