"""Durable records: an append-only journal, and JSON/Parquet views rebuilt from it atomically.

``records.jsonl`` gets every batch's records, flushed and fsynced, so a crash loses at
most the batch in flight. The JSON array (the study's old file name and shape) and
``records.parquet`` are rebuilt from the journal into a temporary file that is then
renamed over the old one, so a reader never sees half a file. The protocol (appends, the
torn last line, atomic views, the crash tests' fault points) is :mod:`degrade.records.journal`,
which the judge's journal follows too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from degrade.errors import DegradeError
from degrade.records import jobdir, journal
from degrade.records.aside import move_aside, unreadable_aside
from degrade.records.contract import record_key, to_table, upgrade
from degrade.records.journal import write_atomic
from degrade.records.jsontext import dumps, finite

log = logging.getLogger(__name__)

JOURNAL = "records.jsonl"
PARQUET = "records.parquet"
METADATA = "metadata.json"


class RecordStore:
    """The records of one job directory."""

    def __init__(self, out_dir: Path, json_name: str, formats: Iterable[str] = ("json", "parquet")) -> None:
        self.out_dir = out_dir
        self.journal = out_dir / JOURNAL
        self.json_path = out_dir / json_name
        self.formats = tuple(formats)
        self.records: list[dict[str, Any]] = []
        self.keys: set[tuple] = set()
        jobdir.check_writable(out_dir)

    def load(self, repair: bool = True) -> int:
        """Read the journal; return how many records it holds.

        A torn last line (a crash mid-write) is moved aside into ``records.jsonl.torn-*`` and cut
        from the journal; any other line that is not a record stops the job and leaves the file
        untouched. A view that cannot be read is kept aside, byte for byte, before it is rebuilt.
        Records of the JSON array or the Parquet file that the journal lacks (an older run, the original
        study's file, a journal deleted or cut short) are added to the journal, so no record a view held
        is lost. With ``repair=False`` (a dry run) nothing on disk changes.
        """
        views = [
            (path, self._readable(path, read, repair))
            for path, read in ((self.json_path, _read_json_array), (self.out_dir / PARQUET, _read_parquet))
        ]
        if self.journal.exists():
            self._read_journal(repair)
        for path, view in views:
            if view:
                self._adopt(path, view, repair)
        return len(self.records)

    def reset(self) -> None:
        """Forget the records read so far (before reading the dir again)."""
        self.records, self.keys = [], set()

    def _read_journal(self, repair: bool) -> None:
        read = read_journal(self.journal)
        for record in read.records:
            self._remember(record)
        if repair:  # a torn last line kept aside and cut; a complete one that only lacked its newline gets it
            kept = journal.mend(self.journal, read, _parse_record, fault="append")
            if kept is not None:
                self._remember(kept)

    def _readable(self, path: Path, read, repair: bool) -> Any:
        """``read(path)``, or None when the view is missing or unreadable (then kept aside, with ``repair``)."""
        if not path.exists():
            return None
        try:
            return read(path)
        except Exception as exc:  # noqa: BLE001 - any failure to parse means the file is unusable
            if repair:
                kept = unreadable_aside(path)
                log.warning(
                    "%s is unreadable (%s); kept aside as %s and rebuilt from the journal",
                    path.name,
                    str(exc).splitlines()[0][:120],
                    kept.name,
                )
            return None

    def _adopt(self, path: Path, view: list[dict[str, Any]], repair: bool) -> None:
        """Take a view's records that the journal lacks (into the journal, with ``repair``)."""
        problem = "lacks the fields that say which prompt and cell it covers; nothing was changed: repair it"
        missing = [r for r in _records(view, f"{path}: record", problem) if not self.has(r)]
        if not missing:
            return
        if repair:
            self.append(missing)
        else:
            for record in missing:
                self._remember(record)
        log.info(
            "%s holds %d records the journal lacked; %s",
            path.name,
            len(missing),
            "added them to the journal" if repair else "they count as done",
        )

    def _remember(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self.keys.add(record_key(record))

    def has(self, record: dict[str, Any]) -> bool:
        return record_key(record) in self.keys

    def has_key(self, key: tuple) -> bool:
        """Whether a record of ``key`` (:func:`degrade.records.contract.key_of`) is held."""
        return key in self.keys

    def append(self, records: list[dict[str, Any]]) -> None:
        """Add a batch's records to the journal, durably.

        They are remembered first: an interruption during the write still leaves them in the
        views rebuilt at exit, and the next load adds any the journal missed.
        """
        records = [finite(r) for r in records]  # a measure that came out inf or nan is null: JSON has neither
        for record in records:
            self._remember(record)
        self._append_bytes(b"".join(dumps(r, ensure_ascii=False).encode() + b"\n" for r in records))

    def _append_bytes(self, payload: bytes) -> None:
        journal.append(self.journal, payload, fault="append")  # "append": where the crash tests tear a write

    def set_aside(self) -> Path | None:
        """Move this job's previous results, and all made from them, into a new ``previous-<time>/`` (force_run)."""
        self.reset()
        return move_aside(self.out_dir, (self.json_path.name, JOURNAL, PARQUET, METADATA))

    def rewrite(self, records: list[dict[str, Any]]) -> None:
        """Replace the journal with ``records`` (the same keys, rescored), atomically."""
        payload = b"".join(dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)
        write_atomic(self.journal, lambda p: p.write_bytes(payload))
        self.reset()
        for record in records:
            self._remember(record)

    def write_views(self) -> None:
        """Rebuild the JSON array and the Parquet file from the records, atomically."""
        if "json" in self.formats:
            write_atomic(
                self.json_path,
                lambda p: p.write_text(dumps(self.records, ensure_ascii=False, indent=1), encoding="utf-8"),
                crash_point="views",
            )
        if "parquet" in self.formats:
            write_atomic(
                self.out_dir / PARQUET, lambda p: pq.write_table(to_table(self.records), p), crash_point="views"
            )


class Journal(journal.Lines):
    """What ``records.jsonl`` holds: its complete records, and what follows the last newline."""

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.entries

    @property
    def tail_record(self) -> dict[str, Any] | None:
        """The record in the tail, when the tail is a complete record that only lacked its newline."""
        return journal.tail_entry(self, _parse_record)


def read_journal(path: Path) -> Journal:
    """Read ``records.jsonl``: the one reader of the journal, for resume and for the report.

    Every line but the last must be a record; the last may be torn by an interruption and is
    returned apart, unparsed, for the caller to keep aside or leave out.

    Raises:
        DegradeError: a line before the last is not a record (naming its number); the file is untouched.
    """
    lines = journal.read(path, _parse_record)
    return Journal(lines.entries, lines.tail, lines.size)


def write_json(path: Path, payload: Any) -> None:
    """``payload`` as indented UTF-8 JSON, atomically (see :func:`write_atomic`)."""
    text = dumps(payload, indent=2, ensure_ascii=False, default=str)
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    return pq.read_table(path).to_pylist()


def _read_json_array(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ValueError("not a JSON array of records")
    return data


def _parse_record(line: Any) -> dict[str, Any] | None:
    """The record on one decoded journal line, or None when the line is not one (torn, not JSON, not a record)."""
    return upgrade(line) if isinstance(line, dict) else None


def _records(items: Iterable[Any], where: str, problem: str) -> list[dict[str, Any]]:
    """Each item as an upgraded record (see :func:`degrade.records.contract.upgrade`).

    Raises:
        DegradeError: ``{where} {n} {problem}`` for the first item that is not a record.
    """
    out = []
    for number, item in enumerate(items, start=1):
        record = upgrade(item) if isinstance(item, dict) else None
        if record is None:
            raise DegradeError(f"{where} {number} {problem}, then run again")
        out.append(record)
    return out
