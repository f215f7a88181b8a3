"""The dirs a judge writes in: refused in one line before the first call when their judgments could not be kept.

A job's judgments are kept in its job dir, beside its records. A result file of the original study
(``outputs_*.json``, given as ``run=`` or found in a dir) is only read: its judgments are kept beside
it, in ``<file name without .json>.judgments/`` (:func:`home`), and the file is never written.

A call is paid for; its judgment must land in the journal. So before the first call every dir the judge
will write in is checked: it must be writable, and not held by another process — a job running there,
or another judge — which the judge learns by taking the same kernel lock a job takes
(:func:`degrade.records.jobdir.locked`), held until it ends.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path

from degrade.errors import ConfigError, DegradeError
from degrade.judge.store import JOURNAL, JudgmentStore
from degrade.records import jobdir
from degrade.records.store import JOURNAL as RECORDS

SUFFIX = ".judgments"  # the dir beside a result file that keeps its judgments


def home(job: Path) -> Path:
    """Where the judgments of the records read from ``job`` are kept: a job dir itself; beside a result file."""
    return job if job.is_dir() else job.with_name(job.stem + SUFFIX)


def rated_file(judgments: Path) -> Path | None:
    """The result file whose judgments ``judgments`` (a dir) keeps, None for a job dir."""
    if not judgments.name.endswith(SUFFIX):
        return None
    file = judgments.with_name(judgments.name.removesuffix(SUFFIX) + ".json")
    return file if file.is_file() else None


def refuse_a_file_of_a_job(root: Path) -> None:
    """``run=`` may name a result file (a JSON array of records), not a file of a job dir or of another kind.

    Raises:
        ConfigError: ``run`` names a journal, a file inside a job dir (its judgments belong in the dir), or a
            file that is no ``.json``.
    """
    if not root.is_file():
        return
    if (root.parent / RECORDS).exists():
        raise ConfigError("run", f"{root} is a file of the job dir {root.parent}; give the dir (judgments go in it)")
    if root.suffix != ".json":
        raise ConfigError(
            "run", f"{root} is a file that is no .json result file; give a job, run or sweep dir, or a result file"
        )


def place(root: Path, job: str) -> Path:
    """The job dir or result file that ``collect(root)`` named ``job``."""
    return root / job if root.is_dir() else Path(job)


def peek(root: Path, jobs: Iterable[str]) -> dict[str, JudgmentStore]:
    """The judgments of each job as they are on disk; nothing is written (a torn last line is left out)."""
    return {job: JudgmentStore(home(place(root, job)), repair=False) for job in jobs}


def hold(root: Path, jobs: Iterable[str], held: ExitStack) -> dict[str, JudgmentStore]:
    """Take the judgments' dir of each job for this process until ``held`` closes, then read them, mending the journal.

    Raises:
        DegradeError: a dir is not writable, or another process holds it; nothing was written.
    """
    dirs = {job: home(place(root, job)) for job in jobs}
    for path in dirs.values():
        _check_writable(path)
    for path in dirs.values():
        try:
            held.enter_context(jobdir.locked(path))
        except DegradeError:
            raise DegradeError(
                f"run: {path} is being written by another process ({_holder(path)}): a job or another judge; "
                "wait for it to end, then run this again"
            ) from None
    for path in dirs.values():
        jobdir.claim(path)
    return {job: JudgmentStore(path) for job, path in dirs.items()}


def _check_writable(path: Path) -> None:
    journal = path / JOURNAL
    try:
        jobdir.try_write(path)
        if journal.exists():
            open(journal, "ab").close()  # appending nothing: can the journal itself be appended to?
    except OSError as exc:
        raise DegradeError(
            f"run: {path} is not writable ({exc.strerror}): the judgments are written beside the records; "
            "make it writable, or judge a copy of it"
        ) from None


def _holder(path: Path) -> str:
    try:
        return (path / jobdir.LOCK).read_text(encoding="utf-8").strip() or "unnamed"
    except OSError:
        return "unnamed"
