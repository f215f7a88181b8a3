"""Running the cells of a job: restore, damage, generate in batches the memory policy sizes, score, record."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from degrade.config.schema import RunConfig
from degrade.generation import text
from degrade.generation.interface import Progress, Sample
from degrade.generation.memory import MemoryPolicy, is_out_of_memory
from degrade.job import interrupt
from degrade.job.fidelity import FidelityPass
from degrade.job.lmeval import TaskRunner
from degrade.job.prepare import Prepared, Prompt, Shown
from degrade.methods import damage
from degrade.model import weight_error
from degrade.model.restore import fingerprint
from degrade.records.contract import CellFacts, JobFacts, make_record
from degrade.records.store import RecordStore
from degrade.scoring.answers import score_output
from degrade.scoring.perplexity import perplexity
from degrade.scoring.semantic import Semantic
from degrade.units import hms

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cell:
    """One (level, repetition) of a job's sweep."""

    level_index: int
    level: float
    repeat: int


def cells(cfg: RunConfig) -> list[Cell]:
    """Levels in the order given; the repetitions of each level together."""
    return [Cell(i, level, r) for i, level in enumerate(cfg.degradation.levels) for r in range(cfg.experiment.n_rep)]


class CellRunner:
    """Runs cells on a prepared model, appending every batch's records to the store.

    ``timings`` adds up the seconds of each step (restore, damage, generate, record, views),
    which the job writes to its metadata.
    """

    def __init__(
        self,
        cfg: RunConfig,
        prepared: Prepared,
        shown: Shown,
        store: RecordStore,
        job: JobFacts,
        total: int,
        semantic: Semantic,
    ) -> None:
        self.cfg, self.prepared, self.shown, self.store, self.job = cfg, prepared, shown, store, job
        self.semantic = semantic  # measures.wordnet, measures.sentence_model
        self.policy = MemoryPolicy(cfg.memory, prepared.loaded.device, cfg.generation.max_batch_size)
        self.timings: Counter[str] = Counter()
        self.generated, self.total, self.started = 0, total, time.perf_counter()
        # one perplexity per level: from the records of an earlier run, else measured at the level's first cell
        self.perplexity = {r["level_index"]: r["perplexity"] for r in store.records if r.get("perplexity")}
        fidelity = cfg.experiment.fidelity.enabled
        self.fidelity = FidelityPass(cfg, prepared, store.out_dir, shown.prompts) if fidelity else None
        self.tasks = TaskRunner(cfg, prepared) if cfg.experiment.tasks is not None else None  # lm-eval's
        self.measured: dict[str, dict] = {}  # this cell's fidelity, by prompt id

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[f"{step}_s"] += time.perf_counter() - start

    def run(self, number: int, count: int, cell: Cell, prompts: list[Prompt]) -> None:
        """Restore, damage and generate ``prompts`` in ``cell`` (number ``number`` of ``count``)."""
        cfg, model = self.cfg, self.prepared.loaded.model
        start = time.perf_counter()
        with self.timed("restore"):
            self.prepared.snapshot.restore(verify=cfg.verify_restore)
        if self.fidelity is not None:  # the weights are clean here: the clean side of the measure, once per job
            with self.timed("fidelity"):
                self.fidelity.clean(prompts)
        with self.timed("damage"):
            deg = cfg.degradation
            damage.apply(
                model,
                self.prepared.group,
                deg.method,
                cell.level,
                seed=cfg.seed_base,
                repeat=cell.repeat,
                common_noise=deg.common_noise,
                options=deg.options,
            )
            snapshot = self.prepared.snapshot
            weights = fingerprint(snapshot.tensors)
            clean = weights == snapshot.clean_fingerprint  # then the damage measures are 0 with nothing to read
            moved = weight_error.measure(model, self.prepared.group, snapshot, unchanged=clean)
            facts = CellFacts(cell.level_index, cell.level, cell.repeat, weights, self._perplexity(cell), moved)
        if self.fidelity is not None:
            with self.timed("fidelity"):
                self.measured = self.fidelity.measure(prompts)
        if self.prepared.engine is not None:  # hand the cell's weights to the serving engine (none if clean twice)
            with self.timed("reload"):
                self.prepared.engine.load(model, clean=clean, names=self.prepared.group.names)
        text.set_all_seeds(cfg.seed_base + cell.repeat)
        label = f"cell {number}/{count}  {deg.method}={cell.level:g} rep {cell.repeat}"
        tokens = (self._tasks if self.tasks is not None else self._batches)(label, facts, prompts)
        with self.timed("views"):
            self.store.write_views()
        self.timings["cells"] += 1
        seconds = time.perf_counter() - start
        log.info(
            "%s: %d prompts, %d tokens in %.1f s (%.0f tok/s) | done %d/%d, ~%s left",
            label,
            len(prompts),
            tokens,
            seconds,
            tokens / seconds,
            self.generated,
            self.total,
            hms(self._left()),
        )

    def _tasks(self, label: str, facts: CellFacts, prompts: list[Prompt]) -> int:
        """lm-eval scores the cell's documents (experiment.tasks) in one call; a record per document."""
        interrupt.check()
        with self.timed("generate"):
            scored = self.tasks.evaluate(prompts)
        used = self.policy.read()
        with self.timed("record"):
            job, n = self.job, len(prompts)
            records = [make_record(job, facts, p, s, batch_size=n, memory=used, scores=sc) for p, s, sc in scored]
            self.store.append([r.to_dict() for r in records])
        self.generated += n
        return sum(s.tokens_out for _, s, _ in scored)

    def _left(self) -> float:
        return (time.perf_counter() - self.started) / max(self.generated, 1) * (self.total - self.generated)

    def _batches(self, label: str, facts: CellFacts, prompts: list[Prompt]) -> int:
        """Generate ``prompts`` in batches sized by the memory policy; return the new tokens."""
        pending, tokens, batch_no = list(prompts), 0, 0
        while pending:
            interrupt.check()  # a safe point between two batches
            batch = pending[: self.policy.size]
            try:
                with self.timed("generate"):
                    samples = self._generate(f"{label} batch {batch_no + 1}", batch, facts)
            except Exception as exc:  # noqa: BLE001 - only allocation failures are retried
                if not is_out_of_memory(exc):
                    raise
                self.policy.on_out_of_memory(len(batch))
                continue
            pending = pending[len(batch) :]
            used, units = self.policy.read(), self.cfg.experiment.info_units
            with self.timed("record"):
                records = [
                    make_record(
                        self.job,
                        facts,
                        p,
                        s,
                        batch_size=len(batch),
                        memory=used,
                        scores={
                            **score_output(s.text, answers=p.answers, cookie_theft=units, prompt=p.text),
                            **self.semantic.measure(s.text),
                            **self.measured.get(p.id, {}),  # experiment.fidelity
                        },
                    )
                    for p, s in zip(batch, samples)
                ]
                self.store.append([r.to_dict() for r in records])
            self.generated += len(batch)
            tokens += sum(s.tokens_out for s in samples)
            batch_no += 1
            if self.cfg.save_every and batch_no % self.cfg.save_every == 0:
                with self.timed("views"):
                    self.store.write_views()
            self.policy.after_batch(used)
        return tokens

    def _generate(self, label: str, batch: list[Prompt], facts: CellFacts) -> list[Sample]:
        deg = self.cfg.degradation
        requests = self.prepared.requests(
            batch, self.cfg.seed_base + facts.repeat, None if deg.common_noise else facts.level
        )

        def report(step: int, steps: int, seconds: float) -> None:
            log.info(
                "%s (%d prompts): token %d/%d, %.0f tok/s", label, len(batch), step, steps, step * len(batch) / seconds
            )

        params = self.prepared.params
        progress = interrupt.StopAware(Progress(params.max_new_tokens, report))  # a safe point per token
        return self.prepared.generator.generate(requests, params, progress=progress)

    def _perplexity(self, cell: Cell) -> float | None:
        """The reference text's perplexity, once per level (the first repetition that runs)."""
        ppl = self.cfg.experiment.perplexity
        if not ppl.enabled:
            return None
        if cell.level_index not in self.perplexity:
            loaded = self.prepared.loaded
            self.perplexity[cell.level_index] = perplexity(loaded.model, loaded.tokenizer, ppl.text, loaded.device)
        return self.perplexity[cell.level_index]
