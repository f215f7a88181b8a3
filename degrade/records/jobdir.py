"""The job dir itself: can it be written, is it a job's, and who holds it while a job runs."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from degrade.errors import DegradeError
from degrade.records.contract import upgrade

log = logging.getLogger(__name__)

LOCK = ".degrade.lock"  # names the process writing the dir (the lock itself is on the dir)
_WAYS_ON = "pass another hydra.run.dir / hydra.sweep.dir"
_OURS = ("status", "start_time", "config_hash")  # what every job's metadata.json has held


def check_output_dir(path: Path) -> None:
    """Fail with one line when ``path`` cannot be created or written (before Hydra tries).

    Raises:
        DegradeError: naming the dir and what is in the way.
    """
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DegradeError(f"output dir {path}: {existing} is a file, not a directory; {_WAYS_ON}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DegradeError(f"output dir {path}: {existing} is not writable; {_WAYS_ON}")


def check_writable(out_dir: Path) -> None:
    """Create ``out_dir`` if needed and prove a file can be written in it (then removed).

    Raises:
        DegradeError: naming the dir and the system's reason.
    """
    try:
        try_write(out_dir)
    except OSError as exc:
        raise DegradeError(f"output dir {out_dir}: not writable ({exc.strerror}); {_WAYS_ON}") from None


def try_write(path: Path) -> None:
    """Create ``path`` if needed and write (then remove) a file in it.

    Raises:
        OSError: what the system said.
    """
    path.mkdir(parents=True, exist_ok=True)
    probe = path / f".write-test-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()


def cannot_write(path: Path) -> str | None:
    """Why ``path`` cannot be created and written, in the system's words; None when it can.

    The dir is made for real, with a probe file (a read-only file system or a dir only the kernel
    refuses passes a permission check), and what was made for the probe is removed again.
    """
    path = path.absolute()
    missing = [p for p in (path, *path.parents) if not p.exists()]
    try:
        try_write(path)
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        for made in missing:  # deepest first
            try:
                made.rmdir()
            except OSError:
                break
    return None


@contextmanager
def locked(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir`` for this process while the block runs.

    Two jobs appending to one journal would write every record twice, so a second job on a dir
    that is held stops with one line. The lock is the kernel's (``flock`` on the dir itself, so
    taking it writes nothing): a job that dies, even by SIGKILL, releases it, and no stale lock
    is ever left behind. :func:`claim` names the holder for that line.

    Raises:
        DegradeError: another process holds the dir.
    """
    fd = os.open(out_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = out_dir / LOCK
            who = holder.read_text(encoding="utf-8").strip() if holder.exists() else "another process"
            raise DegradeError(
                f"{out_dir}: another job is writing here ({who}); wait for it to end, or {_WAYS_ON}"
            ) from None
        except OSError as exc:  # a filesystem without locks: go on, unguarded
            log.warning("%s: cannot lock the job dir (%s); do not run two jobs on it at once", out_dir, exc.strerror)
        yield
    finally:
        os.close(fd)  # releases the lock


def claim(out_dir: Path) -> None:
    """Name this process as the dir's writer (read by a second job that finds the dir held)."""
    (out_dir / LOCK).write_text(f"pid {os.getpid()} on {socket.gethostname()}\n", encoding="utf-8")


def _metadata(out_dir: Path) -> tuple[bool, Any]:
    """Whether ``out_dir`` holds a ``metadata.json``, and its content (None when it is not JSON)."""
    path = out_dir / "metadata.json"
    if not path.is_file():
        return False, None
    try:
        return True, json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True, None


def refuse_foreign(out_dir: Path, view: Path, job: dict[str, str]) -> Path | None:
    """Refuse a dir holding files a job would write over that no degrade job wrote; return a view to copy first.

    A job writes ``metadata.json``, ``param_group.json`` and its JSON view (``outputs_<method>_<model>_<suffix>.json``,
    the original study's file name). In a dir no job wrote (no job's ``metadata.json``), a file of those names is
    the user's: it would be replaced. A JSON view there whose records are all of this job's experiment, model,
    method and group is the study's own file for this configuration: it seeds the journal (documented), and is
    rewritten, so its path is returned for a copy to be kept first. A ``metadata.json`` that is not a JSON object
    beside a journal is the job's own, damaged: resume keeps it aside.

    Args:
        out_dir: the job dir.
        view: the job's JSON view.
        job: the job's experiment, model_name, degradation_method and param_group_name (record fields).

    Raises:
        DegradeError: naming the file and why it is not the job's; nothing is changed.
    """
    present, meta = _metadata(out_dir)
    ours = isinstance(meta, dict) and all(k in meta for k in _OURS)
    if ours:
        return None
    if present and (isinstance(meta, dict) or not (out_dir / "records.jsonl").exists()):
        _refuse(out_dir / "metadata.json", _not_a_job(meta))
    # beside a journal it is the job's own, its metadata lost: resume checks the records' settings instead
    if (out_dir / "param_group.json").exists() and not (out_dir / "records.jsonl").exists():
        _refuse(out_dir / "param_group.json", "no job's metadata.json is beside it")
    if not view.is_file():
        return None
    try:
        records = json.loads(view.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None  # unreadable: resume keeps it aside, byte for byte, and never writes over it
    upgraded = [upgrade(r) if isinstance(r, dict) else None for r in records] if isinstance(records, list) else []
    other = next((r for r in upgraded if r is not None and any(r.get(k) != v for k, v in job.items())), None)
    if other is not None:
        theirs = ", ".join(f"{k} {other.get(k)!r}" for k, v in job.items() if other.get(k) != v)
        _refuse(view, f"holds records of another job ({theirs}) that no degrade job in this dir wrote")
    return view


def _not_a_job(meta: Any) -> str:
    if isinstance(meta, dict):
        return f"it lacks the {', '.join(_OURS)} every job writes"
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return f"it holds {names[type(meta)]}, not an object" if type(meta) in names else "it is not JSON"


def _refuse(path: Path, why: str) -> None:
    raise DegradeError(f"{path} was not written by a degrade job ({why}): nothing was changed; {_WAYS_ON}")
