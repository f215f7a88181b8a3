"""The one journal protocol, shared by the records (``records.jsonl``) and the judgments (``judgments.jsonl``).

- **Append**: one JSON object per line; a batch is written, flushed and fsynced in one go, so a crash
  loses at most the batch in flight, and costs O(1) per line however long the journal grows.
- **Read**: every line but the last must parse; the last may be torn by a crash and is returned apart,
  unparsed. Any other unreadable line is an error naming its number, and the file is left untouched.
- **Mend**: a torn last line is kept aside, byte for byte, in ``<name>.torn-<time>`` and cut from the
  journal; a last line that is a complete entry and only lacks its newline gets it.
- **Views** (``write_atomic``): written to a temporary file, synced, then renamed over the old one, so
  a reader sees the old file or the new one, never half a file.
- **Faults**: ``DEGRADE_FAULT=<point>:<n>`` makes the n-th pass through a named point kill the process
  (SIGKILL), where the crash tests need an instant no timing could hit: halfway through an append,
  between a view's write and its rename.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from degrade.errors import DegradeError

log = logging.getLogger(__name__)

T = TypeVar("T")
Parse = Callable[[Any], "T | None"]  # a decoded JSON line -> the entry it holds, or None when it holds none


@dataclass(frozen=True)
class Lines(Generic[T]):
    """What a journal holds: its complete entries, and the bytes after its last newline."""

    entries: list[T]
    tail: bytes  # empty unless the last write was torn (or lacked its newline)
    size: int


def encode(entries: Iterable[Any]) -> bytes:
    """``entries`` as journal lines: one UTF-8 JSON object a line, each ended by a newline."""
    return b"".join(json.dumps(e, ensure_ascii=False).encode() + b"\n" for e in entries)


def append(path: Path, payload: bytes, *, fault: str) -> None:
    """Append ``payload`` (whole lines) to the journal at ``path``: written, flushed and fsynced before returning.

    ``fault`` names this append for the crash tests: there a kill leaves half of ``payload`` written.
    """
    with open(path, "ab") as fh:
        if _fault(fault):  # a crash halfway through a write: the torn line a resume must survive
            fh.write(payload[: len(payload) // 2])
            fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())


def read(path: Path, parse: Parse) -> Lines:
    """The entries of the journal at ``path``, each line decoded and given to ``parse``.

    Raises:
        DegradeError: a line before the last holds no entry (naming its number); the file is untouched.
    """
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()
    entries = []
    for number, line in enumerate(lines, start=1):
        entry = parse(_json_or_none(line))
        if entry is None:
            raise DegradeError(
                f"{path}: line {number} is unreadable and is not the last line; nothing was changed: "
                "repair or move that line aside, then run again"
            )
        entries.append(entry)
    return Lines(entries, tail if tail.strip() else b"", len(data))


def tail_entry(lines: Lines, parse: Parse) -> Any | None:
    """The entry in the tail, when the tail is a complete entry that only lacks its newline."""
    return parse(_json_or_none(lines.tail)) if lines.tail.strip() else None


def mend(path: Path, lines: Lines, parse: Parse, *, fault: str) -> Any | None:
    """Make the journal end with a whole line; return the tail's entry when it was complete (it is kept).

    A torn tail is written to a new ``<name>.torn-<time>`` beside the journal, then cut from it.
    """
    if not lines.tail:
        return None
    entry = tail_entry(lines, parse)
    if entry is not None:
        append(path, b"\n", fault=fault)  # a complete entry that only lacked its newline
        return entry
    aside = _new_file(path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}"), lines.tail)
    with open(path, "r+b") as fh:
        fh.truncate(lines.size - len(lines.tail))
        os.fsync(fh.fileno())
    log.warning("%s: the last line was torn by an interruption; kept aside in %s", path, aside.name)
    return None


def write_atomic(path: Path, write: Callable[[Path], Any], *, crash_point: str | None = None) -> None:
    """Write ``path`` through ``write(tmp)``, fsync, and a rename: a reader never sees half a file.

    The one way a journal's views and a job's other files are written. ``crash_point`` names the
    place the crash tests may kill the process, between write and rename.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    if crash_point and _fault(crash_point):
        os.kill(os.getpid(), signal.SIGKILL)
    os.replace(tmp, path)


def _json_or_none(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        return None


def _new_file(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path``, or to ``path-2``, ``path-3``, … when it exists: nothing is written over.

    Raises:
        DegradeError: ten thousand of them already exist.
    """
    for number in range(1, 10_000):
        target = path if number == 1 else path.with_name(f"{path.name}-{number}")
        try:
            with open(target, "xb") as fh:
                fh.write(data)
                os.fsync(fh.fileno())
            return target
        except FileExistsError:
            continue
    raise DegradeError(f"{path}: cannot make a new file to keep a torn journal line in")


_FAULTS: dict[str, int] = {}


def _fault(point: str) -> bool:
    """Fault injection for the crash tests: ``DEGRADE_FAULT=<point>:<n>`` is true at the n-th pass.

    Unset (always, outside the tests) this is one dictionary lookup.
    """
    spec = os.environ.get("DEGRADE_FAULT")
    if not spec or not spec.startswith(point + ":"):
        return False
    _FAULTS[point] = _FAULTS.get(point, 0) + 1
    return _FAULTS[point] == int(spec.split(":", 1)[1])
