"""What a job leaves in its dir besides results: its log and Hydra's record of its config.

Both are held back until the job starts writing into its dir (the runner's ``on_start``), so
a refused run, a dry run and a run that fails before it starts leave no file behind, and an
existing job dir they point at stays byte for byte as it was. Until then the log is kept in
memory; once the job starts it is written out and every later line goes straight to the file.
"""

from __future__ import annotations

import logging
import os
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from degrade.records.store import write_atomic

HYDRA_DIR = ".hydra"
# The first directory of the output path that the current command creates (set when Hydra's
# run starts, inherited by a sweep's job processes): only what this command created is removed.
CREATED_DIR_ENV = "DEGRADE_CREATED_DIR"


class JobLogHandler(logging.FileHandler):
    """The job's log file, opened only once the job starts (see :func:`start_job_log`).

    Named in ``conf/hydra/job_logging/degrade.yaml`` in place of ``logging.FileHandler``.
    """

    def __init__(self, filename: str, mode: str = "a", encoding: str | None = "utf-8") -> None:
        super().__init__(filename, mode=mode, encoding=encoding, delay=True)
        self.pending: list[logging.LogRecord] | None = []  # None once the job has started

    def emit(self, record: logging.LogRecord) -> None:
        if self.pending is None:
            super().emit(record)
        else:
            self.format(record)  # fixes the message and traceback text now, as the file would have had them
            self.pending.append(record)

    def divert(self, path: Path) -> None:
        """Write to ``path`` instead of the job dir (a job that never started keeps its log elsewhere)."""
        if self.pending is not None:
            self.baseFilename = os.path.abspath(path)

    def start(self) -> None:
        """Write what was held back; from now on write through."""
        pending, self.pending = self.pending or [], None
        for record in pending:
            super().emit(record)
        self.flush()

    def close(self) -> None:
        self.pending = [] if self.pending is not None else None  # a job that never started leaves no log
        super().close()


def _handlers() -> list[JobLogHandler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, JobLogHandler)]


def start_job_log() -> list[Path]:
    """Open the job's log file(s) and write what was held back; return their paths."""
    started = []
    for handler in _handlers():
        handler.start()
        started.append(Path(handler.baseFilename))
    return started


def log_traceback(exc: BaseException) -> Path | None:
    """Write ``exc``'s traceback to the started job log only (not the console); return the log's path.

    Returns None when no job log has started: then there is no file to hold it.
    """
    handlers = [h for h in _handlers() if h.pending is None]
    if not handlers:
        return None
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    record = logging.LogRecord("degrade", logging.ERROR, __file__, 0, "%s", (text,), None)
    for handler in handlers:
        handler.handle(record)
    return Path(handlers[0].baseFilename)


@dataclass
class JobFiles:
    """A job's log and ``.hydra/`` files, written by :meth:`start` or not at all.

    Args:
        out_dir: the job dir.
        hydra_files: file name → text for ``.hydra/`` (``config.yaml``, ``hydra.yaml``, ``overrides.yaml``).
        sweep_job: the job is one of a sweep, in a dir Hydra named for it: left empty, it is removed
            even when the sweep dir existed before (a re-run of the sweep).
        fallback_log: where the log of a job that crashes before it starts is kept (for a sweep's job,
            a file in the sweep dir), so its traceback is not lost; None: on the console.
    """

    out_dir: Path
    hydra_files: dict[str, str] = field(default_factory=dict)
    sweep_job: bool = False
    fallback_log: Path | None = None
    started: bool = False

    def start(self) -> None:
        """The job writes into its dir from now on: save Hydra's files and open the log."""
        if self.started:
            return
        self.started = True
        hydra_dir = self.out_dir / HYDRA_DIR
        hydra_dir.mkdir(parents=True, exist_ok=True)
        for name, text in self.hydra_files.items():
            write_atomic(hydra_dir / name, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
        start_job_log()

    def keep_log(self) -> Path | None:
        """Make sure the job's log is written somewhere (after a crash); return where, or None for nowhere.

        A started job has its log in its dir. One that crashed before it started must leave its dir as
        it was, so its log goes to ``fallback_log``, if any.
        """
        if not self.started and self.fallback_log is not None:
            self.fallback_log.parent.mkdir(parents=True, exist_ok=True)
            for handler in _handlers():
                handler.divert(self.fallback_log)
        paths = start_job_log() if self.started or self.fallback_log is not None else []
        return paths[0] if paths else None

    def finish(self) -> None:
        """After the job: a job that never started drops its held-back log and the dirs this command made for it."""
        if self.started:
            return
        for handler in _handlers():
            if handler.pending is not None:
                handler.pending = []
        if not remove_created_dirs(self.out_dir) and self.sweep_job:
            try:
                self.out_dir.rmdir()
            except OSError:  # it holds something (or is the sweep dir itself): keep it
                pass


def remove_created_dirs(out_dir: Path) -> list[Path]:
    """Remove ``out_dir`` and its parents while empty, up to the first dir this command created.

    Hydra creates a job's dir before the job can refuse; a dir that existed before the command
    (named by ``DEGRADE_CREATED_DIR``) is never removed, nor is a dir that holds anything.
    """
    created = os.environ.get(CREATED_DIR_ENV)
    if not created:
        return []
    top, path, removed = Path(created).absolute(), out_dir.absolute(), []
    if path != top and top not in path.parents:
        return []
    while True:
        try:
            path.rmdir()
        except OSError:  # not empty (or already gone): stop here
            break
        removed.append(path)
        if path == top:
            break
        path = path.parent
    return removed
