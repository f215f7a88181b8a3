"""Every record under run or sweep dirs and in result files, and the settings its jobs ran with.

A job dir is any dir holding ``records.jsonl`` (the source, read through
:func:`degrade.records.store.read_journal`) or, without one, ``records.parquet``. Dirs whose job
left no record (a failed, refused or dry run) are skipped; ``previous-*`` dirs (results
that ``force_run`` superseded) are not jobs. A file given directly is read as one job: a JSON
array of records (our ``outputs_*.json`` view, or the original study's file, mapped to the
contract by :func:`degrade.records.contract.upgrade`; the file is only read) or a journal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from degrade.errors import DegradeError
from degrade.records import legacy
from degrade.records.contract import KEY_FIELDS, to_table, upgrade
from degrade.records.store import JOURNAL, METADATA, PARQUET, read_journal
from degrade.scoring import measures, textmeasures

log = logging.getLogger(__name__)

SETTINGS = "settings_hash"  # records of one job share it; older records lack it (null: one group)
Sources = Union[Path, str, Sequence[Union[Path, str]]]  # a dir or file, or several
FILE_SUFFIXES = (".json", ".jsonl")
STUDY_FILES = "outputs_*.json"  # the study's result files (and our JSON view, which a job dir holds with its journal)


def sources(root: Sources) -> list[Path]:
    """``root`` as a list of paths (one dir or file, or several)."""
    return [Path(root)] if isinstance(root, (str, Path)) else [Path(r) for r in root]


def report_dir(root: Sources) -> Path:
    """Where a report goes by default: ``report/`` in the first dir given, else beside the first file."""
    paths = sources(root)
    first_dir = next((p for p in paths if p.is_dir()), None)
    return first_dir / "report" if first_dir is not None else paths[0].parent / "report"


def _base(paths: list[Path]) -> Path:
    """What ``job_dir`` is relative to: the one dir given, else the current dir (paths as given)."""
    return paths[0] if len(paths) == 1 and paths[0].is_dir() else Path()


def _read_file(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON array or a journal given by name; the file is only read."""
    if path.suffix == ".jsonl":
        return _read_job(path.parent, journal=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: arrays nested thousands deep
        raise DegradeError(f"{path}: unreadable ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(data, list):
        raise DegradeError(f"{path}: not a JSON array of records")
    records = [upgrade(r) if isinstance(r, dict) else None for r in data]
    bad = next((n for n, r in enumerate(records, start=1) if r is None), None)
    if bad is not None:
        raise DegradeError(f"{path}: record {bad} does not say which prompt, level and repetition it covers")
    silent = next((n for n, r in enumerate(records, start=1) if not isinstance(r.get("output"), str)), None)
    if silent is not None:
        raise DegradeError(f"{path}: record {silent} has no output text")
    return records


def _job_dirs(root: Path) -> list[Path]:
    found = {p.parent for name in (PARQUET, JOURNAL) for p in root.rglob(name)}
    return sorted(d for d in found if _is_job(d, root))


def _result_files(root: Path, jobs: list[Path]) -> list[Path]:
    """The ``outputs_*.json`` files under ``root`` outside any job dir: the study's, read like files given by name."""
    inside = set(jobs)
    return sorted(
        p
        for p in root.rglob(STUDY_FILES)
        if p.is_file()
        and p.parent not in inside
        and not any(part.startswith("previous-") for part in p.relative_to(root).parts)
    )


def _is_job(path: Path, root: Path) -> bool:
    # previous-*/ holds results that force_run superseded.
    if any(part.startswith("previous-") for part in path.relative_to(root).parts):
        return False
    if (path / JOURNAL).exists():
        return True
    try:  # a report written by an older version named its parquet records.parquet; it carries job_dir
        return "job_dir" not in pq.read_schema(path / PARQUET).names
    except (pa.ArrowException, OSError):
        return True  # an unreadable view: _read_job says so


def _read_job(job: Path, journal: Path | None = None) -> list[dict[str, Any]]:
    journal, parquet = journal or job / JOURNAL, job / PARQUET
    if journal.exists():  # the source; the parquet is a view of it
        read = read_journal(journal)
        if read.tail and read.tail_record is None:
            log.warning("%s: the last line is torn (an interrupted write); it is left out", journal)
        return read.records + ([read.tail_record] if read.tail_record is not None else [])
    try:
        return pq.read_table(parquet).to_pylist()
    except (pa.ArrowException, OSError) as exc:
        raise DegradeError(
            f"{parquet}: unreadable ({str(exc).splitlines()[0][:120]}) and no {JOURNAL} beside it to rebuild from"
        ) from None


def _frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    # Through the pinned schema, so every job concatenates with the same dtypes; older records get nulls.
    frame = to_table(records).to_pandas()
    if SETTINGS not in frame:  # a record contract without the field still lets records carry it
        frame[SETTINGS] = pd.Series([r.get(SETTINGS) for r in records], dtype=object)
    return frame


def _jobs(paths: list[Path]) -> list[tuple[Path, str]]:
    """Every job to read, and the ``job_dir`` its records get."""
    base, jobs = _base(paths), []
    for path in paths:
        if path.is_dir():
            dirs = _job_dirs(path)
            found = sorted([*dirs, *_result_files(path, dirs)])
            jobs += [(job, (job.relative_to(path) if base == path else job).as_posix()) for job in found]
        elif path.is_file() and path.suffix in FILE_SUFFIXES:
            jobs.append((path, path.as_posix()))
        elif path.is_file():
            raise DegradeError(f"{path}: not a result file; give a dir, or a .json array or .jsonl journal of records")
        else:
            raise DegradeError(f"{path}: no such directory or file")
    return jobs


def collect(root: Sources, *, legacy_models: dict[str, str] | None = None) -> pd.DataFrame:
    """Every record under ``root``, with a ``job_dir`` column naming where it was read.

    Dirs whose job left no record (failed, refused or dry runs) are skipped. A dir holding the
    study's ``outputs_*.json`` files outside any job dir has each read as a file given by name.

    Args:
        root: A job dir, or a run or sweep dir with job dirs anywhere below it; or a result file
            (a JSON array, the original study's included, or a journal); or several of these.
        legacy_models: ``{model_name: model}`` for the study's records whose ``model_name`` is a local
            path (no ``conf/model`` preset has it as its source), so they join ours under one name;
            the key ``""`` names the model of every such record (:func:`legacy_model_names`).

    Returns:
        The records of all jobs, in the order given and job-dir order within a dir. ``job_dir`` is
        relative to ``root`` when it is one dir, else the path as given.

    Raises:
        DegradeError: a path is neither a dir nor a result file, nothing holds records, or a
            journal line before the last is unreadable.
    """
    paths = sources(root)
    frames = []
    for job, name in _jobs(paths):
        records = _read_file(job) if job.is_file() else _read_job(job)
        if legacy_models:
            records = [legacy_model_names(r, legacy_models) for r in records]
        if not records:
            log.debug("%s: no records; skipped", job)
            continue
        log.info("%s: %d records", job, len(records))
        try:
            frames.append(_frame(records).assign(job_dir=name))
        except pa.ArrowException as exc:  # a value of another type than the record contract's
            raise DegradeError(f"{job}: a record holds a value of the wrong type ({str(exc)[:160]})") from None
    if not frames:
        shown = " ".join(str(p) for p in paths)
        raise DegradeError(f"{shown}: no records found (looked for {PARQUET} or {JOURNAL} in it and below it)")
    records = pd.concat(frames, ignore_index=True)
    duplicates = int(records.duplicated([*KEY_FIELDS, SETTINGS]).sum())
    if duplicates:
        log.warning("%d records share their key with a record of another job dir; the summary counts both", duplicates)
    _say_missing_measures(records)
    return records


def parse_legacy_models(values: Sequence[str]) -> dict[str, str]:
    """``--legacy-model`` values (``MODEL`` or ``PATH=MODEL``) as ``{path or "": model}``.

    Raises:
        DegradeError: a value with an empty model name.
    """
    names: dict[str, str] = {}
    for value in values:
        path, _, model = value.rpartition("=")
        if not model.strip():
            raise DegradeError(f"--legacy-model {value}: give a model name, as MODEL or PATH=MODEL")
        names[path] = model.strip()
    return names


def legacy_model_names(record: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """A study record whose ``model_name`` is still its own (a local path, no preset's source) named by ``names``."""
    if record.get("output_raw") is None or record.get("model_name") in legacy.preset_names():
        return record
    name = names.get(record.get("model_name"), names.get(""))
    return {**record, "model_name": name} if name else record


def _say_missing_measures(records: pd.DataFrame) -> None:
    # The measures a package extra adds are null in records scored without it: say what adds them (the registry's
    # line), a warning where the nlp extra is missing; with it installed, only older records lack them. The
    # semantic extra's measures are off unless their data is given: said as information.
    for needs in dict.fromkeys(m.needs for m in measures.MEASURES if m.extra):
        names = [m.column for m in measures.MEASURES if m.extra and m.needs == needs and m.column in records]
        if names and not records[names].notna().any().any():
            extra = measures.measure_of(names[0]).extra
            missing = extra == "nlp" and not textmeasures.nlp_available()
            log.log(
                logging.WARNING if missing else logging.INFO,
                "%s: null in every record; %s adds them, to records scored with it",
                ", ".join(names),
                needs,
            )


def read_settings(root: Sources, records: pd.DataFrame) -> dict[str, dict]:
    """The record-shaping settings of each settings hash, from the ``metadata.json`` of its job dirs.

    Args:
        root: The dir :func:`collect` read.
        records: Its records, with ``job_dir``.

    Returns:
        ``{settings_hash: settings}`` for the jobs whose metadata holds a ``settings`` dict.
    """
    known: dict[str, dict] = {}
    for job, hashes in records.groupby("job_dir")[SETTINGS]:
        try:
            meta = json.loads((_base(sources(root)) / job / METADATA).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.debug("%s: no readable %s; its settings are unknown", job, METADATA)
            continue
        settings = meta.get("settings") if isinstance(meta, dict) else None
        if isinstance(settings, dict):
            mine = [meta[SETTINGS]] if meta.get(SETTINGS) else hashes.dropna().unique()
            known.update({h: settings for h in mine})
    return known
