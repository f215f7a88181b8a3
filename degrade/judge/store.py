"""The judgments of one job dir: a journal (``judgments.jsonl``) and two views rebuilt from it.

The journal follows the records' protocol (:mod:`degrade.records.journal`): every batch of judgments is
appended and synced to disk; a torn last line (a kill mid-write) is kept aside in
``judgments.jsonl.torn-<time>`` and cut; any other unreadable line stops the command, changing nothing.
``judgments.parquet`` (one row per line that counts, the ratings as typed columns ``<rubric>_<field>``)
and ``judgments.json`` are rebuilt atomically. A judgment is identified by (record key, rubric, judge
hash, output hash): a record whose output changed is judged again, and its old rating is never taken
for the new output. When one is written twice (``retry_failed``), the later line counts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from degrade.records import journal
from degrade.records.contract import KEY_FIELDS, record_key

log = logging.getLogger(__name__)

JOURNAL = "judgments.jsonl"
PARQUET = "judgments.parquet"
JSON_VIEW = "judgments.json"
VIEWS = (JSON_VIEW, PARQUET)
# DEGRADE_FAULT points of the crash tests (see degrade.records.journal): an append, a view's rename.
FAULT_APPEND, FAULT_VIEWS = "judgments-append", "judgments-views"


def output_hash(output: Any) -> str:
    """A short hash of the text a judgment rated: the record's ``output`` ("" when it has none, or NaN in a frame)."""
    text = "" if output is None or (isinstance(output, float) and math.isnan(output)) else str(output)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def judgment_key(judgment: dict[str, Any]) -> tuple:
    """(record key, rubric, judge hash, output hash): what is judged once. None for the hash of an older judgment."""
    return (record_key(judgment), judgment["rubric"], judgment["judge_hash"], judgment.get("output_hash"))


def rates(judgment: dict[str, Any], record: dict[str, Any]) -> bool:
    """Whether ``judgment`` rated ``record``'s output as the record holds it now.

    A judgment names the output it rated by its hash. One written before judgments carried it counts
    when it is not older than the record: a record generated after it holds an output it never saw.
    """
    if judgment.get("output_hash") is not None:
        return judgment["output_hash"] == output_hash(record.get("output"))
    judged, made = _when(judgment.get("timestamp")), _when(record.get("timestamp"))
    return judged is not None and made is not None and judged >= made


def _when(stamp: Any) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(stamp))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None  # a naive time cannot be compared with an aware one


def _parse(line: Any) -> dict[str, Any] | None:
    """The judgment on a journal line, or None when the line holds none."""
    try:
        judgment_key(line)
    except (KeyError, TypeError, ValueError):
        return None
    return line


def read_judgments(path: Path, repair: bool = False) -> list[dict[str, Any]]:
    """The judgments of a journal, the later line winning for one key.

    A torn last line is left out (and, with ``repair``, kept aside and cut from the file); a complete last
    judgment that only lacks its newline counts (and, with ``repair``, gets it).

    Raises:
        DegradeError: a line before the last is unreadable (naming its number); the file is untouched.
    """
    if not path.exists():
        return []
    lines = journal.read(path, _parse)
    entries = list(lines.entries)
    if repair:
        last = journal.mend(path, lines, _parse, fault=FAULT_APPEND)
    else:
        last = journal.tail_entry(lines, _parse)
        if lines.tail and last is None:
            log.warning("%s: the last line is torn (an interrupted write); it is left out", path)
    if last is not None:
        entries.append(last)
    return list({judgment_key(j): j for j in entries}.values())


class JudgmentStore:
    """The judgments of one job dir (its journal read, and mended with ``repair``)."""

    def __init__(self, job_dir: Path, *, repair: bool = True) -> None:
        self.dir = job_dir
        self.journal = job_dir / JOURNAL
        self.judgments = {judgment_key(j): j for j in read_judgments(self.journal, repair=repair)}
        self.appended = 0

    def has(self, key: tuple) -> dict[str, Any] | None:
        return self.judgments.get(key)

    def find(self, record: dict[str, Any], rubric: str, judge_hash: str) -> dict[str, Any] | None:
        """The judgment of ``record``'s current output with ``rubric`` and ``judge_hash``, if there is one."""
        key = (record_key(record), rubric, judge_hash)
        found = self.judgments.get((*key, output_hash(record.get("output"))))
        older = self.judgments.get((*key, None))
        return found if found is not None else older if older is not None and rates(older, record) else None

    def append(self, judgments: list[dict[str, Any]]) -> None:
        """Add a batch of judgments to the journal: written, flushed and synced before the next batch."""
        if not judgments:
            return
        for judgment in judgments:
            self.judgments[judgment_key(judgment)] = judgment
        journal.append(self.journal, journal.encode(judgments), fault=FAULT_APPEND)
        self.appended += len(judgments)

    def views_lag(self) -> bool:
        """Whether a view is missing or older than the journal (a kill before the views were rebuilt)."""
        if not self.journal.exists():
            return False
        views = [self.dir / name for name in VIEWS]
        since = self.journal.stat().st_mtime_ns
        return any(not v.exists() or v.stat().st_mtime_ns < since for v in views)

    def write_views(self) -> None:
        """Rebuild ``judgments.json`` and ``judgments.parquet`` from the journal's judgments, atomically."""
        rows = list(self.judgments.values())
        text = json.dumps(rows, ensure_ascii=False, indent=1)
        journal.write_atomic(
            self.dir / JSON_VIEW, lambda p: p.write_text(text, encoding="utf-8"), crash_point=FAULT_VIEWS
        )
        journal.write_atomic(self.dir / PARQUET, lambda p: pq.write_table(to_table(rows), p), crash_point=FAULT_VIEWS)


def flat(judgment: dict[str, Any]) -> dict[str, Any]:
    """One judgment as a flat row: its ratings as ``<rubric>_<field>``, its settings as JSON text."""
    row = {k: v for k, v in judgment.items() if k not in ("ratings", "judge_settings", "raw_previous")}
    row["judge_settings"] = json.dumps(judgment.get("judge_settings"), sort_keys=True)
    row["raw_previous"] = judgment.get("raw_previous") or []
    for name, value in (judgment.get("ratings") or {}).items():
        row[f"{judgment['rubric']}_{name}"] = value
    return row


def field_types(judgments: list[dict[str, Any]]) -> dict[str, str]:
    """``{<rubric>_<field>: type}`` (int, float, bool, choice) from the rubrics in the judgments' settings."""
    types = {}
    for j in judgments:
        for f in j["judge_settings"]["rubric"]["fields"]:
            types[f"{j['rubric']}_{f['name']}"] = f["type"]
    return types


def to_table(judgments: list[dict[str, Any]]) -> pa.Table:
    """Judgments as an Arrow table: fixed columns first, then each rubric field typed by its rubric."""
    rows = [flat(j) for j in judgments]
    types = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "choice": pa.string()}
    fixed = [
        *((k, pa.float64() if k == "level_value" else pa.int64() if k == "repeat_index" else pa.string())
          for k in KEY_FIELDS),
        ("rubric", pa.string()), ("judge_hash", pa.string()), ("output_hash", pa.string()),
        ("judge_backend", pa.string()), ("judge_model", pa.string()), ("judge_settings", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()), ("raw", pa.string()), ("raw_previous", pa.list_(pa.string())),
        ("attempts", pa.int64()), ("transport_retries", pa.int64()), ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()), ("seconds", pa.float64()), ("timestamp", pa.string()),
    ]  # fmt: skip
    ratings = [(name, types[kind]) for name, kind in sorted(field_types(judgments).items())]
    schema = pa.schema(fixed + ratings)
    return pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema)
