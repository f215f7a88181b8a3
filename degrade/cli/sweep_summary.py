"""One job of the command line, whatever happens to it, and the status of a sweep.

A job's failure is its own: :func:`run_guarded` turns a user error, a runtime error or an
interruption into an :class:`Outcome` with one line to say, so a sweep can go on to its next
job. Each job of a sweep reports its status in a file of its own under the sweep dir
(``.sweep/<job number>.json``), tagged with the run id the sweep's parent process chose: the
jobs may run in other processes (joblib) or on other machines (SLURM), and the parent's
summary at the end reads what they wrote. A job that never got to write a result still
reports, so it is counted too.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from degrade.cli.joblog import JobFiles, log_traceback
from degrade.errors import DegradeError, one_line
from degrade.job import interrupt
from degrade.records.store import write_json
from degrade.units import hms

log = logging.getLogger(__name__)

RUN_ID_ENV = "DEGRADE_SWEEP_RUN"  # set by the sweep's parent process, inherited by every job process
STATUS_DIR = ".sweep"
# Set by a dry run's parent process: its jobs report there, outside the sweep dir, which a dry run leaves as it was.
STATUS_DIR_ENV = "DEGRADE_SWEEP_STATUS_DIR"
SUMMARY = "sweep_status.json"
FINISHED = ("done", "dry_run")  # a job that ended in any other status failed


@dataclass
class Outcome:
    """How one job ended: ``status`` (done, dry_run, failed, interrupted), its one-line ``error``, its exit code."""

    status: str
    error: str | None = None
    exit_code: int = 0
    plan: dict | None = None


def run_guarded(job: Callable[[], Any], files: JobFiles) -> Outcome:
    """Run ``job`` (a callable returning the runner's ``JobSummary``) and say how it ended, in one line.

    A user error (:class:`DegradeError`) is its message; a runtime error is one line on the
    console with its traceback in the job's log (on the console only when the job never
    started its log); Ctrl-C is one line. Whatever happens, ``files`` is finished: a job that
    never started writing leaves no log and no dir behind.
    """
    interrupt.install()  # Ctrl-C and SIGTERM are recorded, and acted on at the job's next safe point
    try:
        interrupt.check()  # a stop asked for before this job (the previous one of a sweep) stops it before it starts
        summary = job()
    except DegradeError as exc:
        log.error("%s", exc)
        return Outcome("failed", str(exc), exc.exit_code)
    except KeyboardInterrupt as exc:
        how = "stopped by SIGTERM" if getattr(exc, "signum", None) == signal.SIGTERM else "interrupted"
        line = f"{how}: every finished batch is kept in {files.out_dir}; run the same command to continue"
        log.error("%s", line)
        return Outcome("interrupted", line, getattr(exc, "exit_code", 130))
    except Exception as exc:  # noqa: BLE001 - any other failure is this job's, not the sweep's
        line = one_line(exc)
        where = files.keep_log()
        if where is not None:
            log.error("%s (traceback in %s)", line, where)
            log_traceback(exc)
        else:  # no file holds this job's log, so the console is the only place the traceback can go
            log.error("%s", line, exc_info=exc)
        return Outcome("failed", line, 1)
    finally:
        files.finish()
    if summary.plan is not None:
        log.info("dry run: nothing generated, no file written")
        return Outcome("dry_run", plan=summary.plan)
    log.info(
        "done: %d records (%d generated, %d already there) in %.1f s → %s",
        summary.records,
        summary.generated,
        summary.skipped,
        summary.seconds,
        summary.out_dir,
    )
    return Outcome("done")


@dataclass
class JobStatus:
    """What one job of a sweep reported: its number, its overrides and how it ended (or ``running``)."""

    run: str
    num: int
    overrides: list[str]
    status: str = "running"
    error: str | None = None
    out_dir: str | None = None
    plan: dict | None = None
    time: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))


def new_run_id() -> str:
    """An id for one invocation of a sweep (a re-run of the same sweep gets another)."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def status_dir(sweep_dir: Path) -> Path:
    """Where the jobs of this run report: ``.sweep/`` in the sweep dir, or a dry run's own dir outside it."""
    elsewhere = os.environ.get(STATUS_DIR_ENV)
    return Path(elsewhere) if elsewhere else sweep_dir / STATUS_DIR


def crash_log(sweep_dir: Path, num: int) -> Path:
    """Where the log of job ``num`` goes when it crashes before it starts writing into its own dir."""
    return status_dir(sweep_dir) / f"{num}.log"


def write_status(sweep_dir: Path, status: JobStatus) -> None:
    """Record ``status`` as the job's current one (one file per job: no two processes share a file)."""
    status_dir(sweep_dir).mkdir(parents=True, exist_ok=True)
    write_json(status_dir(sweep_dir) / f"{status.num}.json", asdict(status))


def report(sweep_dir: Path, num: int, overrides: list[str], out_dir: Path, outcome: Outcome | None = None) -> None:
    """Report a job's status to the sweep started by this command (``running`` when ``outcome`` is None).

    Does nothing outside a sweep's run (no run id in the environment).
    """
    run = os.environ.get(RUN_ID_ENV)
    if not run:
        return
    status = JobStatus(run, num, list(overrides), out_dir=str(out_dir))
    if outcome is not None:
        status.status, status.error = outcome.status, outcome.error
        status.plan = {k: outcome.plan.get(k) for k in ("generations", "estimated_seconds")} if outcome.plan else None
    write_status(sweep_dir, status)


def read_statuses(sweep_dir: Path, run: str) -> list[JobStatus]:
    """The statuses the jobs of run ``run`` reported, by job number (reports of earlier runs are left out)."""
    found = []
    for path in status_dir(sweep_dir).glob("*.json"):
        try:
            entry = JobStatus(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):  # a file from another version, or half a copy: not this run's
            continue
        if entry.run == run:
            found.append(entry)
    return sorted(found, key=lambda s: s.num)


def distinct_overrides(statuses: list[JobStatus]) -> dict[int, str]:
    """Each job's overrides without those every job shares: what tells the jobs apart."""
    common = set.intersection(*(set(s.overrides) for s in statuses)) if len(statuses) > 1 else set()
    return {s.num: " ".join(o for o in s.overrides if o not in common) or " ".join(s.overrides) for s in statuses}


def summary_line(statuses: list[JobStatus]) -> str:
    """One line for the whole sweep: ``3 jobs: 2 done, 1 failed: #1 degradation.levels=[5] (…)``."""
    names = {"dry_run": "dry runs", "running": "ended without a status"}
    counts = Counter(s.status for s in statuses)
    order = ["done", "dry_run", "failed", "interrupted", "running"]
    parts = [f"{counts[k]} {names.get(k, k)}" for k in sorted(counts, key=lambda k: (order + [k]).index(k))]
    line = f"{len(statuses)} job{'s' if len(statuses) != 1 else ''}: {', '.join(parts)}"
    bad = [s for s in statuses if s.status not in FINISHED]
    if bad:
        labels = distinct_overrides(statuses)
        line += ": " + "; ".join(f"#{s.num} {labels[s.num]} ({s.error or s.status})" for s in bad)
    return line


def dry_run_total(statuses: list[JobStatus]) -> str | None:
    """The sweep's total generations and estimated time over its dry runs, or None when none was a dry run."""
    plans = [s.plan for s in statuses if s.status == "dry_run" and s.plan]
    if not plans:
        return None
    generations = sum(int(p.get("generations") or 0) for p in plans)
    seconds = sum(float(p.get("estimated_seconds") or 0) for p in plans)
    return (
        f"dry run of the sweep: {len(plans)} job{'s' if len(plans) != 1 else ''}, {generations} generations, "
        f"estimated {hms(seconds)} one job after another"
    )


def closing_lines(statuses: list[JobStatus]) -> tuple[list[str], bool]:
    """The sweep's closing lines (a dry run's total, then the summary) and whether every job ended well."""
    lines = [line for line in (dry_run_total(statuses), summary_line(statuses)) if line]
    return lines, all(s.status in FINISHED for s in statuses)


def is_dry_run(statuses: list[JobStatus]) -> bool:
    """Every job of the run was a dry run that went through."""
    return bool(statuses) and all(s.status == "dry_run" for s in statuses)


def write_summary(sweep_dir: Path, run: str, statuses: list[JobStatus], lines: list[str]) -> None:
    """Keep the sweep's outcome in ``sweep_status.json``: its summary and every job's status."""
    ok = all(s.status in FINISHED for s in statuses)
    write_json(sweep_dir / SUMMARY, {"run": run, "ok": ok, "summary": lines, "jobs": [asdict(s) for s in statuses]})


def forget(sweep_dir: Path, statuses: list[JobStatus]) -> None:
    """Remove the status files of ``statuses`` (a dry run leaves no trace); a dry run's own status dir goes whole."""
    where = status_dir(sweep_dir)
    for status in statuses:
        (where / f"{status.num}.json").unlink(missing_ok=True)
    try:
        where.rmdir()
    except OSError:  # other files are there (an earlier run's, a crashed job's log): keep them
        pass
