"""One job: load once, then for every cell restore, damage, generate, score and record."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from degrade import damage, dryrun, generation, loading, provenance, vision
from degrade.config import RunConfig
from degrade.memory import MemoryPolicy, is_out_of_memory
from degrade.params import resolve_group
from degrade.perplexity import perplexity
from degrade.restore import Snapshot, fingerprint
from degrade.scoring import score_output
from degrade.store import METADATA, RecordStore, write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cell:
    """One (level, repetition) of a job's sweep."""

    level_index: int
    level: float
    repeat: int


@dataclass
class JobSummary:
    out_dir: Path
    records: int
    generated: int
    skipped: int
    seconds: float
    plan: dict | None = None


def cells(cfg: RunConfig) -> list[Cell]:
    """Levels in the order given; the repetitions of each level together."""
    return [Cell(i, level, r) for i, level in enumerate(cfg.degradation.levels) for r in range(cfg.experiment.n_rep)]


def safe_name(text: str) -> str:
    return text.replace("/", "-").replace("|", "-")


def json_name(cfg: RunConfig) -> str:
    """The original study's file name: ``outputs_{method}_{model}_{name_suffix}.json``."""
    return f"outputs_{cfg.degradation.method}_{safe_name(cfg.model.name)}_{safe_name(cfg.name_suffix)}.json"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Job:
    """The state of one running job; :func:`run_job` is the way in."""

    def __init__(self, cfg: RunConfig, out_dir: Path, resolved_yaml: str) -> None:
        self.cfg, self.out_dir = cfg, out_dir
        self.store = RecordStore(out_dir, json_name(cfg), cfg.formats)
        self.meta: dict[str, Any] = {
            "start_time": _now(),
            "config_hash": provenance.config_hash(resolved_yaml),
            **provenance.git_state(),
            "versions": provenance.versions(),
            "environment": provenance.environment(),
        }
        self.prompts = cfg.experiment.selected
        self.cells = cells(cfg)
        self.generated = 0
        self.perplexity: dict[int, float] = {}
        image = cfg.experiment.image
        self.image = vision.load_image(Path(image.path).expanduser()) if image.enabled else None
        self.image_filename = Path(image.path).name if image.enabled else None

    def key_of(self, cell: Cell, prompt_id: str) -> dict[str, Any]:
        c = self.cfg
        return {
            "experiment": c.experiment.name,
            "model_name": c.model.name,
            "degradation_method": c.degradation.method,
            "param_group_name": c.param_group.name,
            "level_value": cell.level,
            "repeat_index": cell.repeat,
            "prompt_id": prompt_id,
        }

    def run(self) -> JobSummary:
        if self.cfg.dry_run:
            return self._run()
        with self.store.locked():  # one writer per job dir: a second copy of the command stops at once
            return self._run()

    def _run(self) -> JobSummary:
        cfg, start = self.cfg, time.perf_counter()
        if cfg.force_run and not cfg.dry_run:
            self.store.set_aside()
        elif found := self.store.load(repair=not cfg.dry_run):
            log.info("resuming: %d records already in %s", found, self.store.journal)
        work = {c: [p for p in self.prompts if not self.store.has(self.key_of(c, p.id))] for c in self.cells}
        if cfg.force_run:
            work = {c: list(self.prompts) for c in self.cells}
        expected = len(self.cells) * len(self.prompts)
        missing = sum(len(v) for v in work.values())
        log.info(
            "plan: %d cells × %d prompts = %d generations, %d to run",
            len(self.cells),
            len(self.prompts),
            expected,
            missing,
        )
        plan = None
        if cfg.dry_run:
            plan = self._generate(work, dry_run=True)
        elif missing:
            try:
                self._generate(work)
            finally:  # interrupted or not, the views and metadata match the journal
                self._finish()
        else:
            self._finish()
        return JobSummary(
            self.out_dir, len(self.store.records), self.generated, expected - missing, time.perf_counter() - start, plan
        )

    def _finish(self) -> None:
        self.store.write_views()
        self.meta.update(end_time=_now(), records=len(self.store.records), generated=self.generated)
        write_json(self.out_dir / METADATA, self.meta)

    def _generate(self, work: dict[Cell, list], dry_run: bool = False) -> dict | None:
        cfg = self.cfg
        loaded = loading.load(cfg.model, cfg.device)
        group = resolve_group(loaded.model, cfg.param_group)
        log.info(
            "param_group %s: %d tensors, %s elements (%s)",
            group.name,
            len(group.targets),
            f"{group.numel:,}",
            ", ".join(f"{k}×{n}" for k, n in group.summary()["kinds"].items()),
        )
        snapshot = Snapshot(loaded.model, group.names, loaded.clean)
        params = generation.effective_params(loaded.model, cfg.generation)
        encoded = {p.id: generation.encode(loaded.tokenizer, p.text) for p in self.prompts}
        if dry_run:
            try:
                return dryrun.estimate(self, loaded, snapshot.nbytes, work, encoded, params)
            finally:
                snapshot.restore()  # the calibration ran a forward pass; leave the model as loaded
        self.meta.update(
            model={
                "name": cfg.model.name,
                "source": loaded.source,
                "backend": loaded.backend,
                "load_s": round(loaded.load_s, 3),
                "weights_fingerprint": snapshot.clean_fingerprint,
            },
            model_load_s=round(loaded.load_s, 3),
            model_cache_hit=loaded.cache_hit,
            device=str(loaded.device),
            device_name=provenance.device_name(loaded.device),
            param_group=group.summary(),
        )
        write_json(self.out_dir / "param_group.json", group.summary())
        self.perplexity = {r["level_index"]: r["perplexity"] for r in self.store.records if r.get("perplexity")}
        policy = MemoryPolicy(cfg.memory, loaded.device, cfg.generation.max_batch_size)
        total, started = sum(len(v) for v in work.values()), time.perf_counter()
        try:
            for number, (cell, prompts) in enumerate(work.items(), start=1):
                if not prompts:
                    continue
                cell_start = time.perf_counter()
                snapshot.restore(verify=cfg.verify_restore)
                damage.apply(
                    loaded.model,
                    group,
                    cfg.degradation.method,
                    cell.level,
                    seed=cfg.seed_base,
                    repeat=cell.repeat,
                    common_noise=cfg.degradation.common_noise,
                )
                context = {
                    "weights_fingerprint": fingerprint(snapshot.tensors),
                    "perplexity": self._perplexity(cell, loaded),
                }
                generation.set_all_seeds(cfg.seed_base + cell.repeat)
                tokens = self._run_cell(cell, prompts, loaded, encoded, params, policy, context)
                self.store.write_views()
                seconds = time.perf_counter() - cell_start
                left = (time.perf_counter() - started) / self.generated * (total - self.generated)
                log.info(
                    "cell %d/%d  %s=%g rep %d: %d prompts, %d tokens in %.1f s (%.0f tok/s) | done %d/%d, ~%s left",
                    number,
                    len(work),
                    cfg.degradation.method,
                    cell.level,
                    cell.repeat,
                    len(prompts),
                    tokens,
                    seconds,
                    tokens / seconds,
                    self.generated,
                    total,
                    dryrun._hms(left),
                )
        finally:
            snapshot.restore()  # a model reused by the next job of a multirun starts clean
        return None

    def _run_cell(self, cell: Cell, prompts: list, loaded, encoded, params, policy: MemoryPolicy, context: dict) -> int:
        """Generate ``prompts`` in batches sized by the memory policy; return the new tokens."""
        pending, tokens, batch_no = list(prompts), 0, 0
        while pending:
            batch = pending[: policy.size]
            try:
                if self.image is None:
                    samples = generation.generate(
                        loaded.model, loaded.tokenizer, [encoded[p.id] for p in batch], params, loaded.device
                    )
                else:
                    samples = vision.generate_with_image(
                        loaded.model, loaded.processor, [p.text for p in batch], self.image, params, loaded.device
                    )
            except Exception as exc:  # noqa: BLE001 - only allocation failures are retried
                if not is_out_of_memory(exc):
                    raise
                policy.on_out_of_memory(len(batch))
                continue
            pending = pending[len(batch) :]
            used = policy.read()
            self.store.append(
                [self.record(cell, p, s, params, loaded, len(batch), used, context) for p, s in zip(batch, samples)]
            )
            self.generated += len(batch)
            tokens += sum(s.tokens_out for s in samples)
            batch_no += 1
            if self.cfg.save_every and batch_no % self.cfg.save_every == 0:
                self.store.write_views()
            policy.after_batch(used)
        return tokens

    def _perplexity(self, cell: Cell, loaded: loading.Loaded) -> float | None:
        """The reference text's perplexity, once per level (the first repetition that runs)."""
        ppl_cfg = self.cfg.experiment.perplexity
        if not ppl_cfg.enabled:
            return None
        if cell.level_index not in self.perplexity:
            self.perplexity[cell.level_index] = perplexity(loaded.model, loaded.tokenizer, ppl_cfg.text, loaded.device)
        return self.perplexity[cell.level_index]

    def record(
        self,
        cell: Cell,
        prompt,
        sample: generation.Sample,
        params: dict,
        loaded: loading.Loaded,
        batch_size: int,
        memory: float,
        context: dict,
    ) -> dict[str, Any]:
        cfg = self.cfg
        scores = score_output(sample.text, answers=prompt.answers, cookie_theft=cfg.experiment.info_units)
        return {
            **self.key_of(cell, prompt.id),
            "timestamp": _now(),
            "prompt_group": cfg.experiment.name,
            "prompt_text": prompt.text,
            "output": sample.text,
            "std_dev": cell.level,
            "temperature": params["temperature"],
            "do_sample": params["do_sample"],
            "seed": cfg.seed_base + cell.repeat,
            "duration": round(sample.duration, 4),
            "tokens": sample.tokens_out,
            "usar_4bit": cfg.model.load_4bit,
            "experiment_id": f"{cfg.degradation.method}|{cfg.model.name}|{cfg.name_suffix}",
            "config_name": f"{cfg.experiment.name}/{cfg.degradation.name}/{cfg.param_group.name}",
            "model_variant": "it",
            "prompt_category": prompt.category,
            "tokens_in": sample.tokens_in,
            "tokens_out": sample.tokens_out,
            "level_index": cell.level_index,
            "degrad_level": cell.level,
            "batch_size_effective": batch_size,
            "device": str(loaded.device),
            "dtype": str(loaded.dtype).removeprefix("torch."),
            "load_4bit": cfg.model.load_4bit,
            "restore_strategy": cfg.restore_strategy,
            "gen_params": dict(params),
            "image_used": self.image is not None,
            "image_filename": self.image_filename,
            "vram_usage_percent": memory,
            **context,
            **scores,
        }


def run_job(cfg: RunConfig, out_dir: Path, resolved_yaml: str = "") -> JobSummary:
    """Run (or resume) the job described by ``cfg``, writing everything into ``out_dir``.

    Args:
        cfg: the typed config, validated.
        out_dir: the job directory (Hydra's output dir for that job).
        resolved_yaml: the resolved config as YAML, hashed into the metadata.
    """
    return Job(cfg, out_dir, resolved_yaml).run()
