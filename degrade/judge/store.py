"""The judgments of one job dir: a journal (``judgments.jsonl``) and two views rebuilt from it.

Like the records: every batch of judgments is appended and synced to disk; a torn last line
(a kill mid-write) is moved aside into ``judgments.jsonl.torn-<time>`` and cut; any other
unreadable line stops the command, changing nothing. ``judgments.parquet`` (one row per line
that counts, the ratings as typed columns ``<rubric>_<field>``) and ``judgments.json`` are
rebuilt atomically. A judgment is identified by (record key, rubric, judge hash); when one is
written twice (``retry_failed``), the later line counts.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from degrade.errors import DegradeError
from degrade.records.contract import KEY_FIELDS, record_key
from degrade.records.store import write_atomic

log = logging.getLogger(__name__)

JOURNAL = "judgments.jsonl"
PARQUET = "judgments.parquet"
JSON_VIEW = "judgments.json"


def judgment_key(judgment: dict[str, Any]) -> tuple:
    """(record key, rubric, judge hash): what is judged once."""
    return (record_key(judgment), judgment["rubric"], judgment["judge_hash"])


def read_judgments(path: Path, repair: bool = False) -> list[dict[str, Any]]:
    """The judgments of a journal, the later line winning for one key.

    A torn last line is left out (and, with ``repair``, moved aside and cut from the file).

    Raises:
        DegradeError: a line before the last is unreadable (naming its number); the file is untouched.
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()
    latest: dict[tuple, dict[str, Any]] = {}
    for number, line in enumerate(lines, start=1):
        try:
            judgment = json.loads(line)
            latest[judgment_key(judgment)] = judgment
        except (ValueError, KeyError, TypeError):
            raise DegradeError(
                f"{path}: line {number} is unreadable and is not the last line; nothing was changed: "
                "repair or move that line aside, then run again"
            ) from None
    if tail.strip():
        if repair:
            aside = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}")
            aside.write_bytes(tail)
            with open(path, "r+b") as fh:
                fh.truncate(len(data) - len(tail))
                os.fsync(fh.fileno())
            log.warning("%s: a torn last line (an interrupted write) was moved to %s", path, aside.name)
        else:
            log.warning("%s: the last line is torn (an interrupted write); it is left out", path)
    return list(latest.values())


class JudgmentStore:
    """The judgments of one job dir."""

    def __init__(self, job_dir: Path) -> None:
        self.dir = job_dir
        self.journal = job_dir / JOURNAL
        self.judgments = {judgment_key(j): j for j in read_judgments(self.journal, repair=True)}
        self.appended = 0

    def has(self, key: tuple) -> dict[str, Any] | None:
        return self.judgments.get(key)

    def append(self, judgments: list[dict[str, Any]]) -> None:
        """Add a batch of judgments to the journal: written, flushed and synced before the next batch."""
        if not judgments:
            return
        for judgment in judgments:
            self.judgments[judgment_key(judgment)] = judgment
        payload = b"".join(json.dumps(j, ensure_ascii=False).encode() + b"\n" for j in judgments)
        with open(self.journal, "ab") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        self.appended += len(judgments)

    def write_views(self) -> None:
        """Rebuild ``judgments.json`` and ``judgments.parquet`` from the journal's judgments, atomically."""
        rows = list(self.judgments.values())
        text = json.dumps(rows, ensure_ascii=False, indent=1)
        write_atomic(self.dir / JSON_VIEW, lambda p: p.write_text(text, encoding="utf-8"))
        write_atomic(self.dir / PARQUET, lambda p: pq.write_table(to_table(rows), p))


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
        ("rubric", pa.string()), ("judge_hash", pa.string()), ("judge_backend", pa.string()),
        ("judge_model", pa.string()), ("judge_settings", pa.string()), ("status", pa.string()),
        ("error", pa.string()), ("raw", pa.string()), ("raw_previous", pa.list_(pa.string())),
        ("attempts", pa.int64()), ("transport_retries", pa.int64()), ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()), ("seconds", pa.float64()), ("timestamp", pa.string()),
    ]  # fmt: skip
    ratings = [(name, types[kind]) for name, kind in sorted(field_types(judgments).items())]
    schema = pa.schema(fixed + ratings)
    return pa.Table.from_pylist([{k: r.get(k) for k in schema.names} for r in rows], schema=schema)
