"""Judge a run: every selected record not judged yet, batch by batch, each batch journaled before the next.

An answer that is not JSON or breaks the rubric's schema is asked again (``judge.invalid_retries``
times, with what was wrong) and then recorded as ``failed`` with its raw text; so is, at once, a reply
that is not a chat completion. A record the server could not answer (retries used up on 429, 5xx,
timeouts or connection errors) is not recorded: the command says how many, exits 1, and the same
command tries them again. A judgment is of one output: a record whose output changed is judged again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from degrade.judge import jobs
from degrade.judge.backends import Backend, make_backend
from degrade.judge.config import JudgeAppConfig
from degrade.judge.dryrun import estimate
from degrade.judge.redact import Redactor, redacted_logs
from degrade.judge.rubric import (
    InvalidAnswer,
    conversation,
    correction,
    json_schema,
    judge_settings,
    parse_answer,
    settings_hash,
)
from degrade.judge.select import Item, select
from degrade.judge.store import JudgmentStore, output_hash
from degrade.records.collect import collect
from degrade.records.contract import KEY_FIELDS

log = logging.getLogger(__name__)


@dataclass
class Summary:
    """What one command did."""

    selected: int = 0  # records the rubric and the sample pick
    skipped: int = 0  # already judged with the same rubric and settings
    ok: int = 0
    failed: int = 0  # recorded as failed: no usable answer after the re-asks
    retried: int = 0  # usable only after a re-ask
    unanswered: int = 0  # not recorded: the server kept failing
    seconds: float = 0.0
    judge_hash: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def judged(self) -> int:
        return self.ok + self.failed


@dataclass
class Task:
    item: Item
    conversation: list[dict[str, str]]
    raws: list[str] = field(default_factory=list)
    tokens: list[int] = field(default_factory=lambda: [0, 0])
    transport_retries: int = 0


def judge_run(cfg: JudgeAppConfig) -> Summary:
    """Judge the records under ``cfg.run`` with ``cfg.judge`` (a :class:`~degrade.judge.config.JudgeAppConfig`).

    Every job dir it will write in is checked and held before the first call (:mod:`degrade.judge.jobs`).
    """
    root, jc = Path(cfg.run), cfg.judge
    jobs.refuse_a_file_of_a_job(root)
    settings = judge_settings(jc.rubric, jc.backend)
    summary = Summary(judge_hash=settings_hash(settings))
    items = select(collect(root), jc.rubric, jc.sample, jc.seed)
    summary.selected = len(items)
    stores = jobs.peek(root, sorted({i.job_dir for i in items}))
    todo = _todo(stores, items, jc, summary.judge_hash)
    summary.skipped = len(items) - len(todo)
    if jc.dry_run:
        _log_selection(jc, summary, len(todo))
        estimate(todo, jc, lambda item: conversation(jc.rubric, item.record))
        return summary
    lagging = {job for job, store in stores.items() if store.views_lag()}  # a kill before the views were rebuilt
    needed = sorted({i.job_dir for i in todo} | lagging)
    with ExitStack() as held:
        stores = jobs.hold(root, needed, held)  # read again, now held: another judge may have gone on meanwhile
        todo = _todo(stores, [i for i in items if i.job_dir in stores], jc, summary.judge_hash)
        summary.skipped = len(items) - len(todo)
        _log_selection(jc, summary, len(todo))
        try:
            if todo:
                _judge(todo, stores, jc, settings, summary)
        finally:  # also after a refusal or Ctrl-C: the views show every batch journaled
            for store in stores.values():
                if store.appended or store.views_lag():
                    store.write_views()
    return summary


def _judge(todo: list[Item], stores: dict[str, JudgmentStore], jc: Any, settings: dict, summary: Summary) -> None:
    """Judge ``todo`` batch by batch, each batch's judgments journaled (the secrets redacted) before the next."""
    backend = make_backend(jc.backend)
    redact = Redactor.of(jc.backend)
    start = time.perf_counter()
    try:
        with redacted_logs(redact):
            for batch in _batches(todo, backend.batch_size):
                judged = judge_batch(backend, jc, batch, settings, summary)
                for job in {t.job_dir for t in batch}:
                    stores[job].append([_redacted(j, redact) for j, item in judged if item.job_dir == job])
                _progress(summary, len(todo), time.perf_counter() - start)
    finally:
        summary.seconds = time.perf_counter() - start


def _todo(stores: dict[str, JudgmentStore], items: list[Item], jc: Any, judge_hash: str) -> list[Item]:
    """The items without a judgment of their record's current output (with ``retry_failed``: or a failed one)."""
    todo = []
    for item in items:
        judged = stores[item.job_dir].find(item.record, jc.rubric.name, judge_hash)
        if judged is None or (jc.retry_failed and judged["status"] == "failed"):
            todo.append(item)
    return todo


def _log_selection(jc: Any, summary: Summary, todo: int) -> None:
    log.info(
        "rubric %s, judge %s (%s), hash %s: %d records selected, %d already judged, %d to judge",
        jc.rubric.name, jc.backend.model, jc.backend.name, summary.judge_hash, summary.selected, summary.skipped, todo,
    )  # fmt: skip


def _redacted(judgment: dict[str, Any], redact: Redactor) -> dict[str, Any]:
    """``judgment`` with every secret taken out of the texts a server wrote (its answers, the errors about them)."""
    previous = [redact(r) for r in judgment["raw_previous"]]
    return {**judgment, "raw": redact(judgment["raw"]), "raw_previous": previous, "error": redact(judgment["error"])}


def _batches(items: list[Item], size: int) -> Iterator[list[Item]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def judge_batch(
    backend: Backend, jc: Any, batch: list[Item], settings: dict[str, Any], summary: Summary
) -> list[tuple[dict[str, Any], Item]]:
    """Judge one batch; return its judgments (ok or failed) with their items. Unanswered records are left out."""
    rubric, schema = jc.rubric, json_schema(jc.rubric)
    tasks = [Task(i, conversation(rubric, i.record)) for i in batch]
    pending, out = tasks, []
    start = time.perf_counter()
    for attempt in range(jc.invalid_retries + 1):
        completions = backend.complete([t.conversation for t in pending], schema)
        again = []
        for task, done in zip(pending, completions):
            task.transport_retries += done.transport_retries
            if done.text is None and done.raw is not None:  # a reply, but no answer in it: failed, its text kept
                task.raws.append(done.raw)
                summary.failed += 1
                out.append((_judgment(task, settings, summary.judge_hash, None, done.error, start), task.item))
                continue
            if done.text is None:
                summary.unanswered += 1
                summary.errors.append(done.error or "no answer")
                continue
            task.raws.append(done.text)
            task.tokens = [task.tokens[0] + done.prompt_tokens, task.tokens[1] + done.completion_tokens]
            try:
                ratings = parse_answer(done.text, rubric)
            except InvalidAnswer as exc:
                if attempt < jc.invalid_retries:
                    task.conversation = task.conversation + correction(done.text, str(exc), rubric)
                    again.append(task)
                else:
                    summary.failed += 1
                    out.append((_judgment(task, settings, summary.judge_hash, None, str(exc), start), task.item))
                continue
            summary.ok += 1
            summary.retried += attempt > 0
            out.append((_judgment(task, settings, summary.judge_hash, ratings, None, start), task.item))
        pending = again
        if not pending:
            break
    return out


def _judgment(
    task: Task, settings: dict[str, Any], judge_hash: str, ratings: dict | None, error: str | None, start: float
) -> dict[str, Any]:
    record = task.item.record
    return {
        **{k: record[k] for k in KEY_FIELDS},
        "rubric": settings["rubric"]["name"],
        "judge_hash": judge_hash,
        "output_hash": output_hash(record.get("output")),  # the output rated: a new one is judged again
        "judge_backend": settings["backend"],
        "judge_model": settings["model"],
        "judge_settings": settings,
        "status": "ok" if ratings is not None else "failed",
        "ratings": ratings or {},
        "error": error,
        "raw": task.raws[-1],
        "raw_previous": task.raws[:-1],
        "attempts": len(task.raws),
        "transport_retries": task.transport_retries,
        "prompt_tokens": task.tokens[0],
        "completion_tokens": task.tokens[1],
        "seconds": round(time.perf_counter() - start, 3),  # the batch's wall time, like a record's duration
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _progress(summary: Summary, total: int, elapsed: float) -> None:
    done = summary.judged + summary.unanswered
    rate = summary.judged / elapsed * 60 if elapsed else 0.0
    left = (total - done) / (done / elapsed) if done else 0.0
    log.info(
        "judged %d/%d (%d ok, %d failed, %d after a re-ask%s), %.1f records/min, ~%dm%02ds left",
        done, total, summary.ok, summary.failed, summary.retried,
        f", {summary.unanswered} unanswered" if summary.unanswered else "", rate, left // 60, left % 60,
    )  # fmt: skip
