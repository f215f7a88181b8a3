"""A cell that cannot run does not block the job: it is recorded as failed, and the job goes on.

Some cells cannot run at all: at a level that makes the logits non-finite (``mult_gauss`` at σ =
1e308, ``bit_flip`` at p = 0.5) sampling fails in every batch. Stopping the job there would stop it
there on every rerun, and the levels after it would never run. So a cell's own failure is logged
in one line, with its traceback in the job's log, kept in ``metadata.json`` (``failed_cells``), and
the next cell runs; the job then ends ``failed``, saying which cells failed, with exit code 1, as a
sweep does with a failed job. The failed cells have no records (those of batches finished before
the failure stay), so the same command runs them again.

What would fail every cell the same way is the job's failure, not a cell's, and stops it at once:
a user error (:class:`DegradeError`), a file that cannot be written (:class:`OSError`), memory
running out, an interruption.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from degrade.errors import DegradeError, one_line

log = logging.getLogger(__name__)
tracebacks = logging.getLogger("degrade.tracebacks")  # the job's log file only (conf/hydra/job_logging)

_THE_JOBS = (DegradeError, OSError, MemoryError)  # not one cell's: they stop the job


class CellsFailed(DegradeError):
    """Some cells of the job failed; the others ran. Exit code 1, as for a failed job of a sweep."""

    exit_code = 1


class CellFailures:
    """Runs the cells of a job one by one, keeping the failure of each that fails (for the metadata)."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.failed: list[dict[str, Any]] = []
        self.ran = 0

    def attempt(self, label: str, cell: Any, run: Callable[[], None]) -> None:
        """Run one cell (``run``); if it fails on its own, log it and remember it with its level and repetition.

        Args:
            label: how the progress lines name the cell (``cell 2/3``).
            cell: the cell (its ``level`` and ``repeat``).
            run: runs the cell.

        Raises:
            The job's own failures (see the module docstring) and interruptions, unchanged.
        """
        self.ran += 1
        try:
            run()
        except _THE_JOBS:
            raise
        except Exception as exc:  # noqa: BLE001 - a cell's failure is recorded and the job goes on
            line, name = one_line(exc), f"{label}  {self.method}={cell.level:g} rep {cell.repeat}"
            log.error("%s failed: %s; the job goes on with the next cell", name, line)
            tracebacks.error("%s failed", name, exc_info=exc)
            self.failed.append({"level": cell.level, "repeat": cell.repeat, "error": line})

    def metadata(self) -> dict[str, Any]:
        """What goes into ``metadata.json``: ``failed_cells``, when a cell failed."""
        return {"failed_cells": self.failed} if self.failed else {}

    def raise_if_any(self) -> None:
        """End the job as failed when a cell failed, naming the cells (the first few) and their errors.

        Raises:
            CellsFailed: one line, exit code 1.
        """
        if not self.failed:
            return
        shown = "; ".join(f"level {f['level']:g} rep {f['repeat']}: {f['error']}" for f in self.failed[:3])
        more = f"; and {len(self.failed) - 3} more" if len(self.failed) > 3 else ""
        raise CellsFailed(
            f"{len(self.failed)} of {self.ran} cells failed ({shown}{more}); every other cell's records are "
            "written, and the same command runs the failed cells again"
        )
