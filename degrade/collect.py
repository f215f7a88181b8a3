"""Every record under a run or sweep dir, and the settings its jobs ran with.

A job dir is any dir holding ``records.jsonl`` (the source, read through
:func:`degrade.store.read_journal`) or, without one, ``records.parquet``. Dirs whose job
left no record (a failed, refused or dry run) are skipped; ``previous-*`` dirs (results
that ``force_run`` superseded) are not jobs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from degrade.errors import DegradeError
from degrade.records import KEY_FIELDS, to_table
from degrade.store import JOURNAL, METADATA, PARQUET, read_journal

log = logging.getLogger(__name__)

SETTINGS = "settings_hash"  # records of one job share it; older records lack it (null: one group)


def _job_dirs(root: Path) -> list[Path]:
    found = {p.parent for name in (PARQUET, JOURNAL) for p in root.rglob(name)}
    return sorted(d for d in found if _is_job(d, root))


def _is_job(path: Path, root: Path) -> bool:
    # previous-*/ holds results that force_run superseded.
    if any(part.startswith("previous-") for part in path.relative_to(root).parts):
        return False
    if (path / JOURNAL).exists():
        return True
    try:  # a report written by an older version named its parquet records.parquet; it carries job_dir
        return "job_dir" not in pq.read_schema(path / PARQUET).names
    except (pa.ArrowException, OSError):
        return True  # an unreadable view: _read_job says so


def _read_job(job: Path) -> list[dict[str, Any]]:
    journal, parquet = job / JOURNAL, job / PARQUET
    if journal.exists():  # the source; the parquet is a view of it
        read = read_journal(journal)
        if read.tail and read.tail_record is None:
            log.warning("%s: the last line is torn (an interrupted write); it is left out", journal)
        return read.records + ([read.tail_record] if read.tail_record is not None else [])
    try:
        return pq.read_table(parquet).to_pylist()
    except (pa.ArrowException, OSError) as exc:
        raise DegradeError(
            f"{parquet}: unreadable ({str(exc).splitlines()[0][:120]}) and no {JOURNAL} beside it to rebuild from"
        ) from None


def _frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    # Through the pinned schema, so every job concatenates with the same dtypes; older records get nulls.
    frame = to_table(records).to_pandas()
    if SETTINGS not in frame:  # a record contract without the field still lets records carry it
        frame[SETTINGS] = pd.Series([r.get(SETTINGS) for r in records], dtype=object)
    return frame


def collect(root: Path) -> pd.DataFrame:
    """Every record under ``root``, with a ``job_dir`` column relative to it.

    Dirs whose job left no record (failed, refused or dry runs) are skipped.

    Args:
        root: A job dir, or a run or sweep dir with job dirs anywhere below it.

    Returns:
        The records of all jobs, in job-dir order.

    Raises:
        DegradeError: ``root`` is not a directory or holds no records, or a journal line
            before the last is unreadable.
    """
    root = Path(root)
    if not root.is_dir():
        raise DegradeError(f"{root}: no such directory")
    frames = []
    for job in _job_dirs(root):
        records = _read_job(job)
        if not records:
            log.debug("%s: no records; skipped", job)
            continue
        log.info("%s: %d records", job, len(records))
        frames.append(_frame(records).assign(job_dir=job.relative_to(root).as_posix()))
    if not frames:
        raise DegradeError(f"{root}: no records found (looked for {PARQUET} or {JOURNAL} in it and below it)")
    records = pd.concat(frames, ignore_index=True)
    duplicates = int(records.duplicated([*KEY_FIELDS, SETTINGS]).sum())
    if duplicates:
        log.warning("%d records share their key with a record of another job dir; the summary counts both", duplicates)
    return records


def read_settings(root: Path, records: pd.DataFrame) -> dict[str, dict]:
    """The record-shaping settings of each settings hash, from the ``metadata.json`` of its job dirs.

    Args:
        root: The dir :func:`collect` read.
        records: Its records, with ``job_dir``.

    Returns:
        ``{settings_hash: settings}`` for the jobs whose metadata holds a ``settings`` dict.
    """
    known: dict[str, dict] = {}
    for job, hashes in records.groupby("job_dir")[SETTINGS]:
        try:
            meta = json.loads((Path(root) / job / METADATA).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.debug("%s: no readable %s; its settings are unknown", job, METADATA)
            continue
        settings = meta.get("settings") if isinstance(meta, dict) else None
        if isinstance(settings, dict):
            mine = [meta[SETTINGS]] if meta.get(SETTINGS) else hashes.dropna().unique()
            known.update({h: settings for h in mine})
    return known
