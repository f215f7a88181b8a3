"""A breaking-point search on disk: each probe a job, its measure read from the job's records, the path written out.

A :class:`Search` is one search of a sweep: its bisection, the overrides of each probe's job and
what it writes out.

A probe is an ordinary job; what it measured is in its job dir (``records.jsonl``, read through
:func:`degrade.records.store.read_journal`, and ``metadata.json`` for how it ended). The search's path
and answer go to ``<sweep dir>/breakpoint.json`` and a readable ``breakpoint.md``; the report reads
them back (:func:`read_answers`) to mark each answer on its figure.
"""

from __future__ import annotations

import json
import logging
import typing
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from statistics import fmean, pstdev
from typing import Any

from degrade.errors import ConfigError, DegradeError
from degrade.records.contract import Record
from degrade.records.store import read_journal, write_atomic, write_json
from degrade.search.bisection import Answer, Bisection

log = logging.getLogger(__name__)

JSON_NAME, MD_NAME = "breakpoint.json", "breakpoint.md"
_HINTS = typing.get_type_hints(Record)
# The record columns a search can decide on: the numbers (bool is not one).
MEASURES = sorted(
    f.name for f in fields(Record) if _HINTS[f.name] in (int, float, typing.Optional[int], typing.Optional[float])
)


class ProbeFailed(DegradeError):
    """A probe's job did not finish: the search cannot decide at that level."""

    exit_code = 1


def check_measure(measure: str) -> None:
    """Refuse a measure that is not a numeric record column, naming the allowed ones."""
    if measure not in MEASURES:
        raise ConfigError(
            "hydra.sweeper.measure", f"{measure!r} is not a numeric record column; allowed: {', '.join(MEASURES)}"
        )


@dataclass(frozen=True)
class Measured:
    """What one probe measured: the mean over its repetitions, each repetition's mean, how many records."""

    value: float
    per_rep: list[float]
    records: int

    @property
    def spread(self) -> float:
        """The standard deviation of the repetitions' means (0 for one repetition)."""
        return pstdev(self.per_rep) if len(self.per_rep) > 1 else 0.0


def measure_job(job_dir: Path, measure: str, level: float) -> Measured:
    """The mean of ``measure`` over the records of ``level`` in ``job_dir``, repetition by repetition.

    Raises:
        ProbeFailed: the job did not end ``done`` (its own error is named).
        ConfigError: no record of that level holds a value of ``measure`` (the experiment does not score it).
    """
    meta_path = job_dir / "metadata.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    status = meta.get("status", "never started")
    if status != "done":
        raise ProbeFailed(f"probe {job_dir.name} ended {status}: {meta.get('error') or 'see its run.log'}")
    rows = [r for r in read_journal(job_dir / "records.jsonl").records if float(r["level_value"]) == level]
    by_rep: dict[int, list[float]] = {}
    for row in rows:
        if row.get(measure) is not None:
            by_rep.setdefault(int(row["repeat_index"]), []).append(float(row[measure]))
    if not by_rep:
        raise ConfigError(
            "hydra.sweeper.measure",
            f"{measure} has no value in the {len(rows)} records of {job_dir} "
            "(correct needs prompts with answers, e.g. experiment=iq; perplexity needs experiment.perplexity.enabled)",
        )
    per_rep = [fmean(by_rep[k]) for k in sorted(by_rep)]
    return Measured(fmean(per_rep), per_rep, sum(len(v) for v in by_rep.values()))


@dataclass
class SearchRecord:
    """One search of a sweep, as written out: what it searched, its clean value, its probes, its answer."""

    label: str
    overrides: list[str]
    method: str
    axis: dict[str, Any]
    n_rep: int
    clean: dict[str, Any] | None = None
    threshold: float | None = None
    probes: list[dict[str, Any]] | None = None
    answer: dict[str, Any] | None = None
    jobs: int = 0
    cells: int = 0

    def update(self, bisection: Bisection, clean_dir: str | None) -> None:
        """Take the search's current state: its probes in the order they ran, and its answer once done."""
        if bisection.clean is not None:
            self.clean = {"level": 0.0, "value": bisection.clean, "job_dir": clean_dir}
        crit = bisection.criterion
        self.threshold = (
            crit.threshold(bisection.clean) if bisection.clean is not None or not crit.needs_clean else None
        )
        self.probes = [
            {"level": p.level, "value": p.value, "decision": "crossed" if p.crossed else "held", **p.detail}
            for p in bisection.probes
        ]
        levels = {p.level for p in bisection.probes} | ({0.0} if self.clean else set())
        self.jobs, self.cells = len(levels), len(levels) * self.n_rep
        answer: Answer | None = bisection.answer() if bisection.done else None
        self.answer = asdict(answer) if answer else None


@dataclass
class Search:
    """One search of the grid: its options, its bisection and what it writes out."""

    point: list[str]
    bisection: Bisection
    record: SearchRecord
    level_overrides: list[str]
    clean_dir: str | None = None
    failed: str | None = None

    def fail(self, error: str) -> None:
        """Stop this search: a probe it needs did not run."""
        self.failed = error
        self.record.answer = {"status": "failed", "level": None, "bracket": [None, None], "message": error}

    def job(self, level: float) -> list[str]:
        """The overrides of the probe at ``level``."""
        return [*self.point, f"degradation.levels=[{level:g}]", *self.level_overrides]

    def wanted(self) -> list[float]:
        """The levels this search needs measured in the next round (the clean level first, when needed)."""
        if self.failed or self.bisection.done:
            return []
        clean = [0.0] if self.bisection.criterion.needs_clean and self.bisection.clean is None else []
        return list(dict.fromkeys(clean + self.bisection.pending()))


def detail(measured: Measured, job_dir: Path) -> dict[str, Any]:
    """What a probe keeps beside its level and value: each repetition's value, their spread, its job dir."""
    return {
        "per_rep": measured.per_rep,
        "spread": measured.spread,
        "records": measured.records,
        "job_dir": str(job_dir),
    }


def write_results(sweep_dir: Path, settings: dict[str, Any], searches: list[SearchRecord]) -> None:
    """Write ``breakpoint.json`` and ``breakpoint.md`` in ``sweep_dir`` (each atomically)."""
    write_json(sweep_dir / JSON_NAME, {"settings": settings, "searches": [asdict(s) for s in searches]})
    text = markdown(settings, searches)
    write_atomic(sweep_dir / MD_NAME, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def markdown(settings: dict[str, Any], searches: list[SearchRecord]) -> str:
    """The searches as a reader wants them: per search, the answer and every probe in the order it ran.

    Each probe's job dir is in ``breakpoint.json``.
    """
    crit = settings["criterion"]
    lines = [
        "# Breaking point",
        "",
        f"Measure `{crit['measure']}` {crit['direction']} past {crit['kind']} {crit['value']:g}; "
        f"tolerance {settings['tolerance']:g}, at most {settings['max_probes']} probes per search.",
    ]
    for s in searches:
        answer = s.answer or {"status": "running", "level": None, "message": "not finished"}
        level = "–" if answer["level"] is None else f"{answer['level']:g}"
        clean = "–" if s.clean is None else f"{s.clean['value']:.4g}"
        threshold = "–" if s.threshold is None else f"{s.threshold:.4g}"
        lines += [
            "",
            f"## {s.label}",
            "",
            f"`{' '.join(s.overrides)}`",
            "",
            f"**{answer['status']}: level {level}** ({answer['message']}); clean {clean}, threshold {threshold}; "
            f"{s.jobs} jobs, {s.cells} cells ({s.n_rep} repetition{'s' if s.n_rep != 1 else ''} each).",
            "",
            "| # | level | value | ± (reps) | decision |",
            "|---|---|---|---|---|",
        ]
        for i, p in enumerate(s.probes or [], 1):
            spread = p.get("spread") if len(p.get("per_rep") or []) > 1 else None  # one repetition has no spread
            lines.append(
                f"| {i} | {p['level']:g} | {p['value']:.4g} | {'' if spread is None else f'{spread:.3g}'} "
                f"| {p['decision']} |"
            )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Found:
    """A search's answer as the report marks it: on the line of the jobs whose settings hash it shares."""

    label: str
    settings_hash: str
    method: str
    measure: str
    level: float
    threshold: float
    status: str


def read_answers(roots: Sequence[Path]) -> list[Found]:
    """The answers with a level of every search written under ``roots`` (each ``breakpoint.json`` below them).

    A search's probes are jobs of one configuration but their level, so they share a settings hash;
    it is read from a probe's ``metadata.json``, looked for in the sweep dir by the job dir's name first
    (a sweep dir that was moved), then at the path the search wrote.
    """
    found = []
    paths = sorted({p for root in roots if Path(root).is_dir() for p in Path(root).rglob(JSON_NAME)})
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            measure = data["settings"]["criterion"]["measure"]
            searches = data["searches"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: not a breakpoint file, its answers are not marked (%s)", path, exc)
            continue
        for search in searches:
            answer = search.get("answer") or {}
            settings = _settings_hash(path.parent, search.get("probes") or [])
            if answer.get("level") is None or search.get("threshold") is None or settings is None:
                continue
            found.append(
                Found(
                    search["label"],
                    settings,
                    search["method"],
                    measure,
                    float(answer["level"]),
                    float(search["threshold"]),
                    answer["status"],
                )
            )
    return found


def _settings_hash(sweep_dir: Path, probes: list[dict[str, Any]]) -> str | None:
    for probe in probes:
        job_dir = Path(probe["job_dir"])
        for meta in (sweep_dir / job_dir.name / "metadata.json", job_dir / "metadata.json"):
            if meta.is_file():
                return json.loads(meta.read_text(encoding="utf-8")).get("settings_hash")
    return None
