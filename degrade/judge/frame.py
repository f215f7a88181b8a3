"""Judgments joined to their records, for the report; and how far the judge agrees with the rules.

:func:`judgments_frame` reads every record under a dir (:func:`degrade.records.collect.collect`) and adds,
for each rubric judged there, its fields as typed numeric columns ``judge_<rubric>_<field>``
(integers and booleans as ``Int64``, booleans as 0/1; numbers as ``Float64``; choices as strings)
and ``judge_<rubric>_status`` (``ok``, ``failed``, or missing where the record was not judged).
:func:`agreement` is Cohen's kappa of the judge's ``answer_correct`` against the rule-based
``correct``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from degrade.judge import jobs
from degrade.judge.store import JOURNAL, field_types, rates, read_judgments
from degrade.records.collect import Sources, collect, sources
from degrade.records.contract import KEY_FIELDS

log = logging.getLogger(__name__)

_DTYPES = {"int": "Int64", "bool": "Int64", "float": "Float64", "choice": "string"}


def read_all(root: Path, *, relative: bool = True) -> pd.DataFrame:
    """Every judgment under ``root`` (one row per record, rubric and judge hash), with ``job_dir``.

    ``job_dir`` is relative to ``root`` (``relative``), else the path as given, as
    :func:`degrade.records.collect.collect` names the jobs of one dir or of several paths; the judgments kept
    beside a result file (:func:`degrade.judge.jobs.home`) name the file. ``root`` may be a result file: its
    judgments are read from beside it.
    """
    root = Path(root)
    if root.is_file():
        path = jobs.home(root) / JOURNAL
        return pd.DataFrame([{**j, "job_dir": root.as_posix()} for j in read_judgments(path)])
    rows = []
    for path in sorted(root.rglob(JOURNAL)):
        if any(part.startswith("previous-") for part in path.parent.relative_to(root).parts):
            continue
        job = jobs.rated_file(path.parent) or path.parent
        name = (job.relative_to(root) if relative else job).as_posix()
        rows += [{**j, "job_dir": name} for j in read_judgments(path)]
    return pd.DataFrame(rows)


def judgments_frame(root: Path | str) -> pd.DataFrame:
    """The records under ``root`` with one column per rubric field judged, ``judge_<rubric>_<field>``."""
    return add_judgments(collect(Path(root)), Path(root))


def add_judgments(records: pd.DataFrame, root: Sources) -> pd.DataFrame:
    """``records`` (as ``records.collect.collect`` read them from ``root``) with the judgments under ``root``.

    ``root`` is what was collected: one dir or result file, or several paths (each searched, files included).

    Where a rubric was judged with several settings (another judge model, an edited rubric), the
    most recent judge hash is used, and a warning names the others. A judgment is joined only to the
    output it rated (:func:`degrade.judge.store.rates`): a record whose output changed since shows none.
    """
    paths = sources(root)
    relative = len(paths) == 1 and paths[0].is_dir()  # as collect names job dirs
    found = [read_all(p, relative=relative) for p in paths]
    judgments = pd.concat(found, ignore_index=True) if found else pd.DataFrame()
    if judgments.empty:
        return records
    keys = ["job_dir", *KEY_FIELDS]
    for rubric, group in judgments.groupby("rubric", sort=True):
        hashes = group.sort_values("timestamp").drop_duplicates("judge_hash", keep="last")["judge_hash"].tolist()
        if len(hashes) > 1:
            log.warning(
                "rubric %s was judged with %d settings; the report uses the latest, %s", rubric, len(hashes), hashes[-1]
            )
        judged = group[group["judge_hash"] == hashes[-1]]
        types = field_types(judged.to_dict("records"))  # every field a column, even where no output is rated now
        latest = _of_current_outputs(judged, records, keys)
        wide = latest[keys].copy()
        wide[f"judge_{rubric}_status"] = latest["status"].astype("string")
        for column, kind in types.items():
            name = column.removeprefix(f"{rubric}_")
            values = [r.get(name) for r in latest["ratings"]]
            wide[f"judge_{column}"] = pd.array(
                [None if v is None else (int(v) if kind == "bool" else v) for v in values], dtype=_DTYPES[kind]
            )
        records = records.merge(wide, on=keys, how="left")
    return records


def _of_current_outputs(judgments: pd.DataFrame, records: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The judgments that rated their record's output as it is now, the latest one for a record."""
    outputs = records[[*keys, "output", "timestamp"]].rename(columns={"timestamp": "record_timestamp"})
    both = judgments.merge(outputs, on=keys, how="inner")
    if both.empty:
        return judgments.iloc[0:0]
    hashes = both["output_hash"] if "output_hash" in both else pd.Series([None] * len(both), index=both.index)
    rated = [
        rates({"output_hash": None if pd.isna(h) else h, "timestamp": t}, {"output": o, "timestamp": rt})
        for h, t, o, rt in zip(hashes, both["timestamp"], both["output"], both["record_timestamp"])
    ]
    kept = both[rated].sort_values("timestamp").drop_duplicates(keys, keep="last")
    return kept.drop(columns=["output", "record_timestamp"])


def cohen_kappa(a: list[int], b: list[int]) -> dict[str, Any]:
    """Cohen's kappa of two raters' labels: observed and chance agreement, and kappa (None when chance is 1)."""
    n = len(a)
    if not n:
        return {"n": 0, "kappa": None, "observed": None, "expected": None}
    labels = sorted(set(a) | set(b))
    observed = sum(x == y for x, y in zip(a, b)) / n
    expected = sum((a.count(c) / n) * (b.count(c) / n) for c in labels)
    kappa = None if expected == 1 else (observed - expected) / (1 - expected)
    return {"n": n, "kappa": kappa, "observed": observed, "expected": expected}


def agreement(df: pd.DataFrame, rubric: str = "reasoning", field: str = "answer_correct") -> dict[str, Any]:
    """Cohen's kappa of the judge's answer-correct against the rule-based ``correct``, overall and by level.

    Args:
        df: :func:`judgments_frame` of a run with IQ records judged with the ``reasoning`` rubric.
        rubric: The rubric, and ``field`` its 0/1 field, compared with ``correct``.

    Returns:
        ``n`` (records with both), ``kappa``, ``observed`` and ``expected`` agreement, ``judge_yes`` and
        ``rule_yes`` (how many each called correct), ``failed`` (judged records without a usable
        answer), and ``by_level``: ``{level: {n, kappa, observed, expected}}``.
    """
    column, status = f"judge_{rubric}_{field}", f"judge_{rubric}_status"
    if column not in df or "correct" not in df:
        return {"n": 0, "kappa": None, "observed": None, "expected": None, "by_level": {}}
    failed = int(((df.get(status) == "failed") & df["correct"].notna()).sum()) if status in df else 0
    both = df[df["correct"].notna() & df[column].notna()]
    judge, rule = both[column].astype(int).tolist(), both["correct"].astype(int).tolist()
    out = cohen_kappa(judge, rule) | {"judge_yes": sum(judge), "rule_yes": sum(rule), "failed": failed}
    out["by_level"] = {
        float(level): cohen_kappa(g[column].astype(int).tolist(), g["correct"].astype(int).tolist())
        for level, g in both.groupby("level_value", sort=True)
    }
    return out


def log_agreement(root: Path, rubric: Any) -> dict[str, Any] | None:
    """After judging with a rubric that has ``answer_correct``: log its kappa against ``correct``."""
    if "answer_correct" not in {f.name for f in rubric.fields}:
        return None
    result = agreement(judgments_frame(root), rubric.name)
    if not result["n"]:
        log.info("agreement: no record has both a usable judgment and a rule-based `correct`")
        return result
    kappa = "undefined (one label only)" if result["kappa"] is None else f"{result['kappa']:.2f}"
    log.info(
        "agreement with the rule-based `correct` on %d records: Cohen's kappa %s, observed %.0f%% (chance %.0f%%); "
        "judge says correct %d, rules %d; %d judgments failed",
        result["n"], kappa, 100 * result["observed"], 100 * result["expected"], result["judge_yes"],
        result["rule_yes"], result["failed"],
    )  # fmt: skip
    return result
