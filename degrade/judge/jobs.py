"""The job dirs a judge writes in: refused in one line before the first call when their judgments could not be kept.

A call is paid for; its judgment must land in the journal. So before the first call every job dir
the judge will write in is checked: it must be a dir (``run=`` names a file: refused), writable, and
not held by another process — a job running there, or another judge — which the judge learns by
taking the same kernel lock a job takes (:func:`degrade.records.jobdir.locked`), held until it ends.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path

from degrade.errors import ConfigError, DegradeError
from degrade.judge.store import JOURNAL, JudgmentStore
from degrade.records import jobdir


def refuse_a_file(root: Path) -> None:
    """``run=`` must name a dir: the judgments are written beside the records, in each job dir.

    Raises:
        ConfigError: ``run`` names a file.
    """
    if root.is_file():
        raise ConfigError(
            "run", f"{root} is a file; give a job, run or sweep dir (the judgments are written in each job dir)"
        )


def peek(root: Path, jobs: Iterable[str]) -> dict[str, JudgmentStore]:
    """The judgments of each job dir as they are on disk; nothing is written (a torn last line is left out)."""
    return {job: JudgmentStore(root / job, repair=False) for job in jobs}


def hold(root: Path, jobs: Iterable[str], held: ExitStack) -> dict[str, JudgmentStore]:
    """Take each job dir for this process until ``held`` closes, then read its judgments, mending the journal.

    Raises:
        DegradeError: a dir is not writable, or another process holds it; nothing was written.
    """
    dirs = {job: root / job for job in jobs}
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
