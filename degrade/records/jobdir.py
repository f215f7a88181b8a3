"""The job dir itself: can it be written, and who holds it while a job runs."""

from __future__ import annotations

import fcntl
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from degrade.errors import DegradeError

log = logging.getLogger(__name__)

LOCK = ".degrade.lock"  # names the process writing the dir (the lock itself is on the dir)
_WAYS_ON = "pass another hydra.run.dir / hydra.sweep.dir"


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
