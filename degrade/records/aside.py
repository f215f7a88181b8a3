"""Earlier results kept aside, never overwritten: ``previous-<time>/`` dirs for force_run and rescoring.

A job dir's records come with files made from them: the judge's judgments (``judgments.*``, see
:mod:`degrade.judge.store`), the report's default ``report/`` dir, the resolved group, the clean answers
the fidelity measure read, and what resume kept aside (a torn journal line, an unreadable view or
metadata). Records set aside take all of these with them: judgments left beside new outputs would rate
answers that are no longer there.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

from degrade.errors import DegradeError

log = logging.getLogger(__name__)

DERIVED = (
    "param_group.json",
    "fidelity_reference.json",
    "judgments.*",
    "report",
    "records.jsonl.torn-*",
    "*.unreadable-*",
)


def previous_dir(out_dir: Path) -> Path:
    """A new, empty ``previous-<time>/`` in ``out_dir``; a second one within the second gets ``-2``, ``-3``, …

    Raises:
        DegradeError: ten thousand of them already exist for this second.
    """
    stem = f"previous-{time.strftime('%Y%m%d-%H%M%S')}"
    for number in range(1, 10_000):
        path = out_dir / (stem if number == 1 else f"{stem}-{number}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise DegradeError(f"{out_dir}: cannot make a new {stem}-* dir to keep the earlier results in")


def move_aside(out_dir: Path, records: Iterable[str]) -> Path | None:
    """Move the files named ``records`` and every file made from them (:data:`DERIVED`) into a new previous dir.

    Returns:
        The dir they went to; None when there was nothing to move.
    """
    existing = sorted({p for pattern in (*records, *DERIVED) for p in out_dir.glob(pattern)})
    if not existing:
        return None
    target = previous_dir(out_dir)
    for path in existing:
        shutil.move(str(path), target / path.name)
    log.info("force_run: the earlier results and the files made from them moved to %s", target)
    return target


def keep_copies(out_dir: Path, names: Iterable[str], why: str) -> Path | None:
    """Copy the files ``names`` (those that exist) into a new previous dir, before they are rewritten.

    Returns:
        The dir they went to; None when none of them exists.
    """
    existing = [out_dir / n for n in names if (out_dir / n).is_file()]
    if not existing:
        return None
    target = previous_dir(out_dir)
    for path in existing:
        shutil.copy2(path, target / path.name)
    log.info("%s: %s as they were kept in %s", why, " and ".join(p.name for p in existing), target)
    return target


def unreadable_aside(path: Path) -> Path:
    """Move a file that cannot be read to ``<name>.unreadable-<time>`` beside it (a new name), and return that."""
    stem = f"{path.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}"
    target, number = path.with_name(stem), 1
    while target.exists():
        number += 1
        target = path.with_name(f"{stem}-{number}")
    path.rename(target)
    return target
