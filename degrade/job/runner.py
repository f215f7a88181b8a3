"""One job: check its dir, load once, then for every cell restore, damage, generate, score and record.

A job dir belongs to one configuration (:mod:`degrade.job.settings`): a job resumes only when the
settings that shape its records are unchanged (:mod:`degrade.job.resume`), rescores the stored outputs
when only what scores them changed, and is refused, writing nothing, otherwise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from degrade.config.schema import RunConfig
from degrade.errors import one_line
from degrade.job import dryrun, interrupt, provenance, resume
from degrade.job.cells import Cell, CellRunner, cells
from degrade.job.failures import CellFailures
from degrade.job.plan import check_context, job_facts, job_fields, log_plan
from degrade.job.prepare import Prepared, Prompt, prepare, shown
from degrade.job.rescore import rescore
from degrade.job.settings import record_settings, settings_hash
from degrade.records import jobdir
from degrade.records.aside import keep_copies
from degrade.records.contract import key_of
from degrade.records.store import METADATA, RecordStore, write_json
from degrade.scoring.semantic import Semantic

log = logging.getLogger(__name__)


@dataclass
class JobSummary:
    out_dir: Path
    records: int
    generated: int
    skipped: int
    seconds: float
    plan: dict | None = None


def json_name(cfg: RunConfig) -> str:
    """The original study's file name: ``outputs_{method}_{model}_{name_suffix}.json``."""
    return cfg.view_name


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Job:
    """The state of one job; :func:`run_job` is the way in."""

    def __init__(self, cfg: RunConfig, out_dir: Path, resolved_yaml: str, on_start: Callable[[], None] | None) -> None:
        self.cfg, self.out_dir, self.on_start = cfg, out_dir, on_start
        self.store = RecordStore(out_dir, json_name(cfg), cfg.formats)
        self.semantic = Semantic(cfg.measures.wordnet, cfg.measures.sentence_model)  # its data's digests, taken once
        self.settings = record_settings(cfg, self.semantic)
        self.meta: dict[str, Any] = {
            "status": "running",
            "start_time": _now(),
            "config_hash": provenance.config_hash(resolved_yaml),
            "settings_hash": settings_hash(self.settings),
            "settings": self.settings,
            **provenance.git_state(),
            "versions": provenance.versions(),
            "environment": provenance.environment(),
        }
        self.shown = shown(cfg.experiment)
        self.cells = cells(cfg)
        self.started = time.perf_counter()
        self.process_start_s = provenance.process_start_seconds(time.time())

    # -- the way through a job, top to bottom ------------------------------------------------------------

    def run(self) -> JobSummary:
        if self.cfg.dry_run:
            return self.dry_run()
        with jobdir.locked(self.out_dir):  # one writer per job dir: a second copy of the command stops at once
            self.seed = jobdir.refuse_foreign(self.out_dir, self.store.json_path, job_fields(self.cfg))
            earlier = resume.read_earlier(self.out_dir, fresh=self.cfg.force_run)
            self.read(repair=False)
            rescoring = resume.check(earlier, self.settings, self.meta["settings_hash"], self.store.records)
            self.meta = {**earlier.model_facts(), **self.meta}
            work = self.work()
            self.log_plan(work)
            self.semantic.load()  # a measure that cannot read its data stops the job before the model loads
            prepared = prepare(self.cfg, self.shown) if self.missing(work) else None
            if prepared is not None:
                check_context(self.cfg, prepared)
                resume.refuse_other_weights(earlier, prepared.loaded.fingerprint, prepared.snapshot)
            interrupt.check()  # a stop asked for while the model loaded: nothing is written yet
            self.start(earlier, rescoring)
            return self.execute(self.work(), prepared)

    def dry_run(self) -> JobSummary:
        """The plan, a time and memory estimate; nothing written."""
        jobdir.refuse_foreign(self.out_dir, self.store.json_path, job_fields(self.cfg))
        self.read(repair=False)
        work = self.work()
        self.log_plan(work)
        self.semantic.load()
        prepared = prepare(self.cfg, self.shown)
        check_context(self.cfg, prepared)
        try:
            plan = dryrun.estimate(
                prepared, work, cells=len(self.cells), max_batch_size=self.cfg.generation.max_batch_size
            )
        finally:
            prepared.snapshot.restore()  # the calibration ran a forward pass; leave the model as loaded
        return self.summary(work, plan)

    def read(self, *, repair: bool) -> None:
        """The records already in the dir (none with ``force_run``); ``repair`` lets the store mend what it finds."""
        self.store.reset()
        if not self.cfg.force_run:
            self.store.load(repair=repair)

    def work(self) -> dict[Cell, list[Prompt]]:
        """The prompts each cell still needs: those without a record."""
        return {c: [p for p in self.shown.prompts if not self.store.has_key(self.key(c, p))] for c in self.cells}

    def log_plan(self, work: dict[Cell, list[Prompt]]) -> None:
        log_plan(self.cfg, self.store, self.shown.prompts, len(self.cells), self.missing(work))
        resume.log_changed_prompts(self.store.records, self.shown.prompts)

    def start(self, earlier: resume.Earlier, rescoring: resume.Rescoring | None) -> None:
        """The job takes its dir: from here on it writes. The metadata is written last, once the records are its."""
        if self.on_start is not None:
            self.on_start()
        jobdir.claim(self.out_dir)
        if self.seed is not None:  # a file no job wrote seeds the journal and will be rewritten: a copy first
            keep_copies(self.out_dir, [self.seed.name], f"{self.seed.name} seeds the journal")
        if self.cfg.force_run:
            self.store.set_aside()
        earlier.keep_unreadable_aside()
        self.read(repair=True)  # the journal again, now repairing it (a torn line kept aside, views adopted)
        if rescoring is not None:
            rescore(self.store, rescoring, self.cfg, self.meta["settings_hash"], self.semantic)
        write_json(self.out_dir / METADATA, self.meta)

    def execute(self, work: dict[Cell, list[Prompt]], prepared: Prepared | None) -> JobSummary:
        runner = None
        try:
            if prepared is not None and self.missing(work):
                runner = self.run_cells(work, prepared)
            self.meta["status"] = "done"
        except KeyboardInterrupt:
            self.meta["status"] = "interrupted"
            raise
        except BaseException as exc:
            self.meta.update(status="failed", error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise
        finally:  # interrupted or not, the views and metadata match the journal
            self.finish(runner, prepared)
        return self.summary(work)

    def run_cells(self, work: dict[Cell, list[Prompt]], prepared: Prepared) -> CellRunner:
        loaded = prepared.loaded
        self.meta.update(
            model={
                "name": self.cfg.model.name,
                "source": loaded.source,
                "backend": loaded.backend,
                "load_s": round(loaded.load_s, 3),
                "weights_fingerprint": loaded.fingerprint,
                "group_fingerprint": prepared.snapshot.clean_fingerprint,
            },
            model_load_s=round(loaded.load_s, 3),
            model_cache_hit=loaded.cache_hit,
            device=str(prepared.device),
            device_name=provenance.device_name(prepared.device),
            param_group=prepared.group.summary(),
        )
        write_json(self.out_dir / "param_group.json", prepared.group.summary())
        facts = job_facts(self.cfg, prepared, self.meta["settings_hash"], self.shown.image_filename)
        runner = CellRunner(self.cfg, prepared, self.shown, self.store, facts, self.missing(work), self.semantic)
        failures = CellFailures(self.cfg.degradation.method)
        try:
            for number, (cell, prompts) in enumerate(work.items(), start=1):
                if prompts:
                    interrupt.check()  # a safe point between two cells
                    run = partial(runner.run, number, len(work), cell, prompts)
                    failures.attempt(f"cell {number}/{len(work)}", cell, run)
        finally:
            prepared.snapshot.restore()  # a model reused by the next job of a multirun starts clean
            self.meta.update(failures.metadata())
        failures.raise_if_any()
        return runner

    def finish(self, runner: CellRunner | None, prepared: Prepared | None) -> None:
        start = time.perf_counter()
        try:
            self.store.write_views()
        except Exception as exc:
            self.meta.update(status="failed", error=f"the views could not be written: {one_line(exc)}")
            raise
        finally:
            timings = dict(runner.timings) if runner else {"cells": 0}
            timings["views_s"] = timings.get("views_s", 0.0) + time.perf_counter() - start
            timings["load_s"] = prepared.loaded.load_s if prepared and not prepared.loaded.cache_hit else 0.0
            timings["engine_start_s"] = prepared.engine_start_s if prepared else 0.0
            timings["process_start_s"] = self.process_start_s
            timings["total_s"] = time.perf_counter() - self.started
            self.meta.update(
                end_time=_now(),
                records=len(self.store.records),
                generated=runner.generated if runner else 0,
                timings={k: round(v, 4) for k, v in timings.items()},
            )
            write_json(self.out_dir / METADATA, self.meta)

    # -- helpers --------------------------------------------------------------------------------------------

    def key(self, cell: Cell, prompt: Prompt) -> tuple:
        """The key of the record of ``prompt`` in ``cell`` (see :data:`degrade.records.contract.KEY_FIELDS`)."""
        cell_fields = {"level_value": cell.level, "repeat_index": cell.repeat}
        return key_of({**job_fields(self.cfg), **cell_fields, "prompt_id": prompt.id, "prompt_hash": prompt.hash})

    @staticmethod
    def missing(work: dict[Cell, list[Prompt]]) -> int:
        return sum(len(v) for v in work.values())

    def summary(self, work: dict[Cell, list[Prompt]], plan: dict | None = None) -> JobSummary:
        expected, missing = len(self.cells) * len(self.shown.prompts), self.missing(work)
        generated = self.meta.get("generated", 0)
        return JobSummary(
            self.out_dir,
            len(self.store.records),
            generated,
            expected - missing,
            time.perf_counter() - self.started,
            plan,
        )


def run_job(
    cfg: RunConfig, out_dir: Path, resolved_yaml: str = "", on_start: Callable[[], None] | None = None
) -> JobSummary:
    """Run (or resume) the job described by ``cfg``, writing everything into ``out_dir``.

    Args:
        cfg: the typed config, validated.
        out_dir: the job directory (Hydra's output dir for that job).
        resolved_yaml: the resolved config as YAML, hashed into the metadata.
        on_start: called once, when the job has checked its dir (lock taken, settings unchanged) and is
            about to write into it; never for a dry run or a refused job.

    Raises:
        DegradeError: a user mistake or an unusable input, one line; the dir is left as it was when the
            job was refused before writing, and holds every finished record (status ``failed``) after.
    """
    return Job(cfg, out_dir, resolved_yaml, on_start).run()
